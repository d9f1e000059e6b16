#include "cmd_average.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model.h"
#include "model_path.h"

static const char USAGE[] =
    "Usage: caption average --out OUT.safetensors [--weights W1,W2,...] MODEL MODEL...\n"
    "\n"
    "Writes a model whose every tensor (batch-norm statistics included) is the\n"
    "weighted mean of the MODELs' own: weight averaging, e.g. of the epochs of one\n"
    "run (caption train --keep-epochs 1), or of a fine-tuned model and the one it\n"
    "started from (two runs from the same --init average too, though measured\n"
    "worse than either: assets/MODEL.md). The MODELs must have one architecture\n"
    "and vocabulary; the training settings a file records (dropout, input\n"
    "dropout, the attention penalty) are the first MODEL's. A MODEL is a weights\n"
    "file or a bundled model's name (default, transformer, ...).\n"
    "\n"
    "  --out FILE        the averaged model (written whole, then renamed into place)\n"
    "  --weights LIST    one non-negative weight per MODEL, comma-separated; they are\n"
    "                    divided by their sum, so 1,3 means 0.25 and 0.75\n"
    "                    (default: equal weights)\n"
    "  -h, --help        show this help\n"
    "\n"
    "Exit status: 0 on success, 1 on a data error, 2 on a usage error.\n";

#define AVERAGE_MAX_MODELS 64

typedef struct {
    const char *out, *weights_text;
    const char *models[AVERAGE_MAX_MODELS];
    int count;
    float weights[AVERAGE_MAX_MODELS];
} AverageArguments;

/* --weights: count numbers >= 0 with a positive sum, divided by that sum. */
static int parse_weights(AverageArguments *a) {
    if (!a->weights_text) {
        for (int i = 0; i < a->count; i++) a->weights[i] = 1.0f / (float)a->count;
        return 0;
    }
    char *copy = strdup(a->weights_text);
    if (!copy) return cli_usage_error("caption average", "out of memory");
    int given = 0, status = 0;
    double sum = 0.0;
    for (char *save = NULL, *item = strtok_r(copy, ",", &save); item && status == 0;
         item = strtok_r(NULL, ",", &save)) {
        if (given == a->count) {
            status = cli_usage_error("caption average", "--weights has more values than the %d models given", a->count);
        } else if (cli_parse_float(item, 0.0f, 1e6f, &a->weights[given]) != 0) {
            status = cli_usage_error("caption average", "--weights: '%s' is not a number from 0 to 1e6", item);
        } else {
            sum += a->weights[given++];
        }
    }
    free(copy);
    if (status != 0) return status;
    if (given != a->count)
        return cli_usage_error("caption average", "--weights has %d values for %d models: give one per model", given,
                               a->count);
    if (sum <= 0.0) return cli_usage_error("caption average", "--weights are all 0: at least one must be positive");
    for (int i = 0; i < a->count; i++) a->weights[i] = (float)(a->weights[i] / sum);
    return 0;
}

/* Returns 0, -1 after --help, or -1 after a usage error (reported; *status 2). */
static int parse_arguments(int argc, char **argv, AverageArguments *a, int *status) {
    *status = 2;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            fputs(USAGE, stdout);
            *status = 0;
            return -1;
        }
        if (strcmp(arg, "--out") == 0 || strcmp(arg, "--weights") == 0) {
            if (i + 1 >= argc || !argv[i + 1][0]) {
                cli_usage_error("caption average", "%s needs a value", arg);
                return -1;
            }
            *(strcmp(arg, "--out") == 0 ? &a->out : &a->weights_text) = argv[++i];
        } else if (arg[0] == '-' && arg[1]) {
            cli_usage_error("caption average", "unknown option %s", arg);
            return -1;
        } else if (a->count == AVERAGE_MAX_MODELS) {
            cli_usage_error("caption average", "at most %d models can be averaged", AVERAGE_MAX_MODELS);
            return -1;
        } else {
            a->models[a->count++] = arg;
        }
    }
    if (!a->out) return cli_usage_error("caption average", "--out is required");
    if (a->count < 2) return cli_usage_error("caption average", "give at least two models to average");
    return parse_weights(a);
}

static int load_models(const AverageArguments *a, SatModel *models, Error *err) {
    for (int i = 0; i < a->count; i++) {
        char named[1200];
        const char *path = model_path_resolve(a->models[i], named, sizeof named, err);
        if (!path || sat_model_load(&models[i], path, err) != 0) {
            for (int k = 0; k < i; k++) sat_model_free(&models[k]);
            return -1;
        }
    }
    return 0;
}

int cmd_average(int argc, char **argv) {
    AverageArguments a = {0};
    int status;
    if (parse_arguments(argc, argv, &a, &status) != 0) return status;
    SatModel *models = calloc(AVERAGE_MAX_MODELS, sizeof *models);
    Error err = {{0}};
    if (!models) {
        fprintf(stderr, "caption average: out of memory\n");
        return 1;
    }
    int rc = load_models(&a, models, &err);
    if (rc == 0) {
        SatModel mean;
        rc = sat_model_average(&mean, models, a.weights, a.count, a.models, &err);
        if (rc == 0) {
            rc = sat_model_save(&mean, a.out, 0, &err);
            sat_model_free(&mean);
        }
        for (int i = 0; i < a.count; i++) sat_model_free(&models[i]);
    }
    free(models);
    if (rc != 0) {
        fprintf(stderr, "caption average: %s\n", err.message);
        return 1;
    }
    fprintf(stderr, "caption average: wrote %s, the mean of %d models with weights", a.out, a.count);
    for (int i = 0; i < a.count; i++) fprintf(stderr, "%s%.4g", i ? "," : " ", a.weights[i]);
    fputc('\n', stderr);
    return 0;
}
