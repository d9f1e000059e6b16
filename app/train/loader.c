#include "loader.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "model.h"
#include "rng.h"

typedef struct {
    TrainBatch batch;
    long epoch;
    int index;
    int ready, failed;
    Error err;
} Slot;

struct Loader {
    const Dataset *dataset;
    const Vocab *vocab;
    LoaderOptions options;
    int *order; /* this epoch's permutation */
    long order_epoch;
    int *encoded; /* scratch for one caption */
    /* Two slots: the consumer reads one while the producer fills the other. */
    Slot slots[2];
    int consumer_slot;
    long epoch;
    int next_batch;   /* the batch loader_next returns next */
    pthread_t thread;
    int thread_running;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int request_epoch_valid;
    long request_epoch;
    int request_index, request_slot, stop;
    int busy; /* the producer is filling a slot */
};

static int batch_alloc(TrainBatch *b, const LoaderOptions *o) {
    size_t pixels = (size_t)3 * o->image_size * o->image_size;
    int rows = o->batch_images * o->captions_per_image;
    b->images = malloc(sizeof(float) * pixels * o->batch_images);
    b->image_index = malloc(sizeof(int) * o->batch_images);
    b->captions = malloc(sizeof(int) * rows * (o->max_words + 2));
    b->row_image = malloc(sizeof(int) * rows);
    return b->images && b->image_index && b->captions && b->row_image ? 0 : -1;
}

static void batch_free(TrainBatch *b) {
    free(b->images);
    free(b->image_index);
    free(b->captions);
    free(b->row_image);
}

int loader_batches_per_epoch(const Loader *l) {
    int batch = l->options.batch_images, last = l->dataset->count % batch;
    int shares = l->options.shard_count > 1 ? l->options.shard_count : 1;
    return l->dataset->count / batch + (last >= shares ? 1 : 0);
}

/* Fisher-Yates with an RNG of (seed, epoch): the same order on every run. */
static void epoch_order(Loader *l, long epoch) {
    if (l->order_epoch == epoch) return;
    for (int i = 0; i < l->dataset->count; i++) l->order[i] = i;
    if (l->options.shuffle) {
        Rng rng;
        rng_seed_stream(&rng, l->options.seed, 0x1000000ULL + (unsigned long long)epoch);
        for (int i = l->dataset->count - 1; i > 0; i--) {
            int j = (int)rng_below(&rng, (uint32_t)i + 1);
            int t = l->order[i];
            l->order[i] = l->order[j];
            l->order[j] = t;
        }
    }
    l->order_epoch = epoch;
}

/* Loads one image into the batch with the augmentation of (seed, epoch, image). */
static int prepare_image(const Loader *l, long epoch, int dataset_index, float *out, Error *err) {
    const LoaderOptions *o = &l->options;
    Image image = {0}, resized = {0};
    if (image_load(&image, l->dataset->images[dataset_index].path, NULL, err) != 0) return -1;
    Rng rng;
    rng_seed_stream(&rng, o->seed ^ ((unsigned long long)epoch * 0x9E3779B97F4A7C15ULL), (uint64_t)dataset_index);
    float x0 = 0, y0 = 0, x1 = 1, y1 = 1;
    if (o->shuffle && o->crop_min_area < 1.0f) {
        float side = sqrtf(o->crop_min_area + (1.0f - o->crop_min_area) * rng_uniform(&rng));
        x0 = (1.0f - side) * rng_uniform(&rng);
        y0 = (1.0f - side) * rng_uniform(&rng);
        x1 = x0 + side;
        y1 = y0 + side;
    }
    int status = image_resize_region(&resized, &image, x0, y0, x1 > 1.0f ? 1.0f : x1, y1 > 1.0f ? 1.0f : y1,
                                     o->image_size, o->image_size, err);
    if (status == 0) {
        if (o->shuffle && o->flip && rng_uniform(&rng) < 0.5f) image_flip_horizontal(&resized);
        if (o->shuffle && o->color_jitter > 0.0f) {
            float factor[3];
            for (int k = 0; k < 3; k++) factor[k] = 1.0f + o->color_jitter * (2.0f * rng_uniform(&rng) - 1.0f);
            image_adjust_color(&resized, factor[0], factor[1], factor[2]);
        }
        image_to_tensor(out, &resized, o->mean, o->std);
    }
    image_free(&image);
    image_free(&resized);
    return status;
}

static int caption_tokens(const int *row, int width) {
    int n = 0;
    while (n < width && row[n] != TOKEN_PAD) n++;
    return n;
}

static void swap_rows(TrainBatch *b, int upper, int width) {
    int *x = b->captions + (size_t)upper * width, *y = x + width;
    for (int k = 0; k < width; k++) {
        int token = x[k];
        x[k] = y[k];
        y[k] = token;
    }
    int image = b->row_image[upper];
    b->row_image[upper] = b->row_image[upper + 1];
    b->row_image[upper + 1] = image;
}

/* Longest caption first (ties keep their order): the decoder then computes no
 * padded position (decoder.h). Insertion sort: a batch has a few hundred rows. */
static void sort_longest_first(TrainBatch *b, int rows, int width) {
    for (int r = 1; r < rows; r++)
        for (int j = r; j > 0 && caption_tokens(b->captions + (size_t)(j - 1) * width, width) <
                                     caption_tokens(b->captions + (size_t)j * width, width);
             j--)
            swap_rows(b, j - 1, width);
}

/* Captions of the batch's images: up to captions_per_image each, chosen by (seed, epoch, image). */
static void prepare_captions(Loader *l, TrainBatch *b, long epoch) {
    const LoaderOptions *o = &l->options;
    int width = o->max_words + 2, rows = 0, longest = 1;
    for (int i = 0; i < b->image_count; i++) {
        const DatasetImage *image = &l->dataset->images[b->image_index[i]];
        int take = image->caption_count < o->captions_per_image ? image->caption_count : o->captions_per_image;
        Rng rng;
        rng_seed_stream(&rng, o->seed + 7 * (unsigned long long)epoch, (uint64_t)b->image_index[i]);
        int first = image->caption_count > take ? (int)rng_below(&rng, (uint32_t)image->caption_count) : 0;
        for (int k = 0; k < take; k++, rows++) {
            const char *text = image->captions[(first + k) % image->caption_count];
            int *row = b->captions + (size_t)rows * width;
            int length = vocab_encode(l->vocab, text, row, width);
            if (length > width) length = width;
            for (int t = length; t < width; t++) row[t] = TOKEN_PAD;
            if (length - 1 > longest) longest = length - 1;
            b->row_image[rows] = i;
        }
    }
    sort_longest_first(b, rows, width);
    /* Repack to the batch's own length: steps = longest input sequence. */
    b->steps = longest;
    for (int r = 0; r < rows; r++)
        memmove(b->captions + (size_t)r * (longest + 1), b->captions + (size_t)r * width, sizeof(int) * (longest + 1));
    b->rows = rows;
}

static int fill_slot(Loader *l, Slot *s, long epoch, int index) {
    const LoaderOptions *o = &l->options;
    TrainBatch *b = &s->batch;
    epoch_order(l, epoch);
    int start = index * o->batch_images, end = start + o->batch_images;
    if (end > l->dataset->count) end = l->dataset->count;
    if (o->shard_count > 1) {
        long count = end - start;
        end = start + (int)(count * (o->shard_index + 1) / o->shard_count);
        start += (int)(count * o->shard_index / o->shard_count);
    }
    b->image_count = end - start;
    size_t pixels = (size_t)3 * o->image_size * o->image_size;
    for (int i = 0; i < b->image_count; i++) {
        b->image_index[i] = l->order[start + i];
        if (prepare_image(l, epoch, b->image_index[i], b->images + i * pixels, &s->err) != 0) return -1;
    }
    prepare_captions(l, b, epoch);
    return 0;
}

static void *producer(void *arg) {
    Loader *l = arg;
    pthread_mutex_lock(&l->lock);
    for (;;) {
        while (!l->stop && !l->request_epoch_valid) pthread_cond_wait(&l->changed, &l->lock);
        if (l->stop) break;
        long epoch = l->request_epoch;
        int index = l->request_index, slot = l->request_slot;
        l->request_epoch_valid = 0;
        l->busy = 1;
        pthread_mutex_unlock(&l->lock);
        Slot *s = &l->slots[slot];
        int failed = fill_slot(l, s, epoch, index) != 0;
        pthread_mutex_lock(&l->lock);
        s->epoch = epoch;
        s->index = index;
        s->failed = failed;
        s->ready = 1;
        l->busy = 0;
        pthread_cond_broadcast(&l->changed);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

/* Asks the producer for (epoch, index) into slot; the caller holds the lock. */
static void request(Loader *l, long epoch, int index, int slot) {
    l->slots[slot].ready = 0;
    l->request_epoch = epoch;
    l->request_index = index;
    l->request_slot = slot;
    l->request_epoch_valid = 1;
    pthread_cond_broadcast(&l->changed);
}

int loader_create(Loader **out, const Dataset *dataset, const Vocab *vocab, const LoaderOptions *options, Error *err) {
    *out = NULL;
    if (dataset->count == 0) return error_set(err, "%s: no images to train on", dataset->source);
    Loader *l = calloc(1, sizeof *l);
    if (!l) return error_set(err, "out of memory");
    l->dataset = dataset;
    l->vocab = vocab;
    l->options = *options;
    l->order_epoch = -1;
    l->order = malloc(sizeof(int) * dataset->count);
    int failed = !l->order || batch_alloc(&l->slots[0].batch, options) != 0 ||
                 batch_alloc(&l->slots[1].batch, options) != 0;
    if (failed) {
        loader_free(l);
        return error_set(err, "out of memory for batches of %d images", options->batch_images);
    }
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->changed, NULL);
    if (pthread_create(&l->thread, NULL, producer, l) != 0) {
        pthread_mutex_destroy(&l->lock);
        pthread_cond_destroy(&l->changed);
        loader_free(l);
        return error_set(err, "could not start the data loading thread");
    }
    l->thread_running = 1;
    *out = l;
    loader_seek(l, 0, 0);
    return 0;
}

void loader_free(Loader *l) {
    if (!l) return;
    if (l->thread_running) {
        pthread_mutex_lock(&l->lock);
        l->stop = 1;
        pthread_cond_broadcast(&l->changed);
        pthread_mutex_unlock(&l->lock);
        pthread_join(l->thread, NULL);
        pthread_mutex_destroy(&l->lock);
        pthread_cond_destroy(&l->changed);
    }
    batch_free(&l->slots[0].batch);
    batch_free(&l->slots[1].batch);
    free(l->order);
    free(l);
}

/* Waits until the producer is idle, so no slot is being written. */
static void wait_idle(Loader *l) {
    while (l->request_epoch_valid || l->busy) pthread_cond_wait(&l->changed, &l->lock);
}

void loader_seek(Loader *l, long epoch, int batch) {
    pthread_mutex_lock(&l->lock);
    wait_idle(l);
    l->epoch = epoch;
    l->next_batch = batch;
    l->consumer_slot = 0;
    l->slots[1].ready = 0;
    if (batch < loader_batches_per_epoch(l)) request(l, epoch, batch, 0);
    pthread_mutex_unlock(&l->lock);
}

int loader_next(Loader *l, const TrainBatch **batch, Error *err) {
    *batch = NULL;
    if (l->next_batch >= loader_batches_per_epoch(l)) return 0;
    pthread_mutex_lock(&l->lock);
    Slot *s = &l->slots[l->consumer_slot];
    while (!s->ready) pthread_cond_wait(&l->changed, &l->lock);
    /* Start the following batch in the other slot before handing this one out. */
    int following = l->next_batch + 1, other = 1 - l->consumer_slot;
    if (following < loader_batches_per_epoch(l)) request(l, l->epoch, following, other);
    pthread_mutex_unlock(&l->lock);
    l->next_batch++;
    l->consumer_slot = other;
    if (s->failed) {
        *err = s->err;
        return -1;
    }
    *batch = &s->batch;
    return 0;
}

