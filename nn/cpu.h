#ifndef NN_CPU_H
#define NN_CPU_H

#include <stddef.h>

/* What the processor offers the project's own code paths, and the switch that
 * turns them off.
 *
 * CAPTION_PORTABLE=1 (any value but empty or "0") forces the portable paths:
 * no AVX2/FMA kernel of our own and no second decoding thread, so that the
 * fallbacks are exercised (and tested) on machines that have AVX2. OpenBLAS
 * chooses its own kernels independently (OPENBLAS_CORETYPE). Read at every
 * call, so a test may set it between runs. */
int cpu_portable_mode(void);

/* AVX2 and FMA are present and the portable switch is off: the few-row
 * product kernel (nn/linear.c) may run. */
int cpu_use_avx2_fma(void);

/* One line for a benchmark report: the widest vector extensions the CPU has
 * (e.g. "avx512f avx2 fma") and which path each of our kernels takes, e.g.
 * "few-row products: avx2+fma; CNN, LSTM, attention: OpenBLAS + compiler
 * (sse2 baseline)". */
void cpu_describe_paths(char *buffer, size_t size);

#endif
