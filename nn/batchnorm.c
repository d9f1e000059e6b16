#include "batchnorm.h"

#include <math.h>
#include <stddef.h>

static double channel_sum(const float *in, const BatchNormShape *s, int c) {
    double sum = 0.0;
    for (int b = 0; b < s->batch; b++) {
        const float *x = in + ((long)b * s->channels + c) * s->spatial;
        for (int i = 0; i < s->spatial; i++) sum += x[i];
    }
    return sum;
}

static double channel_squares(const float *in, const BatchNormShape *s, int c, double mean) {
    double sum_sq = 0.0;
    for (int b = 0; b < s->batch; b++) {
        const float *x = in + ((long)b * s->channels + c) * s->spatial;
        for (int i = 0; i < s->spatial; i++) sum_sq += (x[i] - mean) * (x[i] - mean);
    }
    return sum_sq;
}

/* The global batch's moments in two rounds, the mean first, as one process
 * computes them: scratch[0..C) the means, [C] the element count,
 * [C+1..2C+1) the squared deviations from the mean. */
static void replica_moments(const float *in, const BatchNormShape *s) {
    double *stats = s->replica_scratch;
    int C = s->channels;
    for (int c = 0; c < C; c++) stats[c] = channel_sum(in, s, c);
    stats[C] = (double)s->batch * s->spatial;
    s->replicas->sum(s->replicas->context, stats, C + 1);
    for (int c = 0; c < C; c++) stats[c] /= stats[C];
    for (int c = 0; c < C; c++) stats[C + 1 + c] = channel_squares(in, s, c, stats[c]);
    s->replicas->sum(s->replicas->context, stats + C + 1, C);
}

void batchnorm_forward_train(float *out, float *saved_mean, float *saved_inv_std,
                             float *running_mean, float *running_var, const float *in,
                             const float *gamma, const float *beta, const BatchNormShape *s) {
    const double *stats = s->replicas ? s->replica_scratch : NULL;
    if (stats) replica_moments(in, s);
    double count = stats ? stats[s->channels] : (double)s->batch * s->spatial;
    for (int c = 0; c < s->channels; c++) {
        double mean = stats ? stats[c] : channel_sum(in, s, c) / count;
        double sum_sq = stats ? stats[s->channels + 1 + c] : channel_squares(in, s, c, mean);
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

/* Over this batch: sums[0] of dy, sums[1] of dy * x_hat, for channel c. */
static void channel_gradient_sums(double sums[2], const float *d_out, const float *in, float mean, float inv_std,
                                  const BatchNormShape *s, int c) {
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (int b = 0; b < s->batch; b++) {
        long base = ((long)b * s->channels + c) * s->spatial;
        for (int i = 0; i < s->spatial; i++) {
            float x_hat = (in[base + i] - mean) * inv_std;
            sum_dy += d_out[base + i];
            sum_dy_xhat += d_out[base + i] * x_hat;
        }
    }
    sums[0] = sum_dy;
    sums[1] = sum_dy_xhat;
}

/* The global sums of dy and dy * x_hat (scratch[2c], scratch[2c + 1]) and,
 * in scratch[2C], the element count; d_gamma and d_beta get the local part. */
static void replica_gradient_sums(float *d_gamma, float *d_beta, const float *d_out, const float *in,
                                  const float *saved_mean, const float *saved_inv_std, const BatchNormShape *s) {
    double *sums = s->replica_scratch;
    for (int c = 0; c < s->channels; c++) {
        channel_gradient_sums(sums + 2 * c, d_out, in, saved_mean[c], saved_inv_std[c], s, c);
        d_gamma[c] += (float)sums[2 * c + 1];
        d_beta[c] += (float)sums[2 * c];
    }
    sums[2 * s->channels] = (double)s->batch * s->spatial;
    s->replicas->sum(s->replicas->context, sums, 2 * s->channels + 1);
}

void batchnorm_backward(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                        const float *in, const float *saved_mean, const float *saved_inv_std,
                        const float *gamma, const BatchNormShape *s) {
    const double *global = s->replicas ? s->replica_scratch : NULL;
    if (global) replica_gradient_sums(d_gamma, d_beta, d_out, in, saved_mean, saved_inv_std, s);
    double count = global ? global[2 * s->channels] : (double)s->batch * s->spatial;
    for (int c = 0; c < s->channels; c++) {
        float mean = saved_mean[c], inv_std = saved_inv_std[c];
        double sums[2];
        if (global) {
            sums[0] = global[2 * c], sums[1] = global[2 * c + 1];
        } else {
            channel_gradient_sums(sums, d_out, in, mean, inv_std, s, c);
            d_gamma[c] += (float)sums[1];
            d_beta[c] += (float)sums[0];
        }
        /* dx = gamma * inv_std * (dy - mean(dy) - x_hat * mean(dy * x_hat)) */
        float mean_dy = (float)(sums[0] / count), mean_dy_xhat = (float)(sums[1] / count);
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
