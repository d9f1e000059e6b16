#include "decode.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "activation.h"
#include "cpu.h"
#include "embedding.h"
#include "linear.h"
#include "lstm.h"
#include "softmax.h"

typedef struct {
    int length, finished;
    float logprob, score;
    int *tokens;
    float *token_logprobs, *alpha, *beta;
    float *head_alpha, *self_rows; /* the Transformer's maps per word (decode.h), rows max_length + 1 wide */
} Hypothesis;

struct Captioner {
    const SatModel *model;
    int max_beam, max_length;
    EncoderBuffers encoder;
    /* per row (up to max_beam): */
    float *z, *projection, *z_mean, *h, *c, *h_next, *c_next, *gates, *x, *embedded;
    float *context, *zhat, *out, *logits, *alpha, *beta, *attention_cache, *sentinel_cache;
    int *prev_tokens, *parents;
    unsigned char *no_end_after; /* [vocab]: words a caption may not end with */
    Hypothesis *alive, *next_alive, *finished;
    int finished_count;
    CoreHelper *helper; /* NULL: one thread */
    TransformerCache *transformer; /* the Transformer's state; NULL for the LSTMs */
    TransformerBuffers *grid;      /* an LSTM's grid encoder; NULL without one */
    int recompute;                 /* Transformer: rebuild the key/value cache every step (tests) */
    Captioner **members;           /* an ensemble's other models, stepped in lockstep (captioner_add_member) */
    int member_count;
};

/* Floats of the Transformer's maps per word: cross-attention (all layers and
 * heads) and self-attention rows; 0 for the LSTMs. */
static size_t head_map_floats(const SatModel *m) {
    return m->config.transformer ? (size_t)m->config.decoder_layers * m->config.heads * m->cells : 0;
}
static size_t self_row_floats(const SatModel *m, int max_length) {
    return m->config.transformer ? (size_t)m->config.decoder_layers * m->config.heads * (max_length + 1) : 0;
}

static int hypothesis_alloc(Hypothesis *h, const SatModel *m, int max_length) {
    memset(h, 0, sizeof *h);
    h->tokens = malloc(sizeof(int) * max_length);
    h->token_logprobs = malloc(sizeof(float) * max_length);
    h->alpha = malloc(sizeof(float) * max_length * m->cells);
    h->beta = malloc(sizeof(float) * max_length);
    if (m->config.transformer) {
        h->head_alpha = malloc(sizeof(float) * max_length * head_map_floats(m));
        h->self_rows = malloc(sizeof(float) * max_length * self_row_floats(m, max_length));
        if (!h->head_alpha || !h->self_rows) return -1;
    }
    return h->tokens && h->token_logprobs && h->alpha && h->beta ? 0 : -1;
}

static void hypothesis_free(Hypothesis *h) {
    free(h->head_alpha);
    free(h->self_rows);
    free(h->tokens);
    free(h->token_logprobs);
    free(h->alpha);
    free(h->beta);
}

static void hypothesis_copy(Hypothesis *dst, const Hypothesis *src, int cells, size_t head_floats,
                            size_t self_floats) {
    dst->length = src->length;
    dst->finished = src->finished;
    dst->logprob = src->logprob;
    dst->score = src->score;
    memcpy(dst->tokens, src->tokens, sizeof(int) * src->length);
    memcpy(dst->token_logprobs, src->token_logprobs, sizeof(float) * src->length);
    memcpy(dst->alpha, src->alpha, sizeof(float) * src->length * cells);
    memcpy(dst->beta, src->beta, sizeof(float) * src->length);
    if (head_floats) memcpy(dst->head_alpha, src->head_alpha, sizeof(float) * src->length * head_floats);
    if (self_floats) memcpy(dst->self_rows, src->self_rows, sizeof(float) * src->length * self_floats);
}

void captioner_free(Captioner *cap) {
    if (!cap) return;
    for (int i = 0; i < cap->member_count; i++) captioner_free(cap->members[i]);
    free(cap->members);
    core_helper_free(cap->helper);
    transformer_cache_free(cap->transformer);
    transformer_buffers_free(cap->grid);
    encoder_buffers_free(&cap->encoder);
    float *buffers[] = {cap->z, cap->projection, cap->z_mean, cap->h, cap->c, cap->h_next, cap->c_next,
                        cap->gates, cap->x, cap->embedded, cap->context, cap->zhat, cap->out,
                        cap->logits, cap->alpha, cap->beta, cap->attention_cache, cap->sentinel_cache};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
    free(cap->prev_tokens);
    free(cap->parents);
    free(cap->no_end_after);
    Hypothesis *lists[] = {cap->alive, cap->next_alive, cap->finished};
    for (int l = 0; l < 3; l++) {
        if (!lists[l]) continue;
        for (int i = 0; i < cap->max_beam; i++) hypothesis_free(&lists[l][i]);
        free(lists[l]);
    }
    free(cap);
}

int captioner_use_second_thread(Captioner *cap, Error *err) {
    if (cap->helper || cpu_portable_mode()) return 0;
    if (core_helper_create(&cap->helper, err) != 0) return -1;
    /* The helper replaces OpenBLAS's threads (core_helper.h says why). */
    core_helper_claim_blas();
    return 0;
}

static int alloc_rows(Captioner *cap, Error *err) {
    const SatModel *m = cap->model;
    size_t k = cap->max_beam, L = m->cells, D = m->features, H = m->config.hidden_dim;
    size_t E = m->config.embed_dim, V = m->config.vocab_size;
    AttentionShape as = sat_attention_shape(m, (int)k);
    size_t proj = attention_projection_floats(&as), cache = attention_cache_floats(&as);
    SentinelShape ss = sat_sentinel_shape(m, (int)k);
    size_t sentinel_cache = m->config.sentinel ? sentinel_cache_floats(&ss, &as) : 0;
    struct { float **ptr; size_t count; } plan[] = {
        {&cap->z, k * L * D}, {&cap->projection, proj + 1}, {&cap->z_mean, k * D}, {&cap->h, k * H},
        {&cap->c, k * H}, {&cap->h_next, k * H}, {&cap->c_next, k * H}, {&cap->gates, k * 4 * H},
        {&cap->x, k * (E + D)}, {&cap->embedded, k * E}, {&cap->context, k * D}, {&cap->zhat, k * D},
        {&cap->out, k * E}, {&cap->logits, k * (V > E ? V : E)}, /* also scratch for L_z zhat (k * E) */
        {&cap->alpha, k * L}, {&cap->beta, k},
        {&cap->attention_cache, cache + 1}, {&cap->sentinel_cache, sentinel_cache + 1},
    };
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        *plan[i].ptr = malloc(plan[i].count * sizeof(float));
        if (!*plan[i].ptr) return error_set(err, "out of memory for captioning buffers");
    }
    cap->prev_tokens = malloc(sizeof(int) * k);
    cap->parents = malloc(sizeof(int) * k);
    cap->alive = calloc(k, sizeof(Hypothesis));
    cap->next_alive = calloc(k, sizeof(Hypothesis));
    cap->finished = calloc(k, sizeof(Hypothesis));
    if (!cap->prev_tokens || !cap->parents || !cap->alive || !cap->next_alive || !cap->finished)
        return error_set(err, "out of memory for captioning buffers");
    for (size_t i = 0; i < k; i++)
        if (hypothesis_alloc(&cap->alive[i], m, cap->max_length) != 0 ||
            hypothesis_alloc(&cap->next_alive[i], m, cap->max_length) != 0 ||
            hypothesis_alloc(&cap->finished[i], m, cap->max_length) != 0)
            return error_set(err, "out of memory for beam hypotheses");
    return 0;
}

/* Words a caption must not end with. A model trained on its own captions'
 * CIDEr-D (self-critical training) learns that a dangling "in the" costs
 * little, since CIDEr-D weighs rare n-grams and "the" is in every reference;
 * a reader sees a broken sentence. The list is that of the self-critical
 * training reference implementation (ruotianluo/self-critical.pytorch,
 * "bad endings"), plus "and". */
static const char *const BAD_ENDINGS[] = {"a", "an", "the", "in", "for", "at", "of", "with", "before", "after",
                                          "on", "upon", "near", "to", "is", "are", "am", "and"};

static int mark_bad_endings(Captioner *cap, Error *err) {
    const SatModel *m = cap->model;
    int V = m->config.vocab_size;
    cap->no_end_after = calloc((size_t)V, 1);
    if (!cap->no_end_after) return error_set(err, "out of memory");
    for (int v = 0; v < V && m->vocab; v++)
        for (size_t i = 0; i < sizeof BAD_ENDINGS / sizeof BAD_ENDINGS[0]; i++)
            if (m->vocab[v] && strcmp(m->vocab[v], BAD_ENDINGS[i]) == 0) cap->no_end_after[v] = 1;
    return 0;
}

int captioner_create(Captioner **out, const SatModel *m, int max_beam, int max_length, Error *err) {
    *out = NULL;
    if (max_beam < 1 || max_beam > 64) return error_set(err, "beam width %d out of range (1 to 64)", max_beam);
    if (max_length < 1 || max_length > 1000) return error_set(err, "max length %d out of range (1 to 1000)", max_length);
    if (!m->folded) return error_set(err, "model not prepared for inference (sat_model_prepare_inference)");
    Captioner *cap = calloc(1, sizeof *cap);
    if (!cap) return error_set(err, "out of memory");
    cap->model = m;
    cap->max_beam = max_beam;
    cap->max_length = max_length;
    TransformerShape shape = sat_transformer_shape(m);
    if (encoder_buffers_alloc(&cap->encoder, m, 1, err) != 0 || alloc_rows(cap, err) != 0 ||
        mark_bad_endings(cap, err) != 0 ||
        (m->config.transformer && transformer_cache_create(&cap->transformer, &shape, max_beam, max_length + 1, 1, err)) ||
        (sat_has_grid_encoder(m) && sat_grid_encoder_buffers_create(&cap->grid, m, 1, err))) {
        captioner_free(cap);
        return -1;
    }
    *out = cap;
    return 0;
}

int ensemble_check_member(const SatModel *first, const SatModel *member, Error *err) {
    if (member->config.vocab_size != first->config.vocab_size)
        return error_set(err, "a vocabulary of %d words where the first model's has %d: an ensemble's models must "
                         "share one vocabulary (the same training captions and --min-count)",
                         member->config.vocab_size, first->config.vocab_size);
    for (int v = 0; v < first->config.vocab_size && first->vocab && member->vocab; v++)
        if (strcmp(first->vocab[v], member->vocab[v]) != 0)
            return error_set(err, "word %d is '%s' where the first model's is '%s': an ensemble's models must share "
                             "one vocabulary (the same training captions and --min-count)", v, member->vocab[v],
                             first->vocab[v]);
    const SatConfig *a = &first->config, *b = &member->config;
    if (b->image_size != a->image_size || memcmp(b->image_mean, a->image_mean, sizeof a->image_mean) != 0 ||
        memcmp(b->image_std, a->image_std, sizeof a->image_std) != 0)
        return error_set(err, "takes %d-pixel images (the first model %d) or normalises them otherwise: an "
                         "ensemble's models must take the same input", b->image_size, a->image_size);
    return 0;
}

int captioner_add_member(Captioner *cap, const SatModel *member, Error *err) {
    if (ensemble_check_member(cap->model, member, err) != 0) return -1;
    Captioner **grown = realloc(cap->members, sizeof *grown * (cap->member_count + 1));
    if (!grown) return error_set(err, "out of memory");
    cap->members = grown;
    if (captioner_create(&cap->members[cap->member_count], member, cap->max_beam, cap->max_length, err) != 0) return -1;
    cap->member_count++;
    return 0;
}

const float *captioner_encode_only(Captioner *cap, const float *image) {
    return encoder_forward_infer(cap->model, &cap->encoder, image, 1, cap->helper);
}

void captioner_use_kv_cache(Captioner *cap, int on) { cap->recompute = !on; }

/* Encodes the image into row 0, then replicates it to every beam row (the
 * Transformer's rows share the image in its cache). */
static void encode(Captioner *cap, const float *image) {
    const SatModel *m = cap->model;
    size_t L = m->cells, D = m->features, H = m->config.hidden_dim;
    const float *features = captioner_encode_only(cap, image);
    features_to_annotations(cap->z, features, 1, (int)D, (int)L);
    if (m->config.transformer) {
        transformer_cache_encode(cap->transformer, &m->p.transformer, cap->z, 1, NULL, 0);
        return;
    }
    if (cap->grid) {
        TransformerShape shape = sat_grid_encoder_shape(m);
        memcpy(cap->z, transformer_encode(&shape, &m->p.transformer, cap->grid, cap->z, 1, NULL), L * D * sizeof(float));
    }
    memset(cap->z_mean, 0, D * sizeof(float));
    for (size_t i = 0; i < L; i++)
        for (size_t d = 0; d < D; d++) cap->z_mean[d] += cap->z[i * D + d] / (float)L;
    AttentionShape as = sat_attention_shape(m, 1);
    if (m->config.use_attention) attention_precompute_forward(cap->projection, cap->z, &m->p.attention, &as);
    size_t proj = attention_projection_floats(&as);
    for (int r = 1; r < cap->max_beam; r++) {
        memcpy(cap->z + r * L * D, cap->z, L * D * sizeof(float));
        memcpy(cap->z_mean + r * D, cap->z_mean, D * sizeof(float));
        if (proj) memcpy(cap->projection + r * proj, cap->projection, proj * sizeof(float));
    }
    linear_forward(cap->h, cap->z_mean, m->p.init_h_weight, m->p.init_h_bias, 1, (int)D, (int)H);
    tanh_forward(cap->h, cap->h, (long)H);
    linear_forward(cap->c, cap->z_mean, m->p.init_c_weight, m->p.init_c_bias, 1, (int)D, (int)H);
    tanh_forward(cap->c, cap->c, (long)H);
}

/* The Transformer's step t: with the cache only position t is computed;
 * without it (recompute) the cache is rebuilt from each hypothesis's words. */
static void transformer_step(Captioner *cap, int rows, int t) {
    const SatModel *m = cap->model;
    for (int p = cap->recompute ? 0 : t; p <= t; p++) {
        for (int r = 0; cap->recompute && r < rows; r++)
            cap->prev_tokens[r] = p == 0 ? TOKEN_START : cap->alive[r].tokens[p - 1];
        transformer_cache_step(cap->transformer, &m->p.transformer, cap->prev_tokens, rows, p, cap->logits,
                               cap->alpha);
    }
    for (int r = 0; r < rows; r++) cap->beta[r] = 1.0f; /* no gate: it always looks */
}

/* One decoder step for `rows` hypotheses at step t: logits become
 * log-probabilities; the LSTM's new state goes to h_next / c_next. */
static void decoder_step(Captioner *cap, int rows, int t) {
    const SatModel *m = cap->model;
    if (m->config.transformer) {
        transformer_step(cap, rows, t);
        return;
    }
    int D = m->features, H = m->config.hidden_dim, E = m->config.embed_dim, V = m->config.vocab_size;
    embedding_forward(cap->embedded, cap->prev_tokens, m->p.embedding, rows, E);
    if (m->config.use_attention) {
        AttentionShape as = sat_attention_shape(m, rows);
        attention_step_forward(cap->alpha, cap->context, cap->attention_cache, cap->h, cap->z,
                               cap->projection, &m->p.attention, &as);
        if (m->config.sentinel) {
            SentinelShape ss = sat_sentinel_shape(m, rows);
            sentinel_forward(cap->zhat, cap->beta, cap->sentinel_cache, cap->embedded, cap->h, cap->c, cap->context,
                             cap->attention_cache, &m->p.sentinel, &m->p.attention, &ss, &as);
        } else {
            linear_forward(cap->beta, cap->h, m->p.gate_weight, m->p.gate_bias, rows, H, 1);
            sigmoid_forward(cap->beta, cap->beta, rows);
            for (int r = 0; r < rows; r++)
                for (int d = 0; d < D; d++) cap->zhat[r * D + d] = cap->beta[r] * cap->context[r * D + d];
        }
    } else {
        memcpy(cap->zhat, cap->z_mean, sizeof(float) * rows * D);
    }
    for (int r = 0; r < rows; r++) {
        memcpy(cap->x + r * (E + D), cap->embedded + r * E, E * sizeof(float));
        memcpy(cap->x + r * (E + D) + E, cap->zhat + r * D, D * sizeof(float));
    }
    /* The LSTM's and the output layer's products are most of the weights a step reads. */
    LstmShape ls = {.batch = rows, .input = E + D, .hidden = H};
    linear_forward_shared(cap->helper, cap->gates, cap->x, m->p.lstm_weight_ih, m->p.lstm_bias, rows, E + D, 4 * H);
    matmul_weight_t_shared(cap->helper, cap->gates, cap->h, m->p.lstm_weight_hh, rows, H, 4 * H, 1.0f);
    lstm_cell_activate(cap->h_next, cap->c_next, cap->gates, cap->c, &ls);
    linear_forward(cap->out, cap->h_next, m->p.out_hidden_weight, m->p.out_hidden_bias, rows, H, E);
    linear_forward(cap->logits, cap->zhat, m->p.out_context_weight, m->p.out_context_bias, rows, D, E);
    for (int i = 0; i < rows * E; i++) cap->out[i] += cap->logits[i] + cap->embedded[i];
    linear_forward_shared(cap->helper, cap->logits, cap->out, m->p.out_weight, m->p.out_bias, rows, E, V);
    log_softmax_forward(cap->logits, cap->logits, rows, V);
}

typedef void (*MemberWork)(Captioner *cap, const void *argument);

typedef struct {
    Captioner *cap;
    MemberWork work;
    const void *argument;
} EnsembleWork;

static void ensemble_part(void *context, int part) {
    EnsembleWork *w = context;
    if (part == 0) w->work(w->cap, w->argument);
    else
        for (int i = 0; i < w->cap->member_count; i++) w->work(w->cap->members[i], w->argument);
}

/* Runs work(captioner, argument) for the captioner's own model and for each
 * ensemble member: the members on the second core while the own model runs
 * on this one, each on one thread (a product split in two inside a split
 * would wait on itself). Without a helper, one after the other. */
static void for_each_member(Captioner *cap, MemberWork work, const void *argument) {
    if (cap->member_count == 0) {
        work(cap, argument);
        return;
    }
    CoreHelper *helper = cap->helper;
    cap->helper = NULL;
    EnsembleWork w = {cap, work, argument};
    core_helper_split(helper, ensemble_part, &w);
    cap->helper = helper;
}

static void encode_work(Captioner *cap, const void *image) { encode(cap, image); }

typedef struct {
    int rows, t;
} StepArgument;

static void step_work(Captioner *cap, const void *argument) {
    const StepArgument *a = argument;
    decoder_step(cap, a->rows, a->t);
}

/* One step of the captioner's model and its ensemble members; the words'
 * log-probabilities become those of the members' mean distribution (an
 * average of probabilities: a word one member rules out stays possible). */
static void ensemble_step(Captioner *cap, int rows, int t) {
    for (int i = 0; i < cap->member_count; i++)
        memcpy(cap->members[i]->prev_tokens, cap->prev_tokens, sizeof(int) * rows);
    for_each_member(cap, step_work, &(StepArgument){rows, t});
    if (cap->member_count == 0) return;
    int V = cap->model->config.vocab_size, n = cap->member_count + 1;
    for (size_t k = 0; k < (size_t)rows * V; k++) {
        float top = cap->logits[k];
        for (int i = 0; i < cap->member_count; i++) top = fmaxf(top, cap->members[i]->logits[k]);
        float sum = expf(cap->logits[k] - top);
        for (int i = 0; i < cap->member_count; i++) sum += expf(cap->members[i]->logits[k] - top);
        cap->logits[k] = top + logf(sum / (float)n);
    }
}

static float normalised(float logprob, int tokens, float penalty) {
    return penalty == 0.0f ? logprob : logprob / powf((float)tokens, penalty);
}

typedef struct {
    float total;
    int row, token;
} Candidate;

/* Keeps the best `capacity` candidates, sorted best first. */
static void offer(Candidate *best, int *count, int capacity, Candidate c) {
    if (*count == capacity && c.total <= best[capacity - 1].total) return;
    int i = *count < capacity ? (*count)++ : capacity - 1;
    while (i > 0 && best[i - 1].total < c.total) {
        best[i] = best[i - 1];
        i--;
    }
    best[i] = c;
}

/* The Transformer's maps of row `row` at step t (its every layer's and
 * head's cross-attention, and self-attention rows over positions 0..t). */
static void keep_transformer_maps(Captioner *cap, Hypothesis *dst, int row, int t) {
    const SatModel *m = cap->model;
    int layers = m->config.decoder_layers, heads = m->config.heads, L = m->cells, width = cap->max_length + 1;
    float *cross = dst->head_alpha + (size_t)t * head_map_floats(m);
    float *rows = dst->self_rows + (size_t)t * self_row_floats(m, cap->max_length);
    memset(rows, 0, sizeof(float) * self_row_floats(m, cap->max_length));
    for (int l = 0; l < layers; l++) {
        memcpy(cross + (size_t)l * heads * L, transformer_cache_cross_attention(cap->transformer, l) +
                                                  (size_t)row * heads * L, sizeof(float) * heads * L);
        const float *self = transformer_cache_self_attention(cap->transformer, l, row);
        for (int h = 0; h < heads; h++)
            memcpy(rows + ((size_t)l * heads + h) * width, self + (size_t)h * (t + 1), sizeof(float) * (t + 1));
    }
}

static void extend(Captioner *cap, Hypothesis *dst, const Hypothesis *parent, int row, int token, float lp) {
    const SatModel *m = cap->model;
    int L = m->cells;
    hypothesis_copy(dst, parent, L, head_map_floats(m), self_row_floats(m, cap->max_length));
    dst->tokens[dst->length] = token;
    dst->token_logprobs[dst->length] = lp;
    if (m->config.use_attention) {
        memcpy(dst->alpha + (size_t)dst->length * L, cap->alpha + (size_t)row * L, sizeof(float) * L);
        dst->beta[dst->length] = cap->beta[row];
    }
    if (cap->transformer) keep_transformer_maps(cap, dst, row, dst->length);
    dst->length++;
    dst->logprob += lp;
}

/* Keeps h, ended by <end> (log-probability end_logprob), among the finished
 * captions. It is ranked as a complete caption, <end> included, even when
 * cut at max_length (finished 0); its logprob counts <end> only when the
 * caption did end, so a cut caption's is that of the words it has. */
static void add_finished(Captioner *cap, const Hypothesis *h, int finished, float end_logprob, float penalty) {
    Hypothesis *slot = NULL;
    float score = normalised(h->logprob + end_logprob, h->length + 1, penalty); /* the words and <end> */
    if (cap->finished_count < cap->max_beam) {
        slot = &cap->finished[cap->finished_count++];
    } else {
        int worst = 0;
        for (int i = 1; i < cap->finished_count; i++)
            if (cap->finished[i].score < cap->finished[worst].score) worst = i;
        if (cap->finished[worst].score >= score) return;
        slot = &cap->finished[worst];
    }
    hypothesis_copy(slot, h, cap->model->cells, head_map_floats(cap->model), self_row_floats(cap->model, cap->max_length));
    slot->finished = finished;
    slot->score = score;
    if (finished) slot->logprob += end_logprob;
}

/* Moves the chosen rows' states into place for the next step (after step t). */
static void reorder_states(Captioner *cap, int rows, int t) {
    if (cap->transformer) {
        if (!cap->recompute) transformer_cache_reorder(cap->transformer, cap->parents, rows, t);
        return;
    }
    size_t H = cap->model->config.hidden_dim;
    for (int r = 0; r < rows; r++) {
        memcpy(cap->h + r * H, cap->h_next + (size_t)cap->parents[r] * H, H * sizeof(float));
        memcpy(cap->c + r * H, cap->c_next + (size_t)cap->parents[r] * H, H * sizeof(float));
    }
}

static int is_word(int token) { return token != TOKEN_PAD && token != TOKEN_START && token != TOKEN_UNK; }

/* One beam step; returns the number of hypotheses still alive. */
static int beam_step(Captioner *cap, int alive, int beam, int t, const DecodeOptions *o) {
    const SatModel *m = cap->model;
    int V = m->config.vocab_size;
    Candidate best[2 * 64];
    int count = 0, capacity = 2 * beam;
    for (int r = 0; r < alive; r++) {
        const Hypothesis *h = &cap->alive[r];
        int may_end = h->length == 0 || !cap->no_end_after[h->tokens[h->length - 1]];
        for (int w = 0; w < V; w++)
            if (is_word(w) && (w != TOKEN_END || may_end))
                offer(best, &count, capacity, (Candidate){h->logprob + cap->logits[(size_t)r * V + w], r, w});
    }
    int next = 0;
    for (int i = 0; i < count && next < beam; i++) {
        Candidate c = best[i];
        float lp = cap->logits[(size_t)c.row * V + c.token];
        if (c.token == TOKEN_END) {
            add_finished(cap, &cap->alive[c.row], 1, lp, o->length_penalty);
            continue;
        }
        extend(cap, &cap->next_alive[next], &cap->alive[c.row], c.row, c.token, lp);
        cap->prev_tokens[next] = c.token;
        cap->parents[next] = c.row;
        next++;
    }
    Hypothesis *swap = cap->alive;
    cap->alive = cap->next_alive;
    cap->next_alive = swap;
    reorder_states(cap, next, t);
    for (int i = 0; i < cap->member_count; i++) {
        memcpy(cap->members[i]->parents, cap->parents, sizeof(int) * next);
        reorder_states(cap->members[i], next, t);
    }
    return next;
}

/* At max_length words every live hypothesis ends: ranked with its <end>'s
 * log-probability, so all candidates are compared as complete captions; it
 * counts as finished (and its logprob includes <end>) only if <end> was
 * also the model's most likely word. */
static void close_at_max_length(Captioner *cap, int alive, const DecodeOptions *o) {
    int V = cap->model->config.vocab_size;
    for (int r = 0; r < alive; r++) {
        const float *lp = cap->logits + (size_t)r * V;
        int end_is_best = 1;
        for (int w = 0; w < V && end_is_best; w++)
            if (is_word(w) && w != TOKEN_END && lp[w] > lp[TOKEN_END]) end_is_best = 0;
        add_finished(cap, &cap->alive[r], end_is_best, lp[TOKEN_END], o->length_penalty);
    }
}

/* Beam search stops once no live hypothesis can beat the worst kept finished one
 * without length normalisation (log-probabilities only fall). */
static int search_done(const Captioner *cap, int alive, int beam, const DecodeOptions *o) {
    if (alive == 0) return 1;
    if (cap->finished_count < beam || o->length_penalty != 0.0f) return 0;
    float worst = FLT_MAX, best_alive = -FLT_MAX;
    for (int i = 0; i < cap->finished_count; i++) worst = fminf(worst, cap->finished[i].score);
    for (int i = 0; i < alive; i++) best_alive = fmaxf(best_alive, cap->alive[i].logprob);
    return best_alive <= worst;
}

static int best_finished(const Captioner *cap) {
    int best = 0;
    for (int i = 1; i < cap->finished_count; i++)
        if (cap->finished[i].score > cap->finished[best].score) best = i;
    return best;
}

/* The kept maps into the caption, the self-attention rows trimmed to the caption's length. */
static int export_transformer_maps(const Captioner *cap, const Hypothesis *h, Caption *out, Error *err) {
    const SatModel *m = cap->model;
    int n = h->length > 0 ? h->length : 1, width = cap->max_length + 1;
    size_t pairs = (size_t)m->config.decoder_layers * m->config.heads;
    out->layers = m->config.decoder_layers;
    out->heads = m->config.heads;
    out->head_alpha = malloc(sizeof(float) * n * head_map_floats(m));
    out->self_attention = calloc((size_t)n * pairs * n, sizeof(float));
    if (!out->head_alpha || !out->self_attention) {
        caption_free(out);
        return error_set(err, "out of memory");
    }
    memcpy(out->head_alpha, h->head_alpha, sizeof(float) * h->length * head_map_floats(m));
    for (int t = 0; t < h->length; t++)
        for (size_t k = 0; k < pairs; k++)
            memcpy(out->self_attention + ((size_t)t * pairs + k) * h->length,
                   h->self_rows + ((size_t)t * pairs + k) * width, sizeof(float) * (t + 1));
    return 0;
}

static int export_caption(const Captioner *cap, const Hypothesis *h, Caption *out, Error *err) {
    const SatModel *m = cap->model;
    int L = m->cells, n = h->length > 0 ? h->length : 1;
    memset(out, 0, sizeof *out);
    out->length = h->length;
    out->logprob = h->logprob;
    out->score = h->score;
    out->finished = h->finished;
    out->cells = L;
    out->grid_h = m->grid_h;
    out->grid_w = m->grid_w;
    out->tokens = malloc(sizeof(int) * n);
    out->token_logprobs = malloc(sizeof(float) * n);
    if (m->config.use_attention) {
        out->alpha = malloc(sizeof(float) * n * L);
        out->beta = malloc(sizeof(float) * n);
    }
    if (!out->tokens || !out->token_logprobs || (m->config.use_attention && (!out->alpha || !out->beta))) {
        caption_free(out);
        return error_set(err, "out of memory");
    }
    memcpy(out->tokens, h->tokens, sizeof(int) * h->length);
    memcpy(out->token_logprobs, h->token_logprobs, sizeof(float) * h->length);
    if (m->config.use_attention) {
        memcpy(out->alpha, h->alpha, sizeof(float) * h->length * L);
        memcpy(out->beta, h->beta, sizeof(float) * h->length);
    }
    return m->config.transformer ? export_transformer_maps(cap, h, out, err) : 0;
}

int captioner_run(Captioner *cap, const float *image, const DecodeOptions *o, Caption *out, Error *err) {
    int beam = o->beam_width;
    if (beam < 1 || beam > cap->max_beam)
        return error_set(err, "beam width %d out of range (1 to %d)", beam, cap->max_beam);
    if (o->max_length < 1 || o->max_length > cap->max_length)
        return error_set(err, "max length %d out of range (1 to %d)", o->max_length, cap->max_length);
    for_each_member(cap, encode_work, image);
    cap->finished_count = 0;
    Hypothesis *root = &cap->alive[0];
    root->length = 0;
    root->logprob = 0.0f;
    root->finished = 0;
    cap->prev_tokens[0] = TOKEN_START;
    int alive = 1;
    for (int step = 0; step <= o->max_length && !search_done(cap, alive, beam, o); step++) {
        ensemble_step(cap, alive, step);
        if (step == o->max_length) close_at_max_length(cap, alive, o);
        else alive = beam_step(cap, alive, beam, step, o);
    }
    return export_caption(cap, &cap->finished[best_finished(cap)], out, err);
}

void caption_free(Caption *c) {
    free(c->head_alpha);
    free(c->self_attention);
    free(c->tokens);
    free(c->token_logprobs);
    free(c->alpha);
    free(c->beta);
    memset(c, 0, sizeof *c);
}

const char *caption_text(const SatModel *m, const Caption *c, char *buffer, size_t size) {
    size_t used = 0;
    if (size == 0) return buffer;
    buffer[0] = '\0';
    for (int i = 0; i < c->length; i++) {
        const char *word = m->vocab[c->tokens[i]];
        size_t need = strlen(word) + (i > 0);
        if (used + need >= size) break;
        if (i > 0) buffer[used++] = ' ';
        memcpy(buffer + used, word, strlen(word) + 1);
        used += strlen(word);
    }
    return buffer;
}

int caption_attention_map(const Caption *c, int layer, int head, float *alpha, float *self_attention) {
    if (!c->head_alpha || layer < 0 || layer >= c->layers || head < -1 || head >= c->heads) return -1;
    int first = head < 0 ? 0 : head, last = head < 0 ? c->heads - 1 : head, n = last - first + 1;
    for (int t = 0; t < c->length; t++) {
        size_t pair = ((size_t)t * c->layers + layer) * c->heads;
        for (int i = 0; i < c->cells; i++) {
            float sum = 0.0f;
            for (int h = first; h <= last; h++) sum += c->head_alpha[(pair + h) * c->cells + i];
            alpha[(size_t)t * c->cells + i] = sum / (float)n;
        }
        for (int k = 0; self_attention && k < c->length; k++) {
            float sum = 0.0f;
            for (int h = first; h <= last; h++) sum += c->self_attention[(pair + h) * c->length + k];
            self_attention[(size_t)t * c->length + k] = sum / (float)n;
        }
    }
    return 0;
}

const char *caption_display_text(const SatModel *m, const Caption *c, char *buffer, size_t size) {
    caption_text(m, c, buffer, size);
    size_t used = strlen(buffer);
    static const char ellipsis[] = " \xe2\x80\xa6";
    if (!c->finished && c->length > 0 && used + sizeof ellipsis <= size) memcpy(buffer + used, ellipsis, sizeof ellipsis);
    return buffer;
}
