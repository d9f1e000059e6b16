#ifndef APP_BENCH_MEASURE_H
#define APP_BENCH_MEASURE_H

#include "bench_results.h"
#include "decoder.h"
#include "error.h"
#include "model.h"
#include "replica_pool.h"
#include "trainer.h"

/* The measurements of `caption bench`. Each fills its values into a
 * BenchResults; timings are medians of repeats after a warm-up run (training:
 * of its steps), except the batch throughputs, which are totals over a timed
 * run. */

typedef struct {
    const char *model_path;
    const char *picture;    /* decoded once and resized to 224x224 for the latency timings */
    char **jpegs;           /* cycled through by the batch throughput */
    int jpeg_count;
    int threads;            /* OpenBLAS threads for the single-stream timings */
    int quick;
    int train_batch, captions_per_image, words; /* training data: images, captions per image, words per caption */
    int batch_images;       /* files captioned by the batch throughput */
    int cnn_repeats, caption_repeats, train_steps, sgemm_size, sgemm_repeats;
    int max_length;         /* caption words */
} BenchSetup;

/* A batch of random training data shaped like tools/flickr8k.json's: images
 * ~N(0,1), captions <start> + `words` random words + <end>. */
typedef struct {
    float *images;
    int *captions, *row_image;
    int image_count;
    DecoderBatch batch;
} BenchTrainData;

double bench_now(void);
/* This process's peak resident memory so far, in MiB: VmHWM from
 * /proc/self/status, else getrusage's maximum. */
double bench_peak_rss_mib(void);
double bench_median(double *values, int count); /* sorts values */

int bench_train_data_make(BenchTrainData *data, const SatModel *model, const BenchSetup *setup, Error *err);
void bench_train_data_free(BenchTrainData *data);
/* One training step as `caption train` does it (AdamW, lr 1e-3, no weight
 * decay, clip 5, label smoothing 0.1). Returns the loss. */
/* One step of sat_forward_backward (or, with a pool, of its replicas) and AdamW. */
float bench_train_step(SatTrainer *trainer, SatReplicaPool *pool, const BenchTrainData *data, Rng *rng);

/* sgemm_gflops (square) and sgemm_conv_gflops (the largest conv GEMM). */
int bench_sgemm(BenchResults *r, const BenchSetup *setup, Error *err);
/* cnn_ms, cnn_gflops, caption_ms_beam1/3 and their word counts. When
 * tensor_path is not NULL the normalised input of the latency runs is
 * written there (raw little-endian float32 [3, S, S]) for the PyTorch side. */
int bench_inference(BenchResults *r, const BenchSetup *setup, const char *tensor_path, Error *err);
/* train_img_per_s, train_gflops and the FLOP counts. */
int bench_train(BenchResults *r, const BenchSetup *setup, Error *err);
/* batch_img_per_s_1t and _2t. */
int bench_batch(BenchResults *r, const BenchSetup *setup, Error *err);
/* peak_rss_caption_mb and peak_rss_train_mb, each from a forked child. Call
 * before the process allocates much: a child starts with its parent's pages. */
int bench_peak_rss(BenchResults *r, const BenchSetup *setup, Error *err);

#endif
