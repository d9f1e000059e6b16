#include "checkpoint.h"

#include <cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

void train_state_free(TrainState *s) {
    free(s->history);
    s->history = NULL;
    s->history_count = 0;
}

int train_state_append(TrainState *s, const EpochRecord *record) {
    EpochRecord *grown = realloc(s->history, sizeof *grown * (s->history_count + 1));
    if (!grown) return -1;
    s->history = grown;
    s->history[s->history_count++] = *record;
    return 0;
}

static cJSON *record_to_json(const EpochRecord *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "epoch", r->epoch);
    cJSON_AddNumberToObject(o, "step", (double)r->step);
    cJSON_AddNumberToObject(o, "train_loss", r->train_loss);
    cJSON_AddNumberToObject(o, "dev_loss", r->dev_loss);
    cJSON_AddNumberToObject(o, "train_reward", r->train_reward);
    const double values[6] = {r->scores.bleu[0], r->scores.bleu[1], r->scores.bleu[2], r->scores.bleu[3],
                              r->scores.rouge_l, r->scores.cider_d};
    cJSON_AddItemToObject(o, "scores", cJSON_CreateDoubleArray(values, 6));
    cJSON_AddNumberToObject(o, "distinct", r->distinct);
    cJSON_AddNumberToObject(o, "captioned", r->captioned);
    cJSON_AddNumberToObject(o, "minutes", r->minutes);
    cJSON_AddNumberToObject(o, "lr", r->lr);
    return o;
}

static double number(const cJSON *o, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(item) ? item->valuedouble : 0.0;
}

static void record_from_json(EpochRecord *r, const cJSON *o) {
    memset(r, 0, sizeof *r);
    r->epoch = (int)number(o, "epoch");
    r->step = (long)number(o, "step");
    r->train_loss = number(o, "train_loss");
    r->dev_loss = number(o, "dev_loss");
    r->train_reward = number(o, "train_reward");
    const cJSON *scores = cJSON_GetObjectItemCaseSensitive(o, "scores");
    double values[6] = {0};
    for (int i = 0; i < 6 && cJSON_IsArray(scores); i++) {
        const cJSON *v = cJSON_GetArrayItem(scores, i);
        values[i] = cJSON_IsNumber(v) ? v->valuedouble : 0.0;
    }
    for (int i = 0; i < 4; i++) r->scores.bleu[i] = values[i];
    r->scores.rouge_l = values[4];
    r->scores.cider_d = values[5];
    r->distinct = (int)number(o, "distinct");
    r->captioned = (int)number(o, "captioned");
    r->minutes = number(o, "minutes");
    r->lr = (float)number(o, "lr");
}

/* 64-bit values as decimal strings: JSON numbers are doubles. */
static void add_u64(cJSON *o, const char *key, uint64_t value) {
    char text[32];
    snprintf(text, sizeof text, "%" PRIu64, value);
    cJSON_AddStringToObject(o, key, text);
}

static uint64_t get_u64(const cJSON *o, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(item) ? strtoull(item->valuestring, NULL, 10) : 0;
}

static char *state_to_json(const SatTrainer *t, const TrainState *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)t->step);
    cJSON_AddNumberToObject(o, "epoch", (double)s->epoch);
    cJSON_AddNumberToObject(o, "batch", s->batch);
    add_u64(o, "rng_state", s->rng.state);
    add_u64(o, "rng_increment", s->rng.increment);
    cJSON_AddNumberToObject(o, "best_cider", s->best_cider);
    cJSON_AddNumberToObject(o, "best_epoch", s->best_epoch);
    cJSON_AddNumberToObject(o, "bad_epochs", s->bad_epochs);
    cJSON_AddNumberToObject(o, "seconds", s->seconds);
    cJSON_AddNumberToObject(o, "epoch_loss_sum", s->epoch_loss_sum);
    cJSON_AddNumberToObject(o, "epoch_loss_count", (double)s->epoch_loss_count);
    cJSON_AddNumberToObject(o, "epoch_reward_sum", s->epoch_reward_sum);
    cJSON *history = cJSON_AddArrayToObject(o, "history");
    for (int i = 0; i < s->history_count; i++) cJSON_AddItemToArray(history, record_to_json(&s->history[i]));
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* The optimiser's per-tensor state as checkpoint tensors "optimizer.<kind>.<name>":
 * Adam's moments m and v, and the weight average (--ema) when the run keeps one. */
static const char *const state_names[3] = {"m", "v", "ema"};

static float *state_block(const SatTrainer *t, int kind) {
    return kind == 0 ? t->adam_m : kind == 1 ? t->adam_v : t->ema;
}

int checkpoint_save(const char *path, const SatTrainer *t, const TrainState *s, const char *options_json, Error *err) {
    const TensorTable *table = &t->model->table;
    /* Per trainable tensor: Adam's two moments, and the weight average if any. */
    SafetensorsTensor *extra = calloc(3 * (size_t)table->count, sizeof *extra);
    char (*names)[TENSOR_NAME_MAX + 16] = calloc(3 * (size_t)table->count, sizeof *names);
    char *state = state_to_json(t, s);
    int count = 0, status = -1;
    if (!extra || !names || !state) {
        error_set(err, "%s: out of memory", path);
    } else {
        for (int i = 0; i < table->count; i++) {
            const TensorSpec *spec = &table->specs[i];
            if (!(spec->flags & TENSOR_TRAINABLE)) continue;
            for (int kind = 0; kind < (t->ema ? 3 : 2); kind++, count++) {
                snprintf(names[count], sizeof names[count], SAT_OPTIMIZER_PREFIX "%s.%s", state_names[kind], spec->name);
                const float *data = state_block(t, kind) + spec->offset;
                extra[count] = (SafetensorsTensor){names[count], SAFETENSORS_F32, spec->ndim, spec->shape, data};
            }
        }
        const char *metadata[] = {"train_options", options_json, "train_state", state, NULL};
        status = sat_model_write(t->model, path, 0, extra, count, metadata, err);
    }
    free(extra);
    free(names);
    free(state);
    return status;
}

char *checkpoint_read_options(const char *path, Error *err) {
    SafetensorsFile file;
    if (safetensors_open(&file, path, err) != 0) return NULL;
    const char *options = safetensors_metadata(&file, "train_options");
    char *copy = options ? strdup(options) : NULL;
    if (!options) error_set(err, "%s: not a training checkpoint (no train_options in its metadata)", path);
    safetensors_close(&file);
    return copy;
}

static int restore_state(TrainState *s, SatTrainer *t, const char *json, Error *err) {
    cJSON *o = cJSON_Parse(json);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return error_set(err, "train_state is not a JSON object");
    }
    memset(s, 0, sizeof *s);
    t->step = (long)number(o, "step");
    s->epoch = (long)number(o, "epoch");
    s->batch = (int)number(o, "batch");
    s->rng.state = get_u64(o, "rng_state");
    s->rng.increment = get_u64(o, "rng_increment");
    s->best_cider = number(o, "best_cider");
    s->best_epoch = (int)number(o, "best_epoch");
    s->bad_epochs = (int)number(o, "bad_epochs");
    s->seconds = number(o, "seconds");
    s->epoch_loss_sum = number(o, "epoch_loss_sum");
    s->epoch_loss_count = (long)number(o, "epoch_loss_count");
    s->epoch_reward_sum = number(o, "epoch_reward_sum");
    const cJSON *history = cJSON_GetObjectItemCaseSensitive(o, "history");
    int status = 0;
    for (const cJSON *item = cJSON_IsArray(history) ? history->child : NULL; item && status == 0; item = item->next) {
        EpochRecord r;
        record_from_json(&r, item);
        if (train_state_append(s, &r) != 0) status = error_set(err, "out of memory");
    }
    cJSON_Delete(o);
    if (status == 0 && (s->rng.increment & 1u) == 0) status = error_set(err, "train_state has no valid RNG state");
    return status;
}

int checkpoint_restore(const char *path, SatTrainer *t, TrainState *s, Error *err) {
    SafetensorsFile file;
    if (safetensors_open(&file, path, err) != 0) return -1;
    const TensorTable *table = &t->model->table;
    int status = 0;
    for (int i = 0; i < table->count && status == 0; i++) {
        const TensorSpec *spec = &table->specs[i];
        if (!(spec->flags & TENSOR_TRAINABLE)) continue;
        for (int kind = 0; kind < (t->ema ? 3 : 2) && status == 0; kind++) {
            char name[TENSOR_NAME_MAX + 16];
            snprintf(name, sizeof name, SAT_OPTIMIZER_PREFIX "%s.%s", state_names[kind], spec->name);
            float *data = state_block(t, kind) + spec->offset;
            status = safetensors_read_floats(&file, name, data, spec->ndim, spec->shape, spec->numel, err);
        }
    }
    const char *state = safetensors_metadata(&file, "train_state");
    if (status == 0 && !state) status = error_set(err, "no train_state in the metadata");
    if (status == 0) status = restore_state(s, t, state, err);
    safetensors_close(&file);
    return status == 0 ? 0 : error_prefix(err, "%s", path);
}
