/* The whole C model against an independent PyTorch implementation
 * (tests/reference/sat_reference.py, float64): for each fixture pair
 * tests/fixtures/sat_<name>_{model,expected}.safetensors it loads the model
 * with sat_model_load, runs sat_forward_backward on the stored batch and
 * compares the loss terms, logits, alpha, beta, the auxiliary head's logits
 * (models with aux_weight > 0) and every parameter gradient;
 * then 10 steps of clipped AdamW (sat_optimizer_step), comparing the loss
 * before each step, the batch-norm running statistics after them and the
 * inference-mode loss (sat_evaluate_loss, batch norm folded).
 *
 * Error measure, per tensor: max_i |c_i - r_i| / max(|r_i|, f * max_j |r_j|)
 * (c: C value, r: reference; where the denominator is 0, the absolute error):
 * relative error on the elements of at least f times the tensor's largest,
 * and below that the absolute error in units of f times the largest. f is
 * 1e-3 for values and 1e-2 for gradients (see GRAD_FLOOR); the tensors after
 * the 10 steps are compared normwise (f = 1: max_i |c_i - r_i| / max_j |r_j|;
 * a missed weight decay would show as ~1e-3). Each row prints its error as a
 * percentage of its tolerance.
 *
 * Environment: CAPTION_TEST_CONTROL=1 scales every C gradient by 1 + 2e-3
 * before the comparison, CAPTION_TEST_CONTROL=2 moves one element of each
 * (the middle one) by twice what the measure allows there; either way every
 * gradient tensor must fail ("stat" lines: the smallest error over tensors,
 * for tools/seed-sweep). */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "safetensors.h"
#include "trainer.h"

static const char *const FIXTURES[] = {"small", "dot", "general", "bottleneck", "aux", "adaptive", "tied", "grid", "residual", "excess"};
enum { FIXTURE_COUNT = sizeof FIXTURES / sizeof FIXTURES[0] };

static const double TOL_VALUES = 1e-4; /* loss terms, logits, alpha, beta, losses, stats */
static const double TOL_GRADS = 1e-3;  /* parameter gradients */
/* Gradients are judged relatively only down to 1% of the tensor's largest
 * element. A gradient element is a float32 sum over images, positions and
 * steps whose terms are of the size of the tensor's large elements, so
 * rounding leaves about the same absolute error in every element, large or
 * small: the largest |C - ref| / max|ref| of a fixture's gradient tensors is
 * 0.5e-6 to 4.8e-6 over the Haswell, Sandybridge, SkylakeX, Cooperlake
 * (default here), Prescott and Nehalem kernels. With the old floor of 1e-3,
 * the worst element was always one just above or at the floor (|ref| 5e-4 to
 * 9e-4 of the largest, in conv and attention-score weights), where that
 * rounding alone reads as a relative error near 1e-3, and which element it
 * was depended on the kernel: worst gradient error 57% of TOL_GRADS on
 * Haswell, 80% Prescott, 81% Sandybridge and Nehalem, 88% SkylakeX and
 * Cooperlake. From 1e-2 of the largest, that rounding is at most 5e-4
 * relative; every element of at least 1% of the largest must still be within
 * TOL_GRADS relative, every smaller one within 1e-5 of the largest absolute.
 * Worst gradient error now (tools/seed-sweep --seeds 1 --control --kernels
 * Haswell,Sandybridge,SkylakeX,default,Prescott,Nehalem reference):
 *   Haswell 5.9e-5 (6% of TOL_GRADS), Sandybridge 8.9e-5 (9%), SkylakeX and
 *   Cooperlake 8.9e-5 (9%), Prescott 8.0e-5 (8%), Nehalem 8.7e-5 (9%).
 * Controls (every tensor must fail): all gradients x 1.002 give 200% of
 * TOL_GRADS at least, one element moved by twice its allowance 191%. */
static const double GRAD_FLOOR = 1e-2;

static int passed = 0, failed = 0;

/* max_i |c_i - r_i| / max(|r_i|, floor_fraction * max_j |r_j|); absolute where that is 0. */
static double error_with_floor(const float *c, const float *r, size_t n, double floor_fraction, size_t *worst) {
    double max_ref = 0.0, max_err = 0.0;
    for (size_t i = 0; i < n; i++) max_ref = fmax(max_ref, fabs((double)r[i]));
    double floor = floor_fraction * max_ref;
    if (worst) *worst = 0;
    for (size_t i = 0; i < n; i++) {
        double den = fmax(fabs((double)r[i]), floor), diff = fabs((double)c[i] - (double)r[i]);
        double e = den > 0.0 ? diff / den : diff;
        if (isnan(e)) e = INFINITY;
        if (e > max_err) {
            max_err = e;
            if (worst) *worst = i;
        }
    }
    return max_err;
}

/* The error measure of every comparison but the tensors after the steps. */
static double rel_error(const float *c, const float *r, size_t n, size_t *worst) {
    return error_with_floor(c, r, n, 1e-3, worst);
}

/* Normwise, max |c - r| / max |r|, for tensors after the steps: parameters pass
 * through zero there, where elementwise errors only measure float32 noise. */
static double normwise_error(const float *c, const float *r, size_t n, size_t *worst) {
    return error_with_floor(c, r, n, 1.0, worst);
}

static void report(const char *fixture, const char *quantity, double error, double tol, const char *note) {
    int ok = error <= tol;
    char share[16] = "-";
    if (tol > 0.0) snprintf(share, sizeof share, "%.0f%%", 100.0 * error / tol);
    printf("%-11s %-28s %12.3e %9.0e %7s  %-4s %s\n", fixture, quantity, error, tol, share, ok ? "ok" : "FAIL",
           note ? note : "");
    if (ok) passed++;
    else failed++;
}

static void fail(const char *fixture, const char *what, const char *message) {
    printf("%-11s %-28s %12s %9s %7s  FAIL %s\n", fixture, what, "-", "-", "-", message);
    failed++;
}

/* A float tensor of exactly `expected` values (0: any count), malloc'd. */
static float *read_floats(const SafetensorsFile *f, const char *name, size_t expected, size_t *count, Error *err) {
    const SafetensorsEntry *e = safetensors_find(f, name);
    if (!e) {
        error_set(err, "expected file lacks tensor %s", name);
        return NULL;
    }
    if (expected && e->numel != expected) {
        error_set(err, "tensor %s has %zu values, expected %zu", name, e->numel, expected);
        return NULL;
    }
    float *data = malloc((e->numel ? e->numel : 1) * sizeof(float));
    if (!data || safetensors_read_floats(f, name, data, 0, NULL, e->numel, err) != 0) {
        free(data);
        return NULL;
    }
    if (count) *count = e->numel;
    return data;
}

static float read_scalar(const SafetensorsFile *f, const char *name, int *ok, Error *err) {
    float *v = read_floats(f, name, 1, NULL, err);
    if (!v) {
        *ok = 0;
        return NAN;
    }
    float value = *v;
    free(v);
    return value;
}

static void compare_scalar(const char *fixture, const char *name, float c, float r, double tol) {
    report(fixture, name, rel_error(&c, &r, 1, NULL), tol, NULL);
}

static void compare_tensor(const char *fixture, const SafetensorsFile *f, const char *name, const float *c,
                           size_t n, double tol) {
    Error err = {{0}};
    float *r = read_floats(f, name, n, NULL, &err);
    if (!r) {
        fail(fixture, name, err.message);
        return;
    }
    size_t worst;
    double e = rel_error(c, r, n, &worst);
    char note[96];
    snprintf(note, sizeof note, "(%zu values; worst [%zu] C %.7g ref %.7g)", n, worst, c[worst], r[worst]);
    report(fixture, name, e, tol, note);
    free(r);
}

/* A per-step tensor ([steps, rows, width] in the reference, packed in C) at
 * every step whose target is a word or <end>: what the loss sees. Padded
 * positions, which C skips, must be absent from C's packed rows or be pads. */
static void compare_steps(const char *fixture, const SafetensorsFile *f, const char *name,
                          const DecoderBuffers *b, const float *packed, size_t width,
                          const int *captions, int rows, int steps) {
    Error err = {{0}};
    float *r = read_floats(f, name, (size_t)steps * rows * width, NULL, &err);
    if (!r) {
        fail(fixture, name, err.message);
        return;
    }
    float *c_valid = malloc((size_t)steps * rows * width * sizeof(float));
    float *r_valid = malloc((size_t)steps * rows * width * sizeof(float));
    size_t n = 0;
    int missing = 0;
    for (int t = 0; t < steps; t++)
        for (int row = 0; row < rows; row++) {
            if (captions[row * (steps + 1) + t + 1] == TOKEN_PAD) continue;
            long at = decoder_packed_row(b, t, row);
            if (at < 0) {
                missing++;
                continue;
            }
            memcpy(c_valid + n, packed + (size_t)at * width, width * sizeof(float));
            memcpy(r_valid + n, r + ((size_t)t * rows + row) * width, width * sizeof(float));
            n += width;
        }
    size_t worst = 0;
    double e = missing ? INFINITY : rel_error(c_valid, r_valid, n, &worst);
    char note[128];
    snprintf(note, sizeof note, "(%zu values at non-pad steps; worst C %.7g ref %.7g; %d missing)", n,
             n ? c_valid[worst] : 0.0f, n ? r_valid[worst] : 0.0f, missing);
    report(fixture, name, e, TOL_VALUES, note);
    free(c_valid);
    free(r_valid);
    free(r);
}

/* Every table tensor's TENSOR_DECAY flag against the reference's list of decayed tensors. */
static void check_decay_flags(const char *fixture, const SatModel *m, const SafetensorsFile *f) {
    const char *json = safetensors_metadata(f, "decayed");
    cJSON *list = json ? cJSON_Parse(json) : NULL;
    if (!cJSON_IsArray(list)) {
        cJSON_Delete(list);
        fail(fixture, "weight-decay flags", "expected file lacks the \"decayed\" metadata list");
        return;
    }
    int mismatches = 0, listed = 0;
    char note[256] = "";
    for (int i = 0; i < m->table.count; i++) {
        const TensorSpec *s = &m->table.specs[i];
        int in_list = 0;
        for (const cJSON *item = list->child; item; item = item->next)
            in_list |= cJSON_IsString(item) && strcmp(item->valuestring, s->name) == 0;
        listed += in_list;
        if (in_list != !!(s->flags & TENSOR_DECAY)) {
            if (!mismatches) snprintf(note, sizeof note, "(first mismatch: %s)", s->name);
            mismatches++;
        }
    }
    if (listed != cJSON_GetArraySize(list)) {
        mismatches++;
        snprintf(note, sizeof note, "(the reference decays tensors the model lacks)");
    }
    cJSON_Delete(list);
    report(fixture, "weight-decay flags", mismatches, 0.0, note);
}

/* The auxiliary word loss and its logits, present in the reference exactly
 * when the model has the aux head. */
static void compare_aux(const char *fixture, const SafetensorsFile *f, const SatModel *m, const SatTrainer *t,
                        SatLoss loss, int image_count) {
    if (m->config.aux_weight <= 0.0f) {
        if (safetensors_find(f, "aux")) fail(fixture, "aux", "the reference has an aux loss but the model has no aux head");
        return;
    }
    Error err = {{0}};
    int ok = 1;
    float ref_aux = read_scalar(f, "aux", &ok, &err);
    if (!ok) {
        fail(fixture, "aux", err.message);
        return;
    }
    compare_scalar(fixture, "aux", loss.aux, ref_aux, TOL_VALUES);
    compare_tensor(fixture, f, "aux_logits", t->aux.logits, (size_t)image_count * m->config.vocab_size, TOL_VALUES);
}

/* The control's deliberately wrong gradient (CAPTION_TEST_CONTROL): 1 scales
 * all of g by 1 + 2 TOL_GRADS, 2 moves its middle element by twice what the
 * measure allows there. */
static void spoil_gradient(float *g, const float *r, size_t n, int control) {
    if (control == 1)
        for (size_t i = 0; i < n; i++) g[i] *= 1.0f + 2.0f * (float)TOL_GRADS;
    if (control == 2 && n > 0) {
        double max_ref = 0.0;
        for (size_t i = 0; i < n; i++) max_ref = fmax(max_ref, fabs((double)r[i]));
        size_t i = n / 2;
        g[i] += (float)(2.0 * TOL_GRADS * fmax(fabs((double)r[i]), GRAD_FLOOR * max_ref));
    }
}

static int control_mode(void) {
    const char *control = getenv("CAPTION_TEST_CONTROL");
    return control ? atoi(control) : 0;
}

/* Every parameter gradient against the reference's: every trainable tensor
 * has a grad.<name> and vice versa. One row for all tensors (the worst), and
 * a "stat" line: the worst error, or under the control the smallest, since
 * there every tensor must fail. */
static void compare_gradients(const char *name, const SatModel *model, const SatTrainer *trainer,
                              const SafetensorsFile *file) {
    Error err = {{0}};
    int control = control_mode(), tensors = 0, problems = 0;
    double worst = 0.0, smallest = INFINITY, worst_normwise = 0.0;
    const char *worst_name = "";
    for (int i = 0; i < model->table.count; i++) {
        const TensorSpec *s = &model->table.specs[i];
        char key[TENSOR_NAME_MAX + 8];
        snprintf(key, sizeof key, "grad.%s", s->name);
        if (!(s->flags & TENSOR_TRAINABLE)) {
            if (safetensors_find(file, key)) {
                fail(name, key, "gradient for a tensor the C model does not train");
                problems++;
            }
            continue;
        }
        float *r = read_floats(file, key, s->numel, NULL, &err);
        float *g = r ? malloc(s->numel * sizeof(float)) : NULL;
        if (!g) {
            fail(name, key, r ? "out of memory" : err.message);
            free(r);
            problems++;
            continue;
        }
        memcpy(g, trainer->grads + s->offset, s->numel * sizeof(float));
        spoil_gradient(g, r, s->numel, control);
        tensors++;
        size_t at;
        double e = error_with_floor(g, r, s->numel, GRAD_FLOOR, &at);
        worst_normwise = fmax(worst_normwise, normwise_error(g, r, s->numel, NULL));
        if (e > TOL_GRADS && !control)
            printf("%-11s   %-40s error %.3e at [%zu]: C %.7g ref %.7g\n", name, key, e, at, g[at], r[at]);
        if (e >= worst) {
            worst = e;
            worst_name = s->name;
        }
        smallest = fmin(smallest, e);
        free(g);
        free(r);
    }
    if (problems) return;
    char note[TENSOR_NAME_MAX + 96];
    snprintf(note, sizeof note, "(%d tensors; worst %s; largest |C - ref| / max|ref| %.1e)", tensors, worst_name,
             worst_normwise);
    report(name, control ? "gradients (CONTROL: spoilt)" : "gradients (all tensors)", worst, TOL_GRADS, note);
    printf("stat reference.gradients.%s %.4g < %g\n", name, control ? smallest : worst, TOL_GRADS);
}

static void run_fixture(const char *data_dir, const char *name) {
    char model_path[1024], expected_path[1024];
    snprintf(model_path, sizeof model_path, "%s/fixtures/sat_%s_model.safetensors", data_dir, name);
    snprintf(expected_path, sizeof expected_path, "%s/fixtures/sat_%s_expected.safetensors", data_dir, name);
    Error err = {{0}};
    SatModel model;
    SafetensorsFile file;
    if (sat_model_load(&model, model_path, &err) != 0) {
        fail(name, "sat_model_load", err.message);
        return;
    }
    report(name, "model file loads (C reader)", 0.0, 0.0, NULL);
    if (safetensors_open(&file, expected_path, &err) != 0) {
        fail(name, "open expected", err.message);
        sat_model_free(&model);
        return;
    }
    float *images = NULL, *losses = NULL;
    int *captions = NULL, *row_image = NULL;
    SatTrainer trainer;
    int trainer_ready = 0;
    const SafetensorsEntry *ei = safetensors_find(&file, "images"), *ec = safetensors_find(&file, "captions");
    const SafetensorsEntry *er = safetensors_find(&file, "row_image");
    int S = model.config.image_size;
    if (!ei || !ec || !er || ei->ndim != 4 || ei->shape[1] != 3 || ei->shape[2] != S || ei->shape[3] != S ||
        ec->ndim != 2 || er->ndim != 1 || er->shape[0] != ec->shape[0]) {
        fail(name, "expected inputs", "images [n, 3, S, S], captions [rows, T+1], row_image [rows] missing or misshapen");
        goto done;
    }
    int image_count = (int)ei->shape[0], rows = (int)ec->shape[0], steps = (int)ec->shape[1] - 1;
    images = read_floats(&file, "images", 0, NULL, &err);
    captions = malloc(ec->numel * sizeof(int));
    row_image = malloc(er->numel * sizeof(int));
    if (!images || !captions || !row_image ||
        safetensors_read_ints(&file, "captions", captions, 0, NULL, ec->numel, &err) != 0 ||
        safetensors_read_ints(&file, "row_image", row_image, 0, NULL, er->numel, &err) != 0) {
        fail(name, "expected inputs", err.message);
        goto done;
    }
    for (size_t i = 0; i < ec->numel; i++)
        if (captions[i] < 0 || captions[i] >= model.config.vocab_size) {
            fail(name, "expected inputs", "caption token out of the vocabulary");
            goto done;
        }
    for (int r = 0; r < rows; r++)
        if (row_image[r] < 0 || row_image[r] >= image_count) {
            fail(name, "expected inputs", "row_image out of range");
            goto done;
        }
    int ok = 1;
    float label_smoothing = read_scalar(&file, "label_smoothing", &ok, &err);
    float lr = read_scalar(&file, "lr", &ok, &err), wd = read_scalar(&file, "weight_decay", &ok, &err);
    float max_norm = read_scalar(&file, "max_norm", &ok, &err);
    float ref_loss = read_scalar(&file, "loss", &ok, &err), ref_ce = read_scalar(&file, "cross_entropy", &ok, &err);
    float ref_penalty = read_scalar(&file, "penalty", &ok, &err), ref_eval = read_scalar(&file, "eval_loss", &ok, &err);
    size_t loss_count = 0;
    losses = read_floats(&file, "losses", 0, &loss_count, &err);
    if (!ok || !losses) {
        fail(name, "expected scalars", err.message);
        goto done;
    }
    if (sat_trainer_init(&trainer, &model, image_count, rows, steps, &err) != 0) {
        fail(name, "sat_trainer_init", err.message);
        goto done;
    }
    trainer_ready = 1;
    printf("%-11s %s, %s score, encoder \"%s\" on %dx%d (grid %dx%d, D %d), %d images, %d captions x %d steps, "
           "label smoothing %g, lambda %g, aux weight %g\n",
           name, !model.config.use_attention ? "bottleneck" : model.config.sentinel ? "adaptive attention" : "attention",
           attention_score_name(model.config.score), model.config.encoder_spec, S, S, model.grid_h, model.grid_w,
           model.features, image_count, rows, steps, label_smoothing, model.config.doubly_stochastic,
           model.config.aux_weight);
    check_decay_flags(name, &model, &file);

    DecoderBatch batch = {.captions = captions, .row_image = row_image, .rows = rows, .steps = steps,
                          .label_smoothing = label_smoothing, .training = 1};
    Rng rng;
    rng_seed(&rng, 7);
    SatLoss loss = sat_forward_backward(&trainer, images, image_count, &batch, &rng);
    compare_scalar(name, "loss", loss.loss, ref_loss, TOL_VALUES);
    compare_scalar(name, "cross_entropy", loss.cross_entropy, ref_ce, TOL_VALUES);
    compare_scalar(name, "penalty", loss.penalty, ref_penalty, TOL_VALUES);
    const DecoderBuffers *dec = &trainer.decoder;
    compare_steps(name, &file, "logits", dec, dec->logits, model.config.vocab_size, captions, rows, steps);
    if (model.config.use_attention) {
        compare_steps(name, &file, "alpha", dec, dec->alpha, model.cells, captions, rows, steps);
        compare_steps(name, &file, "beta", dec, dec->beta, 1, captions, rows, steps);
    } else if (safetensors_find(&file, "alpha")) {
        fail(name, "alpha", "the reference has attention weights but the model is a bottleneck");
    }
    compare_aux(name, &file, &model, &trainer, loss, image_count);

    compare_gradients(name, &model, &trainer, &file);

    /* 10 optimiser steps; losses[i] is the loss of the forward before step i. */
    double worst_step = 0.0;
    int worst_at = 0;
    for (size_t i = 0; i < loss_count; i++) {
        if (i > 0) loss = sat_forward_backward(&trainer, images, image_count, &batch, &rng);
        double e = rel_error(&loss.loss, &losses[i], 1, NULL);
        if (e >= worst_step) {
            worst_step = e;
            worst_at = (int)i;
        }
        sat_optimizer_step(&trainer, lr, wd, max_norm);
    }
    char note[96];
    snprintf(note, sizeof note, "(%zu AdamW steps, clip %g; worst at step %d; %.6f -> %.6f)", loss_count,
             max_norm, worst_at, losses[0], losses[loss_count - 1]);
    report(name, "losses over steps", worst_step, TOL_VALUES, note);

    /* Every tensor after the steps: parameters (AdamW, decoupled decay) and the
     * batch-norm running statistics (10 training forwards, unbiased variance, momentum 0.1). */
    for (int trainable = 1; trainable >= 0; trainable--) {
        double worst = 0.0;
        int tensors_ok = 1;
        char after_note[TENSOR_NAME_MAX + 96] = "";
        for (int i = 0; i < model.table.count; i++) {
            const TensorSpec *s = &model.table.specs[i];
            if (!(s->flags & TENSOR_TRAINABLE) != !trainable) continue;
            char key[TENSOR_NAME_MAX + 8];
            snprintf(key, sizeof key, "final.%s", s->name);
            float *r = read_floats(&file, key, s->numel, NULL, &err);
            if (!r) {
                fail(name, key, err.message);
                tensors_ok = 0;
                continue;
            }
            /* A self-attention's key bias has a zero gradient (each softmax is
             * shift-invariant), so AdamW's steps on it are steps on rounding
             * noise (float32 here, float64 there): its values after the steps
             * are set equal, and its gradient was compared above. */
            const char *suffix = "self_attn.in_proj_bias";
            size_t length = strlen(s->name), cut = strlen(suffix);
            if (length >= cut && strcmp(s->name + length - cut, suffix) == 0)
                memcpy(r + s->numel / 3, model.params + s->offset + s->numel / 3, sizeof(float) * (s->numel / 3));
            size_t at;
            double e = normwise_error(model.params + s->offset, r, s->numel, &at);
            if (e >= worst) {
                worst = e;
                snprintf(after_note, sizeof after_note, "(worst %s[%zu]: C %.7g ref %.7g)", s->name, at,
                         model.params[s->offset + at], r[at]);
            }
            free(r);
        }
        if (tensors_ok)
            report(name, trainable ? "params after (normwise)" : "bn stats after (normwise)", worst, TOL_VALUES,
                   after_note);
    }

    /* The inference path: batch norm folded with the running statistics. */
    if (sat_model_prepare_inference(&model, &err) != 0) {
        fail(name, "eval loss after", err.message);
    } else {
        SatLoss eval = sat_evaluate_loss(&trainer, images, image_count, &batch);
        compare_scalar(name, "eval loss after", eval.loss, ref_eval, TOL_VALUES);
    }

done:
    if (trainer_ready) sat_trainer_free(&trainer);
    free(images);
    free(losses);
    free(captions);
    free(row_image);
    safetensors_close(&file);
    sat_model_free(&model);
}

int main(void) {
    const char *data_dir = getenv("CAPTION_TEST_DATA");
    if (!data_dir) {
        data_dir = "tests";
        printf("CAPTION_TEST_DATA is not set: looking for the fixtures under ./tests\n");
    }
    printf("C model vs the PyTorch float64 reference (tests/reference/sat_reference.py)\n");
    printf("error = max_i |C_i - ref_i| / max(|ref_i|, f * max_j |ref_j|)  (absolute where that is 0),\n"
           "f = %g for gradients, 1e-3 for the rest; 'normwise' rows: max_i |C_i - ref_i| / max_j |ref_j|\n",
           GRAD_FLOOR);
    if (control_mode())
        printf("CONTROL %d: the C gradients are spoilt, every gradient row must FAIL\n", control_mode());
    printf("\n%-11s %-28s %12s %9s %7s  %s\n", "fixture", "quantity", "error", "tolerance", "of tol", "result");
    for (int i = 0; i < FIXTURE_COUNT; i++) run_fixture(data_dir, FIXTURES[i]);
    printf("\n%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
