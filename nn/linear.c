#include "linear.h"

#include <cblas.h>

/* Up to this many rows, one sgemv per row: sgemm packs all of the weight on
 * every call, which costs more than the product itself for a beam of 3. */
enum { SGEMV_MAX_ROWS = 4 };

void matmul_weight_t(float *out, const float *in, const float *weight, int rows, int in_features,
                     int out_features, float beta) {
    if (rows > SGEMV_MAX_ROWS) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out_features, in_features, 1.0f, in,
                    in_features, weight, in_features, beta, out, out_features);
        return;
    }
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
