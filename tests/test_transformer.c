/* The Transformer decoder (nn/transformer.c) against PyTorch's own
 * nn.TransformerEncoder / nn.TransformerDecoder (pre-norm) with the same
 * weights: tests/reference/transformer_reference.py writes the fixtures
 * (tests/fixtures/transformer_*.safetensors). Checks the loss, the logits,
 * every decoder layer's self- and cross-attention maps, and the gradient of
 * every weight and of the grid; then that the gradients accumulate. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "transformer.h"

static int failed, passed;

static void report(const char *fixture, const char *what, double error, double tolerance, const char *note) {
    int ok = error <= tolerance;
    printf("%-16s %-44s %10.3e %8.0e  %s %s\n", fixture, what, error, tolerance, ok ? "ok  " : "FAIL", note ? note : "");
    if (ok) passed++;
    else failed++;
}

typedef struct {
    char *names[256];
    float *values[256], *grads[256];
    size_t sizes[256];
    int count;
} Tensors;

/* The weight called name: read from the fixture (its gradient zeroed beside it). */
static float *weight(Tensors *t, const SafetensorsFile *f, const char *name, float **grad, Error *err) {
    const SafetensorsEntry *e = safetensors_find(f, name);
    if (!e || t->count == 256) {
        error_set(err, "the fixture lacks %s", name);
        return NULL;
    }
    int k = t->count++;
    t->names[k] = strdup(name);
    t->sizes[k] = e->numel;
    t->values[k] = malloc(e->numel * sizeof(float));
    t->grads[k] = calloc(e->numel, sizeof(float));
    if (!t->values[k] || !t->grads[k] || safetensors_read_floats(f, name, t->values[k], 0, NULL, e->numel, err))
        return NULL;
    *grad = t->grads[k];
    return t->values[k];
}

static void tensors_free(Tensors *t) {
    for (int k = 0; k < t->count; k++) free(t->names[k]), free(t->values[k]), free(t->grads[k]);
}

typedef struct {
    const char *suffix;
    size_t offset;
    int decoder_only;
} LayerField;

#define FIELD(suffix, member, decoder_only) {suffix, offsetof(TransformerLayer, member), decoder_only}
static const LayerField LAYER_FIELDS[] = {
    FIELD("norm1.weight", norm1_weight, 0), FIELD("norm1.bias", norm1_bias, 0),
    FIELD("self_attn.in_proj_weight", self_in_weight, 0), FIELD("self_attn.in_proj_bias", self_in_bias, 0),
    FIELD("self_attn.out_proj.weight", self_out_weight, 0), FIELD("self_attn.out_proj.bias", self_out_bias, 0),
    FIELD("norm2.weight", norm2_weight, 0), FIELD("norm2.bias", norm2_bias, 0),
    FIELD("multihead_attn.in_proj_weight", cross_in_weight, 1), FIELD("multihead_attn.in_proj_bias", cross_in_bias, 1),
    FIELD("multihead_attn.out_proj.weight", cross_out_weight, 1),
    FIELD("multihead_attn.out_proj.bias", cross_out_bias, 1),
    FIELD("norm3.weight", norm3_weight, 1), FIELD("norm3.bias", norm3_bias, 1),
    FIELD("linear1.weight", ff1_weight, 0), FIELD("linear1.bias", ff1_bias, 0),
    FIELD("linear2.weight", ff2_weight, 0), FIELD("linear2.bias", ff2_bias, 0),
};

static int bind_layer(Tensors *t, const SafetensorsFile *f, const char *prefix, int decoder, TransformerLayer *p,
                      TransformerLayer *g, Error *err) {
    for (size_t i = 0; i < sizeof LAYER_FIELDS / sizeof LAYER_FIELDS[0]; i++) {
        if (LAYER_FIELDS[i].decoder_only && !decoder) continue;
        char name[200];
        snprintf(name, sizeof name, "%s%s", prefix, LAYER_FIELDS[i].suffix);
        float **value = (float **)((char *)p + LAYER_FIELDS[i].offset), **grad = (float **)((char *)g + LAYER_FIELDS[i].offset);
        if (!(*value = weight(t, f, name, grad, err))) return -1;
    }
    return 0;
}

static int bind(Tensors *t, const SafetensorsFile *f, const TransformerShape *s, TransformerParams *p,
                TransformerParams *g, Error *err) {
    memset(p, 0, sizeof *p);
    memset(g, 0, sizeof *g);
    struct {
        const char *name;
        float **value, **grad;
    } globals[] = {
        {"transformer.grid.weight", &p->grid_weight, &g->grid_weight},
        {"transformer.grid.bias", &p->grid_bias, &g->grid_bias},
        {"transformer.grid.rows", &p->grid_rows, &g->grid_rows},
        {"transformer.grid.columns", &p->grid_columns, &g->grid_columns},
        {"transformer.embedding.weight", &p->embedding, &g->embedding},
        {"transformer.decoder.norm.weight", &p->decoder_norm_weight, &g->decoder_norm_weight},
        {"transformer.decoder.norm.bias", &p->decoder_norm_bias, &g->decoder_norm_bias},
        {"transformer.out.bias", &p->out_bias, &g->out_bias},
        {"transformer.out.weight", &p->out_weight, &g->out_weight},
        {"transformer.encoder.norm.weight", &p->encoder_norm_weight, &g->encoder_norm_weight},
        {"transformer.encoder.norm.bias", &p->encoder_norm_bias, &g->encoder_norm_bias},
    };
    for (size_t k = 0; k < sizeof globals / sizeof globals[0]; k++) {
        if ((s->tied && k == 8) || (s->encoder_layers == 0 && k >= 9)) continue;
        if (!(*globals[k].value = weight(t, f, globals[k].name, globals[k].grad, err))) return -1;
    }
    for (int l = 0; l < s->encoder_layers; l++) {
        char prefix[100];
        snprintf(prefix, sizeof prefix, "transformer.encoder.layers.%d.", l);
        if (bind_layer(t, f, prefix, 0, &p->encoder[l], &g->encoder[l], err)) return -1;
    }
    for (int l = 0; l < s->decoder_layers; l++) {
        char prefix[100];
        snprintf(prefix, sizeof prefix, "transformer.decoder.layers.%d.", l);
        if (bind_layer(t, f, prefix, 1, &p->decoder[l], &g->decoder[l], err)) return -1;
    }
    return 0;
}

/* max |a - ref| / max |ref|. */
static double normwise(const float *a, const float *ref, size_t n) {
    double worst = 0.0, largest = 0.0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)a[i] - ref[i]));
        largest = fmax(largest, fabs((double)ref[i]));
    }
    return largest > 0.0 ? worst / largest : worst;
}

static float *read_all(const SafetensorsFile *f, const char *name, size_t *n, Error *err) {
    const SafetensorsEntry *e = safetensors_find(f, name);
    if (!e) {
        error_set(err, "the fixture lacks %s", name);
        return NULL;
    }
    float *data = malloc(e->numel * sizeof(float));
    if (data && safetensors_read_floats(f, name, data, 0, NULL, e->numel, err) != 0) {
        free(data);
        return NULL;
    }
    *n = e->numel;
    return data;
}

static int parse_shape(const SafetensorsFile *f, TransformerShape *s, int *images) {
    const char *text = safetensors_metadata(f, "shape");
    if (!text) return -1;
    int gelu = 0, tied = 0;
    if (sscanf(text, "grid_h=%d grid_w=%d features=%d dim=%d heads=%d ff=%d vocab=%d encoder_layers=%d "
                     "decoder_layers=%d gelu=%d tied=%d images=%d",
               &s->grid_h, &s->grid_w, &s->features, &s->dim, &s->heads, &s->ff, &s->vocab, &s->encoder_layers,
               &s->decoder_layers, &gelu, &tied, images) != 12)
        return -1;
    s->gelu = gelu, s->tied = tied, s->dropout = 0.0f;
    const char *lambda = strstr(text, " lambda=");
    s->doubly_stochastic = lambda ? strtof(lambda + strlen(" lambda="), NULL) : 0.0f;
    const char *excess = strstr(text, " excess=");
    s->penalty_excess_only = excess ? atoi(excess + strlen(" excess=")) : 0;
    return 0;
}

/* Compares the attention maps: ours [rows, heads, T, keys], PyTorch's the same. */
static void check_maps(const char *fixture, const SafetensorsFile *f, const TransformerBuffers *b,
                       const TransformerShape *s, int rows, int steps) {
    Error err;
    for (int l = 0; l < s->decoder_layers; l++)
        for (int cross = 0; cross <= 1; cross++) {
            char name[64], what[80];
            snprintf(name, sizeof name, "expected.%s.%d", cross ? "cross" : "self", l);
            size_t n = 0, keys = cross ? (size_t)s->grid_h * s->grid_w : (size_t)steps;
            float *ref = read_all(f, name, &n, &err);
            snprintf(what, sizeof what, "layer %d %s-attention maps", l, cross ? "cross" : "self");
            if (!ref || n != (size_t)rows * s->heads * steps * keys) {
                report(fixture, what, INFINITY, 0, "missing or misshapen");
                free(ref);
                continue;
            }
            const float *mine = cross ? transformer_cross_attention(b, l) : transformer_self_attention(b, l);
            report(fixture, what, normwise(mine, ref, n), 1e-5, NULL);
            free(ref);
        }
}

static void run_fixture(const char *dir, const char *fixture) {
    char path[600];
    snprintf(path, sizeof path, "%s/fixtures/transformer_%s.safetensors", dir, fixture);
    SafetensorsFile f;
    Error err;
    if (safetensors_open(&f, path, &err) != 0) {
        report(fixture, "fixture opens", INFINITY, 0, err.message);
        return;
    }
    TransformerShape s = {0};
    int images = 0;
    Tensors t = {0};
    TransformerParams p, g;
    TransformerBuffers *b = NULL;
    size_t nz = 0, n_captions = 0;
    float *z = NULL, *d_z = NULL;
    int *captions = NULL, *row_image = NULL;
    if (parse_shape(&f, &s, &images) != 0 || bind(&t, &f, &s, &p, &g, &err) != 0 || !(z = read_all(&f, "input.z_images", &nz, &err))) {
        report(fixture, "fixture reads", INFINITY, 0, err.message);
        goto done;
    }
    const SafetensorsEntry *ec = safetensors_find(&f, "input.captions"), *er = safetensors_find(&f, "input.row_image");
    n_captions = ec ? ec->numel : 0;
    int rows = er ? (int)er->numel : 0, steps = rows ? (int)(n_captions / rows) - 1 : 0;
    captions = malloc(n_captions * sizeof(int));
    row_image = malloc((size_t)rows * sizeof(int));
    d_z = calloc(nz, sizeof(float));
    float smoothing = 0.0f;
    if (!captions || !row_image || !d_z || safetensors_read_ints(&f, "input.captions", captions, 0, NULL, n_captions, &err) ||
        safetensors_read_ints(&f, "input.row_image", row_image, 0, NULL, (size_t)rows, &err) ||
        safetensors_read_floats(&f, "input.label_smoothing", &smoothing, 0, NULL, 1, &err) ||
        transformer_buffers_create(&b, &s, images, rows, steps, &err)) {
        report(fixture, "fixture reads", INFINITY, 0, err.message);
        goto done;
    }
    printf("%-16s %d+%d layers, width %d, %d heads, FF %d (%s), %s output, lambda %g%s; %d captions x %d steps on "
           "%d grids of %dx%d\n",
           fixture, s.encoder_layers, s.decoder_layers, s.dim, s.heads, s.ff, s.gelu ? "GELU" : "ReLU",
           s.tied ? "tied" : "untied", (double)s.doubly_stochastic, s.penalty_excess_only ? " (excess)" : "", rows,
           steps, images, s.grid_h, s.grid_w);
    DecoderBatch batch = {.captions = captions, .row_image = row_image, .rows = rows, .steps = steps,
                          .label_smoothing = smoothing, .training = 0};
    SatLoss loss = transformer_forward_train(&s, &p, b, z, images, &batch, NULL);
    size_t n = 0;
    float *expected = read_all(&f, "expected.loss", &n, &err);
    report(fixture, "loss", expected ? fabs(loss.loss - expected[0]) / fmax(1.0, fabs(expected[0])) : INFINITY, 1e-5,
           NULL);
    free(expected);
    expected = read_all(&f, "expected.logits", &n, &err);
    report(fixture, "logits", expected && n == (size_t)rows * steps * s.vocab ? normwise(transformer_logits(b), expected, n)
                                                                                 : INFINITY, 1e-5, NULL);
    free(expected);
    check_maps(fixture, &f, b, &s, rows, steps);
    transformer_backward(&s, &p, &g, b, z, d_z, &batch);
    double worst = 0.0;
    const char *worst_name = "";
    for (int k = 0; k < t.count; k++) {
        char name[300];
        snprintf(name, sizeof name, "grad.%s", t.names[k]);
        float *ref = read_all(&f, name, &n, &err);
        double e = ref && n == t.sizes[k] ? normwise(t.grads[k], ref, n) : INFINITY;
        if (e > worst) worst = e, worst_name = t.names[k];
        free(ref);
    }
    char note[300];
    snprintf(note, sizeof note, "(%d tensors; worst %s)", t.count, worst_name);
    report(fixture, "gradients of every weight", worst, 1e-4, note);
    float *ref = read_all(&f, "grad.input.z_images", &n, &err);
    report(fixture, "gradient of the grid", ref && n == nz ? normwise(d_z, ref, n) : INFINITY, 1e-4, NULL);
    free(ref);
    /* A second backward adds the same again. */
    float *first = malloc(t.sizes[0] * sizeof(float));
    if (first) {
        memcpy(first, t.grads[0], t.sizes[0] * sizeof(float));
        transformer_backward(&s, &p, &g, b, z, d_z, &batch);
        for (size_t i = 0; i < t.sizes[0]; i++) first[i] *= 2.0f;
        report(fixture, "backward accumulates (x2)", normwise(t.grads[0], first, t.sizes[0]), 1e-6, t.names[0]);
        free(first);
    }
done:
    transformer_buffers_free(b);
    free(z), free(d_z), free(captions), free(row_image);
    tensors_free(&t);
    safetensors_close(&f);
}

int main(void) {
    const char *dir = getenv("CAPTION_TEST_DATA");
    if (!dir) dir = "tests";
    printf("%-16s %-44s %10s %8s\n", "fixture", "check", "error", "tol");
    run_fixture(dir, "gelu_tied");
    run_fixture(dir, "relu_no_encoder");
    run_fixture(dir, "penalty");
    run_fixture(dir, "penalty_excess");
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
