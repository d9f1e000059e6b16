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

/* Element-wise loops that are a measurable part of a training step (GELU,
 * softmax rows) are compiled twice: for the x86-64 baseline and, with
 * CPU_AVX2_TARGET, for AVX2, and cpu_wide_loops() picks at each call. The
 * same operations either way, 8 floats wide instead of 4, and no fused
 * multiply-add (C11 mode keeps the products and sums apart), so the results
 * are the same bits; CAPTION_PORTABLE does not reach these. Not
 * target_clones: its ifunc resolvers run before the sanitizers' runtimes
 * start, and crash ThreadSanitizer and libFuzzer builds. */
#if defined(__x86_64__) && defined(__GNUC__)
#define CPU_AVX2_TARGET __attribute__((target("avx2")))
static inline int cpu_wide_loops(void) { return __builtin_cpu_supports("avx2"); }
#else
#define CPU_AVX2_TARGET
static inline int cpu_wide_loops(void) { return 0; }
#endif

/* AVX2 and FMA are present and the portable switch is off: the few-row
 * product kernel (nn/linear.c) may run. */
int cpu_use_avx2_fma(void);

/* One line for a benchmark report: the widest vector extensions the CPU has
 * (e.g. "avx512f avx2 fma") and which path each of our kernels takes, e.g.
 * "few-row products: avx2+fma; CNN, LSTM, attention: OpenBLAS + compiler
 * (sse2 baseline)". */
void cpu_describe_paths(char *buffer, size_t size);

/* Whether OpenBLAS runs kernels without AVX-512 because OPENBLAS_CORETYPE
 * names them, on a CPU that has what its AVX-512 kernels use (F, CD, BW, DQ,
 * VL): its own choice there would be one of those (on the Zen 5 development
 * machine they trained 1.4 to 1.6 times as fast: assets/MODEL.md, "Thirteenth
 * round"). Writes a one-line note saying so into buffer and returns 1; 0
 * (buffer empty) otherwise. */
int cpu_slower_blas_kernel_note(char *buffer, size_t size);

#endif
