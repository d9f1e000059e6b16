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

/* GELU is a tenth of a Transformer training step: an AVX2 copy of each loop
 * (nn/cpu.h). */
static inline __attribute__((always_inline)) void gelu_forward_loop(float *out, const float *in, long n) {
    for (long i = 0; i < n; i++) out[i] = 0.5f * in[i] * (1.0f + fast_erff(in[i] * (float)M_SQRT1_2));
}

/* d/dx x Phi(x) = Phi(x) + x phi(x). */
static inline __attribute__((always_inline)) void gelu_backward_loop(float *d_in, const float *d_out, const float *in,
                                                                     long n) {
    const float inv_sqrt_2pi = 0.3989422804014327f;
    for (long i = 0; i < n; i++) {
        float x = in[i], cdf = 0.5f * (1.0f + fast_erff(x * (float)M_SQRT1_2));
        d_in[i] += d_out[i] * (cdf + x * inv_sqrt_2pi * fast_expf(-0.5f * x * x));
    }
}

CPU_AVX2_TARGET static void gelu_forward_avx2(float *out, const float *in, long n) { gelu_forward_loop(out, in, n); }

CPU_AVX2_TARGET static void gelu_backward_avx2(float *d_in, const float *d_out, const float *in, long n) {
    gelu_backward_loop(d_in, d_out, in, n);
}

void gelu_forward(float *out, const float *in, long n) {
    if (cpu_wide_loops()) gelu_forward_avx2(out, in, n);
    else gelu_forward_loop(out, in, n);
}

void gelu_backward(float *d_in, const float *d_out, const float *in, long n) {
    if (cpu_wide_loops()) gelu_backward_avx2(d_in, d_out, in, n);
    else gelu_backward_loop(d_in, d_out, in, n);
}
