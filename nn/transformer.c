#include "transformer.h"


#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "activation.h"
#include "attention.h"
#include "cross_entropy.h"
#include "decoder.h"
#include "dropout.h"
#include "embedding.h"
#include "layernorm.h"
#include "linear.h"
#include "model.h"
#include "multihead_attention.h"
#include "positional.h"
#include "replica.h"
#include "softmax.h"

static const float LN_EPS = 1e-5f;

/* What one layer keeps for its backward; n = the tokens it runs on. An
 * encoder layer leaves the cross-attention and norm3 parts unused. */
typedef struct {
    float *x_in, *ln1, *mean1, *rstd1, *qkv, *probs1, *att1, *mask1, *x1;
    float *ln2, *mean2, *rstd2, *q, *kv, *probs2, *att2, *mask2, *x2;
    float *ln3, *mean3, *rstd3, *f1, *act, *dropped, *mask_act, *mask3;
} LayerActs;

struct TransformerBuffers {
    TransformerShape shape;
    int images, rows, steps;
    float *arena;
    /* encoder: m0 = projected grid + positions; memory = its final norm */
    LayerActs encoder[TRANSFORMER_MAX_LAYERS];
    float *m0, *encoder_out, *memory, *memory_mean, *memory_rstd;
    /* decoder */
    int *inputs, *targets;
    float *token_weights;
    LayerActs decoder[TRANSFORMER_MAX_LAYERS];
    float *x0, *decoder_out, *y, *y_mean, *y_rstd, *logits, *probs;
    float *coverage; /* [rows, L]: each cell's map mass summed over a caption's words (the penalty) */
    /* gradients flowing back, and scratch */
    float *d_stream, *d_branch, *d_att, *d_qkv, *d_ln, *d_ff, *d_ff2, *d_memory, *d_kv, *d_logits, *mha_workspace;
    float *d_cross_probs; /* the penalty's gradient on the last layer's cross-attention */
};

/* ---- buffers ---- */

typedef struct {
    float *base;
    size_t used;
    int counting;
} Arena;

static float *take(Arena *a, size_t count) {
    float *at = a->counting ? NULL : a->base + a->used;
    a->used += (count + 15) & ~(size_t)15; /* 64-byte steps */
    return at;
}

/* n tokens in groups of `group` (a grid of L cells, or a caption of T steps);
 * kv_tokens the memory's tokens for the cross attention (0 = none). */
static void layer_acts(Arena *a, LayerActs *l, const TransformerShape *s, size_t n, size_t group, size_t kv_tokens) {
    size_t C = (size_t)s->dim, F = (size_t)s->ff, heads = (size_t)s->heads;
    l->x_in = take(a, n * C), l->ln1 = take(a, n * C), l->mean1 = take(a, n), l->rstd1 = take(a, n);
    l->qkv = take(a, n * 3 * C), l->probs1 = take(a, n * heads * group), l->att1 = take(a, n * C);
    l->mask1 = take(a, n * C), l->x1 = take(a, n * C);
    if (kv_tokens) {
        l->ln2 = take(a, n * C), l->mean2 = take(a, n), l->rstd2 = take(a, n), l->q = take(a, n * C);
        l->kv = take(a, kv_tokens * 2 * C), l->att2 = take(a, n * C), l->mask2 = take(a, n * C), l->x2 = take(a, n * C);
        l->ln3 = take(a, n * C), l->mean3 = take(a, n), l->rstd3 = take(a, n);
    } else {
        l->ln2 = take(a, n * C), l->mean2 = take(a, n), l->rstd2 = take(a, n);
    }
    l->f1 = take(a, n * F), l->act = take(a, n * F), l->dropped = take(a, n * F), l->mask_act = take(a, n * F);
    l->mask3 = take(a, n * C);
}

static void plan(Arena *a, TransformerBuffers *b) {
    const TransformerShape *s = &b->shape;
    size_t C = (size_t)s->dim, V = (size_t)s->vocab, L = (size_t)s->grid_h * s->grid_w;
    size_t grid_tokens = (size_t)b->images * L, words = (size_t)b->rows * b->steps;
    for (int l = 0; l < s->encoder_layers; l++) layer_acts(a, &b->encoder[l], s, grid_tokens, L, 0);
    b->m0 = take(a, grid_tokens * C), b->encoder_out = take(a, grid_tokens * C), b->memory = take(a, grid_tokens * C);
    b->memory_mean = take(a, grid_tokens), b->memory_rstd = take(a, grid_tokens);
    for (int l = 0; l < s->decoder_layers; l++) {
        layer_acts(a, &b->decoder[l], s, words, (size_t)b->steps, grid_tokens);
        /* The cross attention's probabilities are [rows, heads, steps, L], wider than the self attention's. */
        b->decoder[l].probs2 = take(a, words * (size_t)s->heads * L);
    }
    b->token_weights = take(a, words);
    b->x0 = take(a, words * C), b->decoder_out = take(a, words * C), b->y = take(a, words * C);
    b->y_mean = take(a, words), b->y_rstd = take(a, words);
    b->logits = take(a, words * V), b->probs = take(a, words * V);
    size_t tokens = words > grid_tokens ? words : grid_tokens, widest = (size_t)s->ff > 3 * C ? (size_t)s->ff : 3 * C;
    b->d_stream = take(a, tokens * C), b->d_branch = take(a, tokens * C), b->d_att = take(a, tokens * C);
    b->d_qkv = take(a, tokens * widest), b->d_ln = take(a, tokens * C), b->d_ff = take(a, tokens * (size_t)s->ff);
    b->d_ff2 = take(a, tokens * (size_t)s->ff);
    b->d_memory = take(a, grid_tokens * C), b->d_kv = take(a, grid_tokens * 2 * C), b->d_logits = take(a, words * V);
    size_t longest = (size_t)b->steps > L ? (size_t)b->steps : L;
    b->mha_workspace = take(a, longest * longest);
    if (s->doubly_stochastic > 0.0f && s->decoder_layers > 0) {
        b->coverage = take(a, (size_t)b->rows * L);
        b->d_cross_probs = take(a, words * (size_t)s->heads * L);
    }
}

int transformer_buffers_create(TransformerBuffers **out, const TransformerShape *s, int images, int rows, int steps,
                               Error *err) {
    *out = NULL;
    if (s->dim % s->heads != 0)
        return error_set(err, "transformer: width %d does not split into %d heads", s->dim, s->heads);
    /* No decoder layers: the grid encoder alone (an LSTM's, transformer_encode). */
    if (s->encoder_layers < 0 || s->encoder_layers > TRANSFORMER_MAX_LAYERS || s->decoder_layers < 0 ||
        s->decoder_layers > TRANSFORMER_MAX_LAYERS || (s->decoder_layers == 0 && s->encoder_layers == 0))
        return error_set(err, "transformer: %d encoder and %d decoder layers; use 0..%d and 1..%d", s->encoder_layers,
                         s->decoder_layers, TRANSFORMER_MAX_LAYERS, TRANSFORMER_MAX_LAYERS);
    TransformerBuffers *b = calloc(1, sizeof *b);
    if (!b) return error_set(err, "out of memory");
    b->shape = *s, b->images = images, b->rows = rows, b->steps = steps;
    Arena count = {.counting = 1};
    plan(&count, b);
    b->arena = malloc(count.used * sizeof(float));
    b->inputs = malloc((size_t)rows * steps * sizeof(int));
    b->targets = malloc((size_t)rows * steps * sizeof(int));
    if (!b->arena || !b->inputs || !b->targets) {
        transformer_buffers_free(b);
        return error_set(err, "out of memory for the transformer's activations (%zu MB)",
                         count.used * sizeof(float) >> 20);
    }
    Arena fill = {.base = b->arena};
    plan(&fill, b);
    *out = b;
    return 0;
}

void transformer_buffers_free(TransformerBuffers *b) {
    if (!b) return;
    free(b->arena);
    free(b->inputs);
    free(b->targets);
    free(b);
}

const float *transformer_logits(const TransformerBuffers *b) { return b->logits; }
const float *transformer_self_attention(const TransformerBuffers *b, int layer) { return b->decoder[layer].probs1; }
const float *transformer_cross_attention(const TransformerBuffers *b, int layer) { return b->decoder[layer].probs2; }

/* ---- sublayers ---- */

static void accumulate(float *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] += in[i];
}

/* x1 = x_in + dropout(SelfAttention(LN1(x_in))): `groups` sequences of `length` tokens. */
static void self_block_forward(const TransformerShape *s, const TransformerLayer *p, LayerActs *a, int groups,
                               int length, int causal, float dropout, Rng *rng) {
    int n = groups * length, C = s->dim;
    layernorm_forward(a->ln1, a->mean1, a->rstd1, a->x_in, p->norm1_weight, p->norm1_bias, n, C, LN_EPS);
    linear_forward(a->qkv, a->ln1, p->self_in_weight, p->self_in_bias, n, C, 3 * C);
    MhaShape ms = {.batch = groups, .queries = length, .keys = length, .channels = C, .heads = s->heads,
                   .causal = causal, .q_stride = 3 * C, .kv_stride = 3 * C};
    mha_forward(a->att1, a->probs1, a->qkv, a->qkv + C, a->qkv + 2 * C, NULL, &ms);
    linear_forward(a->x1, a->att1, p->self_out_weight, p->self_out_bias, n, C, C);
    dropout_forward(a->x1, a->mask1, a->x1, (long)n * C, dropout, rng);
    accumulate(a->x1, a->x_in, (size_t)n * C);
}

/* Given d_x1 (in b->d_stream), leaves d_x_in there. */
static void self_block_backward(const TransformerShape *s, const TransformerLayer *p, const TransformerLayer *g,
                                const LayerActs *a, TransformerBuffers *b, int groups, int length, int causal) {
    int n = groups * length, C = s->dim;
    size_t nc = (size_t)n * C;
    memset(b->d_branch, 0, nc * sizeof(float));
    dropout_backward(b->d_branch, b->d_stream, a->mask1, (long)nc);
    memset(b->d_att, 0, nc * sizeof(float));
    linear_backward(b->d_att, g->self_out_weight, g->self_out_bias, b->d_branch, a->att1, p->self_out_weight, n, C, C);
    memset(b->d_qkv, 0, nc * 3 * sizeof(float));
    MhaShape ms = {.batch = groups, .queries = length, .keys = length, .channels = C, .heads = s->heads,
                   .causal = causal, .q_stride = 3 * C, .kv_stride = 3 * C};
    mha_backward(b->d_qkv, b->d_qkv + C, b->d_qkv + 2 * C, b->d_att, NULL, a->probs1, a->qkv, a->qkv + C,
                 a->qkv + 2 * C, &ms, b->mha_workspace);
    memset(b->d_ln, 0, nc * sizeof(float));
    linear_backward(b->d_ln, g->self_in_weight, g->self_in_bias, b->d_qkv, a->ln1, p->self_in_weight, n, C, 3 * C);
    layernorm_backward(b->d_stream, g->norm1_weight, g->norm1_bias, b->d_ln, a->x_in, a->mean1, a->rstd1,
                       p->norm1_weight, n, C);
}

/* x2 = x1 + dropout(CrossAttention(LN2(x1), memory)); the keys and values of
 * every image's memory are projected once. */
static void cross_block_forward(const TransformerShape *s, const TransformerLayer *p, LayerActs *a,
                                const float *memory, int images, const int *row_image, int rows, int steps,
                                float dropout, Rng *rng) {
    int n = rows * steps, C = s->dim, L = s->grid_h * s->grid_w;
    layernorm_forward(a->ln2, a->mean2, a->rstd2, a->x1, p->norm2_weight, p->norm2_bias, n, C, LN_EPS);
    linear_forward(a->q, a->ln2, p->cross_in_weight, p->cross_in_bias, n, C, C);
    linear_forward(a->kv, memory, p->cross_in_weight + (size_t)C * C, p->cross_in_bias + C, images * L, C, 2 * C);
    MhaShape ms = {.batch = rows, .queries = steps, .keys = L, .channels = C, .heads = s->heads, .q_stride = C,
                   .kv_stride = 2 * C, .kv_items = row_image};
    mha_forward(a->att2, a->probs2, a->q, a->kv, a->kv + C, NULL, &ms);
    linear_forward(a->x2, a->att2, p->cross_out_weight, p->cross_out_bias, n, C, C);
    dropout_forward(a->x2, a->mask2, a->x2, (long)n * C, dropout, rng);
    accumulate(a->x2, a->x1, (size_t)n * C);
}

/* Given d_x2 in b->d_stream (and the loss's gradient on the probabilities,
 * NULL = none): leaves d_x1 there and adds the memory's gradient to b->d_memory. */
static void cross_block_backward(const TransformerShape *s, const TransformerLayer *p, const TransformerLayer *g,
                                 const LayerActs *a, TransformerBuffers *b, const float *d_probs,
                                 const float *memory, int images, const int *row_image, int rows, int steps) {
    int n = rows * steps, C = s->dim, L = s->grid_h * s->grid_w;
    size_t nc = (size_t)n * C;
    memset(b->d_branch, 0, nc * sizeof(float));
    dropout_backward(b->d_branch, b->d_stream, a->mask2, (long)nc);
    memset(b->d_att, 0, nc * sizeof(float));
    linear_backward(b->d_att, g->cross_out_weight, g->cross_out_bias, b->d_branch, a->att2, p->cross_out_weight, n, C,
                    C);
    memset(b->d_qkv, 0, nc * sizeof(float));
    memset(b->d_kv, 0, (size_t)images * L * 2 * C * sizeof(float));
    MhaShape ms = {.batch = rows, .queries = steps, .keys = L, .channels = C, .heads = s->heads, .q_stride = C,
                   .kv_stride = 2 * C, .kv_items = row_image};
    mha_backward(b->d_qkv, b->d_kv, b->d_kv + C, b->d_att, d_probs, a->probs2, a->q, a->kv, a->kv + C, &ms,
                 b->mha_workspace);
    linear_backward(b->d_memory, g->cross_in_weight + (size_t)C * C, g->cross_in_bias + C, b->d_kv, memory,
                    p->cross_in_weight + (size_t)C * C, images * L, C, 2 * C);
    memset(b->d_ln, 0, nc * sizeof(float));
    linear_backward(b->d_ln, g->cross_in_weight, g->cross_in_bias, b->d_qkv, a->ln2, p->cross_in_weight, n, C, C);
    layernorm_backward(b->d_stream, g->norm2_weight, g->norm2_bias, b->d_ln, a->x1, a->mean2, a->rstd2,
                       p->norm2_weight, n, C);
}

/* out = in + dropout(W2 dropout(act(W1 LN(in) + b1)) + b2), with the norm
 * of the layer's last sublayer (norm2 in an encoder layer, norm3 in a
 * decoder layer). */
static void ff_block_forward(const TransformerShape *s, const TransformerLayer *p, LayerActs *a, const float *in,
                             float *out, int n, int decoder, float dropout, Rng *rng) {
    int C = s->dim, F = s->ff;
    float *ln = decoder ? a->ln3 : a->ln2, *mean = decoder ? a->mean3 : a->mean2, *rstd = decoder ? a->rstd3 : a->rstd2;
    const float *w = decoder ? p->norm3_weight : p->norm2_weight, *bias = decoder ? p->norm3_bias : p->norm2_bias;
    layernorm_forward(ln, mean, rstd, in, w, bias, n, C, LN_EPS);
    linear_forward(a->f1, ln, p->ff1_weight, p->ff1_bias, n, C, F);
    if (s->gelu) gelu_forward(a->act, a->f1, (long)n * F);
    else relu_forward(a->act, a->f1, (long)n * F);
    dropout_forward(a->dropped, a->mask_act, a->act, (long)n * F, dropout, rng);
    linear_forward(out, a->dropped, p->ff2_weight, p->ff2_bias, n, F, C);
    dropout_forward(out, a->mask3, out, (long)n * C, dropout, rng);
    accumulate(out, in, (size_t)n * C);
}

/* Given d_out in b->d_stream: leaves d_in there. */
static void ff_block_backward(const TransformerShape *s, const TransformerLayer *p, const TransformerLayer *g,
                              const LayerActs *a, TransformerBuffers *b, const float *in, int n, int decoder) {
    int C = s->dim, F = s->ff;
    size_t nc = (size_t)n * C, nf = (size_t)n * F;
    const float *ln = decoder ? a->ln3 : a->ln2, *mean = decoder ? a->mean3 : a->mean2;
    const float *rstd = decoder ? a->rstd3 : a->rstd2, *w = decoder ? p->norm3_weight : p->norm2_weight;
    float *gw = decoder ? g->norm3_weight : g->norm2_weight, *gb = decoder ? g->norm3_bias : g->norm2_bias;
    memset(b->d_branch, 0, nc * sizeof(float));
    dropout_backward(b->d_branch, b->d_stream, a->mask3, (long)nc);
    memset(b->d_ff, 0, nf * sizeof(float));
    linear_backward(b->d_ff, g->ff2_weight, g->ff2_bias, b->d_branch, a->dropped, p->ff2_weight, n, F, C);
    memset(b->d_ff2, 0, nf * sizeof(float));
    dropout_backward(b->d_ff2, b->d_ff, a->mask_act, (long)nf);
    memset(b->d_ff, 0, nf * sizeof(float));
    if (s->gelu) gelu_backward(b->d_ff, b->d_ff2, a->f1, (long)nf);
    else relu_backward(b->d_ff, b->d_ff2, a->act, (long)nf);
    memset(b->d_ln, 0, nc * sizeof(float));
    linear_backward(b->d_ln, g->ff1_weight, g->ff1_bias, b->d_ff, ln, p->ff1_weight, n, C, F);
    layernorm_backward(b->d_stream, gw, gb, b->d_ln, in, mean, rstd, w, n, C);
}

/* ---- the grid encoder ---- */

static const float *encode_grid(const TransformerShape *s, const TransformerParams *p, TransformerBuffers *b,
                                const float *z_images, int images, float dropout, Rng *rng) {
    int C = s->dim, L = s->grid_h * s->grid_w, n = images * L;
    linear_forward(b->m0, z_images, p->grid_weight, p->grid_bias, n, s->features, C);
    grid_position_forward(b->m0, p->grid_rows, p->grid_columns, images, s->grid_h, s->grid_w, C);
    if (s->encoder_layers == 0) return b->m0;
    const float *x = b->m0;
    for (int l = 0; l < s->encoder_layers; l++) {
        LayerActs *a = &b->encoder[l];
        float *out = l + 1 < s->encoder_layers ? b->encoder[l + 1].x_in : b->encoder_out;
        memcpy(a->x_in, x, (size_t)n * C * sizeof(float));
        self_block_forward(s, &p->encoder[l], a, images, L, 0, dropout, rng);
        ff_block_forward(s, &p->encoder[l], a, a->x1, out, n, 0, dropout, rng);
        x = out;
    }
    layernorm_forward(b->memory, b->memory_mean, b->memory_rstd, b->encoder_out, p->encoder_norm_weight,
                      p->encoder_norm_bias, n, C, LN_EPS);
    return b->memory;
}

/* d_memory (in b->d_memory) back to d_z_images. */
static void encode_grid_backward(const TransformerShape *s, const TransformerParams *p, const TransformerParams *g,
                                 TransformerBuffers *b, const float *z_images, float *d_z_images, int images) {
    int C = s->dim, L = s->grid_h * s->grid_w, n = images * L;
    size_t nc = (size_t)n * C;
    if (s->encoder_layers > 0) {
        memset(b->d_stream, 0, nc * sizeof(float));
        layernorm_backward(b->d_stream, g->encoder_norm_weight, g->encoder_norm_bias, b->d_memory, b->encoder_out,
                           b->memory_mean, b->memory_rstd, p->encoder_norm_weight, n, C);
        for (int l = s->encoder_layers - 1; l >= 0; l--) {
            const LayerActs *a = &b->encoder[l];
            ff_block_backward(s, &p->encoder[l], &g->encoder[l], a, b, a->x1, n, 0);
            self_block_backward(s, &p->encoder[l], &g->encoder[l], a, b, images, L, 0);
        }
    } else {
        memcpy(b->d_stream, b->d_memory, nc * sizeof(float));
    }
    grid_position_backward(g->grid_rows, g->grid_columns, b->d_stream, images, s->grid_h, s->grid_w, C);
    linear_backward(d_z_images, g->grid_weight, g->grid_bias, b->d_stream, z_images, p->grid_weight, n, s->features,
                    C);
}

const float *transformer_encode(const TransformerShape *s, const TransformerParams *p, TransformerBuffers *b,
                               const float *z_images, int images, Rng *rng) {
    return encode_grid(s, p, b, z_images, images, rng ? s->dropout : 0.0f, rng);
}

void transformer_encode_backward(const TransformerShape *s, const TransformerParams *p, const TransformerParams *g,
                                 TransformerBuffers *b, const float *z_images, const float *d_memory,
                                 float *d_z_images, int images) {
    memcpy(b->d_memory, d_memory, (size_t)images * s->grid_h * s->grid_w * s->dim * sizeof(float));
    encode_grid_backward(s, p, g, b, z_images, d_z_images, images);
}

/* ---- the whole pass ---- */

/* x [rows, count, C] = sqrt(C) E tokens + PE(positions first .. first + count - 1). */
static void embed_words(float *x, const int *tokens, const float *embedding, int rows, int first, int count, int C) {
    size_t n = (size_t)rows * count * C;
    embedding_forward(x, tokens, embedding, rows * count, C);
    float scale = sqrtf((float)C);
    for (size_t i = 0; i < n; i++) x[i] *= scale;
    sinusoid_position_add(x, rows, first, count, C, C);
}

static void split_captions(TransformerBuffers *b, const DecoderBatch *batch) {
    int T = batch->steps;
    for (int r = 0; r < batch->rows; r++)
        for (int t = 0; t < T; t++) {
            b->inputs[r * T + t] = batch->captions[r * (T + 1) + t];
            b->targets[r * T + t] = batch->captions[r * (T + 1) + t + 1];
            b->token_weights[r * T + t] = batch->row_weight ? batch->row_weight[r] : 1.0f;
        }
}

/* Xu et al.'s doubly stochastic penalty on the map users see, the last
 * layer's head-averaged cross-attention:
 *   lambda * mean_r sum_i gap(sum_{t: target not padding} alpha_rti)^2
 * (attention_coverage_gap); coverage keeps the sums for the backward. */
static float coverage_penalty(const TransformerShape *s, TransformerBuffers *b, int R, int T) {
    if (!b->coverage) return 0.0f;
    int L = s->grid_h * s->grid_w, H = s->heads;
    const float *probs = b->decoder[s->decoder_layers - 1].probs2;
    memset(b->coverage, 0, (size_t)R * L * sizeof(float));
    for (int r = 0; r < R; r++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                if (b->targets[r * T + t] == TOKEN_PAD) continue;
                const float *alpha = probs + (((size_t)r * H + h) * T + t) * L;
                for (int i = 0; i < L; i++) b->coverage[(size_t)r * L + i] += alpha[i] / (float)H;
            }
    double sum = attention_coverage_cost(b->coverage, (long)R * L, s->penalty_excess_only);
    return (float)(s->doubly_stochastic * sum / R);
}

/* The penalty's gradient on each head's probabilities (NULL without it);
 * total_rows: the rows of the whole batch, over every replica. */
static const float *coverage_gradient(const TransformerShape *s, TransformerBuffers *b, int R, int T,
                                      int total_rows) {
    if (!b->coverage) return NULL;
    int L = s->grid_h * s->grid_w, H = s->heads;
    float scale = -2.0f * s->doubly_stochastic / ((float)total_rows * H);
    for (int r = 0; r < R; r++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                float *d = b->d_cross_probs + (((size_t)r * H + h) * T + t) * L;
                int valid = b->targets[r * T + t] != TOKEN_PAD;
                for (int i = 0; i < L; i++)
                    d[i] = valid ? scale * attention_coverage_gap(b->coverage[(size_t)r * L + i], s->penalty_excess_only)
                                 : 0.0f;
            }
    return b->d_cross_probs;
}

SatLoss transformer_forward_train(const TransformerShape *s, const TransformerParams *p, TransformerBuffers *b,
                                  const float *z_images, int images, const DecoderBatch *batch, Rng *rng) {
    int R = batch->rows, T = batch->steps, C = s->dim, n = R * T;
    float dropout = batch->training ? s->dropout : 0.0f;
    split_captions(b, batch);
    const float *memory = encode_grid(s, p, b, z_images, images, dropout, rng);
    embed_words(b->x0, b->inputs, p->embedding, R, 0, T, C);
    const float *x = b->x0;
    for (int l = 0; l < s->decoder_layers; l++) {
        LayerActs *a = &b->decoder[l];
        float *out = l + 1 < s->decoder_layers ? b->decoder[l + 1].x_in : b->decoder_out;
        memcpy(a->x_in, x, (size_t)n * C * sizeof(float));
        self_block_forward(s, &p->decoder[l], a, R, T, 1, dropout, rng);
        cross_block_forward(s, &p->decoder[l], a, memory, images, batch->row_image, R, T, dropout, rng);
        ff_block_forward(s, &p->decoder[l], a, a->x2, out, n, 1, dropout, rng);
        x = out;
    }
    layernorm_forward(b->y, b->y_mean, b->y_rstd, b->decoder_out, p->decoder_norm_weight, p->decoder_norm_bias, n, C,
                      LN_EPS);
    linear_forward(b->logits, b->y, s->tied ? p->embedding : p->out_weight, p->out_bias, n, C, s->vocab);
    SatLoss loss = {0};
    loss.cross_entropy = cross_entropy_forward(b->probs, b->logits, b->targets, b->token_weights, n, s->vocab,
                                               TOKEN_PAD, batch->label_smoothing, &loss.tokens);
    loss.penalty = coverage_penalty(s, b, R, T);
    loss.loss = loss.cross_entropy + loss.penalty;
    return loss;
}

void transformer_backward(const TransformerShape *s, const TransformerParams *p, const TransformerParams *g,
                          TransformerBuffers *b, const float *z_images, float *d_z_images, const DecoderBatch *batch) {
    int R = batch->rows, T = batch->steps, C = s->dim, n = R * T, images = 0;
    for (int r = 0; r < R; r++) images = batch->row_image[r] + 1 > images ? batch->row_image[r] + 1 : images;
    size_t nc = (size_t)n * C;
    memset(b->d_logits, 0, (size_t)n * s->vocab * sizeof(float));
    cross_entropy_backward(b->d_logits, b->probs, b->targets, b->token_weights, n, s->vocab, TOKEN_PAD,
                           batch->label_smoothing,
                           replica_share(cross_entropy_count_valid(b->targets, n, TOKEN_PAD), batch->total_tokens));
    memset(b->d_ln, 0, nc * sizeof(float));
    linear_backward(b->d_ln, s->tied ? g->embedding : g->out_weight, g->out_bias, b->d_logits, b->y,
                    s->tied ? p->embedding : p->out_weight, n, C, s->vocab);
    memset(b->d_stream, 0, nc * sizeof(float));
    layernorm_backward(b->d_stream, g->decoder_norm_weight, g->decoder_norm_bias, b->d_ln, b->decoder_out, b->y_mean,
                       b->y_rstd, p->decoder_norm_weight, n, C);
    const float *memory = s->encoder_layers > 0 ? b->memory : b->m0;
    memset(b->d_memory, 0, (size_t)images * s->grid_h * s->grid_w * C * sizeof(float));
    const float *d_last_probs = coverage_gradient(s, b, R, T, batch->total_rows > 0 ? batch->total_rows : R);
    for (int l = s->decoder_layers - 1; l >= 0; l--) {
        const LayerActs *a = &b->decoder[l];
        const float *d_probs = l == s->decoder_layers - 1 ? d_last_probs : NULL;
        ff_block_backward(s, &p->decoder[l], &g->decoder[l], a, b, a->x2, n, 1);
        cross_block_backward(s, &p->decoder[l], &g->decoder[l], a, b, d_probs, memory, images, batch->row_image, R,
                             T);
        self_block_backward(s, &p->decoder[l], &g->decoder[l], a, b, R, T, 1);
    }
    float scale = sqrtf((float)C);
    for (size_t i = 0; i < nc; i++) b->d_stream[i] *= scale;
    embedding_backward(g->embedding, b->d_stream, b->inputs, n, C);
    encode_grid_backward(s, p, g, b, z_images, d_z_images, images);
}

/* ---- inference with a key/value cache ---- */

struct TransformerCache {
    TransformerShape shape;
    int rows, max_steps, images;
    TransformerBuffers *grid; /* the grid encoder's activations */
    float *memory;            /* [images, L, C] */
    float *cross_kv[TRANSFORMER_MAX_LAYERS];          /* [images, L, 2C] */
    float *self_k[TRANSFORMER_MAX_LAYERS], *self_v[TRANSFORMER_MAX_LAYERS];   /* [rows, max_steps, C] */
    float *spare_k[TRANSFORMER_MAX_LAYERS], *spare_v[TRANSFORMER_MAX_LAYERS]; /* the same, for reordering */
    float *self_probs[TRANSFORMER_MAX_LAYERS];        /* [rows, heads, max_steps] */
    float *cross_probs[TRANSFORMER_MAX_LAYERS];       /* [rows, heads, L] */
    float *x, *ln, *qkv, *att, *branch, *q, *ff, *act, *mean, *rstd;
    int *image_of_row; /* which image each row reads (all 0 for one image) */
    int *sampled_prev; /* transformer_sample's previous token of each row */
    float *arena;
};

static void cache_plan(Arena *a, TransformerCache *c) {
    const TransformerShape *s = &c->shape;
    size_t C = (size_t)s->dim, L = (size_t)s->grid_h * s->grid_w, R = (size_t)c->rows, T = (size_t)c->max_steps;
    size_t H = (size_t)s->heads, images = (size_t)c->images;
    c->memory = take(a, images * L * C);
    for (int l = 0; l < s->decoder_layers; l++) {
        c->cross_kv[l] = take(a, images * L * 2 * C);
        c->self_k[l] = take(a, R * T * C), c->self_v[l] = take(a, R * T * C);
        c->spare_k[l] = take(a, R * T * C), c->spare_v[l] = take(a, R * T * C);
        c->self_probs[l] = take(a, R * H * T), c->cross_probs[l] = take(a, R * H * L);
    }
    c->x = take(a, R * C), c->ln = take(a, R * C), c->qkv = take(a, R * 3 * C), c->att = take(a, R * C);
    c->branch = take(a, R * C), c->q = take(a, R * C), c->ff = take(a, R * (size_t)s->ff);
    c->act = take(a, R * (size_t)s->ff), c->mean = take(a, R), c->rstd = take(a, R);
}

int transformer_cache_create(TransformerCache **out, const TransformerShape *s, int rows, int max_steps, int images,
                             Error *err) {
    *out = NULL;
    TransformerCache *c = calloc(1, sizeof *c);
    if (!c) return error_set(err, "out of memory");
    c->shape = *s, c->rows = rows, c->max_steps = max_steps, c->images = images;
    c->shape.dropout = 0.0f;
    Arena count = {.counting = 1};
    cache_plan(&count, c);
    c->arena = malloc(count.used * sizeof(float));
    c->image_of_row = calloc((size_t)rows, sizeof(int));
    c->sampled_prev = calloc((size_t)rows, sizeof(int));
    int status = c->arena && c->image_of_row && c->sampled_prev
                     ? transformer_buffers_create(&c->grid, &c->shape, images, 1, 1, err)
                     : error_set(err, "out of memory for the transformer's cache");
    if (status != 0) {
        transformer_cache_free(c);
        return -1;
    }
    Arena fill = {.base = c->arena};
    cache_plan(&fill, c);
    *out = c;
    return 0;
}

void transformer_cache_free(TransformerCache *c) {
    if (!c) return;
    transformer_buffers_free(c->grid);
    free(c->arena);
    free(c->image_of_row);
    free(c->sampled_prev);
    free(c);
}

void transformer_cache_encode(TransformerCache *c, const TransformerParams *p, const float *z, int images,
                              const int *row_image, int rows) {
    const TransformerShape *s = &c->shape;
    int C = s->dim, L = s->grid_h * s->grid_w;
    const float *memory = encode_grid(s, p, c->grid, z, images, 0.0f, NULL);
    memcpy(c->memory, memory, (size_t)images * L * C * sizeof(float));
    for (int l = 0; l < s->decoder_layers; l++)
        linear_forward(c->cross_kv[l], c->memory, p->decoder[l].cross_in_weight + (size_t)C * C,
                       p->decoder[l].cross_in_bias + C, images * L, C, 2 * C);
    for (int r = 0; r < c->rows; r++) c->image_of_row[r] = row_image && r < rows ? row_image[r] : 0;
}

/* One decoder layer at position t for every row; x in c->x is updated. */
static void cache_layer(TransformerCache *c, const TransformerLayer *p, int l, int rows, int t) {
    const TransformerShape *s = &c->shape;
    int C = s->dim, L = s->grid_h * s->grid_w, T = c->max_steps;
    layernorm_forward(c->ln, c->mean, c->rstd, c->x, p->norm1_weight, p->norm1_bias, rows, C, LN_EPS);
    linear_forward(c->qkv, c->ln, p->self_in_weight, p->self_in_bias, rows, C, 3 * C);
    for (int r = 0; r < rows; r++) {
        float *k = c->self_k[l] + ((size_t)r * T + t) * C, *v = c->self_v[l] + ((size_t)r * T + t) * C;
        memcpy(k, c->qkv + (size_t)r * 3 * C + C, (size_t)C * sizeof(float));
        memcpy(v, c->qkv + (size_t)r * 3 * C + 2 * C, (size_t)C * sizeof(float));
        MhaShape one = {.batch = 1, .queries = 1, .keys = t + 1, .channels = C, .heads = s->heads, .causal = 1,
                        .query_offset = t, .q_stride = 3 * C, .kv_stride = C};
        mha_forward(c->att + (size_t)r * C, c->self_probs[l] + (size_t)r * s->heads * T, c->qkv + (size_t)r * 3 * C,
                    c->self_k[l] + (size_t)r * T * C, c->self_v[l] + (size_t)r * T * C, NULL, &one);
    }
    linear_forward(c->branch, c->att, p->self_out_weight, p->self_out_bias, rows, C, C);
    accumulate(c->x, c->branch, (size_t)rows * C);
    layernorm_forward(c->ln, c->mean, c->rstd, c->x, p->norm2_weight, p->norm2_bias, rows, C, LN_EPS);
    linear_forward(c->q, c->ln, p->cross_in_weight, p->cross_in_bias, rows, C, C);
    MhaShape cross = {.batch = rows, .queries = 1, .keys = L, .channels = C, .heads = s->heads, .q_stride = C,
                      .kv_stride = 2 * C, .kv_items = c->image_of_row};
    mha_forward(c->att, c->cross_probs[l], c->q, c->cross_kv[l], c->cross_kv[l] + C, NULL, &cross);
    linear_forward(c->branch, c->att, p->cross_out_weight, p->cross_out_bias, rows, C, C);
    accumulate(c->x, c->branch, (size_t)rows * C);
    layernorm_forward(c->ln, c->mean, c->rstd, c->x, p->norm3_weight, p->norm3_bias, rows, C, LN_EPS);
    linear_forward(c->ff, c->ln, p->ff1_weight, p->ff1_bias, rows, C, s->ff);
    if (s->gelu) gelu_forward(c->act, c->ff, (long)rows * s->ff);
    else relu_forward(c->act, c->ff, (long)rows * s->ff);
    linear_forward(c->branch, c->act, p->ff2_weight, p->ff2_bias, rows, s->ff, C);
    accumulate(c->x, c->branch, (size_t)rows * C);
}

void transformer_cache_step(TransformerCache *c, const TransformerParams *p, const int *prev, int rows, int t,
                            float *log_probs, float *alpha) {
    const TransformerShape *s = &c->shape;
    int C = s->dim, L = s->grid_h * s->grid_w;
    embed_words(c->x, prev, p->embedding, rows, t, 1, C);
    for (int l = 0; l < s->decoder_layers; l++) cache_layer(c, &p->decoder[l], l, rows, t);
    layernorm_forward(c->ln, c->mean, c->rstd, c->x, p->decoder_norm_weight, p->decoder_norm_bias, rows, C, LN_EPS);
    linear_forward(log_probs, c->ln, s->tied ? p->embedding : p->out_weight, p->out_bias, rows, C, s->vocab);
    log_softmax_forward(log_probs, log_probs, rows, s->vocab);
    if (!alpha) return;
    const float *last = c->cross_probs[s->decoder_layers - 1];
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < L; i++) {
            float sum = 0.0f;
            for (int h = 0; h < s->heads; h++) sum += last[((size_t)r * s->heads + h) * L + i];
            alpha[(size_t)r * L + i] = sum / (float)s->heads;
        }
}

int transformer_sample(TransformerCache *c, const TransformerParams *p, const float *z_images, int images,
                       const int *row_image, int rows, int max_words, Rng *rng, int *captions, float *scratch) {
    int V = c->shape.vocab, columns = max_words + 2, running = rows, steps = 0;
    transformer_cache_encode(c, p, z_images, images, row_image, rows);
    int *prev = c->sampled_prev;
    for (int r = 0; r < rows; r++) {
        for (int k = 0; k < columns; k++) captions[r * columns + k] = TOKEN_PAD;
        captions[r * columns] = TOKEN_START;
    }
    for (int t = 0; t <= max_words && running > 0; t++) {
        for (int r = 0; r < rows; r++) prev[r] = captions[r * columns + t];
        transformer_cache_step(c, p, prev, rows, t, scratch, NULL);
        for (int r = 0; r < rows; r++) {
            int previous = captions[r * columns + t];
            if (t > 0 && (previous == TOKEN_END || previous == TOKEN_PAD)) continue;
            float *probs = scratch + (size_t)r * V;
            for (int v = 0; v < V; v++) probs[v] = expf(probs[v]);
            int word = t == max_words ? TOKEN_PAD : decoder_draw_word(probs, V, rng);
            if (word != TOKEN_PAD) captions[r * columns + t + 1] = word;
            if (word == TOKEN_END || word == TOKEN_PAD) running--;
            if (word != TOKEN_PAD && t + 1 > steps) steps = t + 1;
        }
    }
    return steps;
}

void transformer_cache_reorder(TransformerCache *c, const int *parents, int rows, int t) {
    size_t span = (size_t)(t + 1) * c->shape.dim, row = (size_t)c->max_steps * c->shape.dim;
    for (int l = 0; l < c->shape.decoder_layers; l++) {
        for (int r = 0; r < rows; r++) {
            memcpy(c->spare_k[l] + r * row, c->self_k[l] + (size_t)parents[r] * row, span * sizeof(float));
            memcpy(c->spare_v[l] + r * row, c->self_v[l] + (size_t)parents[r] * row, span * sizeof(float));
        }
        float *k = c->self_k[l], *v = c->self_v[l];
        c->self_k[l] = c->spare_k[l], c->self_v[l] = c->spare_v[l];
        c->spare_k[l] = k, c->spare_v[l] = v;
    }
}

const float *transformer_cache_cross_attention(const TransformerCache *c, int layer) { return c->cross_probs[layer]; }

const float *transformer_cache_self_attention(const TransformerCache *c, int layer, int row) {
    return c->self_probs[layer] + (size_t)row * c->shape.heads * c->max_steps;
}
