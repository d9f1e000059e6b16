#include "attention.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "activation.h"
#include "linear.h"
#include "softmax.h"

static const char *const score_names[] = {"additive", "dot", "general"};

const char *attention_score_name(AttentionScore score) {
    return (unsigned)score < 3 ? score_names[score] : "unknown";
}

int attention_score_parse(const char *name, AttentionScore *score) {
    for (int i = 0; i < 3; i++)
        if (strcmp(name, score_names[i]) == 0) {
            *score = (AttentionScore)i;
            return 0;
        }
    return -1;
}

size_t attention_projection_floats(const AttentionShape *s) {
    return s->score == ATTENTION_ADDITIVE ? (size_t)s->batch * s->cells * s->attention : 0;
}

/* Cache layout. additive: query [batch, attention] then tanh activations
 * [batch, cells, attention]. dot/general: query [batch, features]. Then the
 * log-normaliser of each row's softmax [batch]. */
static size_t query_and_activation_floats(const AttentionShape *s) {
    if (s->score == ATTENTION_ADDITIVE)
        return (size_t)s->batch * s->attention * (1 + (size_t)s->cells);
    return (size_t)s->batch * s->features;
}

size_t attention_cache_floats(const AttentionShape *s) { return query_and_activation_floats(s) + (size_t)s->batch; }

const float *attention_cached_lse(const float *cache, const AttentionShape *s) {
    return cache + query_and_activation_floats(s);
}

size_t attention_extra_cache_floats(const AttentionShape *s) {
    return s->score == ATTENTION_ADDITIVE ? (size_t)s->batch * s->attention : 0;
}

size_t attention_workspace_floats(const AttentionShape *s) {
    int width = s->attention > s->features ? s->attention : s->features;
    return (size_t)s->batch * ((size_t)s->cells * 2 + (size_t)width);
}

static float dot_scale(const AttentionShape *s) {
    return s->score == ATTENTION_DOT ? 1.0f / sqrtf((float)s->features) : 1.0f;
}

void attention_precompute_forward(float *projection, const float *z, const AttentionParams *p,
                                  const AttentionShape *s) {
    if (s->score != ATTENTION_ADDITIVE) return;
    linear_forward(projection, z, p->feature_weight, p->feature_bias, s->batch * s->cells,
                   s->features, s->attention);
}

void attention_precompute_backward(float *d_z, AttentionParams *g, const float *d_projection,
                                   const float *z, const AttentionParams *p,
                                   const AttentionShape *s) {
    if (s->score != ATTENTION_ADDITIVE) return;
    linear_backward(d_z, g->feature_weight, g->feature_bias, d_projection, z, p->feature_weight,
                    s->batch * s->cells, s->features, s->attention);
}

/* query = the projection of h the scores are taken against. */
static void compute_query(float *query, const float *h, const AttentionParams *p,
                          const AttentionShape *s) {
    if (s->score == ATTENTION_ADDITIVE)
        linear_forward(query, h, p->query_weight, NULL, s->batch, s->hidden, s->attention);
    else if (s->score == ATTENTION_DOT)
        linear_forward(query, h, p->query_weight, NULL, s->batch, s->hidden, s->features);
    else /* general: (h^T W)_d */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->batch, s->features, s->hidden,
                    1.0f, h, s->hidden, p->query_weight, s->features, 0.0f, query, s->features);
}

static void additive_scores(float *scores, float *activations, const float *query,
                            const float *projection, const float *v, const AttentionShape *s) {
    int A = s->attention;
    for (int b = 0; b < s->batch; b++)
        for (int i = 0; i < s->cells; i++) {
            long row = (long)b * s->cells + i;
            const float *proj = projection + row * A, *q = query + (long)b * A;
            float *act = activations + row * A;
            for (int a = 0; a < A; a++) act[a] = fast_tanhf(proj[a] + q[a]);
        }
    /* Apart from the tanh loop: a float sum would keep it from vectorising. */
    cblas_sgemv(CblasRowMajor, CblasNoTrans, s->batch * s->cells, A, 1.0f, activations, A, v, 1,
                0.0f, scores, 1);
}

static void bilinear_scores(float *scores, const float *query, const float *z, float scale,
                            const AttentionShape *s) {
    int D = s->features;
    for (int b = 0; b < s->batch; b++)
        for (int i = 0; i < s->cells; i++) {
            long row = (long)b * s->cells + i;
            const float *zi = z + row * D, *q = query + (long)b * D;
            float e = 0.0f;
            for (int d = 0; d < D; d++) e += q[d] * zi[d];
            scores[row] = e * scale;
        }
}

void attention_step_forward(float *alpha, float *context, float *cache, const float *h,
                            const float *z, const float *projection, const AttentionParams *p,
                            const AttentionShape *s) {
    float *query = cache;
    compute_query(query, h, p, s);
    if (s->score == ATTENTION_ADDITIVE)
        additive_scores(alpha, cache + (long)s->batch * s->attention, query, projection,
                        p->score_vector, s);
    else
        bilinear_scores(alpha, query, z, dot_scale(s), s);
    float *lse = cache + query_and_activation_floats(s);
    for (int b = 0; b < s->batch; b++) {
        float *row = alpha + (long)b * s->cells;
        lse[b] = (float)softmax_row(row, row, s->cells);
    }
    for (int b = 0; b < s->batch; b++)
        cblas_sgemv(CblasRowMajor, CblasTrans, s->cells, s->features, 1.0f,
                    z + (long)b * s->cells * s->features, s->features, alpha + (long)b * s->cells,
                    1, 0.0f, context + (long)b * s->features, 1);
}

/* d_scores -> gradients of the additive MLP; d_query collects dL/d(W_h h). */
static void additive_backward(float *d_projection, float *d_query, AttentionParams *g,
                              const float *d_scores, const float *activations,
                              const float *v, const AttentionShape *s) {
    int A = s->attention;
    for (int b = 0; b < s->batch; b++)
        for (int i = 0; i < s->cells; i++) {
            long row = (long)b * s->cells + i;
            const float *act = activations + row * A;
            float de = d_scores[row];
            float *dproj = d_projection + row * A, *dq = d_query + (long)b * A;
            for (int a = 0; a < A; a++) {
                g->score_vector[a] += de * act[a];
                float d_pre = de * v[a] * (1.0f - act[a] * act[a]);
                dproj[a] += d_pre;
                dq[a] += d_pre;
            }
        }
}

static void bilinear_backward(float *d_z, float *d_query, const float *d_scores,
                              const float *query, const float *z, float scale,
                              const AttentionShape *s) {
    int D = s->features;
    for (int b = 0; b < s->batch; b++)
        for (int i = 0; i < s->cells; i++) {
            long row = (long)b * s->cells + i;
            float de = d_scores[row] * scale;
            const float *zi = z + row * D, *q = query + (long)b * D;
            float *dzi = d_z + row * D, *dq = d_query + (long)b * D;
            for (int d = 0; d < D; d++) {
                dq[d] += de * zi[d];
                dzi[d] += de * q[d];
            }
        }
}

static void query_backward(float *d_h, AttentionParams *g, const float *d_query, const float *h,
                           const AttentionParams *p, const AttentionShape *s) {
    if (s->score == ATTENTION_ADDITIVE)
        linear_backward(d_h, g->query_weight, NULL, d_query, h, p->query_weight, s->batch,
                        s->hidden, s->attention);
    else if (s->score == ATTENTION_DOT)
        linear_backward(d_h, g->query_weight, NULL, d_query, h, p->query_weight, s->batch,
                        s->hidden, s->features);
    else {
        /* query = h W: dW += h^T dq, dh += dq W^T */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->hidden, s->features, s->batch,
                    1.0f, h, s->hidden, d_query, s->features, 1.0f, g->query_weight, s->features);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->batch, s->hidden, s->features,
                    1.0f, d_query, s->features, p->query_weight, s->features, 1.0f, d_h, s->hidden);
    }
}

void attention_step_backward(float *d_h, float *d_z, float *d_projection, AttentionParams *g,
                             const float *d_context, const float *d_alpha, const float *d_lse,
                             const float *alpha, const float *cache, const float *h, const float *z,
                             const AttentionParams *p, const AttentionShape *s, float *workspace) {
    long rows = (long)s->batch * s->cells;
    int D = s->features;
    float *d_alpha_total = workspace, *d_scores = workspace + rows, *d_query = workspace + 2 * rows;
    for (int b = 0; b < s->batch; b++)
        for (int i = 0; i < s->cells; i++) {
            long row = (long)b * s->cells + i;
            const float *zi = z + row * D, *dc = d_context + (long)b * D;
            float *dzi = d_z + row * D;
            float da = d_alpha ? d_alpha[row] : 0.0f;
            for (int d = 0; d < D; d++) {
                da += dc[d] * zi[d];
                dzi[d] += alpha[row] * dc[d];
            }
            d_alpha_total[row] = da;
        }
    memset(d_scores, 0, sizeof(float) * rows);
    softmax_backward(d_scores, d_alpha_total, alpha, s->batch, s->cells);
    /* d lse / d e_i = alpha_i */
    for (long row = 0; d_lse && row < rows; row++) d_scores[row] += d_lse[row / s->cells] * alpha[row];
    int query_width = s->score == ATTENTION_ADDITIVE ? s->attention : D;
    memset(d_query, 0, sizeof(float) * s->batch * query_width);
    if (s->score == ATTENTION_ADDITIVE)
        additive_backward(d_projection, d_query, g, d_scores, cache + (long)s->batch * s->attention,
                          p->score_vector, s);
    else
        bilinear_backward(d_z, d_query, d_scores, cache, z, dot_scale(s), s);
    query_backward(d_h, g, d_query, h, p, s);
}

void attention_extra_score_forward(float *scores, float *extra_cache, const float *vectors, const float *cache,
                                   const AttentionParams *p, const AttentionShape *s) {
    const float *query = cache;
    if (s->score != ATTENTION_ADDITIVE) {
        AttentionShape one = *s;
        one.cells = 1;
        bilinear_scores(scores, query, vectors, dot_scale(s), &one);
        return;
    }
    int A = s->attention;
    linear_forward(extra_cache, vectors, p->feature_weight, p->feature_bias, s->batch, s->features, A);
    for (long i = 0; i < (long)s->batch * A; i++) extra_cache[i] = fast_tanhf(extra_cache[i] + query[i]);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, s->batch, A, 1.0f, extra_cache, A, p->score_vector, 1, 0.0f, scores,
                1);
}

void attention_extra_score_backward(float *d_h, float *d_vectors, AttentionParams *g, const float *d_scores,
                                    const float *extra_cache, const float *vectors, const float *cache,
                                    const float *h, const AttentionParams *p, const AttentionShape *s,
                                    float *workspace) {
    AttentionShape one = *s;
    one.cells = 1;
    int width = s->score == ATTENTION_ADDITIVE ? s->attention : s->features;
    float *d_query = workspace, *d_pre = workspace + (size_t)s->batch * width;
    memset(d_query, 0, sizeof(float) * s->batch * width);
    if (s->score != ATTENTION_ADDITIVE) {
        bilinear_backward(d_vectors, d_query, d_scores, cache, vectors, dot_scale(s), &one);
    } else {
        memset(d_pre, 0, sizeof(float) * s->batch * width);
        additive_backward(d_pre, d_query, g, d_scores, extra_cache, p->score_vector, &one);
        linear_backward(d_vectors, g->feature_weight, g->feature_bias, d_pre, vectors, p->feature_weight, s->batch,
                        s->features, s->attention);
    }
    query_backward(d_h, g, d_query, h, p, s);
}
