#include "cmd_train.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "replicas.h"
#include "shapes.h"
#include "train.h"
#include "train_options.h"

/* The one piece of global state: a signal handler can reach nothing else. */
static volatile sig_atomic_t interrupt_requested;

static void on_interrupt(int signal_number) {
    (void)signal_number;
    interrupt_requested = 1;
}

static void print_help(FILE *out) {
    fprintf(out,
            "usage: caption train --data DATASET [--config FILE] [--OPTION VALUE]...\n"
            "       caption train --resume CHECKPOINT [--epochs N] [--time-limit MIN] ...\n"
            "\n"
            "Trains a Show-Attend-Tell model from scratch, CNN and decoder end to end.\n"
            "The run folder (--out) receives checkpoint.safetensors (every --checkpoint-every\n"
            "steps and each epoch; Ctrl-C writes one too), best.safetensors (best dev CIDEr-D),\n"
            "model.safetensors (the best, at the end), steps.csv, epochs.csv and curve.png.\n"
            "A config file is a JSON object whose keys are the option names below.\n"
            "--resume continues exactly where the checkpoint stopped, with its options;\n"
            "only --epochs, --time-limit, --stop-at-step, --patience, --checkpoint-every,\n"
            "--eval-images, --threads and --out may be changed.\n"
            "Under mpirun -np N (or srun) it trains data-parallel: each process takes its\n"
            "share of every batch, gradients are summed over all (MPI_Allreduce), rank 0\n"
            "evaluates and writes the files; --resume works with any N (README, MPI).\n"
            "\n"
            "options:\n");
    train_options_print_help(out);
}

static const char *const resume_overrides[] = {"epochs", "time-limit", "patience", "checkpoint-every",
                                               "eval-images", "threads", "replicas", "out", "stop-at-step", NULL};

static int allowed_on_resume(const char *name) {
    for (int i = 0; resume_overrides[i]; i++)
        if (strcmp(resume_overrides[i], name) == 0) return 1;
    return 0;
}

/* Options come from: defaults (or the checkpoint), then --config, then flags. */
static int parse(int argc, char **argv, TrainOptions *o, const char **resume) {
    Error err;
    const char *config = NULL;
    *resume = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            print_help(stdout);
            return 1;
        }
        if (i + 1 < argc && strcmp(argv[i], "--config") == 0) config = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--resume") == 0) *resume = argv[++i];
    }
    train_options_defaults(o);
    if (*resume) {
        char *json = checkpoint_read_options(*resume, &err);
        if (!json || train_options_from_json_text(o, json, *resume, &err) != 0) {
            free(json);
            fprintf(stderr, "caption train: %s\n", err.message);
            return -1;
        }
        free(json);
    } else if (config && train_options_load_json(o, config, &err) != 0) {
        fprintf(stderr, "caption train: %s\n", err.message);
        return -1;
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--config") == 0 || strcmp(arg, "--resume") == 0) {
            i++;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0 || i + 1 >= argc) {
            fprintf(stderr, "caption train: expected --OPTION VALUE, got '%s' (see caption train --help)\n", arg);
            return -1;
        }
        if (*resume && !allowed_on_resume(arg + 2)) {
            fprintf(stderr, "caption train: %s cannot change when resuming (the checkpoint fixes it)\n", arg);
            return -1;
        }
        int taken = train_options_set(o, arg + 2, argv[i + 1], &err);
        if (taken == 0) fprintf(stderr, "caption train: unknown option %s (see caption train --help)\n", arg);
        if (taken < 0) fprintf(stderr, "caption train: %s\n", err.message);
        if (taken <= 0) return -1;
        i++;
    }
    /* The options a checkpoint keeps say what was used; with --init the
     * model file decides the decoder, and so the defaults (load_initial_model). */
    if (o->init[0] == '\0') sat_config_resolve_defaults(&o->model);
    if (!*resume && o->data[0] == '\0') {
        fprintf(stderr, "caption train: no dataset; pass --data DIR (a Flickr8k-layout folder) or a captions JSON\n");
        return -1;
    }
    return 0;
}

int cmd_train(int argc, char **argv) {
    TrainOptions options;
    const char *resume;
    Replicas replicas;
    Error err;
    if (replicas_start(&replicas, &argc, &argv, &err) != 0) {
        fprintf(stderr, "caption train: %s\n", err.message);
        return 2;
    }
    int parsed = parse(argc, argv, &options, &resume);
    if (parsed != 0) {
        /* Every rank parses the same arguments: all stop here together. */
        replicas_finish(&replicas);
        return parsed > 0 ? 0 : 2;
    }
    struct sigaction action = {0};
    action.sa_handler = on_interrupt;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    int result = train_run_replicated(&options, resume, &interrupt_requested, &replicas);
    if (result == 1) replicas_abort(&replicas, 1); /* a rank failed: the others may be waiting for it */
    replicas_finish(&replicas);
    return result;
}

int cmd_shapes(int argc, char **argv) {
    const char *out = NULL;
    long train = 2000, dev = 200;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: caption shapes --out DIR [--train N] [--dev N] [--seed N]\n"
                   "Writes a procedural dataset of coloured shapes with captions such as\n"
                   "\"a red circle above a blue square\" in the Flickr8k layout (images/,\n"
                   "captions.txt, train.txt, dev.txt), for `caption train --data DIR`, and\n"
                   "objects.tsv (each object's noun position and box), with which\n"
                   "`caption eval --model M --data DIR` measures where attention lands.\n");
            return 0;
        }
        if (!value) {
            fprintf(stderr, "caption shapes: %s needs a value\n", argv[i]);
            return 2;
        }
        if (strcmp(argv[i], "--out") == 0) out = value;
        else if (strcmp(argv[i], "--train") == 0) train = strtol(value, &end, 10);
        else if (strcmp(argv[i], "--dev") == 0) dev = strtol(value, &end, 10);
        else if (strcmp(argv[i], "--seed") == 0) seed = strtoull(value, &end, 10);
        else {
            fprintf(stderr, "caption shapes: unknown option %s\n", argv[i]);
            return 2;
        }
        if (end && *end) {
            fprintf(stderr, "caption shapes: %s takes a whole number, not '%s'\n", argv[i], value);
            return 2;
        }
        i++;
    }
    if (!out || train < 1 || dev < 1 || train > 10000000 || dev > 10000000) {
        fprintf(stderr, "caption shapes: need --out DIR and positive --train/--dev counts\n");
        return 2;
    }
    ShapesOptions options;
    shapes_options_default(&options);
    Error err;
    if (shapes_write_dataset(out, (int)train, (int)dev, seed, &options, &err) != 0) {
        fprintf(stderr, "caption shapes: %s\n", err.message);
        return 1;
    }
    fprintf(stderr, "caption shapes: wrote %ld training and %ld dev scenes to %s\n", train, dev, out);
    return 0;
}
