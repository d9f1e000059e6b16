#ifndef APP_BENCH_RESULTS_H
#define APP_BENCH_RESULTS_H

#include <stdio.h>

#include "error.h"

/* What `caption bench` measured, as named numbers (NaN = not measured), plus
 * a few descriptive strings. The names are the JSON keys, so writing and
 * reading JSON, the table, the markdown and the chart are loops over one list. */
typedef enum {
    BENCH_CNN_MS,
    BENCH_CAPTION_MS_BEAM1,
    BENCH_CAPTION_MS_BEAM3,
    BENCH_CAPTION_WORDS_BEAM1,
    BENCH_CAPTION_WORDS_BEAM3,
    BENCH_BATCH_1T,
    BENCH_BATCH_2T,
    BENCH_TRAIN_IMG_PER_S,
    BENCH_RSS_CAPTION_MB,
    BENCH_RSS_TRAIN_MB,
    BENCH_CNN_GFLOPS,
    BENCH_TRAIN_GFLOPS,
    BENCH_SGEMM_GFLOPS,
    BENCH_SGEMM_CONV_GFLOPS,
    BENCH_CNN_MFLOP,
    BENCH_TRAIN_GFLOP_PER_IMAGE,
    BENCH_CONV_GEMM_M,
    BENCH_CONV_GEMM_N,
    BENCH_CONV_GEMM_K,
    BENCH_SGEMM_SIZE,
    BENCH_THREADS,
    BENCH_TRAIN_BATCH,
    BENCH_TRAIN_REPLICAS,
    BENCH_BATCH_IMAGES,
    BENCH_TORCH_CNN_MS,
    BENCH_TORCH_CAPTION_MS_BEAM3,
    BENCH_TORCH_CAPTION_WORDS_BEAM3,
    BENCH_TORCH_TRAIN_IMG_PER_S,
    BENCH_TORCH_THREADS,
    BENCH_VALUE_COUNT
} BenchValue;

typedef struct {
    double v[BENCH_VALUE_COUNT];
    int quick;
    char model[4096];   /* the weights file, or what the random model is */
    char cpu[256];      /* /proc/cpuinfo model name and the number of CPUs */
    char blas[256];     /* openblas_get_config() and the core it chose */
    char paths[512];    /* the CPU's vector extensions and which one each code path uses (cpu.h) */
    char torch[128];    /* torch version, or why PyTorch was not measured */
    char date[64];      /* UTC, when measured */
} BenchResults;

/* The JSON key of a value. */
const char *bench_value_name(BenchValue v);

/* All values NaN, all strings empty. */
void bench_results_init(BenchResults *r);

/* One JSON object: every measured value under its name, the strings, and
 * "targets": per target its ratio, goal and whether it is met. Caller frees. */
char *bench_results_to_json(const BenchResults *r);
/* Reads what bench_results_to_json wrote (unknown keys are ignored). */
int bench_results_from_json(BenchResults *r, const char *text, Error *err);

/* The readable table with each C/PyTorch ratio and target. */
void bench_print_table(FILE *out, const BenchResults *r);
/* The same as a markdown document (table, machine, how things are counted);
 * chart (may be NULL) is the PNG to show, referenced by its file name. */
int bench_write_markdown(const BenchResults *r, const char *path, const char *chart, Error *err);
/* Bar charts (speed-up over PyTorch; GFLOPS) drawn with vision/plot.h, as PNG. */
int bench_write_chart(const BenchResults *r, const char *path, Error *err);

#endif
