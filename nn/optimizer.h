#ifndef NN_OPTIMIZER_H
#define NN_OPTIMIZER_H

#include <stddef.h>

/* Adam with decoupled weight decay (Loshchilov & Hutter; PyTorch's AdamW):
 *   p -= lr * weight_decay * p
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * step is 1-based. */
typedef struct {
    float beta1, beta2, eps;
} AdamConfig;

void adam_update(float *params, const float *grads, float *m, float *v, size_t n, float lr,
                 float weight_decay, long step, const AdamConfig *config);

/* Exponential moving average of parameters (Polyak averaging):
 *   average = decay * average + (1 - decay) * params */
void ema_update(float *average, const float *params, size_t n, float decay);

/* The L2 norm of all gradients together. */
float grad_global_norm(const float *grads, size_t n);
/* Scales gradients so their global norm is at most max_norm (PyTorch's
 * clip_grad_norm_: factor max_norm / (norm + 1e-6) when that is below 1).
 * Returns the norm before clipping. */
float grad_clip_global_norm(float *grads, size_t n, float max_norm);

#endif
