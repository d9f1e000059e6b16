#include "train_options.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_INT, KIND_FLOAT, KIND_STRING, KIND_BOOL, KIND_U64, KIND_DOUBLE, KIND_LONG } Kind;

typedef struct {
    const char *name;
    Kind kind;
    size_t offset, size; /* size: string capacity */
    double low, high;
    const char *help;
} OptionSpec;

#define OPT(field) offsetof(TrainOptions, field)
#define STR(field) offsetof(TrainOptions, field), sizeof(((TrainOptions *)0)->field)

static const OptionSpec specs[] = {
    {"data", KIND_STRING, STR(data), 0, 0, "dataset: a Flickr8k-layout folder, or a Karpathy / COCO captions JSON"},
    {"images", KIND_STRING, STR(images), 0, 0, "image folder for a JSON dataset (default: images/ beside it)"},
    {"train-split", KIND_STRING, STR(train_split), 0, 0, "training split (default train)"},
    {"dev-split", KIND_STRING, STR(dev_split), 0, 0, "selection split (default dev)"},
    {"min-count", KIND_INT, OPT(min_count), 0, 1, 1000, "keep words seen at least this often (default 5)"},
    {"max-words", KIND_INT, OPT(max_words), 0, 1, 200, "cut training captions to this many words (default 20)"},
    {"captions-per-image", KIND_INT, OPT(captions_per_image), 0, 1, 100, "captions trained per image per pass (default 5)"},
    {"eval-images", KIND_INT, OPT(eval_images), 0, 0, 1e9, "dev images captioned each epoch, 0 = all (default 0)"},
    {"init", KIND_STRING, STR(init), 0, 0, "start from this model's weights, architecture and vocabulary (e.g. a cross-entropy run's model.safetensors, to go on with --scst-samples); the architecture options are then ignored"},
    {"scst-samples", KIND_INT, OPT(scst_samples), 0, 0, 64, "self-critical training: sample this many captions per image (at least 2), reward each with its CIDEr-D against the image's references, baseline the mean reward of the image's other samples; 0 = cross-entropy training (default 0)"},
    {"scst-xe-weight", KIND_FLOAT, OPT(scst_xe_weight), 0, 0, 100, "self-critical training: also train on the reference captions in the same pass, each of their tokens weighted this much (a sample's tokens are weighted by its advantage), against formulaic captions; 0 = off (default 0)"},
    {"scst-duplicate-penalty", KIND_FLOAT, OPT(scst_duplicate_penalty), 0, 0, 10, "self-critical training: reward each sample with its CIDEr-D minus this weight times the share of the batch's other images that drew the very same caption, so one caption given to many images earns less; 0 = off (default 0)"},
    {"scst-mode-penalty", KIND_FLOAT, OPT(scst_mode_penalty), 0, 0, 100, "self-critical training: also decode each image greedily, and where other images of the batch got the very same greedy caption, lower its likelihood with this weight times their share, so the caption the model gives by default to many images stops being its mode; 0 = off (default 0)"},
    {"scst-repeat-penalty", KIND_FLOAT, OPT(scst_repeat_penalty), 0, 0, 10, "self-critical training: reward each sample with its CIDEr-D minus this weight times the share of its word trigrams that repeat an earlier one (\"on a dirt bike on a dirt bike\": 2 of 6), so a caption that says a thing twice earns less; 0 = off (default 0)"},
    {"scst-contrast", KIND_FLOAT, OPT(scst_contrast), 0, 0, 10, "self-critical training: reward each sample with its CIDEr-D minus this weight times its mean CIDEr-D against the references of the batch's other images, so captions that would fit any image earn less; 0 = off (default 0)"},
    {"image-size", KIND_INT, OPT(model.image_size), 0, 8, 4096, "input size in pixels (default 96)"},
    {"encoder", KIND_STRING, STR(model.encoder_spec), 0, 0, "CNN: channels per 3x3 conv, s2 = stride 2, p = max-pool"},
    {"embed", KIND_INT, OPT(model.embed_dim), 0, 1, 65536, "word embedding size (default 256)"},
    {"hidden", KIND_INT, OPT(model.hidden_dim), 0, 1, 65536, "LSTM size (default 512)"},
    {"attention-dim", KIND_INT, OPT(model.attention_dim), 0, 1, 65536, "additive attention MLP width (default 256)"},
    {"dropout", KIND_FLOAT, OPT(model.dropout), 0, 0, 0.99, "dropout before the output layer; the Transformer's on every residual branch and in its feed-forward layers (default 0.5; 0.1 suits a Transformer)"},
    {"input-dropout", KIND_FLOAT, OPT(model.input_dropout), 0, 0, 0.99, "LSTM decoders: dropout on the LSTM's input (the word's embedding and the context) at each step, training only (default 0)"},
    {"heads", KIND_INT, OPT(model.heads), 0, 1, 256, "attention heads of the Transformer (--embed is its width and must be a multiple) and of an LSTM's grid encoder (the CNN's last channel count must be a multiple) (default 4)"},
    {"encoder-layers", KIND_INT, OPT(model.encoder_layers), 0, 0, TRANSFORMER_MAX_LAYERS, "self-attention layers over the grid's cells: the Transformer's grid encoder, or one in front of an LSTM decoder, 0 = none (default: 1 for the Transformer, 0 for the LSTMs)"},
    {"decoder-layers", KIND_INT, OPT(model.decoder_layers), 0, 1, TRANSFORMER_MAX_LAYERS, "Transformer: decoder layers (default 2)"},
    {"ff-dim", KIND_INT, OPT(model.ff_dim), 0, 1, 65536, "feed-forward width of the Transformer's layers and of an LSTM's grid encoder (default 1024)"},
    {"tied", KIND_BOOL, OPT(model.tied), 0, 0, 1, "1 = the output layer shares the word embedding's weights (default: 1 for the Transformer, 0 for the LSTMs)"},
    {"lambda", KIND_FLOAT, OPT(model.doubly_stochastic), 0, 0, 1e6, "weight of the attention penalty (--penalty) on each cell's map mass summed over the caption; the Transformer's map is its last layer's cross-attention averaged over the heads (default: 0.005 for the LSTMs, 0 for the Transformer)"},
    {"aux-weight", KIND_FLOAT, OPT(model.aux_weight), 0, 0, 1e6, "auxiliary loss: predict each image's caption words from its mean features, 0 = off (default 0)"},
    {"epochs", KIND_INT, OPT(epochs), 0, 1, 100000, "epochs (default 20)"},
    {"batch", KIND_INT, OPT(batch), 0, 1, 4096, "images per batch (default 32)"},
    {"lr", KIND_FLOAT, OPT(lr), 0, 0, 10, "peak learning rate (default 1e-3)"},
    {"min-lr", KIND_FLOAT, OPT(min_lr), 0, 0, 10, "final learning rate of the cosine schedule (default 1e-5)"},
    {"schedule", KIND_STRING, STR(schedule), 0, 0, "cosine (after warm-up) or constant (default cosine)"},
    {"warmup-steps", KIND_INT, OPT(warmup_steps), 0, 0, 1e9, "linear warm-up steps (default 200)"},
    {"weight-decay", KIND_FLOAT, OPT(weight_decay), 0, 0, 10, "AdamW decoupled weight decay (default 0)"},
    {"ema", KIND_FLOAT, OPT(ema), 0, 0, 0.999999f, "keep a moving average of the weights with this decay per step (e.g. 0.999) and evaluate and save it instead of the raw weights, 0 = off (default 0)"},
    {"clip", KIND_FLOAT, OPT(clip), 0, 0, 1e9, "clip gradients to this global norm, 0 = off (default 5)"},
    {"label-smoothing", KIND_FLOAT, OPT(label_smoothing), 0, 0, 0.99, "label smoothing (default 0.1)"},
    {"freeze-encoder", KIND_BOOL, OPT(freeze_encoder), 0, 0, 1, "1: keep the CNN as it is (as at inference: running batch-norm statistics) and train only the decoder, e.g. in self-critical training after --init (default 0)"},
    {"flip", KIND_BOOL, OPT(flip), 0, 0, 1, "random horizontal flips: 1 or 0 (default 1)"},
    {"crop", KIND_FLOAT, OPT(crop_min_area), 0, 0.05, 1, "random crops of at least this area fraction, 1 = off (default 0.8)"},
    {"color-jitter", KIND_FLOAT, OPT(color_jitter), 0, 0, 0.9, "random brightness, contrast and saturation: each scaled by a factor drawn from [1 - J, 1 + J], 0 = off (default 0)"},
    {"patience", KIND_INT, OPT(patience), 0, 0, 100000, "stop after this many epochs without a better dev CIDEr-D, 0 = never (default 5)"},
    {"eval-beam", KIND_INT, OPT(eval_beam), 0, 1, 64, "beam width for the dev captions (default 3)"},
    {"eval-length-penalty", KIND_FLOAT, OPT(eval_length_penalty), 0, 0, 10, "length normalisation for the dev captions (default 0)"},
    {"replicas", KIND_INT, OPT(replicas), 0, 1, 64, "data-parallel training on this many threads: each batch split by image, one replica of the activations per thread, OpenBLAS on one thread each (default 1; --resume repeats a run exactly with the same number)"},
    {"threads", KIND_INT, OPT(threads), 0, 1, 256, "threads for checking images (default 2)"},
    {"seed", KIND_U64, OPT(seed), 0, 0, 0, "random seed (default 1)"},
    {"out", KIND_STRING, STR(out), 0, 0, "run folder: checkpoints, logs, learning curve, model (default runs/train)"},
    {"keep-epochs", KIND_BOOL, OPT(keep_epochs), 0, 0, 1, "1: also save each epoch's evaluated model as epoch-N.safetensors in the run folder, e.g. to average epochs with caption average (default 0)"},
    {"checkpoint-every", KIND_INT, OPT(checkpoint_every), 0, 1, 1e9, "steps between checkpoints (default 200)"},
    {"stop-at-step", KIND_LONG, OPT(stop_at_step), 0, 0, 1e15, "stop (with a checkpoint) after this optimiser step, 0 = none"},
    {"time-limit", KIND_DOUBLE, OPT(time_limit_minutes), 0, 0, 1e9, "stop (with a checkpoint) before this many minutes, 0 = none"},
};
enum { SPEC_COUNT = sizeof specs / sizeof specs[0] };

void train_options_defaults(TrainOptions *o) {
    memset(o, 0, sizeof *o);
    snprintf(o->train_split, sizeof o->train_split, "train");
    snprintf(o->dev_split, sizeof o->dev_split, "dev");
    o->min_count = 5;
    o->max_words = 20;
    o->captions_per_image = 5;
    sat_config_defaults(&o->model);
    o->model.image_size = 96;
    snprintf(o->model.encoder_spec, sizeof o->model.encoder_spec, "32s2,64p,128p,256p");
    o->epochs = 20;
    o->batch = 32;
    o->lr = 1e-3f;
    o->min_lr = 1e-5f;
    snprintf(o->schedule, sizeof o->schedule, "cosine");
    o->warmup_steps = 200;
    o->clip = 5.0f;
    o->label_smoothing = 0.1f;
    o->flip = 1;
    o->crop_min_area = 0.8f;
    o->patience = 5;
    o->eval_beam = 3;
    o->threads = 2;
    o->replicas = 1;
    o->seed = 1;
    snprintf(o->out, sizeof o->out, "runs/train");
    o->checkpoint_every = 200;
}

static int set_value(TrainOptions *o, const OptionSpec *s, const char *value, Error *err) {
    char *field = (char *)o + s->offset, *end;
    errno = 0;
    if (s->kind == KIND_STRING) {
        if (strlen(value) >= s->size) return error_set(err, "--%s: value longer than %zu bytes", s->name, s->size - 1);
        memcpy(field, value, strlen(value) + 1);
        return 0;
    }
    if (s->kind == KIND_U64) {
        unsigned long long v = strtoull(value, &end, 10);
        if (errno || *end || end == value) return error_set(err, "--%s takes a whole number, not '%s'", s->name, value);
        memcpy(field, &v, sizeof v);
        return 0;
    }
    double v = strtod(value, &end);
    if (errno || *end || end == value || !isfinite(v) || v < s->low || v > s->high)
        return error_set(err, "--%s takes a number from %g to %g, not '%s'", s->name, s->low, s->high, value);
    if ((s->kind == KIND_INT || s->kind == KIND_BOOL) && v != floor(v))
        return error_set(err, "--%s takes a whole number, not '%s'", s->name, value);
    if (s->kind == KIND_INT || s->kind == KIND_BOOL) *(int *)(void *)field = (int)v;
    else if (s->kind == KIND_FLOAT) *(float *)(void *)field = (float)v;
    else if (s->kind == KIND_LONG) {
        if (v != floor(v)) return error_set(err, "--%s takes a whole number, not '%s'", s->name, value);
        *(long *)(void *)field = (long)v;
    }
    else *(double *)(void *)field = v;
    return 0;
}

static int set_special(TrainOptions *o, const char *name, const char *value, Error *err) {
    if (strcmp(name, "score") == 0) {
        if (attention_score_parse(value, &o->model.score) != 0)
            return error_set(err, "--score takes additive, dot or general, not '%s'", value);
        return 1;
    }
    if (strcmp(name, "decoder") == 0) {
        if (sat_decoder_parse(value, &o->model) != 0)
            return error_set(err, "--decoder takes attention, adaptive, bottleneck or transformer, not '%s'", value);
        return 1;
    }
    if (strcmp(name, "penalty") == 0) {
        if (sat_penalty_parse(value, &o->model) != 0)
            return error_set(err, "--penalty takes doubly_stochastic or excess, not '%s'", value);
        return 1;
    }
    if (strcmp(name, "activation") == 0) {
        if (strcmp(value, "gelu") != 0 && strcmp(value, "relu") != 0)
            return error_set(err, "--activation takes gelu or relu, not '%s'", value);
        o->model.gelu = strcmp(value, "gelu") == 0;
        return 1;
    }
    return 0;
}

int train_options_set(TrainOptions *o, const char *name, const char *value, Error *err) {
    int special = set_special(o, name, value, err);
    if (special != 0) return special;
    for (int i = 0; i < SPEC_COUNT; i++)
        if (strcmp(specs[i].name, name) == 0) return set_value(o, &specs[i], value, err) == 0 ? 1 : -1;
    return 0;
}

static int json_value_text(const cJSON *item, char *buffer, size_t size) {
    if (cJSON_IsString(item)) snprintf(buffer, size, "%s", item->valuestring);
    else if (cJSON_IsBool(item)) snprintf(buffer, size, "%d", cJSON_IsTrue(item) ? 1 : 0);
    else if (cJSON_IsNumber(item)) snprintf(buffer, size, "%.17g", item->valuedouble);
    else return -1;
    return 0;
}

int train_options_from_json_text(TrainOptions *o, const char *json, const char *origin, Error *err) {
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return error_set(err, "%s: not a JSON object of training options", origin);
    }
    int status = 0;
    for (const cJSON *item = root->child; item && status == 0; item = item->next) {
        char value[1024];
        if (json_value_text(item, value, sizeof value) != 0) {
            status = error_set(err, "%s: \"%s\" must be a string, number or boolean", origin, item->string);
            break;
        }
        int taken = train_options_set(o, item->string, value, err);
        if (taken == 0) status = error_set(err, "%s: unknown option \"%s\" (see caption train --help)", origin, item->string);
        else if (taken < 0) status = error_prefix(err, "%s", origin);
    }
    cJSON_Delete(root);
    return status;
}

int train_options_load_json(TrainOptions *o, const char *path, Error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return error_set(err, "%s: %s", path, strerror(errno));
    char *text = NULL;
    size_t size = 0, capacity = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (size + 2 > capacity) {
            capacity = capacity ? 2 * capacity : 4096;
            char *grown = realloc(text, capacity);
            if (!grown || capacity > (1 << 24)) {
                free(grown ? grown : text);
                fclose(f);
                return error_set(err, "%s: too large for a config file", path);
            }
            text = grown;
        }
        text[size++] = (char)c;
    }
    fclose(f);
    if (!text) return error_set(err, "%s: empty config file", path);
    text[size] = '\0';
    int status = train_options_from_json_text(o, text, path, err);
    free(text);
    return status;
}

char *train_options_to_json(const TrainOptions *o) {
    cJSON *root = cJSON_CreateObject();
    for (int i = 0; i < SPEC_COUNT; i++) {
        const OptionSpec *s = &specs[i];
        const char *field = (const char *)o + s->offset;
        if (s->kind == KIND_STRING) cJSON_AddStringToObject(root, s->name, field);
        else if (s->kind == KIND_INT || s->kind == KIND_BOOL) cJSON_AddNumberToObject(root, s->name, *(const int *)(const void *)field);
        else if (s->kind == KIND_FLOAT) {
            char text[32];
            snprintf(text, sizeof text, "%.9g", *(const float *)(const void *)field);
            cJSON_AddNumberToObject(root, s->name, strtod(text, NULL));
        } else if (s->kind == KIND_LONG) cJSON_AddNumberToObject(root, s->name, (double)*(const long *)(const void *)field);
        else if (s->kind == KIND_DOUBLE) cJSON_AddNumberToObject(root, s->name, *(const double *)(const void *)field);
        else {
            char text[32];
            snprintf(text, sizeof text, "%llu", *(const unsigned long long *)(const void *)field);
            cJSON_AddStringToObject(root, s->name, text);
        }
    }
    cJSON_AddStringToObject(root, "score", attention_score_name(o->model.score));
    cJSON_AddStringToObject(root, "decoder", o->model.transformer      ? "transformer"
                                             : !o->model.use_attention ? "bottleneck"
                                             : o->model.sentinel       ? "adaptive"
                                                                       : "attention");
    cJSON_AddStringToObject(root, "activation", o->model.gelu ? "gelu" : "relu");
    cJSON_AddStringToObject(root, "penalty", sat_penalty_name(&o->model));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

void train_options_print_help(FILE *out) {
    fprintf(out, "  %-25s %s\n  %-25s %s\n", "--score NAME", "attention score: additive, dot or general (default additive)",
            "--decoder NAME", "attention; adaptive (attention with a visual sentinel, Lu et al. 2017); bottleneck (one fixed context vector); or transformer (multi-head self- and cross-attention; --embed is its width)");
    fprintf(out, "  %-25s %s\n", "--activation NAME", "Transformer: feed-forward activation, gelu or relu (default gelu)");
    fprintf(out, "  %-25s %s\n", "--penalty NAME", "the attention penalty --lambda weighs: doubly_stochastic (Xu et al.: every cell's map mass over the caption near 1) or excess (only the mass beyond 1: no cell looked at more than once, and cells left alone cost nothing) (default doubly_stochastic)");
    for (int i = 0; i < SPEC_COUNT; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s %s", specs[i].name, specs[i].kind == KIND_STRING ? "TEXT" : "N");
        fprintf(out, "  %-25s %s\n", flag, specs[i].help);
    }
}
