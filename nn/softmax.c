#include "softmax.h"

#include <math.h>

void softmax_forward(float *out, const float *in, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        const float *x = in + (long)r * cols;
        float *y = out + (long)r * cols;
        float max = x[0];
        for (int c = 1; c < cols; c++) max = x[c] > max ? x[c] : max;
        double sum = 0.0;
        for (int c = 0; c < cols; c++) {
            y[c] = expf(x[c] - max);
            sum += y[c];
        }
        float inv = (float)(1.0 / sum);
        for (int c = 0; c < cols; c++) y[c] *= inv;
    }
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
    for (int r = 0; r < rows; r++) {
        const float *x = in + (long)r * cols;
        float *y = out + (long)r * cols;
        float max = x[0];
        for (int c = 1; c < cols; c++) max = x[c] > max ? x[c] : max;
        double sum = 0.0;
        for (int c = 0; c < cols; c++) sum += exp((double)(x[c] - max));
        float log_sum = (float)log(sum) + max;
        for (int c = 0; c < cols; c++) y[c] = x[c] - log_sum;
    }
}
