#ifndef APP_LOADER_H
#define APP_LOADER_H

#include "dataset.h"
#include "error.h"
#include "vocab.h"

/* Training batches, prepared by a background thread while the model trains
 * on the previous one: decode, augment (random crop, horizontal flip and
 * colour jitter),
 * resize, normalise, and encode the captions. A batch depends only on (seed,
 * epoch, batch index) — never on thread timing — so training resumes exactly. */
typedef struct {
    int batch_images;        /* images per batch */
    int captions_per_image;  /* captions of each image trained on (up to all) */
    int max_words;           /* longer captions are cut (and still end with <end>) */
    int image_size;
    float mean[3], std[3];
    int flip;                /* random horizontal flip */
    float crop_min_area;     /* random square crop of this fraction of the area or more; 1 = none */
    float color_jitter;      /* brightness, contrast and saturation factors drawn from
                                [1 - j, 1 + j] (image_adjust_color); 0 = none */
    unsigned long long seed;
    int shuffle;             /* 0: dataset order (evaluation) */
    /* Data-parallel training: this process loads its share, images
     * [count * index / of, count * (index + 1) / of) of each global batch of
     * batch_images, and an epoch's last batch is left out when it has fewer
     * images than `of` (one per share). Zero: the whole batch. */
    int shard_index, shard_count;
} LoaderOptions;

typedef struct {
    float *images;    /* [image_count, 3, S, S] (this process's share of the global batch) */
    int *image_index; /* dataset index of each image */
    int image_count;
    int *captions;    /* [rows, steps + 1] */
    int *row_image;   /* [rows] */
    int rows, steps;
} TrainBatch;

typedef struct Loader Loader;

int loader_create(Loader **loader, const Dataset *dataset, const Vocab *vocab, const LoaderOptions *options,
                  Error *err);
void loader_free(Loader *loader);

int loader_batches_per_epoch(const Loader *loader);

/* Positions the loader at a batch of an epoch and starts preparing it. */
void loader_seek(Loader *loader, long epoch, int batch);

/* The next batch of the current epoch (valid until the next call), or NULL at
 * the end of the epoch. An image that cannot be loaded fails the batch with
 * an error naming it. */
int loader_next(Loader *loader, const TrainBatch **batch, Error *err);

#endif
