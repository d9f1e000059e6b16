#include "model.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchnorm.h"
#include "init.h"
#include "safetensors.h"

static const char FORMAT_NAME[] = "show-attend-tell-c";
static const char FORMAT_VERSION[] = "1";

void sat_config_defaults(SatConfig *c) {
    memset(c, 0, sizeof *c);
    c->image_size = 224;
    snprintf(c->encoder_spec, sizeof c->encoder_spec, "%s", "32s2,64p,128p,256,256p");
    c->embed_dim = 256;
    c->hidden_dim = 512;
    c->attention_dim = 256;
    c->use_attention = 1;
    c->score = ATTENTION_ADDITIVE;
    c->dropout = 0.5f;
    c->doubly_stochastic = -1.0f; /* the decoder's default (sat_config_resolve_defaults) */
    c->heads = 4;
    c->encoder_layers = -1; /* the decoder's default: 1 for the Transformer, none for the LSTMs (build_layout) */
    c->decoder_layers = 2;
    c->ff_dim = 1024;
    c->gelu = 1;
    c->tied = -1; /* the decoder's default: tied for the Transformer, untied for the LSTMs (build_layout) */
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(c->image_mean, mean, sizeof mean);
    memcpy(c->image_std, std, sizeof std);
}

void sat_config_resolve_defaults(SatConfig *c) {
    if (c->tied < 0) c->tied = c->transformer;
    if (c->encoder_layers < 0) c->encoder_layers = c->transformer;
    /* Xu et al.'s lambda for the LSTMs; the Transformer trains without the
     * penalty unless asked (its files from before it could have one say 0.005). */
    if (c->doubly_stochastic < 0.0f) c->doubly_stochastic = c->transformer ? 0.0f : 0.005f;
}

/* "32s2,64p,128p": one comma-separated item per convolution. */
int sat_encoder_layout(const SatConfig *c, SatEncoderLayout *layout, Error *err) {
    memset(layout, 0, sizeof *layout);
    int channels = 3, size = c->image_size;
    const char *p = c->encoder_spec;
    if (c->image_size < 8 || c->image_size > 4096)
        return error_set(err, "image size %d out of range (8 to 4096)", c->image_size);
    while (*p) {
        if (layout->count == SAT_MAX_CONV)
            return error_set(err, "encoder spec \"%s\": more than %d convolutions", c->encoder_spec, SAT_MAX_CONV);
        char *end;
        long out = strtol(p, &end, 10);
        if (end == p || out < 1 || out > 4096)
            return error_set(err, "encoder spec \"%s\": expected a channel count at \"%s\" (format: 32s2,64p,128p)",
                             c->encoder_spec, p);
        int stride = 1, pool = 0, residual = 0;
        const char *item = p;
        p = end;
        while (*p && *p != ',') {
            if (p[0] == 's' && p[1] == '2') {
                stride = 2;
                p += 2;
            } else if (p[0] == 'p') {
                pool = 1;
                p++;
            } else if (p[0] == 'r') {
                residual = 1;
                p++;
            } else {
                return error_set(err, "encoder spec \"%s\": unknown suffix at \"%s\" (s2 = stride 2, p = max-pool, "
                                      "r = residual block)", c->encoder_spec, p);
            }
        }
        if (*p == ',') p++;
        if (residual && (stride != 1 || out != channels))
            return error_set(err, "encoder spec \"%s\": the residual block at \"%.*s\" must keep its input's %d "
                                  "channels and stride 1 (its shortcut is the identity)",
                             c->encoder_spec, (int)(p - item), item, channels);
        if (residual && layout->count + 2 > SAT_MAX_CONV)
            return error_set(err, "encoder spec \"%s\": more than %d convolutions", c->encoder_spec, SAT_MAX_CONV);
        /* A residual block is two convolutions; the second adds the block's input before its ReLU. */
        for (int part = 0; part <= residual; part++) {
            int i = layout->count;
            layout->in_channels[i] = channels;
            layout->in_size[i] = size;
            layout->channels[i] = (int)out;
            layout->stride[i] = stride;
            layout->pool[i] = part == residual ? pool : 0;
            layout->skip[i] = residual && part == 1;
            size = (size + 2 - 3) / stride + 1;
            if (layout->pool[i]) size /= 2;
            if (size < 1)
                return error_set(err, "encoder spec \"%s\" shrinks a %d-pixel image to nothing", c->encoder_spec,
                                 c->image_size);
            layout->out_size[i] = size;
            channels = (int)out;
            layout->count++;
        }
    }
    if (layout->count == 0) return error_set(err, "encoder spec is empty");
    return 0;
}

/* One walk over the model's tensors, in file order, serves three purposes:
 * building the table, binding named views to a block, and initialising. */
typedef enum { WALK_BUILD, WALK_BIND, WALK_INIT } WalkMode;
typedef enum { INIT_UNIFORM, INIT_NORMAL, INIT_CONSTANT } InitKind;

typedef struct {
    WalkMode mode;
    TensorTable *table;
    float *block;
    Rng *rng;
    int index;
    Error *err;
    int failed;
} Walker;

static float *walk(Walker *w, const char *name, int flags, InitKind init, float value, int ndim,
                   long d0, long d1, long d2, long d3) {
    if (w->failed) return NULL;
    long shape[4] = {d0, d1, d2, d3};
    if (w->mode == WALK_BUILD) {
        if (tensor_table_add(w->table, name, ndim, shape, flags, w->err) < 0) w->failed = 1;
        return NULL;
    }
    const TensorSpec *s = &w->table->specs[w->index++];
    float *data = w->block + s->offset;
    if (w->mode == WALK_INIT) {
        if (init == INIT_UNIFORM) init_uniform(data, s->numel, value, w->rng);
        else if (init == INIT_NORMAL) init_normal(data, s->numel, value, w->rng);
        else init_constant(data, s->numel, value);
    }
    return data;
}

static float fan_in_bound(long fan_in) { return 1.0f / sqrtf((float)fan_in); }

enum { W = TENSOR_TRAINABLE | TENSOR_DECAY, B = TENSOR_TRAINABLE };

static void walk_encoder(Walker *w, const SatModel *m, SatTensors *v) {
    char name[TENSOR_NAME_MAX];
    for (int l = 0; l < m->encoder.count; l++) {
        long out = m->encoder.channels[l], in = m->encoder.in_channels[l];
        snprintf(name, sizeof name, "encoder.conv%d.weight", l);
        v->conv_weight[l] = walk(w, name, W, INIT_UNIFORM, fan_in_bound(in * 9), 4, out, in, 3, 3);
        snprintf(name, sizeof name, "encoder.bn%d.weight", l);
        v->bn_weight[l] = walk(w, name, B, INIT_CONSTANT, 1.0f, 1, out, 0, 0, 0);
        snprintf(name, sizeof name, "encoder.bn%d.bias", l);
        v->bn_bias[l] = walk(w, name, B, INIT_CONSTANT, 0.0f, 1, out, 0, 0, 0);
        snprintf(name, sizeof name, "encoder.bn%d.running_mean", l);
        v->bn_running_mean[l] = walk(w, name, 0, INIT_CONSTANT, 0.0f, 1, out, 0, 0, 0);
        snprintf(name, sizeof name, "encoder.bn%d.running_var", l);
        v->bn_running_var[l] = walk(w, name, 0, INIT_CONSTANT, 1.0f, 1, out, 0, 0, 0);
    }
}

static void walk_attention(Walker *w, const SatModel *m, SatTensors *v) {
    const SatConfig *c = &m->config;
    long D = m->features, H = c->hidden_dim, A = c->attention_dim;
    AttentionParams *a = &v->attention;
    memset(a, 0, sizeof *a);
    if (c->score == ATTENTION_ADDITIVE) {
        a->feature_weight = walk(w, "decoder.attention.feature.weight", W, INIT_UNIFORM, fan_in_bound(D), 2, A, D, 0, 0);
        a->feature_bias = walk(w, "decoder.attention.feature.bias", B, INIT_UNIFORM, fan_in_bound(D), 1, A, 0, 0, 0);
        a->query_weight = walk(w, "decoder.attention.query.weight", W, INIT_UNIFORM, fan_in_bound(H), 2, A, H, 0, 0);
        a->score_vector = walk(w, "decoder.attention.score.weight", W, INIT_UNIFORM, fan_in_bound(A), 1, A, 0, 0, 0);
    } else if (c->score == ATTENTION_DOT) {
        a->query_weight = walk(w, "decoder.attention.query.weight", W, INIT_UNIFORM, fan_in_bound(H), 2, D, H, 0, 0);
    } else {
        a->query_weight = walk(w, "decoder.attention.bilinear.weight", W, INIT_UNIFORM, fan_in_bound(D), 2, H, D, 0, 0);
    }
    if (!c->sentinel) {
        v->gate_weight = walk(w, "decoder.gate.weight", W, INIT_UNIFORM, fan_in_bound(H), 2, 1, H, 0, 0);
        v->gate_bias = walk(w, "decoder.gate.bias", B, INIT_UNIFORM, fan_in_bound(H), 1, 1, 0, 0, 0);
        return;
    }
    /* The sentinel's gate is one linear layer over [x; h] (fan-in E + H), stored as its two halves. */
    long E = c->embed_dim;
    float gate_bound = fan_in_bound(E + H);
    SentinelParams *s = &v->sentinel;
    s->input_weight = walk(w, "decoder.sentinel.input_weight", W, INIT_UNIFORM, gate_bound, 2, H, E, 0, 0);
    s->hidden_weight = walk(w, "decoder.sentinel.hidden_weight", W, INIT_UNIFORM, gate_bound, 2, H, H, 0, 0);
    s->bias = walk(w, "decoder.sentinel.bias", B, INIT_UNIFORM, gate_bound, 1, H, 0, 0, 0);
    s->projection = walk(w, "decoder.sentinel.projection", W, INIT_UNIFORM, fan_in_bound(H), 2, D, H, 0, 0);
}

static void walk_decoder(Walker *w, const SatModel *m, SatTensors *v) {
    const SatConfig *c = &m->config;
    long D = m->features, H = c->hidden_dim, E = c->embed_dim, V = c->vocab_size;
    v->init_h_weight = walk(w, "decoder.init_h.weight", W, INIT_UNIFORM, fan_in_bound(D), 2, H, D, 0, 0);
    v->init_h_bias = walk(w, "decoder.init_h.bias", B, INIT_UNIFORM, fan_in_bound(D), 1, H, 0, 0, 0);
    v->init_c_weight = walk(w, "decoder.init_c.weight", W, INIT_UNIFORM, fan_in_bound(D), 2, H, D, 0, 0);
    v->init_c_bias = walk(w, "decoder.init_c.bias", B, INIT_UNIFORM, fan_in_bound(D), 1, H, 0, 0, 0);
    /* Tied, the embedding is also the output layer's weight (Press and Wolf 2017),
     * so it starts as that layer would; untied it keeps nn.Embedding's N(0, 1). */
    v->embedding = c->tied ? walk(w, "decoder.embedding.weight", W, INIT_UNIFORM, fan_in_bound(E), 2, V, E, 0, 0)
                           : walk(w, "decoder.embedding.weight", W, INIT_NORMAL, 1.0f, 2, V, E, 0, 0);
    if (c->use_attention) walk_attention(w, m, v);
    float lstm_bound = fan_in_bound(H);
    v->lstm_weight_ih = walk(w, "decoder.lstm.weight_ih", W, INIT_UNIFORM, lstm_bound, 2, 4 * H, E + D, 0, 0);
    v->lstm_weight_hh = walk(w, "decoder.lstm.weight_hh", W, INIT_UNIFORM, lstm_bound, 2, 4 * H, H, 0, 0);
    v->lstm_bias = walk(w, "decoder.lstm.bias", B, INIT_UNIFORM, lstm_bound, 1, 4 * H, 0, 0, 0);
    v->out_hidden_weight = walk(w, "decoder.out_hidden.weight", W, INIT_UNIFORM, fan_in_bound(H), 2, E, H, 0, 0);
    v->out_hidden_bias = walk(w, "decoder.out_hidden.bias", B, INIT_UNIFORM, fan_in_bound(H), 1, E, 0, 0, 0);
    v->out_context_weight = walk(w, "decoder.out_context.weight", W, INIT_UNIFORM, fan_in_bound(D), 2, E, D, 0, 0);
    v->out_context_bias = walk(w, "decoder.out_context.bias", B, INIT_UNIFORM, fan_in_bound(D), 1, E, 0, 0, 0);
    /* Tied, both views address one tensor, so backward's two accumulations sum. */
    v->out_weight = c->tied ? v->embedding
                            : walk(w, "decoder.out.weight", W, INIT_UNIFORM, fan_in_bound(E), 2, V, E, 0, 0);
    v->out_bias = walk(w, "decoder.out.bias", B, INIT_UNIFORM, fan_in_bound(E), 1, V, 0, 0, 0);
    /* Last, so a model without the aux head has the same layout and initial values. */
    if (c->aux_weight > 0.0f) {
        v->aux_weight = walk(w, "decoder.aux.weight", W, INIT_UNIFORM, fan_in_bound(D), 2, V, D, 0, 0);
        v->aux_bias = walk(w, "decoder.aux.bias", B, INIT_UNIFORM, fan_in_bound(D), 1, V, 0, 0, 0);
    }
}

/* PyTorch's initialisations: nn.MultiheadAttention's Xavier-uniform in_proj
 * and zero biases, nn.Linear's uniform(+-1/sqrt(fan_in)), LayerNorm 1 and 0. */
static void walk_transformer_layer(Walker *w, const SatModel *m, const char *prefix, long C, int decoder,
                                   TransformerLayer *v) {
    long F = m->config.ff_dim;
    float xavier = sqrtf(6.0f / (float)(C + 3 * C));
    char name[TENSOR_NAME_MAX];
#define NAMED(suffix) (snprintf(name, sizeof name, "%s%s", prefix, suffix), name)
    v->norm1_weight = walk(w, NAMED("norm1.weight"), B, INIT_CONSTANT, 1.0f, 1, C, 0, 0, 0);
    v->norm1_bias = walk(w, NAMED("norm1.bias"), B, INIT_CONSTANT, 0.0f, 1, C, 0, 0, 0);
    v->self_in_weight = walk(w, NAMED("self_attn.in_proj_weight"), W, INIT_UNIFORM, xavier, 2, 3 * C, C, 0, 0);
    v->self_in_bias = walk(w, NAMED("self_attn.in_proj_bias"), B, INIT_CONSTANT, 0.0f, 1, 3 * C, 0, 0, 0);
    v->self_out_weight = walk(w, NAMED("self_attn.out_proj.weight"), W, INIT_UNIFORM, fan_in_bound(C), 2, C, C, 0, 0);
    v->self_out_bias = walk(w, NAMED("self_attn.out_proj.bias"), B, INIT_CONSTANT, 0.0f, 1, C, 0, 0, 0);
    if (decoder) {
        v->cross_in_weight = walk(w, NAMED("multihead_attn.in_proj_weight"), W, INIT_UNIFORM, xavier, 2, 3 * C, C, 0, 0);
        v->cross_in_bias = walk(w, NAMED("multihead_attn.in_proj_bias"), B, INIT_CONSTANT, 0.0f, 1, 3 * C, 0, 0, 0);
        v->cross_out_weight =
            walk(w, NAMED("multihead_attn.out_proj.weight"), W, INIT_UNIFORM, fan_in_bound(C), 2, C, C, 0, 0);
        v->cross_out_bias = walk(w, NAMED("multihead_attn.out_proj.bias"), B, INIT_CONSTANT, 0.0f, 1, C, 0, 0, 0);
    }
    v->norm2_weight = walk(w, NAMED("norm2.weight"), B, INIT_CONSTANT, 1.0f, 1, C, 0, 0, 0);
    v->norm2_bias = walk(w, NAMED("norm2.bias"), B, INIT_CONSTANT, 0.0f, 1, C, 0, 0, 0);
    if (decoder) {
        v->norm3_weight = walk(w, NAMED("norm3.weight"), B, INIT_CONSTANT, 1.0f, 1, C, 0, 0, 0);
        v->norm3_bias = walk(w, NAMED("norm3.bias"), B, INIT_CONSTANT, 0.0f, 1, C, 0, 0, 0);
    }
    v->ff1_weight = walk(w, NAMED("linear1.weight"), W, INIT_UNIFORM, fan_in_bound(C), 2, F, C, 0, 0);
    v->ff1_bias = walk(w, NAMED("linear1.bias"), B, INIT_UNIFORM, fan_in_bound(C), 1, F, 0, 0, 0);
    v->ff2_weight = walk(w, NAMED("linear2.weight"), W, INIT_UNIFORM, fan_in_bound(F), 2, C, F, 0, 0);
    v->ff2_bias = walk(w, NAMED("linear2.bias"), B, INIT_UNIFORM, fan_in_bound(F), 1, C, 0, 0, 0);
#undef NAMED
}

/* The grid encoder of width C, its tensors' names behind `base` ("transformer."
 * for the Transformer, "grid_encoder." in front of an LSTM). */
static void walk_grid_encoder(Walker *w, const SatModel *m, const char *base, long C, TransformerParams *t) {
    const SatConfig *c = &m->config;
    long D = m->features;
    char name[TENSOR_NAME_MAX];
#define NAMED(suffix) (snprintf(name, sizeof name, "%s%s", base, suffix), name)
    t->grid_weight = walk(w, NAMED("grid.weight"), W, INIT_UNIFORM, fan_in_bound(D), 2, C, D, 0, 0);
    t->grid_bias = walk(w, NAMED("grid.bias"), B, INIT_UNIFORM, fan_in_bound(D), 1, C, 0, 0, 0);
    t->grid_rows = walk(w, NAMED("grid.rows"), B, INIT_NORMAL, 0.1f, 2, m->grid_h, C, 0, 0);
    t->grid_columns = walk(w, NAMED("grid.columns"), B, INIT_NORMAL, 0.1f, 2, m->grid_w, C, 0, 0);
    for (int l = 0; l < c->encoder_layers; l++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%sencoder.layers.%d.", base, l);
        walk_transformer_layer(w, m, prefix, C, 0, &t->encoder[l]);
    }
    if (c->encoder_layers > 0) {
        t->encoder_norm_weight = walk(w, NAMED("encoder.norm.weight"), B, INIT_CONSTANT, 1.0f, 1, C, 0, 0, 0);
        t->encoder_norm_bias = walk(w, NAMED("encoder.norm.bias"), B, INIT_CONSTANT, 0.0f, 1, C, 0, 0, 0);
    }
#undef NAMED
}

static void walk_transformer(Walker *w, const SatModel *m, SatTensors *v) {
    const SatConfig *c = &m->config;
    long C = c->embed_dim, V = c->vocab_size;
    TransformerParams *t = &v->transformer;
    memset(t, 0, sizeof *t);
    walk_grid_encoder(w, m, "transformer.", C, t);
    char prefix[64];
    t->embedding = walk(w, "transformer.embedding.weight", W, INIT_NORMAL, 1.0f / sqrtf((float)C), 2, V, C, 0, 0);
    for (int l = 0; l < c->decoder_layers; l++) {
        snprintf(prefix, sizeof prefix, "transformer.decoder.layers.%d.", l);
        walk_transformer_layer(w, m, prefix, C, 1, &t->decoder[l]);
    }
    t->decoder_norm_weight = walk(w, "transformer.decoder.norm.weight", B, INIT_CONSTANT, 1.0f, 1, C, 0, 0, 0);
    t->decoder_norm_bias = walk(w, "transformer.decoder.norm.bias", B, INIT_CONSTANT, 0.0f, 1, C, 0, 0, 0);
    if (!c->tied) t->out_weight = walk(w, "transformer.out.weight", W, INIT_UNIFORM, fan_in_bound(C), 2, V, C, 0, 0);
    t->out_bias = walk(w, "transformer.out.bias", B, INIT_UNIFORM, fan_in_bound(C), 1, V, 0, 0, 0);
}

AttentionShape sat_attention_shape(const SatModel *m, int rows) {
    return (AttentionShape){.score = m->config.score, .batch = rows, .cells = m->cells, .features = m->features,
                            .hidden = m->config.hidden_dim, .attention = m->config.attention_dim};
}

SentinelShape sat_sentinel_shape(const SatModel *m, int rows) {
    return (SentinelShape){.batch = rows, .embed = m->config.embed_dim, .hidden = m->config.hidden_dim,
                           .features = m->features};
}

TransformerShape sat_grid_encoder_shape(const SatModel *m) {
    TransformerShape s = sat_transformer_shape(m);
    s.dim = m->features, s.decoder_layers = 0, s.tied = 0, s.dropout = 0.0f, s.doubly_stochastic = 0.0f;
    return s;
}

int sat_has_grid_encoder(const SatModel *m) { return !m->config.transformer && m->config.encoder_layers > 0; }

int sat_grid_encoder_buffers_create(TransformerBuffers **buffers, const SatModel *m, int images, Error *err) {
    TransformerShape shape = sat_grid_encoder_shape(m);
    return transformer_buffers_create(buffers, &shape, images, 1, 1, err); /* no decoder: 1 row, 1 step */
}

TransformerShape sat_transformer_shape(const SatModel *m) {
    const SatConfig *c = &m->config;
    return (TransformerShape){.grid_h = m->grid_h, .grid_w = m->grid_w, .features = m->features, .dim = c->embed_dim,
                              .heads = c->heads, .ff = c->ff_dim, .vocab = c->vocab_size,
                              .encoder_layers = c->encoder_layers, .decoder_layers = c->decoder_layers,
                              .gelu = c->gelu, .tied = c->tied, .dropout = c->dropout,
                              .doubly_stochastic = c->doubly_stochastic,
                              .penalty_excess_only = c->penalty_excess_only};
}

static void walk_model(Walker *w, const SatModel *m, SatTensors *v) {
    memset(v, 0, sizeof *v);
    walk_encoder(w, m, v);
    if (m->config.transformer) {
        walk_transformer(w, m, v);
    } else {
        walk_decoder(w, m, v);
        /* Last, so an LSTM without it has the layout of the files before it. */
        if (sat_has_grid_encoder(m)) walk_grid_encoder(w, m, "grid_encoder.", m->features, &v->transformer);
    }
}

void sat_tensors_bind(const SatModel *m, float *block, SatTensors *views) {
    Walker w = {.mode = WALK_BIND, .table = (TensorTable *)&m->table, .block = block};
    walk_model(&w, m, views);
}

void sat_model_init_params(SatModel *m, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    Walker w = {.mode = WALK_INIT, .table = &m->table, .block = m->params, .rng = &rng};
    walk_model(&w, m, &m->p);
}

int sat_decoder_parse(const char *name, SatConfig *config) {
    static const char *const names[] = {"attention", "adaptive", "bottleneck", "transformer"};
    int kind = -1;
    for (int k = 0; k < 4; k++)
        if (strcmp(name, names[k]) == 0) kind = k;
    if (kind < 0) return -1;
    config->use_attention = kind != 2;
    config->sentinel = kind == 1;
    config->transformer = kind == 3;
    return 0;
}

const char *sat_decoder_name(const SatConfig *c) {
    return c->transformer ? "transformer" : !c->use_attention ? "bottleneck" : c->sentinel ? "adaptive" : "attention";
}

int sat_penalty_parse(const char *name, SatConfig *config) {
    if (strcmp(name, "doubly_stochastic") != 0 && strcmp(name, "excess") != 0) return -1;
    config->penalty_excess_only = strcmp(name, "excess") == 0;
    return 0;
}

const char *sat_penalty_name(const SatConfig *c) { return c->penalty_excess_only ? "excess" : "doubly_stochastic"; }

static int check_transformer(const SatConfig *c, Error *err) {
    if (c->heads < 1 || c->embed_dim % c->heads != 0)
        return error_set(err, "transformer: width %d must split into %d heads", c->embed_dim, c->heads);
    if (c->encoder_layers < 0 || c->encoder_layers > TRANSFORMER_MAX_LAYERS || c->decoder_layers < 1 ||
        c->decoder_layers > TRANSFORMER_MAX_LAYERS)
        return error_set(err, "transformer: %d encoder and %d decoder layers; use 0 to %d and 1 to %d",
                         c->encoder_layers, c->decoder_layers, TRANSFORMER_MAX_LAYERS, TRANSFORMER_MAX_LAYERS);
    if (c->ff_dim < 1 || c->ff_dim > 65536) return error_set(err, "transformer: feed-forward width %d out of range (1 to 65536)", c->ff_dim);
    if (c->aux_weight > 0.0f) return error_set(err, "transformer: the auxiliary word loss is for the LSTM decoders");
    return 0;
}

/* An LSTM's grid encoder: its width is the CNN's last channel count. */
static int check_grid_encoder(const SatConfig *c, Error *err) {
    SatEncoderLayout layout;
    if (sat_encoder_layout(c, &layout, err) != 0) return -1;
    int D = layout.channels[layout.count - 1];
    if (c->heads < 1 || D % c->heads != 0)
        return error_set(err, "grid encoder: the CNN's %d channels must split into %d heads", D, c->heads);
    if (c->encoder_layers > TRANSFORMER_MAX_LAYERS)
        return error_set(err, "grid encoder: %d layers; use 0 to %d", c->encoder_layers, TRANSFORMER_MAX_LAYERS);
    if (c->ff_dim < 1 || c->ff_dim > 65536)
        return error_set(err, "grid encoder: feed-forward width %d out of range (1 to 65536)", c->ff_dim);
    return 0;
}

static int check_config(const SatConfig *c, Error *err) {
    if (c->vocab_size < 5 || c->vocab_size > 1000000)
        return error_set(err, "vocabulary size %d out of range (5 to 1000000)", c->vocab_size);
    if (c->embed_dim < 1 || c->hidden_dim < 1 || c->attention_dim < 1 || c->embed_dim > 65536 ||
        c->hidden_dim > 65536 || c->attention_dim > 65536)
        return error_set(err, "embedding, hidden and attention sizes must be 1 to 65536 (got %d, %d, %d)",
                         c->embed_dim, c->hidden_dim, c->attention_dim);
    if ((unsigned)c->score > ATTENTION_GENERAL) return error_set(err, "unknown attention score function %d", (int)c->score);
    if (c->sentinel && !c->use_attention) return error_set(err, "a visual sentinel needs attention (decoder adaptive)");
    if (c->transformer && check_transformer(c, err) != 0) return -1;
    if (!c->transformer && c->encoder_layers > 0 && check_grid_encoder(c, err) != 0) return -1;
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f)) return error_set(err, "dropout %g must be in [0, 1)", c->dropout);
    if (!(c->input_dropout >= 0.0f && c->input_dropout < 1.0f))
        return error_set(err, "input dropout %g must be in [0, 1)", c->input_dropout);
    if (c->transformer && c->input_dropout > 0.0f)
        return error_set(err, "input dropout is the LSTM decoders'; the Transformer's dropout is --dropout");
    if (!(c->doubly_stochastic >= 0.0f)) return error_set(err, "doubly stochastic lambda %g must be >= 0", c->doubly_stochastic);
    if (!(c->aux_weight >= 0.0f && isfinite(c->aux_weight)))
        return error_set(err, "auxiliary loss weight %g must be finite and >= 0", c->aux_weight);
    for (int i = 0; i < 3; i++)
        if (!(c->image_std[i] > 0.0f) || !isfinite(c->image_mean[i]))
            return error_set(err, "image normalisation: std must be positive and mean finite");
    return 0;
}

static int copy_vocab(SatModel *m, const char *const *vocab, Error *err) {
    static const char *const specials[4] = {"<pad>", "<start>", "<end>", "<unk>"};
    m->vocab = calloc(m->config.vocab_size, sizeof *m->vocab);
    if (!m->vocab) return error_set(err, "out of memory for the vocabulary");
    for (int i = 0; i < m->config.vocab_size; i++) {
        char fallback[32];
        snprintf(fallback, sizeof fallback, "w%d", i);
        const char *word = vocab ? vocab[i] : i < 4 ? specials[i] : fallback;
        m->vocab[i] = strdup(word);
        if (!m->vocab[i]) return error_set(err, "out of memory for the vocabulary");
    }
    return 0;
}

/* Per-image working sizes in floats. The caps are far above any sensible
 * model (the default needs at most 3.6 Mi floats per map) but keep a corrupt
 * or hostile configuration (a 4096-pixel input with 4096 channels: a few
 * hundred KB of weights) from asking for terabytes when it captions, and
 * keep every product the convolutions and attention compute inside an int. */
enum { MAX_MAP_FLOATS = 1 << 26, MAX_IM2COL_FLOATS = 1 << 27, MAX_ATTENTION_FLOATS = 1 << 22 };

static int check_working_sizes(const SatModel *m, Error *err) {
    const SatEncoderLayout *e = &m->encoder;
    for (int l = 0; l < e->count; l++) {
        long long size = (e->in_size[l] + 2 - 3) / e->stride[l] + 1; /* before the pool */
        long long map = (long long)e->channels[l] * size * size, col = (long long)e->in_channels[l] * 9 * size * size;
        if (map > MAX_MAP_FLOATS || col > MAX_IM2COL_FLOATS)
            return error_set(err, "encoder layer %d makes %lld x %lld x %lld values per image, more than this "
                                  "implementation allows (%d); use a smaller image size or fewer channels",
                             l, (long long)e->channels[l], size, size, MAX_MAP_FLOATS);
    }
    long long widest = m->features > m->config.attention_dim ? m->features : m->config.attention_dim;
    if ((long long)m->cells * widest > MAX_ATTENTION_FLOATS)
        return error_set(err, "attention over %d cells of %lld values is more than this implementation allows (%d)",
                         m->cells, widest, MAX_ATTENTION_FLOATS);
    return 0;
}

/* The configuration checked, its encoder layout and the tensor table: all
 * but the memory for the values, so a loader can compare the table with a
 * file before allocating anything. */
static int build_layout(SatModel *m, const SatConfig *config, Error *err) {
    memset(m, 0, sizeof *m);
    m->config = *config;
    sat_config_resolve_defaults(&m->config);
    if (check_config(&m->config, err) != 0 || sat_encoder_layout(config, &m->encoder, err) != 0) return -1;
    int last = m->encoder.count - 1;
    m->grid_h = m->grid_w = m->encoder.out_size[last];
    m->cells = m->grid_h * m->grid_w;
    m->features = m->encoder.channels[last];
    if (check_working_sizes(m, err) != 0) return -1;
    Walker w = {.mode = WALK_BUILD, .table = &m->table, .err = err};
    walk_model(&w, m, &m->p);
    if (w.failed) {
        sat_model_free(m);
        return -1;
    }
    return 0;
}

/* The parameters (zeroed) and the vocabulary of a laid-out model. */
static int allocate(SatModel *m, const char *const *vocab, Error *err) {
    m->params = calloc(m->table.total, sizeof(float));
    if (!m->params || copy_vocab(m, vocab, err) != 0) {
        error_set(err, "out of memory for %zu parameters", m->table.total);
        sat_model_free(m);
        return -1;
    }
    sat_tensors_bind(m, m->params, &m->p);
    return 0;
}

int sat_model_create(SatModel *m, const SatConfig *config, const char *const *vocab, Error *err) {
    if (build_layout(m, config, err) != 0) return -1;
    return allocate(m, vocab, err);
}

void sat_model_free(SatModel *m) {
    if (m->vocab)
        for (int i = 0; i < m->config.vocab_size; i++) free(m->vocab[i]);
    free(m->vocab);
    free(m->params);
    free(m->folded);
    tensor_table_free(&m->table);
    memset(m, 0, sizeof *m);
}

int sat_model_prepare_inference(SatModel *m, Error *err) {
    if (!m->folded) {
        size_t total = 0;
        for (int l = 0; l < m->encoder.count; l++)
            total += (size_t)m->encoder.channels[l] * (m->encoder.in_channels[l] * 9 + 1);
        m->folded = malloc(total * sizeof(float));
        if (!m->folded) return error_set(err, "out of memory folding batch norm");
    }
    float *next = m->folded;
    for (int l = 0; l < m->encoder.count; l++) {
        long per_channel = (long)m->encoder.in_channels[l] * 9;
        int out = m->encoder.channels[l];
        m->folded_weight[l] = next;
        m->folded_bias[l] = next + out * per_channel;
        next += out * (per_channel + 1);
        batchnorm_fold_into_conv(m->folded_weight[l], m->folded_bias[l], m->p.conv_weight[l], NULL,
                                 m->p.bn_weight[l], m->p.bn_bias[l], m->p.bn_running_mean[l],
                                 m->p.bn_running_var[l], out, per_channel, 1e-5f);
    }
    return 0;
}

/* ---- the weights file ---- */

char *sat_config_to_json(const SatConfig *c) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "vocab_size", c->vocab_size);
    cJSON_AddStringToObject(root, "encoder", c->encoder_spec);
    cJSON_AddNumberToObject(root, "embed_dim", c->embed_dim);
    cJSON_AddNumberToObject(root, "hidden_dim", c->hidden_dim);
    cJSON_AddNumberToObject(root, "attention_dim", c->attention_dim);
    cJSON_AddStringToObject(root, "decoder", sat_decoder_name(c));
    cJSON_AddStringToObject(root, "score", attention_score_name(c->score));
    cJSON_AddNumberToObject(root, "dropout", c->dropout);
    cJSON_AddNumberToObject(root, "doubly_stochastic", c->doubly_stochastic);
    if (c->penalty_excess_only) cJSON_AddStringToObject(root, "attention_penalty", sat_penalty_name(c));
    cJSON_AddNumberToObject(root, "aux_weight", c->aux_weight);
    if (c->input_dropout > 0.0f) cJSON_AddNumberToObject(root, "input_dropout", c->input_dropout);
    if (c->transformer) {
        cJSON_AddNumberToObject(root, "heads", c->heads);
        cJSON_AddNumberToObject(root, "encoder_layers", c->encoder_layers);
        cJSON_AddNumberToObject(root, "decoder_layers", c->decoder_layers);
        cJSON_AddNumberToObject(root, "ff_dim", c->ff_dim);
        cJSON_AddStringToObject(root, "activation", c->gelu ? "gelu" : "relu");
        cJSON_AddBoolToObject(root, "tied", c->tied);
    } else {
        /* Absent from an LSTM's file: untied, no grid encoder (files older than the options). */
        if (c->tied > 0) cJSON_AddBoolToObject(root, "tied", 1);
        if (c->encoder_layers > 0) {
            cJSON_AddNumberToObject(root, "encoder_layers", c->encoder_layers);
            cJSON_AddNumberToObject(root, "heads", c->heads);
            cJSON_AddNumberToObject(root, "ff_dim", c->ff_dim);
            cJSON_AddStringToObject(root, "activation", c->gelu ? "gelu" : "relu");
        }
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

/* What vision/image.c and image_to_tensor do, in words a re-implementation
 * can follow (README, "The model, exactly as implemented"). Informative
 * only: the loader reads image_size, mean and std, so files written before
 * these strings (whose "resize" said bilinear, wrongly) load the same. */
static const char PREPROCESS_DECODE[] =
    "stb_image 2.27 to 8-bit RGB as stored (no colour management; grey repeated; 16-bit samples' high byte); "
    "an alpha channel (also palette transparency, GIF) composited over white as (c*a + 255*(255-a) + 127) div 255, "
    "a grey or RGB PNG's colour key ignored; EXIF orientation applied to JPEG only";
static const char PREPROCESS_RESIZE[] =
    "stb_image_resize 0.97 stbir_resize_uint8_generic, STBIR_FILTER_DEFAULT, STBIR_EDGE_CLAMP, "
    "STBIR_COLORSPACE_LINEAR: each axis stretched to image_size on its own; Mitchell-Netravali (B = C = 1/3) "
    "widened by 1/scale when the axis shrinks or keeps its size, Catmull-Rom when it grows; each output's "
    "weights divided by their sum; clamped edges; float32 from v/255, horizontal pass then vertical; "
    "rounded to uint8 as floor(clamp(f, 0, 1)*255 + 0.5)";
static const char PREPROCESS_INPUT[] = "float32 RGB planes [3, image_size, image_size]: x*(1/(255*std)) - mean/std";

static char *preprocess_to_json(const SatConfig *c) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "image_size", c->image_size);
    cJSON_AddStringToObject(root, "decode", PREPROCESS_DECODE);
    cJSON_AddStringToObject(root, "resize", PREPROCESS_RESIZE);
    cJSON_AddStringToObject(root, "input", PREPROCESS_INPUT);
    cJSON_AddItemToObject(root, "mean", cJSON_CreateFloatArray(c->image_mean, 3));
    cJSON_AddItemToObject(root, "std", cJSON_CreateFloatArray(c->image_std, 3));
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

static char *vocab_to_json(const SatModel *m) {
    cJSON *array = cJSON_CreateStringArray((const char *const *)m->vocab, m->config.vocab_size);
    char *text = cJSON_PrintUnformatted(array);
    cJSON_Delete(array);
    return text;
}

int sat_model_write(const SatModel *m, const char *path, int half_precision, const SafetensorsTensor *extra,
                    int extra_count, const char *const *extra_metadata, Error *err) {
    int count = m->table.count + extra_count;
    SafetensorsTensor *tensors = calloc(count, sizeof *tensors);
    char *config = sat_config_to_json(&m->config), *preprocess = preprocess_to_json(&m->config);
    char *vocab = vocab_to_json(m);
    const char *metadata[32] = {"format", FORMAT_NAME, "format_version", FORMAT_VERSION, "config", config,
                                "preprocess", preprocess, "vocab", vocab};
    int used = 10, status = -1;
    for (int i = 0; extra_metadata && extra_metadata[i] && extra_metadata[i + 1] && used < 30; i += 2) {
        metadata[used++] = extra_metadata[i];
        metadata[used++] = extra_metadata[i + 1];
    }
    if (!tensors || !config || !preprocess || !vocab) {
        error_set(err, "%s: out of memory", path);
    } else {
        for (int i = 0; i < m->table.count; i++) {
            const TensorSpec *s = &m->table.specs[i];
            /* Running statistics stay F32: their variance can exceed half's range. */
            int half = half_precision && (s->flags & TENSOR_TRAINABLE);
            tensors[i] = (SafetensorsTensor){s->name, half ? SAFETENSORS_F16 : SAFETENSORS_F32,
                                             s->ndim, s->shape, m->params + s->offset};
        }
        for (int i = 0; i < extra_count; i++) tensors[m->table.count + i] = extra[i];
        status = safetensors_write(path, tensors, count, metadata, err);
    }
    free(tensors);
    free(config);
    free(preprocess);
    free(vocab);
    return status;
}

/* Why models[i] cannot be averaged with models[0], or NULL when it can. */
static const char *average_mismatch(const SatModel *first, const SatModel *other, const char *config_json) {
    /* The training settings the file also records are not the architecture:
     * a self-critical run from --init stores its own dropout, say. */
    SatConfig config = other->config;
    config.dropout = first->config.dropout;
    config.input_dropout = first->config.input_dropout;
    config.doubly_stochastic = first->config.doubly_stochastic;
    char *json = sat_config_to_json(&config);
    int same_config = json && strcmp(json, config_json) == 0;
    free(json);
    if (!same_config || other->table.total != first->table.total) return "its architecture differs";
    for (int w = 0; w < first->config.vocab_size; w++)
        if (strcmp(first->vocab[w], other->vocab[w]) != 0) return "its vocabulary differs";
    return NULL;
}

int sat_model_average(SatModel *out, const SatModel *models, const float *weights, int count,
                      const char *const *names, Error *err) {
    memset(out, 0, sizeof *out);
    if (count < 1) return error_set(err, "no models to average");
    char *config_json = sat_config_to_json(&models[0].config);
    if (!config_json) return error_set(err, "out of memory");
    for (int i = 1; i < count; i++) {
        const char *why = average_mismatch(&models[0], &models[i], config_json);
        if (why) {
            error_set(err, "%s cannot be averaged with %s: %s (only models of one architecture and vocabulary, "
                           "e.g. the epochs of one run or runs from the same --init, can be averaged)",
                      names[i], names[0], why);
            free(config_json);
            return -1;
        }
    }
    free(config_json);
    if (sat_model_create(out, &models[0].config, (const char *const *)models[0].vocab, err) != 0) return -1;
    for (size_t k = 0; k < out->table.total; k++) {
        double sum = 0.0;
        for (int i = 0; i < count; i++) sum += (double)weights[i] * models[i].params[k];
        out->params[k] = (float)sum;
    }
    return 0;
}

int sat_model_save(const SatModel *m, const char *path, int half_precision, Error *err) {
    return sat_model_write(m, path, half_precision, NULL, 0, NULL, err);
}

static int json_int(const cJSON *root, const char *key, int *out, Error *err) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble) ||
        fabs(item->valuedouble) > 1e9)
        return error_set(err, "config: \"%s\" must be an integer", key);
    *out = (int)item->valuedouble;
    return 0;
}

static int json_float(const cJSON *root, const char *key, float *out, Error *err) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsNumber(item)) return error_set(err, "config: \"%s\" must be a number", key);
    *out = (float)item->valuedouble;
    return 0;
}

/* A key that older files lack: absent keeps *out (the default). */
static int json_optional_float(const cJSON *root, const char *key, float *out, Error *err) {
    return cJSON_GetObjectItemCaseSensitive(root, key) ? json_float(root, key, out, err) : 0;
}

static int json_string(const cJSON *root, const char *key, const char **out, Error *err) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsString(item)) return error_set(err, "config: \"%s\" must be a string", key);
    *out = item->valuestring;
    return 0;
}

static int activation_from_json(const cJSON *root, SatConfig *c, Error *err) {
    const char *activation = NULL;
    if (json_string(root, "activation", &activation, err) != 0) return -1;
    if (strcmp(activation, "gelu") != 0 && strcmp(activation, "relu") != 0)
        return error_set(err, "config: activation \"%s\" is neither \"gelu\" nor \"relu\"", activation);
    c->gelu = strcmp(activation, "gelu") == 0;
    return 0;
}

/* The Transformer's keys, required when the decoder is "transformer". */
static int transformer_from_json(const cJSON *root, SatConfig *c, Error *err) {
    int status = json_int(root, "heads", &c->heads, err);
    status |= status ? 0 : json_int(root, "encoder_layers", &c->encoder_layers, err);
    status |= status ? 0 : json_int(root, "decoder_layers", &c->decoder_layers, err);
    status |= status ? 0 : json_int(root, "ff_dim", &c->ff_dim, err);
    status |= status ? 0 : activation_from_json(root, c, err);
    if (status) return -1;
    const cJSON *tied = cJSON_GetObjectItemCaseSensitive(root, "tied");
    if (!cJSON_IsBool(tied)) return error_set(err, "config: \"tied\" must be true or false");
    c->tied = cJSON_IsTrue(tied);
    return 0;
}

/* An LSTM's optional keys: "tied", and the grid encoder's (then required together). */
static int lstm_extras_from_json(const cJSON *root, SatConfig *c, Error *err) {
    const cJSON *tied = cJSON_GetObjectItemCaseSensitive(root, "tied");
    if (tied && !cJSON_IsBool(tied)) return error_set(err, "config: \"tied\" must be true or false");
    c->tied = cJSON_IsTrue(tied);
    c->encoder_layers = 0;
    if (!cJSON_GetObjectItemCaseSensitive(root, "encoder_layers")) return 0;
    int status = json_int(root, "encoder_layers", &c->encoder_layers, err);
    status |= status ? 0 : json_int(root, "heads", &c->heads, err);
    status |= status ? 0 : json_int(root, "ff_dim", &c->ff_dim, err);
    status |= status ? 0 : activation_from_json(root, c, err);
    if (status == 0 && c->encoder_layers < 0)
        status = error_set(err, "config: encoder_layers %d must be >= 0", c->encoder_layers);
    return status;
}

/* "attention_penalty": "excess" or "doubly_stochastic" (absent: the latter, as older files). */
static int penalty_from_json(const cJSON *root, SatConfig *c, Error *err) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "attention_penalty");
    if (!item) return 0;
    if (!cJSON_IsString(item) || sat_penalty_parse(item->valuestring, c) != 0)
        return error_set(err, "config: \"attention_penalty\" must be \"doubly_stochastic\" or \"excess\"");
    return 0;
}

int sat_config_from_json(SatConfig *c, const char *json, Error *err) {
    sat_config_defaults(c);
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return error_set(err, "config is not a JSON object");
    }
    const char *encoder = NULL, *decoder = NULL, *score = NULL;
    int status = 0;
    status |= json_int(root, "vocab_size", &c->vocab_size, err);
    status |= status ? 0 : json_string(root, "encoder", &encoder, err);
    status |= status ? 0 : json_int(root, "embed_dim", &c->embed_dim, err);
    status |= status ? 0 : json_int(root, "hidden_dim", &c->hidden_dim, err);
    status |= status ? 0 : json_int(root, "attention_dim", &c->attention_dim, err);
    status |= status ? 0 : json_string(root, "decoder", &decoder, err);
    status |= status ? 0 : json_string(root, "score", &score, err);
    status |= status ? 0 : json_float(root, "dropout", &c->dropout, err);
    status |= status ? 0 : json_float(root, "doubly_stochastic", &c->doubly_stochastic, err);
    status |= status ? 0 : json_optional_float(root, "aux_weight", &c->aux_weight, err);
    status |= status ? 0 : penalty_from_json(root, c, err);
    status |= status ? 0 : json_optional_float(root, "input_dropout", &c->input_dropout, err);
    if (status == 0) {
        if (strlen(encoder) >= sizeof c->encoder_spec) status = error_set(err, "config: encoder spec too long");
        else snprintf(c->encoder_spec, sizeof c->encoder_spec, "%s", encoder);
    }
    if (status == 0) {
        if (sat_decoder_parse(decoder, c) != 0)
            status = error_set(err, "config: decoder \"%s\" is not \"attention\", \"adaptive\", \"bottleneck\" or "
                               "\"transformer\"", decoder);
    }
    if (status == 0 && attention_score_parse(score, &c->score) != 0)
        status = error_set(err, "config: score \"%s\" is not additive, dot or general", score);
    if (status == 0 && c->transformer) status = transformer_from_json(root, c, err);
    if (status == 0 && !c->transformer) status = lstm_extras_from_json(root, c, err);
    cJSON_Delete(root);
    return status ? -1 : 0;
}

static int parse_float3(const cJSON *root, const char *key, float out[3], Error *err) {
    const cJSON *array = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsArray(array) || cJSON_GetArraySize(array) != 3)
        return error_set(err, "preprocess: \"%s\" must be an array of 3 numbers", key);
    for (int i = 0; i < 3; i++) {
        const cJSON *item = cJSON_GetArrayItem(array, i);
        if (!cJSON_IsNumber(item)) return error_set(err, "preprocess: \"%s\" must be an array of 3 numbers", key);
        out[i] = (float)item->valuedouble;
    }
    return 0;
}

static int preprocess_from_json(SatConfig *c, const char *json, Error *err) {
    cJSON *root = cJSON_Parse(json);
    int status = cJSON_IsObject(root) ? 0 : error_set(err, "preprocess is not a JSON object");
    if (status == 0) status = json_int(root, "image_size", &c->image_size, err);
    if (status == 0) status = parse_float3(root, "mean", c->image_mean, err);
    if (status == 0) status = parse_float3(root, "std", c->image_std, err);
    cJSON_Delete(root);
    return status;
}

/* Parses the vocabulary into a NULL-terminated array of borrowed strings. */
static int vocab_from_json(cJSON **array, const char *json, int expected, Error *err) {
    *array = cJSON_Parse(json);
    if (!cJSON_IsArray(*array)) return error_set(err, "vocab is not a JSON array");
    int count = cJSON_GetArraySize(*array);
    if (count != expected)
        return error_set(err, "vocab has %d words but the config says vocab_size %d", count, expected);
    static const char *const specials[4] = {"<pad>", "<start>", "<end>", "<unk>"};
    int i = 0;
    for (const cJSON *item = (*array)->child; item; item = item->next, i++) {
        if (!cJSON_IsString(item) || item->valuestring[0] == '\0')
            return error_set(err, "vocab entry %d is not a non-empty string", i);
        if (i < 4 && strcmp(item->valuestring, specials[i]) != 0)
            return error_set(err, "vocab entry %d is \"%s\", expected \"%s\"", i, item->valuestring, specials[i]);
    }
    return 0;
}

/* The file holds exactly the tensors the configuration describes (optimiser
 * state aside), each with its exact shape. Checked before the parameters are
 * allocated: the tensors' data lies in the file without overlaps, so a
 * configuration that passes cannot ask for more memory than the file holds
 * values for. */
static int check_tensor_set(const SatModel *m, const SafetensorsFile *file, Error *err) {
    for (int i = 0; i < file->count; i++)
        if (strncmp(file->entries[i].name, SAT_OPTIMIZER_PREFIX, strlen(SAT_OPTIMIZER_PREFIX)) != 0 &&
            !tensor_table_find(&m->table, file->entries[i].name))
            return error_set(err, "unexpected tensor %s (the file's config does not describe it)",
                             file->entries[i].name);
    for (int i = 0; i < m->table.count; i++) {
        const TensorSpec *spec = &m->table.specs[i];
        const SafetensorsEntry *e = safetensors_find(file, spec->name);
        if (!e) return error_set(err, "tensor %s is missing", spec->name);
        int same = e->ndim == spec->ndim;
        for (int d = 0; d < spec->ndim && same; d++) same = e->shape[d] == spec->shape[d];
        char want[96], have[96];
        if (!same)
            return error_set(err, "tensor %s has shape %s, expected %s", spec->name,
                             tensor_shape_string(e->ndim, e->shape, have, sizeof have),
                             tensor_shape_string(spec->ndim, spec->shape, want, sizeof want));
    }
    return 0;
}

static int load_from_file(SatModel *m, const SafetensorsFile *file, Error *err) {
    const char *format = safetensors_metadata(file, "format");
    if (!format || strcmp(format, FORMAT_NAME) != 0)
        return error_set(err, "not a captioning model: __metadata__.format is %s%s%s, expected \"%s\"",
                         format ? "\"" : "", format ? format : "missing", format ? "\"" : "", FORMAT_NAME);
    const char *version = safetensors_metadata(file, "format_version");
    if (!version || strcmp(version, FORMAT_VERSION) != 0)
        return error_set(err, "model format version %s is not supported (this build reads version %s)",
                         version ? version : "(missing)", FORMAT_VERSION);
    const char *config_json = safetensors_metadata(file, "config");
    const char *preprocess_json = safetensors_metadata(file, "preprocess");
    const char *vocab_json = safetensors_metadata(file, "vocab");
    if (!config_json || !preprocess_json || !vocab_json)
        return error_set(err, "__metadata__ lacks %s", !config_json ? "config" : !preprocess_json ? "preprocess" : "vocab");
    SatConfig config;
    if (sat_config_from_json(&config, config_json, err) != 0) return -1;
    if (preprocess_from_json(&config, preprocess_json, err) != 0) return -1;
    if (build_layout(m, &config, err) != 0) return -1;
    if (check_tensor_set(m, file, err) != 0) {
        sat_model_free(m);
        return -1;
    }
    cJSON *vocab_array = NULL;
    const char **words = NULL;
    int status = vocab_from_json(&vocab_array, vocab_json, config.vocab_size, err);
    if (status == 0) {
        words = malloc(sizeof *words * config.vocab_size);
        int i = 0;
        if (!words) status = error_set(err, "out of memory");
        for (const cJSON *item = vocab_array->child; words && item; item = item->next) words[i++] = item->valuestring;
    }
    if (status == 0) status = allocate(m, words, err);
    else sat_model_free(m);
    free(words);
    cJSON_Delete(vocab_array);
    if (status != 0) return -1;
    if (safetensors_read_table(file, &m->table, m->params, err) != 0 || sat_model_prepare_inference(m, err) != 0) {
        sat_model_free(m);
        return -1;
    }
    return 0;
}

/* The rest of both entry points: the model from the opened file, whose
 * name prefixes any error. */
static int load_and_close(SatModel *m, SafetensorsFile *file, const char *name, Error *err) {
    int status = load_from_file(m, file, err);
    safetensors_close(file);
    return status != 0 ? error_prefix(err, "%s", name) : 0;
}

int sat_model_load(SatModel *m, const char *path, Error *err) {
    memset(m, 0, sizeof *m);
    SafetensorsFile file;
    if (safetensors_open(&file, path, err) != 0) return -1;
    return load_and_close(m, &file, path, err);
}

int sat_model_load_memory(SatModel *m, const void *data, size_t size, const char *name, Error *err) {
    memset(m, 0, sizeof *m);
    const char *shown = name ? name : "<model in memory>";
    SafetensorsFile file;
    if (safetensors_open_memory(&file, data, size, shown, err) != 0) return -1;
    return load_and_close(m, &file, shown, err);
}
