#include "linear.h"

#include <cblas.h>

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
few_rows_avx2(float *restrict out, const float *restrict in, const float *restrict weight, const int R,
              int in_features, int out_features, float beta) {
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
            float *y = out + (long)r * out_features + o;
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
            float *y = out + (long)r * out_features + o;
            *y = beta == 0.0f ? s : beta * *y + s;
        }
}

__attribute__((target("avx2,fma"))) static void few_rows_avx2_dispatch(float *out, const float *in,
                                                                       const float *weight, int rows,
                                                                       int in_features, int out_features,
                                                                       float beta) {
    switch (rows) {
    case 2: few_rows_avx2(out, in, weight, 2, in_features, out_features, beta); break;
    case 3: few_rows_avx2(out, in, weight, 3, in_features, out_features, beta); break;
    default: few_rows_avx2(out, in, weight, 4, in_features, out_features, beta); break;
    }
}
#endif

void matmul_weight_t(float *out, const float *in, const float *weight, int rows, int in_features,
                     int out_features, float beta) {
    if (rows > FEW_ROWS_MAX) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out_features, in_features, 1.0f, in,
                    in_features, weight, in_features, beta, out, out_features);
        return;
    }
#ifdef HAVE_AVX2_FEW_ROWS
    /* One row: OpenBLAS's sgemv is as fast. */
    if (rows >= 2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        few_rows_avx2_dispatch(out, in, weight, rows, in_features, out_features, beta);
        return;
    }
#endif
    for (int r = 0; r < rows; r++)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out_features, in_features, 1.0f, weight, in_features,
                    in + (long)r * in_features, 1, beta, out + (long)r * out_features, 1);
}

void linear_forward(float *out, const float *in, const float *weight, const float *bias,
                    int rows, int in_features, int out_features) {
    float beta = 0.0f;
    if (bias) {
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < out_features; o++) out[(long)r * out_features + o] = bias[o];
        beta = 1.0f;
    }
    matmul_weight_t(out, in, weight, rows, in_features, out_features, beta);
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
