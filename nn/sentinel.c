#include "sentinel.h"

#include <string.h>

#include "activation.h"
#include "linear.h"

/* Cache layout: gate g [B, H], tanh(c) [B, H], s [B, H], u [B, D], then the
 * extra score's cache. */
size_t sentinel_cache_floats(const SentinelShape *s, const AttentionShape *a) {
    return (size_t)s->batch * (3 * (size_t)s->hidden + (size_t)s->features) + attention_extra_cache_floats(a);
}

/* d_pre [B, H] and d_s [B, H] (reused), d_u [B, D], d_score [B], then the
 * extra score backward's workspace. */
size_t sentinel_workspace_floats(const SentinelShape *s, const AttentionShape *a) {
    int width = a->attention > a->features ? a->attention : a->features;
    return (size_t)s->batch * (2 * (size_t)s->hidden + (size_t)s->features + 1 + 2 * (size_t)width);
}

typedef struct {
    float *gate, *tanh_c, *s, *u, *extra;
} SentinelCache;

static SentinelCache cache_views(float *cache, const SentinelShape *s) {
    size_t BH = (size_t)s->batch * s->hidden;
    return (SentinelCache){cache, cache + BH, cache + 2 * BH, cache + 3 * BH, cache + 3 * BH + (size_t)s->batch * s->features};
}

void sentinel_forward(float *zhat, float *beta, float *cache, const float *x, const float *h, const float *c,
                      const float *context, const float *attention_cache, const SentinelParams *p,
                      const AttentionParams *ap, const SentinelShape *s, const AttentionShape *as) {
    int B = s->batch, H = s->hidden, D = s->features;
    SentinelCache v = cache_views(cache, s);
    linear_forward(v.gate, x, p->input_weight, p->bias, B, s->embed, H);
    matmul_weight_t(v.gate, h, p->hidden_weight, B, H, H, 1.0f);
    sigmoid_forward(v.gate, v.gate, (long)B * H);
    tanh_forward(v.tanh_c, c, (long)B * H);
    for (long i = 0; i < (long)B * H; i++) v.s[i] = v.gate[i] * v.tanh_c[i];
    linear_forward(v.u, v.s, p->projection, NULL, B, H, D);
    float *score = beta; /* e_s first, then beta in place */
    attention_extra_score_forward(score, v.extra, v.u, attention_cache, ap, as);
    const float *lse = attention_cached_lse(attention_cache, as);
    for (int b = 0; b < B; b++) {
        beta[b] = sigmoid(lse[b] - score[b]);
        for (int d = 0; d < D; d++)
            zhat[(long)b * D + d] = beta[b] * context[(long)b * D + d] + (1.0f - beta[b]) * v.u[(long)b * D + d];
    }
}

void sentinel_backward(float *d_x, float *d_h, float *d_c, float *d_context, float *d_lse, SentinelParams *g,
                       AttentionParams *ag, const float *d_zhat, const float *beta, const float *cache,
                       const float *x, const float *h, const float *context, const float *attention_cache,
                       const SentinelParams *p, const AttentionParams *ap, const SentinelShape *s,
                       const AttentionShape *as, float *workspace) {
    int B = s->batch, H = s->hidden, D = s->features;
    SentinelCache v = cache_views((float *)cache, s);
    float *d_pre = workspace, *d_s = workspace + (size_t)B * H, *d_u = d_s + (size_t)B * H, *d_score = d_u + (size_t)B * D;
    float *extra_workspace = d_score + B;
    for (int b = 0; b < B; b++) {
        float d_beta = 0.0f;
        for (int d = 0; d < D; d++) {
            long i = (long)b * D + d;
            d_context[i] = beta[b] * d_zhat[i];
            d_u[i] = (1.0f - beta[b]) * d_zhat[i];
            d_beta += d_zhat[i] * (context[i] - v.u[i]);
        }
        /* beta = sigmoid(lse - e_s) */
        float k = d_beta * beta[b] * (1.0f - beta[b]);
        d_lse[b] = k;
        d_score[b] = -k;
    }
    attention_extra_score_backward(d_h, d_u, ag, d_score, v.extra, v.u, attention_cache, h, ap, as, extra_workspace);
    memset(d_s, 0, sizeof(float) * (size_t)B * H);
    linear_backward(d_s, g->projection, NULL, d_u, v.s, p->projection, B, H, D);
    for (long i = 0; i < (long)B * H; i++) {
        /* s = g * tanh(c) */
        d_c[i] += d_s[i] * v.gate[i] * (1.0f - v.tanh_c[i] * v.tanh_c[i]);
        d_pre[i] = d_s[i] * v.tanh_c[i] * v.gate[i] * (1.0f - v.gate[i]);
    }
    linear_backward(d_x, g->input_weight, g->bias, d_pre, x, p->input_weight, B, s->embed, H);
    linear_backward(d_h, g->hidden_weight, NULL, d_pre, h, p->hidden_weight, B, H, H);
}
