#ifndef APP_BENCH_SETUP_H
#define APP_BENCH_SETUP_H

#include <stddef.h>

#include "bench_measure.h"
#include "bench_results.h"

/* What `caption bench` runs on: the settings (full or --quick), the bundled
 * pictures, a scratch folder, and the random model of --random-model. */

/* Settings for a full run or a quick smoke run (few repeats, training batch 8). */
void bench_setup_defaults(BenchSetup *setup, int quick, int threads);

/* The bundled inputs from the source tree's assets/examples: chelsea.png for
 * latency, every .jpg for batch throughput. Allocates setup->jpegs. */
int bench_setup_inputs(BenchSetup *setup, Error *err);
void bench_setup_free(BenchSetup *setup);

/* A scratch folder under $TMPDIR (or /tmp); bench_scratch_remove deletes it
 * with the files named by bench_scratch_file. */
int bench_scratch_create(char *dir, size_t size, Error *err);
const char *bench_scratch_file(const char *dir, const char *name, char *buffer, size_t size);
void bench_scratch_remove(const char *dir);

/* Writes a model with tools/flickr8k.json's architecture and random
 * (PyTorch-default) weights to path. */
int bench_write_random_model(const char *path, Error *err);
extern const char BENCH_RANDOM_MODEL_DESCRIPTION[];

/* cpu, blas and date of the results. */
void bench_describe_machine(BenchResults *r);

#endif
