/* Batch throughput: worker threads, each with its own CaptionPipeline,
 * read, decode and caption every files-th file; OpenBLAS runs single-threaded
 * inside each worker so the workers are the only parallelism. */
#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bench_measure.h"
#include "pipeline.h"

enum { MAX_WORKERS = 2, BATCH_BEAM = 3 };

typedef struct {
    CaptionPipeline pipeline;
    const BenchSetup *setup;
    int first, stride; /* this worker captions files first, first + stride, ... */
    int failed;
    Error err;
} Worker;

static void *worker_run(void *arg) {
    Worker *w = arg;
    const BenchSetup *s = w->setup;
    for (int i = w->first; i < s->batch_images && !w->failed; i += w->stride) {
        Caption caption;
        if (pipeline_caption_file(&w->pipeline, s->jpegs[i % s->jpeg_count], &caption, NULL, &w->err) != 0) {
            w->failed = 1;
            break;
        }
        caption_free(&caption);
    }
    return NULL;
}

static int open_workers(Worker *workers, int count, const BenchSetup *s, Error *err) {
    for (int i = 0; i < count; i++) {
        Worker *w = &workers[i];
        memset(w, 0, sizeof *w);
        if (pipeline_open(&w->pipeline, s->model_path, BATCH_BEAM, s->max_length, err) != 0) {
            while (--i >= 0) pipeline_close(&workers[i].pipeline);
            return -1;
        }
        w->pipeline.decode = (DecodeOptions){.beam_width = BATCH_BEAM, .max_length = s->max_length};
        w->setup = s;
        w->first = i;
        w->stride = count;
    }
    return 0;
}

/* Runs the workers; the main thread is worker 0. */
static int run_workers(Worker *workers, int count, Error *err) {
    pthread_t threads[MAX_WORKERS];
    int started = 1;
    for (; started < count; started++)
        if (pthread_create(&threads[started], NULL, worker_run, &workers[started]) != 0) break;
    worker_run(&workers[0]);
    for (int i = 1; i < started; i++) pthread_join(threads[i], NULL);
    if (started < count) return error_set(err, "could not start a worker thread");
    for (int i = 0; i < count; i++)
        if (workers[i].failed) {
            *err = workers[i].err;
            return -1;
        }
    return 0;
}

static int images_per_second(const BenchSetup *s, int count, double *out, Error *err) {
    Worker workers[MAX_WORKERS];
    if (open_workers(workers, count, s, err) != 0) return -1;
    /* Warm-up: one file per worker (page cache, page faults), not timed. */
    BenchSetup warm = *s;
    warm.batch_images = count;
    for (int i = 0; i < count; i++) workers[i].setup = &warm;
    int status = run_workers(workers, count, err);
    for (int i = 0; i < count; i++) workers[i].setup = s;
    double t0 = bench_now();
    if (status == 0) status = run_workers(workers, count, err);
    *out = s->batch_images / (bench_now() - t0);
    for (int i = 0; i < count; i++) pipeline_close(&workers[i].pipeline);
    return status;
}

int bench_batch(BenchResults *r, const BenchSetup *s, Error *err) {
    if (s->jpeg_count < 1) return error_set(err, "no JPEG files for the batch benchmark");
    openblas_set_num_threads(1);
    int status = images_per_second(s, 1, &r->v[BENCH_BATCH_1T], err);
    if (status == 0) status = images_per_second(s, 2, &r->v[BENCH_BATCH_2T], err);
    openblas_set_num_threads(s->threads);
    r->v[BENCH_BATCH_IMAGES] = s->batch_images;
    return status;
}
