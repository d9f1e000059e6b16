#ifndef NN_ACTIVATION_H
#define NN_ACTIVATION_H

/* Elementwise activations. Forward may run in place (out == in). Backward
 * takes the forward *output* (cheaper than the input for all three) and
 * accumulates into d_in. */
void relu_forward(float *out, const float *in, long n);
void relu_backward(float *d_in, const float *d_out, const float *out, long n);

void tanh_forward(float *out, const float *in, long n);
void tanh_backward(float *d_in, const float *d_out, const float *out, long n);

void sigmoid_forward(float *out, const float *in, long n);
void sigmoid_backward(float *d_in, const float *d_out, const float *out, long n);

/* GELU, the exact form PyTorch's nn.GELU() and activation="gelu" use:
 * x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)). Its backward takes the forward
 * *input* (the output does not determine it). */
void gelu_forward(float *out, const float *in, long n);
void gelu_backward(float *d_in, const float *d_out, const float *in, long n);

/* Scalar exp, tanh and sigmoid written without branches or calls, so that the
 * loops of the layers that use them vectorise (glibc's tanhf alone was a fifth
 * of a training step). Cephes' polynomials; the error against the correctly
 * rounded result is measured over the float range in tests/test_layers.c. */
static inline float pow2_int(int n) {
    union { unsigned bits; float value; } p = { .bits = (unsigned)(n + 127) << 23 };
    return p.value;
}

static inline float fast_expf(float x) {
    const float log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    /* 1.5 * 2^23: adding and subtracting it rounds to the nearest integer. */
    const float round_magic = 12582912.0f;
    /* Beyond these e^x is 0 or inf in float anyway; NaN becomes 89 here and is returned below. */
    float clamped = x < 89.0f ? x : 89.0f;
    clamped = clamped > -104.0f ? clamped : -104.0f;
    float n = (clamped * log2e + round_magic) - round_magic;
    float r = clamped - n * ln2_hi - n * ln2_lo;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float e_r = p * r * r + r + 1.0f;
    /* 2^n in two halves: each stays a normal float for n in [-150, 128], and the
     * product rounds once into the denormals or overflows to inf like expf. */
    int half = (int)n / 2;
    float y = e_r * pow2_int(half) * pow2_int((int)n - half);
    return x == x ? y : x;
}

static inline float fast_tanhf(float x) {
    float a = x < 0.0f ? -x : x;
    /* Near 0 an odd polynomial; elsewhere 1 - 2 / (e^2a + 1), which cancels too much below 0.625. */
    float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = p * z * x + x;
    float large = 1.0f - 2.0f / (fast_expf(2.0f * a) + 1.0f);
    large = x < 0.0f ? -large : large;
    return a < 0.625f ? small : large;
}

/* c[0] x^(n-1) + ... + c[n-1] by Horner's rule (n is a constant at each call,
 * so the loop unrolls). */
static inline float horner(float x, const float *c, int n) {
    float p = c[0];
    for (int i = 1; i < n; i++) p = p * x + c[i];
    return p;
}

/* Cephes' erff coefficients: x P(x^2) below 1; above, 1 - e^-x^2 Q(1/x^2) / x
 * with Q for [1, 2) or for [2, inf). All three are computed and one kept, so
 * the loops that call it vectorise (GELU's, a tenth of a Transformer step
 * with libm's erff). */
static inline float fast_erff(float x) {
    static const float below_1[7] = {7.853861353153693e-5f, -8.010193625184903e-4f, 5.188327685732524e-3f,
                                     -2.685381193529856e-2f, 1.128358514861418e-1f, -3.761262582423300e-1f,
                                     1.128379165726710e0f};
    static const float below_2[9] = {2.326819970068386e-2f, -1.387039388740657e-1f, 3.687424674597105e-1f,
                                     -5.824733027278666e-1f, 6.210004621745983e-1f, -4.944515323274145e-1f,
                                     3.404879937665872e-1f, -2.741127028184656e-1f, 5.638259427386472e-1f};
    static const float beyond_2[8] = {-1.047766399936249e1f, 1.297719955372516e1f, -7.495518717768503e0f,
                                      2.921019019210786e0f, -1.015265279202700e0f, 4.218463358204948e-1f,
                                      -2.820767439740514e-1f, 5.641895067754075e-1f};
    float a = x < 0.0f ? -x : x;
    float small = horner(x * x, below_1, 7) * x;
    float b = a > 1.0f ? a : 1.0f, q = 1.0f / b, w = q * q;
    float tail = b < 2.0f ? horner(w, below_2, 9) : horner(w, beyond_2, 8);
    float large = 1.0f - fast_expf(-b * b) * q * tail;
    large = x < 0.0f ? -large : large;
    float y = a < 1.0f ? small : large;
    return x == x ? y : x;
}

static inline float sigmoid(float x) {
    /* e^-|x| never overflows; 1 - s for x < 0 would lose the small values. */
    float e = fast_expf(x < 0.0f ? x : -x);
    float s = 1.0f / (1.0f + e);
    return x < 0.0f ? e * s : s;
}

#endif
