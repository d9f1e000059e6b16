#include "pipeline.h"

#include <stdlib.h>
#include <string.h>

int pipeline_open(CaptionPipeline *p, const char *model_path, int max_beam, int max_length, Error *err) {
    memset(p, 0, sizeof *p);
    if (sat_model_load(&p->model, model_path, err) != 0) return -1;
    return pipeline_prepare(p, max_beam, max_length, err);
}

int pipeline_prepare(CaptionPipeline *p, int max_beam, int max_length, Error *err) {
    int size = p->model.config.image_size;
    p->input = malloc(sizeof(float) * 3 * size * size);
    if (!p->input) {
        sat_model_free(&p->model);
        return error_set(err, "out of memory");
    }
    if (captioner_create(&p->captioner, &p->model, max_beam, max_length, err) != 0) {
        pipeline_close(p);
        return -1;
    }
    p->decode = (DecodeOptions){.beam_width = 1, .max_length = max_length, .length_penalty = 0.0f};
    return 0;
}

void pipeline_close(CaptionPipeline *p) {
    captioner_free(p->captioner);
    free(p->input);
    sat_model_free(&p->model);
    memset(p, 0, sizeof *p);
}

int pipeline_preprocess(CaptionPipeline *p, const Image *image, Error *err) {
    const SatConfig *c = &p->model.config;
    Image resized = {0};
    if (image_resize(&resized, image, c->image_size, c->image_size, err) != 0) return -1;
    image_to_tensor(p->input, &resized, c->image_mean, c->image_std);
    image_free(&resized);
    return 0;
}

int pipeline_caption_image(CaptionPipeline *p, const Image *image, Caption *caption, Error *err) {
    if (pipeline_preprocess(p, image, err) != 0) return -1;
    return captioner_run(p->captioner, p->input, &p->decode, caption, err);
}

int pipeline_caption_file(CaptionPipeline *p, const char *path, Caption *caption, Image *image_out,
                          Error *err) {
    Image image = {0};
    if (image_load(&image, path, &p->load, err) != 0) return -1;
    int status = pipeline_caption_image(p, &image, caption, err);
    if (status != 0) error_prefix(err, "%s", path);
    if (status == 0 && image_out) *image_out = image;
    else image_free(&image);
    return status;
}
