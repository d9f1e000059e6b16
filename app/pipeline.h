#ifndef APP_PIPELINE_H
#define APP_PIPELINE_H

#include "decode.h"
#include "image.h"
#include "model.h"

/* The one captioning path every tool uses: file -> pixels (vision/) ->
 * the model's preprocessing -> encoder + decoder (nn/) -> a Caption. */
/* Not copyable by value: the captioner points at this struct's models.
 * An ensemble ("A.safetensors,B.safetensors": model_path_is_list) chooses
 * each word by the mean of its models' distributions (decode.h,
 * captioner_add_member); the first model is `model`, whose vocabulary, input
 * and attention maps are the ensemble's. */
typedef struct {
    SatModel model;
    SatModel *members; /* an ensemble's other models, [member_count] */
    int member_count;
    Captioner *captioner;
    float *input;           /* [3, S, S] */
    ImageLoadOptions load;
    DecodeOptions decode;
} CaptionPipeline;

/* Loads the model, or an ensemble's models (a comma-separated list of
 * files), into a zeroed pipeline; on failure nothing stays loaded. */
int pipeline_load(CaptionPipeline *pipeline, const char *model_path, Error *err);

/* A captioner for the pipeline's model with its ensemble members, for up
 * to max_beam hypotheses and max_length words. */
int pipeline_captioner_create(const CaptionPipeline *pipeline, int max_beam, int max_length, Captioner **captioner,
                              Error *err);

/* pipeline_load, then buffers for up to max_beam hypotheses. */
int pipeline_open(CaptionPipeline *pipeline, const char *model_path, int max_beam, int max_length,
                  Error *err);
/* The second half of pipeline_open, for a pipeline the caller loaded
 * (pipeline_load), so that it can tell a bad model file from a lack of
 * memory for the buffers (libcaption's error codes). On failure
 * the pipeline is closed, model included. */
int pipeline_prepare(CaptionPipeline *pipeline, int max_beam, int max_length, Error *err);
void pipeline_close(CaptionPipeline *pipeline);

/* Resizes (stretching, as in training) and normalises an RGB image into
 * pipeline->input. */
int pipeline_preprocess(CaptionPipeline *pipeline, const Image *image, Error *err);

/* Captions an image already in memory; caption is filled on success. */
int pipeline_caption_image(CaptionPipeline *pipeline, const Image *image, Caption *caption, Error *err);

/* Loads and captions a file; the error names the file. image (may be NULL)
 * receives the decoded picture for drawing, owned by the caller. */
int pipeline_caption_file(CaptionPipeline *pipeline, const char *path, Caption *caption, Image *image,
                          Error *err);

#endif
