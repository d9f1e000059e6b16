#include "layernorm.h"

#include <math.h>

void layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *weight, const float *bias,
                       int rows, int dim, float eps) {
    for (int r = 0; r < rows; r++) {
        const float *x = in + (long)r * dim;
        double sum = 0.0;
        for (int i = 0; i < dim; i++) sum += x[i];
        float m = (float)(sum / dim);
        double squares = 0.0;
        for (int i = 0; i < dim; i++) squares += (double)(x[i] - m) * (x[i] - m);
        float s = (float)(1.0 / sqrt(squares / dim + eps));
        float *y = out + (long)r * dim;
        for (int i = 0; i < dim; i++) y[i] = (x[i] - m) * s * weight[i] + bias[i];
        mean[r] = m;
        rstd[r] = s;
    }
}

/* With xhat = (x - mean) * rstd and g = d_out * weight:
 *   d_in = rstd * (g - mean(g) - xhat * mean(g * xhat)). */
void layernorm_backward(float *d_in, float *d_weight, float *d_bias, const float *d_out, const float *in,
                        const float *mean, const float *rstd, const float *weight, int rows, int dim) {
    for (int r = 0; r < rows; r++) {
        const float *x = in + (long)r * dim, *dy = d_out + (long)r * dim;
        float m = mean[r], s = rstd[r];
        double g_mean = 0.0, gx_mean = 0.0;
        for (int i = 0; i < dim; i++) {
            float xhat = (x[i] - m) * s, g = dy[i] * weight[i];
            g_mean += g;
            gx_mean += g * xhat;
            if (d_weight) d_weight[i] += dy[i] * xhat;
            if (d_bias) d_bias[i] += dy[i];
        }
        g_mean /= dim;
        gx_mean /= dim;
        if (!d_in) continue;
        float *dx = d_in + (long)r * dim;
        for (int i = 0; i < dim; i++) {
            float xhat = (x[i] - m) * s;
            dx[i] += s * (dy[i] * weight[i] - (float)g_mean - xhat * (float)gx_mean);
        }
    }
}
