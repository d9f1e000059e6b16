#include "linear.h"

#include <cblas.h>
#include <stdlib.h>

#include "cpu.h"

/* Up to this many rows, a matrix-vector kernel: sgemm packs all of the weight
 * on every call, which costs more than the product itself for a beam of 3. */
enum { FEW_ROWS_MAX = 4 };

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_FEW_ROWS 1

__attribute__((target("avx2,fma"))) static inline float horizontal_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* Two weight rows at a time against all R input rows: each weight is read from
 * memory once for the whole beam (sgemv per row reads it R times), which is
 * what bounds a beam step. R is a constant in each instance below. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
few_rows_avx2(float *restrict out, int ld_out, const float *restrict in, const float *restrict weight,
              const int R, int in_features, int out_features, float beta) {
    int K = in_features, K8 = in_features & ~7, o = 0;
    for (; o + 2 <= out_features; o += 2) {
        const float *w0 = weight + (long)o * K, *w1 = w0 + K;
        __m256 acc0[FEW_ROWS_MAX], acc1[FEW_ROWS_MAX];
        for (int r = 0; r < R; r++) acc0[r] = acc1[r] = _mm256_setzero_ps();
        for (int k = 0; k < K8; k += 8) {
            __m256 v0 = _mm256_loadu_ps(w0 + k), v1 = _mm256_loadu_ps(w1 + k);
            for (int r = 0; r < R; r++) {
                __m256 x = _mm256_loadu_ps(in + (long)r * K + k);
                acc0[r] = _mm256_fmadd_ps(v0, x, acc0[r]);
                acc1[r] = _mm256_fmadd_ps(v1, x, acc1[r]);
            }
        }
        for (int r = 0; r < R; r++) {
            const float *x = in + (long)r * K;
            float s0 = horizontal_sum(acc0[r]), s1 = horizontal_sum(acc1[r]);
            for (int k = K8; k < K; k++) {
                s0 += w0[k] * x[k];
                s1 += w1[k] * x[k];
            }
            float *y = out + (long)r * ld_out + o;
            /* beta 0 must not read out (BLAS semantics): it may hold NaN. */
            y[0] = beta == 0.0f ? s0 : beta * y[0] + s0;
            y[1] = beta == 0.0f ? s1 : beta * y[1] + s1;
        }
    }
    for (; o < out_features; o++)
        for (int r = 0; r < R; r++) {
            const float *w = weight + (long)o * K, *x = in + (long)r * K;
            float s = 0.0f;
            for (int k = 0; k < K; k++) s += w[k] * x[k];
            float *y = out + (long)r * ld_out + o;
            *y = beta == 0.0f ? s : beta * *y + s;
        }
}

__attribute__((target("avx2,fma"))) static void few_rows_avx2_dispatch(float *out, int ld_out, const float *in,
                                                                       const float *weight, int rows,
                                                                       int in_features, int out_features,
                                                                       float beta) {
    switch (rows) {
    case 2: few_rows_avx2(out, ld_out, in, weight, 2, in_features, out_features, beta); break;
    case 3: few_rows_avx2(out, ld_out, in, weight, 3, in_features, out_features, beta); break;
    default: few_rows_avx2(out, ld_out, in, weight, 4, in_features, out_features, beta); break;
    }
}
#endif

static int avx2_kernel_available(void) {
#ifdef HAVE_AVX2_FEW_ROWS
    return cpu_use_avx2_fma();
#else
    return 0;
#endif
}

/* out rows are ld_out apart, so that a slice of the output features can be computed alone. */
static void few_rows(float *out, int ld_out, const float *in, const float *weight, int rows, int in_features,
                     int out_features, float beta) {
#ifdef HAVE_AVX2_FEW_ROWS
    /* One row: OpenBLAS's sgemv is as fast. */
    if (rows >= 2 && avx2_kernel_available()) {
        few_rows_avx2_dispatch(out, ld_out, in, weight, rows, in_features, out_features, beta);
        return;
    }
#endif
    for (int r = 0; r < rows; r++)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out_features, in_features, 1.0f, weight, in_features,
                    in + (long)r * in_features, 1, beta, out + (long)r * ld_out, 1);
}

void matmul_weight_t(float *out, const float *in, const float *weight, int rows, int in_features,
                     int out_features, float beta) {
    if (rows > FEW_ROWS_MAX)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out_features, in_features, 1.0f, in,
                    in_features, weight, in_features, beta, out, out_features);
    else
        few_rows(out, out_features, in, weight, rows, in_features, out_features, beta);
}

/* ------------------------------------------------------------------------ */
/* Few-row products on two cores: beam search is bound by reading the weights
 * (about 12 MB a step for the bundled model); two cores read them twice as
 * fast. */

typedef struct {
    float *out;
    const float *in, *weight;
    int rows, in_features, out_features, split;
    float beta;
} FewRowsSplit;

static void few_rows_part(void *context, int part) {
    const FewRowsSplit *j = context;
    int first = part == 0 ? 0 : j->split, count = part == 0 ? j->split : j->out_features - j->split;
    few_rows(j->out + first, j->out_features, j->in, j->weight + (long)first * j->in_features, j->rows,
             j->in_features, count, j->beta);
}

/* Below this many weights a product is over before the helper would start. */
enum { SHARED_MIN_WEIGHTS = 1 << 16 };

void matmul_weight_t_shared(CoreHelper *helper, float *out, const float *in, const float *weight, int rows,
                            int in_features, int out_features, float beta) {
    if (!helper || rows > FEW_ROWS_MAX || (long)in_features * out_features < SHARED_MIN_WEIGHTS) {
        matmul_weight_t(out, in, weight, rows, in_features, out_features, beta);
        return;
    }
    /* A multiple of 16 keeps both the AVX2 kernel's pairs and sgemv's blocks
     * where they are without the split, so each output is computed by the
     * same instructions: the result is the same bit for bit. */
    FewRowsSplit job = {out, in, weight, rows, in_features, out_features, (out_features / 2) & ~15, beta};
    core_helper_split(helper, few_rows_part, &job);
}

void linear_forward_shared(CoreHelper *helper, float *out, const float *in, const float *weight, const float *bias,
                           int rows, int in_features, int out_features) {
    float beta = 0.0f;
    if (bias) {
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < out_features; o++) out[(long)r * out_features + o] = bias[o];
        beta = 1.0f;
    }
    matmul_weight_t_shared(helper, out, in, weight, rows, in_features, out_features, beta);
}

void linear_forward(float *out, const float *in, const float *weight, const float *bias,
                    int rows, int in_features, int out_features) {
    linear_forward_shared(NULL, out, in, weight, bias, rows, in_features, out_features);
}

void linear_backward(float *d_in, float *d_weight, float *d_bias, const float *d_out,
                     const float *in, const float *weight,
                     int rows, int in_features, int out_features) {
    if (d_in)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, in_features, out_features,
                    1.0f, d_out, out_features, weight, in_features, 1.0f, d_in, in_features);
    if (d_weight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out_features, in_features, rows,
                    1.0f, d_out, out_features, in, in_features, 1.0f, d_weight, in_features);
    if (d_bias)
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < out_features; o++) d_bias[o] += d_out[(long)r * out_features + o];
}
