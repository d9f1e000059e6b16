#include "dropout.h"

void dropout_forward(float *out, float *mask, const float *in, long n, float p, Rng *rng) {
    float keep_scale = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
    for (long i = 0; i < n; i++) {
        mask[i] = (p > 0.0f && rng_uniform(rng) < p) ? 0.0f : keep_scale;
        out[i] = in[i] * mask[i];
    }
}

void dropout_backward(float *d_in, const float *d_out, const float *mask, long n) {
    for (long i = 0; i < n; i++) d_in[i] += d_out[i] * mask[i];
}
