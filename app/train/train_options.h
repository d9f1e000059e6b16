#ifndef APP_TRAIN_OPTIONS_H
#define APP_TRAIN_OPTIONS_H

#include <stdio.h>

#include "error.h"
#include "model.h"

/* Everything `caption train` is configured by. Each field has a flag
 * (--name value) and a key of the same name in a --config JSON file; the
 * whole set is recorded in every checkpoint and model. */
typedef struct {
    /* data */
    char data[1024], images[1024], train_split[32], dev_split[32];
    char init[1024];  /* start from this model file's weights; "" = fresh */
    int scst_samples; /* self-critical training with this many samples per image; 0 = cross-entropy */
    float scst_xe_weight; /* with it, the reference captions' cross-entropy at this weight (scst.h) */
    float scst_contrast;  /* with it, the contrastive reward at this weight (scst.h) */
    float scst_duplicate_penalty; /* with it, a caption drawn for other images of the batch costs this much (scst.h) */
    float scst_repeat_penalty; /* with it, a sample loses this weight times its share of repeated trigrams (scst.h) */
    float scst_mode_penalty; /* with it, a greedy caption shared with other images of the batch is unlearned at this weight (scst.h) */
    int min_count, max_words, captions_per_image, eval_images;
    /* model */
    SatConfig model;
    /* optimisation */
    int epochs, batch, warmup_steps, patience, eval_beam, threads;
    int replicas; /* data-parallel training on this many threads (replica_pool.h); 1: none */
    float lr, min_lr, weight_decay, clip, label_smoothing, crop_min_area, color_jitter, eval_length_penalty;
    float ema; /* decay of the weight average, 0: none */
    int flip;
    int freeze_encoder; /* train the decoder only, the CNN as at inference */
    char schedule[16]; /* "cosine" or "constant" */
    unsigned long long seed;
    /* run control */
    char out[1024];
    int checkpoint_every;
    int keep_epochs; /* 1: also save each epoch's evaluated model as epoch-N.safetensors */
    double time_limit_minutes; /* 0: none */
    long stop_at_step;         /* 0: none */
} TrainOptions;

void train_options_defaults(TrainOptions *options);
/* Applies one option; returns 1 if it took the value, 0 if the name is not
 * an option, -1 (err set) if the value is invalid. */
int train_options_set(TrainOptions *options, const char *name, const char *value, Error *err);
int train_options_load_json(TrainOptions *options, const char *path, Error *err);
/* JSON of all options; caller frees. */
char *train_options_to_json(const TrainOptions *options);
int train_options_from_json_text(TrainOptions *options, const char *json, const char *origin, Error *err);
/* Prints one line per option. */
void train_options_print_help(FILE *out);

#endif
