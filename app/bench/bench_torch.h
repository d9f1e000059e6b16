#ifndef APP_BENCH_TORCH_H
#define APP_BENCH_TORCH_H

#include <stddef.h>

#include "bench_measure.h"

/* The PyTorch side of `caption bench --torch`: bench/torch_bench.py run by
 * `python` (Debian's /usr/bin/python3 has python3-torch) on the same weights
 * file, the same normalised input (tensor_path, raw float32) and the same
 * thread count. Its results are merged as torch_* values. Returns 0 when
 * measured, 1 when PyTorch is not available (r->torch says why, nothing is
 * merged), -1 on an error. */
int bench_torch(BenchResults *r, const BenchSetup *setup, const char *python, const char *script,
                const char *tensor_path, Error *err);

/* bench/torch_bench.py in the source tree this program was built from. */
const char *bench_torch_default_script(char *buffer, size_t size);

#endif
