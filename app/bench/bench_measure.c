#include "bench_measure.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_flops.h"
#include "encoder.h"
#include "pipeline.h"

/* The latency picture's size before the pipeline resizes it to the model's input. */
enum { PICTURE_SIDE = 224 };

/* The most timings one measurement keeps for its median. */
enum { MAX_TIMED_REPEATS = 256 };

/* tools/flickr8k.json's optimiser settings (the others are `caption train`'s defaults). */
static const float TRAIN_LR = 1e-3f, TRAIN_WEIGHT_DECAY = 0.0f, TRAIN_CLIP = 5.0f, TRAIN_SMOOTHING = 0.1f;

double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *values, int count) {
    if (count <= 0) return NAN;
    qsort(values, (size_t)count, sizeof *values, compare_doubles);
    return count % 2 ? values[count / 2] : 0.5 * (values[count / 2 - 1] + values[count / 2]);
}

/* ---------------------------------------------------------------- training data */

int bench_train_data_make(BenchTrainData *d, const SatModel *m, const BenchSetup *s, Error *err) {
    memset(d, 0, sizeof *d);
    int S = m->config.image_size, rows = s->train_batch * s->captions_per_image, steps = s->words + 1;
    size_t pixels = (size_t)s->train_batch * 3 * S * S;
    d->images = malloc(pixels * sizeof(float));
    d->captions = malloc((size_t)rows * (steps + 1) * sizeof(int));
    d->row_image = malloc((size_t)rows * sizeof(int));
    if (!d->images || !d->captions || !d->row_image) {
        bench_train_data_free(d);
        return error_set(err, "out of memory for the training batch");
    }
    Rng rng;
    rng_seed(&rng, 12345);
    for (size_t i = 0; i < pixels; i++) d->images[i] = rng_normal(&rng);
    for (int r = 0; r < rows; r++) {
        int *caption = d->captions + (size_t)r * (steps + 1);
        caption[0] = TOKEN_START;
        for (int w = 1; w <= s->words; w++) caption[w] = 4 + (int)rng_below(&rng, (uint32_t)(m->config.vocab_size - 4));
        caption[steps] = TOKEN_END;
        d->row_image[r] = r / s->captions_per_image;
    }
    d->image_count = s->train_batch;
    d->batch = (DecoderBatch){.captions = d->captions, .row_image = d->row_image, .rows = rows, .steps = steps,
                              .label_smoothing = TRAIN_SMOOTHING, .training = 1};
    return 0;
}

void bench_train_data_free(BenchTrainData *d) {
    free(d->images);
    free(d->captions);
    free(d->row_image);
    memset(d, 0, sizeof *d);
}

float bench_train_step(SatTrainer *t, SatReplicaPool *pool, const BenchTrainData *d, Rng *rng) {
    SatLoss loss;
    Error err;
    if (!pool) loss = sat_forward_backward(t, d->images, d->image_count, &d->batch, rng);
    else if (sat_replica_pool_forward_backward(pool, d->images, d->image_count, &d->batch, rng_next_u32(rng), &loss,
                                               &err) != 0)
        return NAN; /* cannot happen: the pool is made for this batch */
    sat_optimizer_step(t, TRAIN_LR, TRAIN_WEIGHT_DECAY, TRAIN_CLIP);
    return loss.loss;
}

/* ---------------------------------------------------------------- sgemm */

/* GFLOPS of C = A B (row-major, no transposes: what conv2d_forward calls). */
static double sgemm_gflops(int m, int n, int k, int repeats) {
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n), *c = malloc(sizeof(float) * m * n);
    double *times = malloc(sizeof(double) * repeats), result = NAN;
    if (a && b && c && times) {
        for (long i = 0; i < (long)m * k; i++) a[i] = (float)(i % 17) * 0.01f;
        for (long i = 0; i < (long)k * n; i++) b[i] = (float)(i % 13) * 0.01f;
        for (int rep = -1; rep < repeats; rep++) { /* rep -1: warm-up (threads, page faults) */
            double t0 = bench_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
            if (rep >= 0) times[rep] = bench_now() - t0;
        }
        result = 2.0 * m * n * k / bench_median(times, repeats) / 1e9;
    }
    free(a), free(b), free(c), free(times);
    return result;
}

int bench_sgemm(BenchResults *r, const BenchSetup *s, Error *err) {
    int n = s->sgemm_size;
    r->v[BENCH_SGEMM_SIZE] = n;
    r->v[BENCH_SGEMM_GFLOPS] = sgemm_gflops(n, n, n, s->sgemm_repeats);
    if (isfinite(r->v[BENCH_CONV_GEMM_K]))
        r->v[BENCH_SGEMM_CONV_GFLOPS] = sgemm_gflops((int)r->v[BENCH_CONV_GEMM_M], (int)r->v[BENCH_CONV_GEMM_N],
                                                     (int)r->v[BENCH_CONV_GEMM_K], 5 * s->sgemm_repeats);
    if (!isfinite(r->v[BENCH_SGEMM_GFLOPS])) return error_set(err, "out of memory for the sgemm benchmark");
    return 0;
}

/* ---------------------------------------------------------------- inference */

static int load_picture(Image *out, const char *path, Error *err) {
    Image decoded = {0};
    if (image_load(&decoded, path, NULL, err) != 0) return -1;
    int status = image_resize(out, &decoded, PICTURE_SIDE, PICTURE_SIDE, err);
    image_free(&decoded);
    return status;
}

static int write_tensor(const char *path, const float *values, size_t count, Error *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return error_set(err, "%s: %s", path, strerror(errno));
    size_t written = fwrite(values, sizeof(float), count, f);
    if (fclose(f) != 0 || written != count) return error_set(err, "%s: write failed", path);
    return 0;
}

/* The CNN as captioning runs it: the captioner's buffers and, with more than
 * one thread, its second thread. */
static int time_cnn(BenchResults *r, const BenchSetup *s, Captioner *captioner, const SatModel *m,
                    const float *input) {
    double times[MAX_TIMED_REPEATS];
    int repeats = s->cnn_repeats < MAX_TIMED_REPEATS ? s->cnn_repeats : MAX_TIMED_REPEATS;
    for (int rep = -1; rep < repeats; rep++) {
        double t0 = bench_now();
        captioner_encode_only(captioner, input);
        if (rep >= 0) times[rep] = bench_now() - t0;
    }
    BenchFlops flops;
    bench_count_flops(m, 1, 1, 1, &flops);
    double seconds = bench_median(times, repeats);
    r->v[BENCH_CNN_MS] = 1e3 * seconds;
    r->v[BENCH_CNN_GFLOPS] = flops.cnn_forward / seconds / 1e9;
    r->v[BENCH_CNN_MFLOP] = flops.cnn_forward / 1e6;
    r->v[BENCH_CONV_GEMM_M] = flops.gemm_m;
    r->v[BENCH_CONV_GEMM_N] = flops.gemm_n;
    r->v[BENCH_CONV_GEMM_K] = flops.gemm_k;
    return 0;
}

/* What `caption` does after decoding the file: resize, normalise, CNN, search. */
static int time_caption(BenchResults *r, const BenchSetup *s, CaptionPipeline *p, const Image *picture, int beam,
                        Error *err) {
    double times[MAX_TIMED_REPEATS];
    int repeats = s->caption_repeats < MAX_TIMED_REPEATS ? s->caption_repeats : MAX_TIMED_REPEATS, words = 0;
    p->decode = (DecodeOptions){.beam_width = beam, .max_length = s->max_length, .length_penalty = 0.0f};
    for (int rep = -1; rep < repeats; rep++) {
        Caption caption;
        double t0 = bench_now();
        if (pipeline_caption_image(p, picture, &caption, err) != 0) return -1;
        if (rep >= 0) times[rep] = bench_now() - t0;
        words = caption.length;
        caption_free(&caption);
    }
    r->v[beam == 1 ? BENCH_CAPTION_MS_BEAM1 : BENCH_CAPTION_MS_BEAM3] = 1e3 * bench_median(times, repeats);
    r->v[beam == 1 ? BENCH_CAPTION_WORDS_BEAM1 : BENCH_CAPTION_WORDS_BEAM3] = words;
    return 0;
}

int bench_inference(BenchResults *r, const BenchSetup *s, const char *tensor_path, Error *err) {
    CaptionPipeline p;
    if (pipeline_open(&p, s->model_path, 3, s->max_length, err) != 0) return -1;
    Image picture = {0};
    int size = p.model.config.image_size;
    /* Single-stream latency: the decoder gets the second core as the CNN gets OpenBLAS's threads. */
    int status = s->threads > 1 ? captioner_use_second_thread(p.captioner, err) : 0;
    if (status == 0) status = load_picture(&picture, s->picture, err);
    if (status == 0) status = pipeline_preprocess(&p, &picture, err);
    if (status == 0 && tensor_path) status = write_tensor(tensor_path, p.input, (size_t)3 * size * size, err);
    if (status == 0) status = time_cnn(r, s, p.captioner, &p.model, p.input);
    if (status == 0) status = time_caption(r, s, &p, &picture, 1, err);
    if (status == 0) status = time_caption(r, s, &p, &picture, 3, err);
    image_free(&picture);
    pipeline_close(&p);
    openblas_set_num_threads(s->threads); /* the helper had set it to one */
    return status;
}

/* ---------------------------------------------------------------- training */

/* With 2+ threads, one replica per thread (caption train --replicas). */
static int time_training(BenchResults *r, const BenchSetup *s, SatModel *m, const BenchTrainData *d, Error *err) {
    SatTrainer trainer;
    SatReplicaPool *pool = NULL;
    int replicas = s->threads < d->image_count ? s->threads : d->image_count;
    if (sat_trainer_init(&trainer, m, d->image_count, d->batch.rows, d->batch.steps, err) != 0) return -1;
    if (replicas > 1 && sat_replica_pool_create(&pool, &trainer, replicas, d->image_count, s->captions_per_image,
                                                d->batch.steps, err) != 0) {
        sat_trainer_free(&trainer);
        return -1;
    }
    Rng rng;
    rng_seed(&rng, 7);
    float loss = bench_train_step(&trainer, pool, d, &rng); /* warm-up */
    double times[MAX_TIMED_REPEATS];
    int steps = s->train_steps < MAX_TIMED_REPEATS ? s->train_steps : MAX_TIMED_REPEATS;
    for (int i = 0; i < steps; i++) {
        double t0 = bench_now();
        loss = bench_train_step(&trainer, pool, d, &rng);
        times[i] = bench_now() - t0;
    }
    double seconds = bench_median(times, steps); /* one step slowed by the shared host does not move it */
    sat_replica_pool_free(pool);
    openblas_set_num_threads(s->threads); /* the pool had set it to one */
    sat_trainer_free(&trainer);
    r->v[BENCH_TRAIN_REPLICAS] = replicas;
    if (!isfinite(loss)) return error_set(err, "training benchmark: the loss became %g", loss);
    BenchFlops flops;
    bench_count_flops(m, d->image_count, d->batch.rows, d->batch.steps, &flops);
    r->v[BENCH_TRAIN_BATCH] = d->image_count;
    r->v[BENCH_TRAIN_IMG_PER_S] = (double)d->image_count / seconds;
    r->v[BENCH_TRAIN_GFLOPS] = flops.train_step / seconds / 1e9;
    r->v[BENCH_TRAIN_GFLOP_PER_IMAGE] = flops.train_step / d->image_count / 1e9;
    return 0;
}

int bench_train(BenchResults *r, const BenchSetup *s, Error *err) {
    CaptionPipeline loaded; /* an ensemble's training figures are its first model's */
    if (pipeline_load(&loaded, s->model_path, err) != 0) return -1;
    BenchTrainData data;
    int status = bench_train_data_make(&data, &loaded.model, s, err);
    if (status == 0) status = time_training(r, s, &loaded.model, &data, err);
    bench_train_data_free(&data);
    pipeline_close(&loaded);
    return status;
}
