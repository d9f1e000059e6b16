#include "softmax.h"

#include <math.h>

#include "activation.h"
#include "cpu.h"

static float row_max(const float *x, int cols) {
    float max = x[0];
    for (int c = 1; c < cols; c++) max = x[c] > max ? x[c] : max;
    return max;
}

static inline __attribute__((always_inline)) double softmax_row_loop(float *out, const float *in, int cols) {
    float max = row_max(in, cols);
    for (int c = 0; c < cols; c++) out[c] = fast_expf(in[c] - max);
    double sum = 0.0;
    for (int c = 0; c < cols; c++) sum += out[c];
    float inv = (float)(1.0 / sum);
    for (int c = 0; c < cols; c++) out[c] *= inv;
    return log(sum) + max;
}

/* An AVX2 copy (nn/cpu.h): softmax rows are 3 % of a Transformer step. */
CPU_AVX2_TARGET static double softmax_row_avx2(float *out, const float *in, int cols) {
    return softmax_row_loop(out, in, cols);
}

double softmax_row(float *out, const float *in, int cols) {
    return cpu_wide_loops() ? softmax_row_avx2(out, in, cols) : softmax_row_loop(out, in, cols);
}

void softmax_forward(float *out, const float *in, int rows, int cols) {
    for (int r = 0; r < rows; r++) softmax_row(out + (long)r * cols, in + (long)r * cols, cols);
}

void softmax_backward(float *d_in, const float *d_out, const float *out, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        const float *y = out + (long)r * cols, *dy = d_out + (long)r * cols;
        double dot = 0.0;
        for (int c = 0; c < cols; c++) dot += dy[c] * y[c];
        float *dx = d_in + (long)r * cols;
        for (int c = 0; c < cols; c++) dx[c] += y[c] * (dy[c] - (float)dot);
    }
}

void log_softmax_forward(float *out, const float *in, int rows, int cols) {
    enum { CHUNK = 256 };
    float exps[CHUNK];
    for (int r = 0; r < rows; r++) {
        const float *x = in + (long)r * cols;
        float *y = out + (long)r * cols;
        float max = row_max(x, cols);
        /* In chunks, because out may be in: x is needed again below. */
        double sum = 0.0;
        for (int start = 0; start < cols; start += CHUNK) {
            int n = cols - start < CHUNK ? cols - start : CHUNK;
            for (int c = 0; c < n; c++) exps[c] = fast_expf(x[start + c] - max);
            for (int c = 0; c < n; c++) sum += exps[c];
        }
        float log_sum = (float)log(sum) + max;
        for (int c = 0; c < cols; c++) y[c] = x[c] - log_sum;
    }
}
