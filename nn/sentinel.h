#ifndef NN_SENTINEL_H
#define NN_SENTINEL_H

#include <stddef.h>

#include "attention.h"

/* Adaptive attention's visual sentinel (Lu et al. 2017, "Knowing when to
 * look"), in the decoder order of Xu et al. (attend with h_{t-1}, then run
 * the LSTM). Besides the L cells the model may attend to a sentinel u, a
 * vector of the LSTM's memory projected into the features' space; the
 * weight it gives the cells is the scalar beta, which replaces Xu's gate:
 *   g    = sigmoid(W_x x + W_h h + b)        x: the previous word's embedding,
 *                                            h, c: h_{t-1}, c_{t-1}
 *   s    = g * tanh(c)
 *   u    = P s                               [features]
 *   e_s  = score(h, u)                       the cells' score function
 *                                            (attention_extra_score_forward)
 *   beta = softmax([e_1 .. e_L, e_s]) summed over the cells
 *        = sigmoid(lse - e_s),               lse = log sum_i exp(e_i)
 *   zhat = beta * context + (1 - beta) * u   context = sum_i alpha_i z_i
 * alpha (softmax over the cells alone) stays the map users see; beta is
 * "how much it looks at the image". */
typedef struct {
    float *input_weight;  /* W_x [hidden, embed] */
    float *hidden_weight; /* W_h [hidden, hidden] */
    float *bias;          /* b [hidden] */
    float *projection;    /* P [features, hidden] */
} SentinelParams;

typedef struct {
    int batch, embed, hidden, features;
} SentinelShape;

/* Floats one step keeps for backward (with the attention's shape, whose
 * extra score it uses). */
size_t sentinel_cache_floats(const SentinelShape *shape, const AttentionShape *attention);
/* Scratch floats sentinel_backward needs. */
size_t sentinel_workspace_floats(const SentinelShape *shape, const AttentionShape *attention);

/* zhat [batch, features], beta [batch]; attention_cache is the step's
 * (attention_step_forward's, holding lse and the query). */
void sentinel_forward(float *zhat, float *beta, float *cache, const float *x, const float *h, const float *c,
                      const float *context, const float *attention_cache, const SentinelParams *params,
                      const AttentionParams *attention, const SentinelShape *shape,
                      const AttentionShape *attention_shape);

/* Given d_zhat, accumulates into d_x, d_h, d_c and the gradients, and writes
 * d_context [batch, features] and d_lse [batch] for attention_step_backward. */
void sentinel_backward(float *d_x, float *d_h, float *d_c, float *d_context, float *d_lse, SentinelParams *grads,
                       AttentionParams *attention_grads, const float *d_zhat, const float *beta, const float *cache,
                       const float *x, const float *h, const float *context, const float *attention_cache,
                       const SentinelParams *params, const AttentionParams *attention, const SentinelShape *shape,
                       const AttentionShape *attention_shape, float *workspace);

#endif
