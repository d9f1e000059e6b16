#include "optimizer.h"

#include <math.h>

void adam_update(float *params, const float *grads, float *m, float *v, size_t n, float lr,
                 float weight_decay, long step, const AdamConfig *c) {
    float bias1 = 1.0f - powf(c->beta1, (float)step);
    float bias2 = 1.0f - powf(c->beta2, (float)step);
    float step_size = lr / bias1, inv_sqrt_bias2 = 1.0f / sqrtf(bias2);
    float decay = 1.0f - lr * weight_decay;
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        m[i] = c->beta1 * m[i] + (1.0f - c->beta1) * g;
        v[i] = c->beta2 * v[i] + (1.0f - c->beta2) * g * g;
        params[i] *= decay;
        params[i] -= step_size * m[i] / (sqrtf(v[i]) * inv_sqrt_bias2 + c->eps);
    }
}

float grad_global_norm(const float *grads, size_t n) {
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += (double)grads[i] * grads[i];
    return (float)sqrt(sum);
}

float grad_clip_global_norm(float *grads, size_t n, float max_norm) {
    float norm = grad_global_norm(grads, n);
    float factor = max_norm / (norm + 1e-6f);
    if (factor < 1.0f)
        for (size_t i = 0; i < n; i++) grads[i] *= factor;
    return norm;
}

void ema_update(float *average, const float *params, size_t n, float decay) {
    float keep = 1.0f - decay;
    for (size_t i = 0; i < n; i++) average[i] += keep * (params[i] - average[i]);
}
