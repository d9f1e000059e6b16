#include "activation.h"

#include <math.h>

#include "cpu.h"

void relu_forward(float *out, const float *in, long n) {
    for (long i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void relu_backward(float *d_in, const float *d_out, const float *out, long n) {
    for (long i = 0; i < n; i++)
        if (out[i] > 0.0f) d_in[i] += d_out[i];
}

void tanh_forward(float *out, const float *in, long n) {
    for (long i = 0; i < n; i++) out[i] = fast_tanhf(in[i]);
}

void tanh_backward(float *d_in, const float *d_out, const float *out, long n) {
    for (long i = 0; i < n; i++) d_in[i] += d_out[i] * (1.0f - out[i] * out[i]);
}

void sigmoid_forward(float *out, const float *in, long n) {
    for (long i = 0; i < n; i++) out[i] = sigmoid(in[i]);
}

void sigmoid_backward(float *d_in, const float *d_out, const float *out, long n) {
    for (long i = 0; i < n; i++) d_in[i] += d_out[i] * out[i] * (1.0f - out[i]);
}

/* GELU is a tenth of a Transformer training step (nn/cpu.h). */
CPU_AVX2_CLONES void gelu_forward(float *out, const float *in, long n) {
    for (long i = 0; i < n; i++) out[i] = 0.5f * in[i] * (1.0f + fast_erff(in[i] * (float)M_SQRT1_2));
}

/* d/dx x Phi(x) = Phi(x) + x phi(x). */
CPU_AVX2_CLONES void gelu_backward(float *d_in, const float *d_out, const float *in, long n) {
    const float inv_sqrt_2pi = 0.3989422804014327f;
    for (long i = 0; i < n; i++) {
        float x = in[i], cdf = 0.5f * (1.0f + fast_erff(x * (float)M_SQRT1_2));
        d_in[i] += d_out[i] * (cdf + x * inv_sqrt_2pi * fast_expf(-0.5f * x * x));
    }
}
