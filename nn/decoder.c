#include "decoder.h"


#include <stdlib.h>
#include <string.h>

#include "activation.h"
#include "cross_entropy.h"
#include "dropout.h"
#include "embedding.h"
#include "linear.h"
#include "lstm.h"
#include "replica.h"
#include "softmax.h"



static LstmShape lstm_shape(const SatModel *m, int rows) {
    return (LstmShape){.batch = rows, .input = m->config.embed_dim + m->features,
                       .hidden = m->config.hidden_dim};
}

/* Allocation list: every buffer with its size, so alloc and free cannot drift apart. */
#define DECODER_FLOAT_BUFFERS(X)                                                        \
    X(z, (size_t)R * L * D) X(projection, att_proj) X(z_mean, (size_t)R * D)           \
    X(h, (size_t)(T + 1) * R * H) X(c, (size_t)(T + 1) * R * H)                        \
    X(gates, (size_t)T * R * 4 * H) X(x, (size_t)T * R * (E + D))                      \
    X(input_mask, m->config.input_dropout > 0.0f ? (size_t)T * R * (E + D) : 0)         \
    X(d_x_dropped, m->config.input_dropout > 0.0f ? (size_t)R * (E + D) : 0)            \
    X(alpha, (size_t)T * R * L) X(context, (size_t)T * R * D) X(beta, (size_t)T * R)   \
    X(zhat, (size_t)T * R * D) X(attention_cache, (size_t)T * att_cache)               \
    X(coverage, (size_t)R * L) X(embedded, (size_t)T * R * E)                          \
    X(out_pre, (size_t)T * R * E) X(out_drop, (size_t)T * R * E)                       \
    X(dropout_mask, (size_t)T * R * E) X(logits, (size_t)T * R * V)                    \
    X(probs, (size_t)T * R * V) X(d_logits, (size_t)T * R * V)                         \
    X(d_out_drop, (size_t)T * R * E) X(d_out_pre, (size_t)T * R * E)                   \
    X(d_embedded, (size_t)T * R * E) X(d_h_all, (size_t)T * R * H)                     \
    X(d_zhat_all, (size_t)T * R * D) X(d_h, (size_t)R * H) X(d_c, (size_t)R * H)       \
    X(d_h_prev, (size_t)R * H) X(d_c_prev, (size_t)R * H) X(d_x, (size_t)R * (E + D))  \
    X(d_context, (size_t)R * D) X(d_alpha, (size_t)R * L) X(d_gate, (size_t)R)         \
    X(d_z, (size_t)R * L * D) X(d_projection, att_proj) X(d_z_mean, (size_t)R * D)     \
    X(lstm_workspace, (size_t)R * 4 * H) X(attention_workspace, att_work)             \
    X(target_weights, (size_t)T * R)                                                   \
    X(sentinel_cache, (size_t)T * sentinel_cache) X(sentinel_workspace, sentinel_work) X(d_lse, (size_t)R)

static float *alloc_floats(size_t count) { return malloc((count > 0 ? count : 1) * sizeof(float)); }

int decoder_buffers_alloc(DecoderBuffers *b, const SatModel *m, int R, int T, Error *err) {
    memset(b, 0, sizeof *b);
    if (m->config.transformer)
        return error_set(err, "the LSTM decoder's buffers cannot run a Transformer model (transformer.h has its own)");
    b->row_capacity = R;
    b->step_capacity = T;
    size_t L = m->cells, D = m->features, H = m->config.hidden_dim, E = m->config.embed_dim;
    size_t V = m->config.vocab_size;
    AttentionShape as = sat_attention_shape(m, R);
    size_t att_proj = m->config.use_attention ? attention_projection_floats(&as) : 0;
    size_t att_cache = m->config.use_attention ? attention_cache_floats(&as) : 0;
    size_t att_work = m->config.use_attention ? attention_workspace_floats(&as) : 0;
    b->attention_cache_stride = att_cache;
    SentinelShape ss = sat_sentinel_shape(m, R);
    size_t sentinel_cache = m->config.sentinel ? sentinel_cache_floats(&ss, &as) : 0;
    size_t sentinel_work = m->config.sentinel ? sentinel_workspace_floats(&ss, &as) : 0;
    b->sentinel_cache_stride = sentinel_cache;
    int failed = 0;
#define ALLOC(name, count) \
    b->name = alloc_floats(count); failed |= !b->name;
    DECODER_FLOAT_BUFFERS(ALLOC)
#undef ALLOC
    b->input_tokens = malloc((size_t)T * R * sizeof(int));
    b->targets = malloc((size_t)T * R * sizeof(int));
    b->active = malloc((size_t)T * sizeof(int));
    b->offset = malloc((size_t)(T + 1) * sizeof(long));
    if (failed || !b->input_tokens || !b->targets || !b->active || !b->offset) {
        decoder_buffers_free(b);
        return error_set(err, "out of memory for decoder buffers (%d captions x %d steps)", R, T);
    }
    return 0;
}

void decoder_buffers_free(DecoderBuffers *b) {
#define FREE(name, count) free(b->name);
    DECODER_FLOAT_BUFFERS(FREE)
#undef FREE
    free(b->input_tokens);
    free(b->targets);
    free(b->active);
    free(b->offset);
    memset(b, 0, sizeof *b);
}

static void zero(float *x, size_t n) { memset(x, 0, n * sizeof(float)); }

/* Copies each caption row's image features and takes their mean over cells. */
static void expand_images(const SatModel *m, DecoderBuffers *b, const float *z_images, const int *row_image, int rows) {
    size_t L = m->cells, D = m->features;
    for (int r = 0; r < rows; r++) {
        const float *src = z_images + (size_t)row_image[r] * L * D;
        memcpy(b->z + r * L * D, src, L * D * sizeof(float));
        float *mean = b->z_mean + r * D;
        zero(mean, D);
        for (size_t i = 0; i < L; i++)
            for (size_t d = 0; d < D; d++) mean[d] += src[i * D + d];
        for (size_t d = 0; d < D; d++) mean[d] /= (float)L;
    }
}

/* Packs the tokens step by step. At step t only the rows up to the last one
 * whose caption goes on take part (rows sorted longest first make that exactly
 * the captions still running): they are rows offset[t] .. offset[t] + active[t]
 * of every per-step buffer. */
static void split_tokens(DecoderBuffers *b, const DecoderBatch *batch) {
    int R = batch->rows, T = batch->steps;
    b->offset[0] = 0;
    for (int t = 0; t < T; t++) {
        int active = R;
        while (active > 0 && batch->captions[(active - 1) * (T + 1) + t + 1] == TOKEN_PAD) active--;
        b->active[t] = active;
        for (int r = 0; r < active; r++) {
            b->input_tokens[b->offset[t] + r] = batch->captions[r * (T + 1) + t];
            b->targets[b->offset[t] + r] = batch->captions[r * (T + 1) + t + 1];
            b->target_weights[b->offset[t] + r] = batch->row_weight ? batch->row_weight[r] : 1.0f;
        }
        b->offset[t + 1] = b->offset[t] + active;
    }
}

long decoder_packed_row(const DecoderBuffers *b, int step, int row) {
    if (step < 0 || step >= b->steps || row < 0 || row >= b->active[step]) return -1;
    return b->offset[step] + row;
}

/* The state rows step t starts from: the initial state, then step t-1's output. */
static size_t state_before(const DecoderBuffers *b, int t) { return t == 0 ? 0 : (size_t)(b->rows + b->offset[t - 1]); }
static size_t state_after(const DecoderBuffers *b, int t) { return (size_t)(b->rows + b->offset[t]); }

static void initial_state(const SatModel *m, DecoderBuffers *b, int R) {
    int D = m->features, H = m->config.hidden_dim;
    linear_forward(b->h, b->z_mean, m->p.init_h_weight, m->p.init_h_bias, R, D, H);
    tanh_forward(b->h, b->h, (long)R * H);
    linear_forward(b->c, b->z_mean, m->p.init_c_weight, m->p.init_c_bias, R, D, H);
    tanh_forward(b->c, b->c, (long)R * H);
}

/* zhat_t for step t: the gated attention context, or the mean feature. */
static void context_step(const SatModel *m, DecoderBuffers *b, int t) {
    int D = m->features, H = m->config.hidden_dim, L = m->cells, rows = b->active[t];
    size_t at = (size_t)b->offset[t];
    float *zhat = b->zhat + at * D;
    if (!m->config.use_attention) {
        memcpy(zhat, b->z_mean, (size_t)rows * D * sizeof(float));
        return;
    }
    const float *h_prev = b->h + state_before(b, t) * H;
    float *context = b->context + at * D, *beta = b->beta + at;
    float *attention_cache = b->attention_cache + t * b->attention_cache_stride;
    AttentionShape as = sat_attention_shape(m, rows);
    attention_step_forward(b->alpha + at * L, context, attention_cache, h_prev, b->z, b->projection,
                           &m->p.attention, &as);
    if (m->config.sentinel) {
        SentinelShape ss = sat_sentinel_shape(m, rows);
        sentinel_forward(zhat, beta, b->sentinel_cache + t * b->sentinel_cache_stride,
                         b->embedded + at * m->config.embed_dim, h_prev, b->c + state_before(b, t) * H, context,
                         attention_cache, &m->p.sentinel, &m->p.attention, &ss, &as);
        return;
    }
    linear_forward(beta, h_prev, m->p.gate_weight, m->p.gate_bias, rows, H, 1);
    sigmoid_forward(beta, beta, rows);
    for (int r = 0; r < rows; r++)
        for (int d = 0; d < D; d++) zhat[r * D + d] = beta[r] * context[r * D + d];
}

/* Input dropout (training only) is on the LSTM's input alone: the deep
 * output still reads the whole E y_{t-1} and zhat_t. */
static void lstm_step(const SatModel *m, DecoderBuffers *b, int t, int training, Rng *rng) {
    int D = m->features, H = m->config.hidden_dim, E = m->config.embed_dim, rows = b->active[t];
    size_t at = (size_t)b->offset[t];
    float *x = b->x + at * (E + D);
    for (int r = 0; r < rows; r++) {
        memcpy(x + r * (E + D), b->embedded + (at + r) * E, E * sizeof(float));
        memcpy(x + r * (E + D) + E, b->zhat + (at + r) * D, D * sizeof(float));
    }
    if (training && m->config.input_dropout > 0.0f)
        dropout_forward(x, b->input_mask + at * (E + D), x, (long)rows * (E + D), m->config.input_dropout, rng);
    LstmShape ls = lstm_shape(m, rows);
    size_t before = state_before(b, t) * H, after = state_after(b, t) * H;
    lstm_cell_forward(b->h + after, b->c + after, b->gates + at * 4 * H, x, b->h + before, b->c + before,
                      m->p.lstm_weight_ih, m->p.lstm_weight_hh, m->p.lstm_bias, &ls);
}

/* Deep output of packed rows first .. first + rows - 1. Training runs it for
 * all steps at once: it does not feed back into the recurrence, and the
 * packed rows of all steps are contiguous. Sampling runs it step by step. */
static void deep_output(const SatModel *m, DecoderBuffers *b, long first, long rows, int training, Rng *rng) {
    int D = m->features, H = m->config.hidden_dim, E = m->config.embed_dim, V = m->config.vocab_size;
    long n = rows * E;
    const float *h_out = b->h + ((size_t)b->rows + first) * H;
    float *out_pre = b->out_pre + first * E, *out_drop = b->out_drop + first * E;
    linear_forward(out_pre, h_out, m->p.out_hidden_weight, m->p.out_hidden_bias, (int)rows, H, E);
    linear_forward(out_drop, b->zhat + first * D, m->p.out_context_weight, m->p.out_context_bias, (int)rows, D, E);
    const float *embedded = b->embedded + first * E;
    for (long i = 0; i < n; i++) out_pre[i] += out_drop[i] + embedded[i];
    dropout_forward(out_drop, b->dropout_mask + first * E, out_pre, n, training ? m->config.dropout : 0.0f, rng);
    linear_forward(b->logits + first * V, out_drop, m->p.out_weight, m->p.out_bias, (int)rows, E, V);
}

/* Attention over each row's image, ready for the steps: the initial state and,
 * with attention, the projected features. */
static void prepare_rows(const SatModel *m, DecoderBuffers *b, const float *z_images, const int *row_image, int R) {
    expand_images(m, b, z_images, row_image, R);
    initial_state(m, b, R);
    if (m->config.use_attention) {
        AttentionShape as = sat_attention_shape(m, R);
        attention_precompute_forward(b->projection, b->z, &m->p.attention, &as);
    }
}

/* lambda * mean_r sum_i gap(sum_{t valid} alpha_tri)^2 (attention_coverage_gap); coverage keeps the sums. */
static float attention_penalty(const SatModel *m, DecoderBuffers *b) {
    int L = m->cells, R = b->rows;
    if (!m->config.use_attention || m->config.doubly_stochastic == 0.0f) return 0.0f;
    zero(b->coverage, (size_t)R * L);
    for (int t = 0; t < b->steps; t++)
        for (int r = 0; r < b->active[t]; r++) {
            long row = b->offset[t] + r;
            if (b->targets[row] == TOKEN_PAD) continue;
            const float *alpha = b->alpha + (size_t)row * L;
            for (int i = 0; i < L; i++) b->coverage[r * L + i] += alpha[i];
        }
    double sum = attention_coverage_cost(b->coverage, (long)R * L, m->config.penalty_excess_only);
    return (float)(m->config.doubly_stochastic * sum / R);
}

SatLoss decoder_forward_train(const SatModel *m, DecoderBuffers *b, const float *z_images,
                              const DecoderBatch *batch, Rng *rng) {
    int R = batch->rows, T = batch->steps, E = m->config.embed_dim;
    b->rows = R;
    b->steps = T;
    split_tokens(b, batch);
    prepare_rows(m, b, z_images, batch->row_image, R);
    long packed = b->offset[T];
    embedding_forward(b->embedded, b->input_tokens, m->p.embedding, (int)packed, E);
    b->input_dropped = batch->training && m->config.input_dropout > 0.0f;
    for (int t = 0; t < T; t++) {
        context_step(m, b, t);
        lstm_step(m, b, t, batch->training, rng);
    }
    deep_output(m, b, 0, packed, batch->training, rng);
    SatLoss loss = {0};
    loss.cross_entropy = cross_entropy_forward(b->probs, b->logits, b->targets, batch->row_weight ? b->target_weights : NULL,
                                               (int)packed, m->config.vocab_size, TOKEN_PAD, batch->label_smoothing,
                                               &loss.tokens);
    loss.penalty = attention_penalty(m, b);
    loss.loss = loss.cross_entropy + loss.penalty;
    return loss;
}

int decoder_draw_word(float *probs, int V, Rng *rng) {
    probs[TOKEN_PAD] = 0.0f;
    probs[TOKEN_START] = 0.0f;
    if (!rng) {
        int best = TOKEN_END;
        for (int v = 0; v < V; v++)
            if (probs[v] > probs[best]) best = v;
        return best;
    }
    double total = 0.0;
    for (int v = 0; v < V; v++) total += probs[v];
    double u = rng_uniform(rng) * total, sum = 0.0;
    int last = TOKEN_END;
    for (int v = 0; v < V; v++) {
        if (probs[v] <= 0.0f) continue;
        sum += probs[v];
        last = v;
        if (u < sum) return v;
    }
    return last; /* rounding left u at the very top */
}

int decoder_sample(const SatModel *m, DecoderBuffers *b, const float *z_images, const int *row_image, int R,
                   int max_words, Rng *rng, int *captions) {
    int E = m->config.embed_dim, V = m->config.vocab_size, columns = max_words + 2;
    for (long i = 0; i < (long)R * columns; i++) captions[i] = TOKEN_PAD;
    for (int r = 0; r < R; r++) captions[r * columns] = TOKEN_START;
    b->rows = R;
    b->steps = max_words + 1;
    b->input_dropped = 0;
    prepare_rows(m, b, z_images, row_image, R);
    /* Every row takes part in every step (finished ones are fed <pad> and
     * ignored): which captions run longest is only known at the end. */
    int running = R, steps = 0;
    b->offset[0] = 0;
    for (int t = 0; t < b->steps && running > 0; t++) {
        b->active[t] = R;
        b->offset[t + 1] = b->offset[t] + R;
        long at = b->offset[t];
        for (int r = 0; r < R; r++) b->input_tokens[at + r] = captions[r * columns + t];
        embedding_forward(b->embedded + at * E, b->input_tokens + at, m->p.embedding, R, E);
        context_step(m, b, t);
        lstm_step(m, b, t, 0, NULL);
        deep_output(m, b, at, R, 0, NULL);
        for (int r = 0; r < R; r++) {
            int previous = captions[r * columns + t];
            if (t > 0 && (previous == TOKEN_END || previous == TOKEN_PAD)) continue;
            float *probs = b->probs + (at + r) * V;
            softmax_row(probs, b->logits + (at + r) * V, V);
            int word = t == max_words ? TOKEN_PAD : decoder_draw_word(probs, V, rng);
            if (word != TOKEN_PAD) captions[r * columns + t + 1] = word;
            if (word == TOKEN_END || word == TOKEN_PAD) running--;
            if (word != TOKEN_PAD && t + 1 > steps) steps = t + 1;
        }
    }
    return steps;
}

static void deep_output_backward(const SatModel *m, const SatTensors *g, DecoderBuffers *b,
                                 const DecoderBatch *batch) {
    int rows = (int)b->offset[b->steps];
    int D = m->features, H = m->config.hidden_dim, E = m->config.embed_dim, V = m->config.vocab_size;
    zero(b->d_logits, (size_t)rows * V);
    cross_entropy_backward(b->d_logits, b->probs, b->targets, batch->row_weight ? b->target_weights : NULL, rows, V,
                           TOKEN_PAD, batch->label_smoothing,
                           replica_share(cross_entropy_count_valid(b->targets, rows, TOKEN_PAD), batch->total_tokens));
    zero(b->d_out_drop, (size_t)rows * E);
    linear_backward(b->d_out_drop, g->out_weight, g->out_bias, b->d_logits, b->out_drop, m->p.out_weight, rows, E, V);
    zero(b->d_out_pre, (size_t)rows * E);
    dropout_backward(b->d_out_pre, b->d_out_drop, b->dropout_mask, (long)rows * E);
    memcpy(b->d_embedded, b->d_out_pre, (size_t)rows * E * sizeof(float));
    zero(b->d_h_all, (size_t)rows * H);
    linear_backward(b->d_h_all, g->out_hidden_weight, g->out_hidden_bias, b->d_out_pre,
                    b->h + (size_t)b->rows * H, m->p.out_hidden_weight, rows, H, E);
    zero(b->d_zhat_all, (size_t)rows * D);
    linear_backward(b->d_zhat_all, g->out_context_weight, g->out_context_bias, b->d_out_pre, b->zhat,
                    m->p.out_context_weight, rows, D, E);
}

/* dL/dalpha of the penalty at step t (zero for padded rows). */
static void penalty_gradient(const SatModel *m, DecoderBuffers *b, int t) {
    int L = m->cells;
    float scale = -2.0f * m->config.doubly_stochastic / b->penalty_rows;
    for (int r = 0; r < b->active[t]; r++) {
        int valid = b->targets[b->offset[t] + r] != TOKEN_PAD && m->config.doubly_stochastic != 0.0f;
        for (int i = 0; i < L; i++)
            b->d_alpha[r * L + i] =
                valid ? scale * attention_coverage_gap(b->coverage[r * L + i], m->config.penalty_excess_only) : 0.0f;
    }
}

/* Xu's gate: zhat = beta * context, beta = sigmoid(w . h_{t-1} + b). */
static void gate_backward(const SatModel *m, const SatTensors *g, DecoderBuffers *b, int t) {
    int D = m->features, H = m->config.hidden_dim, rows = b->active[t];
    size_t at = (size_t)b->offset[t];
    const float *d_zhat = b->d_zhat_all + at * D;
    const float *context = b->context + at * D, *beta = b->beta + at;
    const float *h_prev = b->h + state_before(b, t) * H;
    for (int r = 0; r < rows; r++) {
        float d_beta = 0.0f;
        for (int d = 0; d < D; d++) {
            b->d_context[r * D + d] = beta[r] * d_zhat[r * D + d];
            d_beta += d_zhat[r * D + d] * context[r * D + d];
        }
        b->d_gate[r] = d_beta * beta[r] * (1.0f - beta[r]);
    }
    linear_backward(b->d_h_prev, g->gate_weight, g->gate_bias, b->d_gate, h_prev, m->p.gate_weight, rows, H, 1);
}

static void context_step_backward(const SatModel *m, const SatTensors *g, DecoderBuffers *b, int t) {
    int D = m->features, H = m->config.hidden_dim, L = m->cells, rows = b->active[t];
    size_t at = (size_t)b->offset[t];
    const float *d_zhat = b->d_zhat_all + at * D;
    if (!m->config.use_attention) {
        for (long i = 0; i < (long)rows * D; i++) b->d_z_mean[i] += d_zhat[i];
        return;
    }
    const float *context = b->context + at * D, *beta = b->beta + at;
    const float *h_prev = b->h + state_before(b, t) * H;
    const float *attention_cache = b->attention_cache + t * b->attention_cache_stride;
    AttentionShape as = sat_attention_shape(m, rows);
    AttentionParams grads = g->attention;
    if (m->config.sentinel) {
        SentinelShape ss = sat_sentinel_shape(m, rows);
        SentinelParams sentinel_grads = g->sentinel;
        int E = m->config.embed_dim;
        sentinel_backward(b->d_embedded + at * E, b->d_h_prev, b->d_c_prev, b->d_context, b->d_lse, &sentinel_grads,
                          &grads, d_zhat, beta, b->sentinel_cache + t * b->sentinel_cache_stride,
                          b->embedded + at * E, h_prev, context, attention_cache, &m->p.sentinel, &m->p.attention,
                          &ss, &as, b->sentinel_workspace);
    } else {
        gate_backward(m, g, b, t);
    }
    penalty_gradient(m, b, t);
    attention_step_backward(b->d_h_prev, b->d_z, b->d_projection, &grads, b->d_context, b->d_alpha,
                            m->config.sentinel ? b->d_lse : NULL, b->alpha + at * L, attention_cache, h_prev, b->z,
                            &m->p.attention, &as, b->attention_workspace);
}


/* A row whose caption ends at step t took no part in later steps: its d_h and
 * d_c are still zero when step t adds its output gradient. */
static void recurrence_backward(const SatModel *m, const SatTensors *g, DecoderBuffers *b) {
    int D = m->features, H = m->config.hidden_dim, E = m->config.embed_dim, R = b->rows;
    size_t state = (size_t)R * H;
    zero(b->d_h, state);
    zero(b->d_c, state);
    for (int t = b->steps - 1; t >= 0; t--) {
        int rows = b->active[t];
        size_t at = (size_t)b->offset[t], active_state = (size_t)rows * H;
        const float *d_h_out = b->d_h_all + at * H;
        for (size_t i = 0; i < active_state; i++) b->d_h[i] += d_h_out[i];
        size_t input = (size_t)rows * (E + D);
        float *d_lstm_input = b->input_dropped ? b->d_x_dropped : b->d_x;
        zero(b->d_x, input);
        if (b->input_dropped) zero(b->d_x_dropped, input);
        zero(b->d_h_prev, state);
        zero(b->d_c_prev, state);
        LstmShape ls = lstm_shape(m, rows);
        size_t before = state_before(b, t) * H, after = state_after(b, t) * H;
        lstm_cell_backward(d_lstm_input, b->d_h_prev, b->d_c_prev, g->lstm_weight_ih, g->lstm_weight_hh, g->lstm_bias,
                           b->d_h, b->d_c, b->gates + at * 4 * H, b->c + after, b->x + at * (E + D),
                           b->h + before, b->c + before, m->p.lstm_weight_ih, m->p.lstm_weight_hh, &ls,
                           b->lstm_workspace);
        if (b->input_dropped) dropout_backward(b->d_x, b->d_x_dropped, b->input_mask + at * (E + D), (long)input);
        for (int r = 0; r < rows; r++) {
            float *d_emb = b->d_embedded + (at + r) * E;
            float *d_zhat = b->d_zhat_all + (at + r) * D;
            const float *dx = b->d_x + (size_t)r * (E + D);
            for (int e = 0; e < E; e++) d_emb[e] += dx[e];
            for (int d = 0; d < D; d++) d_zhat[d] += dx[E + d];
        }
        context_step_backward(m, g, b, t);
        memcpy(b->d_h, b->d_h_prev, active_state * sizeof(float));
        memcpy(b->d_c, b->d_c_prev, active_state * sizeof(float));
    }
}

static void initial_state_backward(const SatModel *m, const SatTensors *g, DecoderBuffers *b, int R) {
    int D = m->features, H = m->config.hidden_dim;
    size_t state = (size_t)R * H;
    /* d_h_prev is free now: use it for the pre-tanh gradients. */
    zero(b->d_h_prev, state);
    tanh_backward(b->d_h_prev, b->d_h, b->h, (long)state);
    linear_backward(b->d_z_mean, g->init_h_weight, g->init_h_bias, b->d_h_prev, b->z_mean, m->p.init_h_weight, R, D, H);
    zero(b->d_c_prev, state);
    tanh_backward(b->d_c_prev, b->d_c, b->c, (long)state);
    linear_backward(b->d_z_mean, g->init_c_weight, g->init_c_bias, b->d_c_prev, b->z_mean, m->p.init_c_weight, R, D, H);
}

void decoder_backward(const SatModel *m, const SatTensors *g, DecoderBuffers *b, float *d_z_images,
                      const DecoderBatch *batch) {
    int R = batch->rows, L = m->cells, D = m->features, E = m->config.embed_dim;
    AttentionShape as = sat_attention_shape(m, R);
    b->penalty_rows = batch->total_rows > 0 ? batch->total_rows : R;
    zero(b->d_z, (size_t)R * L * D);
    zero(b->d_z_mean, (size_t)R * D);
    if (m->config.use_attention) zero(b->d_projection, attention_projection_floats(&as));
    deep_output_backward(m, g, b, batch);
    recurrence_backward(m, g, b);
    initial_state_backward(m, g, b, R);
    if (m->config.use_attention) {
        AttentionParams grads = g->attention;
        attention_precompute_backward(b->d_z, &grads, b->d_projection, b->z, &m->p.attention, &as);
    }
    embedding_backward(g->embedding, b->d_embedded, b->input_tokens, (int)b->offset[b->steps], E);
    for (int r = 0; r < R; r++) {
        float *dst = d_z_images + (size_t)batch->row_image[r] * L * D;
        const float *src = b->d_z + (size_t)r * L * D;
        const float *d_mean = b->d_z_mean + (size_t)r * D;
        for (int i = 0; i < L; i++)
            for (int d = 0; d < D; d++) dst[i * D + d] += src[i * D + d] + d_mean[d] / (float)L;
    }
}
