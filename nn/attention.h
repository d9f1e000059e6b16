#ifndef NN_ATTENTION_H
#define NN_ATTENTION_H

#include <stddef.h>

/* Soft attention over a grid of L = H*W feature vectors z_i (D-dim), queried by
 * a decoder state h (hidden-dim), Xu et al. 2015 section 3.1.2:
 *   e_i = score(h, z_i),  alpha = softmax(e),  context = sum_i alpha_i z_i
 * with three score functions:
 *   additive  e_i = v . tanh(W_h h + W_z z_i + b)      (Bahdanau; the paper's MLP)
 *   dot       e_i = (W_q h) . z_i / sqrt(D)            (scaled dot product)
 *   general   e_i = h^T W z_i                           (Luong's bilinear form)
 * W_z z_i + b does not depend on the step, so it is computed once per image
 * (attention_precompute_*) and reused by every step. */
typedef enum {
    ATTENTION_ADDITIVE = 0,
    ATTENTION_DOT = 1,
    ATTENTION_GENERAL = 2,
} AttentionScore;

typedef struct {
    AttentionScore score;
    int batch, cells, features, hidden, attention; /* attention: MLP width (additive only) */
} AttentionShape;

/* Parameters (or, with the same layout, their gradients). Unused ones are NULL.
 *   additive: feature_weight W_z [attention, features], feature_bias b [attention],
 *             query_weight W_h [attention, hidden], score_vector v [attention]
 *   dot:      query_weight W_q [features, hidden]
 *   general:  query_weight W [hidden, features] */
typedef struct {
    float *feature_weight;
    float *feature_bias;
    float *query_weight;
    float *score_vector;
} AttentionParams;

const char *attention_score_name(AttentionScore score);
/* Parses "additive", "dot" or "general"; returns -1 on anything else. */
int attention_score_parse(const char *name, AttentionScore *score);

/* Floats of the per-image projection (additive: batch*cells*attention; else 0). */
size_t attention_projection_floats(const AttentionShape *shape);
/* Floats one step saves for backward. */
size_t attention_cache_floats(const AttentionShape *shape);
/* Scratch floats attention_step_backward needs. */
size_t attention_workspace_floats(const AttentionShape *shape);

/* z: [batch, cells, features]. projection: attention_projection_floats. */
void attention_precompute_forward(float *projection, const float *z, const AttentionParams *params,
                                  const AttentionShape *shape);
void attention_precompute_backward(float *d_z, AttentionParams *grads, const float *d_projection,
                                   const float *z, const AttentionParams *params,
                                   const AttentionShape *shape);

/* One decoder step: h [batch, hidden] -> alpha [batch, cells], context [batch, features]. */
void attention_step_forward(float *alpha, float *context, float *cache, const float *h,
                            const float *z, const float *projection, const AttentionParams *params,
                            const AttentionShape *shape);

/* The log of each row's softmax normaliser, lse = log sum_i exp(e_i), as
 * the step kept it in its cache ([batch]). */
const float *attention_cached_lse(const float *cache, const AttentionShape *shape);

/* Accumulates into d_h, d_z, d_projection (additive only) and grads, given the
 * gradient of the context and, optionally (each may be NULL), a direct
 * gradient on alpha (from the doubly stochastic penalty) and one on lse
 * ([batch]; from a score compared against the cells', adaptive attention's
 * sentinel). */
void attention_step_backward(float *d_h, float *d_z, float *d_projection, AttentionParams *grads,
                             const float *d_context, const float *d_alpha, const float *d_lse,
                             const float *alpha, const float *cache, const float *h, const float *z,
                             const AttentionParams *params, const AttentionShape *shape, float *workspace);

/* The score of one more D-vector per row (vectors [batch, features]) with the
 * step's query and the cells' score function, e.g. adaptive attention's
 * visual sentinel (Lu et al. 2017): additive v . tanh(W_h h + W_z x + b),
 * dot (W_q h) . x / sqrt(D), general h^T W x. cache is the step's (after
 * attention_step_forward); extra_cache keeps attention_extra_cache_floats
 * for the backward. */
size_t attention_extra_cache_floats(const AttentionShape *shape);
void attention_extra_score_forward(float *scores, float *extra_cache, const float *vectors, const float *cache,
                                   const AttentionParams *params, const AttentionShape *shape);
/* Accumulates into d_h, d_vectors and grads from d_scores [batch];
 * workspace: 2 * batch * max(attention, features) floats. */
void attention_extra_score_backward(float *d_h, float *d_vectors, AttentionParams *grads, const float *d_scores,
                                    const float *extra_cache, const float *vectors, const float *cache,
                                    const float *h, const AttentionParams *params, const AttentionShape *shape,
                                    float *workspace);

/* The doubly stochastic penalty, lambda * sum_i gap_i^2 with coverage_i a
 * cell's map mass summed over a caption's words: Xu et al.'s gap 1 - coverage
 * (every cell looked at once in all), or with excess_only the mass beyond 1
 * alone (no cell looked at more than once; cells left alone cost nothing, so
 * the maps are not pushed onto the background). */
static inline float attention_coverage_gap(float coverage, int excess_only) {
    float gap = 1.0f - coverage;
    return excess_only && gap > 0.0f ? 0.0f : gap;
}

/* sum_i gap(coverage_i)^2 over n cells: the penalty before lambda and the mean. */
static inline double attention_coverage_cost(const float *coverage, long n, int excess_only) {
    double sum = 0.0;
    for (long i = 0; i < n; i++) {
        double gap = attention_coverage_gap(coverage[i], excess_only);
        sum += gap * gap;
    }
    return sum;
}

#endif
