#include "batchnorm.h"

#include <math.h>

void batchnorm_forward_train(float *out, float *saved_mean, float *saved_inv_std,
                             float *running_mean, float *running_var, const float *in,
                             const float *gamma, const float *beta, const BatchNormShape *s) {
    long count = (long)s->batch * s->spatial;
    for (int c = 0; c < s->channels; c++) {
        double sum = 0.0, sum_sq = 0.0;
        for (int b = 0; b < s->batch; b++) {
            const float *x = in + ((long)b * s->channels + c) * s->spatial;
            for (int i = 0; i < s->spatial; i++) sum += x[i];
        }
        double mean = sum / count;
        for (int b = 0; b < s->batch; b++) {
            const float *x = in + ((long)b * s->channels + c) * s->spatial;
            for (int i = 0; i < s->spatial; i++) sum_sq += (x[i] - mean) * (x[i] - mean);
        }
        double var = sum_sq / count;
        float inv_std = (float)(1.0 / sqrt(var + s->eps));
        saved_mean[c] = (float)mean;
        saved_inv_std[c] = inv_std;
        if (running_mean && running_var) {
            double unbiased = count > 1 ? sum_sq / (count - 1) : var;
            running_mean[c] = (1.0f - s->momentum) * running_mean[c] + s->momentum * (float)mean;
            running_var[c] = (1.0f - s->momentum) * running_var[c] + s->momentum * (float)unbiased;
        }
        float scale = gamma[c] * inv_std, shift = beta[c] - (float)mean * scale;
        for (int b = 0; b < s->batch; b++) {
            long base = ((long)b * s->channels + c) * s->spatial;
            for (int i = 0; i < s->spatial; i++) out[base + i] = in[base + i] * scale + shift;
        }
    }
}

void batchnorm_forward_infer(float *out, const float *in, const float *gamma, const float *beta,
                             const float *running_mean, const float *running_var,
                             const BatchNormShape *s) {
    for (int c = 0; c < s->channels; c++) {
        float scale = gamma[c] / sqrtf(running_var[c] + s->eps);
        float shift = beta[c] - running_mean[c] * scale;
        for (int b = 0; b < s->batch; b++) {
            long base = ((long)b * s->channels + c) * s->spatial;
            for (int i = 0; i < s->spatial; i++) out[base + i] = in[base + i] * scale + shift;
        }
    }
}

void batchnorm_backward(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                        const float *in, const float *saved_mean, const float *saved_inv_std,
                        const float *gamma, const BatchNormShape *s) {
    long count = (long)s->batch * s->spatial;
    for (int c = 0; c < s->channels; c++) {
        float mean = saved_mean[c], inv_std = saved_inv_std[c];
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int b = 0; b < s->batch; b++) {
            long base = ((long)b * s->channels + c) * s->spatial;
            for (int i = 0; i < s->spatial; i++) {
                float x_hat = (in[base + i] - mean) * inv_std;
                sum_dy += d_out[base + i];
                sum_dy_xhat += d_out[base + i] * x_hat;
            }
        }
        d_gamma[c] += (float)sum_dy_xhat;
        d_beta[c] += (float)sum_dy;
        /* dx = gamma * inv_std * (dy - mean(dy) - x_hat * mean(dy * x_hat)) */
        float mean_dy = (float)(sum_dy / count), mean_dy_xhat = (float)(sum_dy_xhat / count);
        float scale = gamma[c] * inv_std;
        for (int b = 0; b < s->batch; b++) {
            long base = ((long)b * s->channels + c) * s->spatial;
            for (int i = 0; i < s->spatial; i++) {
                float x_hat = (in[base + i] - mean) * inv_std;
                d_in[base + i] += scale * (d_out[base + i] - mean_dy - x_hat * mean_dy_xhat);
            }
        }
    }
}

void batchnorm_fold_into_conv(float *folded_weight, float *folded_bias, const float *conv_weight,
                              const float *conv_bias, const float *gamma, const float *beta,
                              const float *running_mean, const float *running_var,
                              int out_channels, long weights_per_channel, float eps) {
    for (int o = 0; o < out_channels; o++) {
        float scale = gamma[o] / sqrtf(running_var[o] + eps);
        for (long k = 0; k < weights_per_channel; k++)
            folded_weight[o * weights_per_channel + k] = conv_weight[o * weights_per_channel + k] * scale;
        float bias = conv_bias ? conv_bias[o] : 0.0f;
        folded_bias[o] = (bias - running_mean[o]) * scale + beta[o];
    }
}
