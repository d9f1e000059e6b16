#include "dropout.h"

void dropout_forward(float *out, float *mask, const float *in, long n, float p, Rng *rng) {
    if (!(p > 0.0f)) {
        for (long i = 0; i < n; i++) mask[i] = 1.0f, out[i] = in[i];
        return;
    }
    float keep_scale = 1.0f / (1.0f - p);
    for (long i = 0; i < n; i++) mask[i] = rng_uniform(rng) < p ? 0.0f : keep_scale;
    for (long i = 0; i < n; i++) out[i] = in[i] * mask[i]; /* a second pass, which vectorises */
}

void dropout_backward(float *d_in, const float *d_out, const float *mask, long n) {
    for (long i = 0; i < n; i++) d_in[i] += d_out[i] * mask[i];
}
