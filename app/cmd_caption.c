#include "cmd_caption.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caption.h"
#include "caption_internal.h"
#include "caption_json.h"
#include "cli.h"
#include "json_utf8.h"

typedef struct {
    CaptionOptions caption;
    int json, attention;
    char **images;
    int image_count;
} CaptionArgs;

static void print_help(FILE *out) {
    cli_print_help(out,
            "usage: caption [options] IMAGE...\n"
            "       caption export IMAGE -o OUT.png   attention figure of one image\n"
            "       caption batch PATH... -o OUT      caption folders of images\n"
            "       caption view [IMAGE|DIR...]       interactive viewer\n"
            "       caption eval ...                  score captions (BLEU, ROUGE-L, CIDEr-D)\n"
            "       caption train ...                 train a model\n"
            "       caption shapes --out DIR          generate a shapes dataset\n"
            "       (each subcommand has --help)\n"
            "\n"
            "Captions each image with a Show-Attend-Tell model and prints\n"
            "`path<TAB>caption` per image (or JSON Lines with --json).\n"
            "\n"
            "options:\n"
            "  --model FILE          model weights (.safetensors) or a bundled model's name; default: the\n"
            "                        bundled default model. A,B (files or names): an ensemble, each word\n"
            "                        chosen by the mean of the models' distributions, the maps A's\n"
            "  --beam N              beam width (default 3; 1 = greedy)\n"
            "  --max-length N        at most N words (default 30)\n"
            "  --length-penalty A    rank beams by logprob / length^A (default 0)\n"
            "  --json                one JSON object per image: path, caption, tokens, logprob\n"
            "  --attention           with --json: per-word attention maps (alpha) and gates (beta)\n"
            "  --max-pixels N        refuse images larger than N pixels (default 67108864)\n"
            "  -h, --help            this help\n"
            "\n"
            "exit status: 0 all images captioned, 1 some failed (each reported on stderr), 2 usage error\n");
}

static const unsigned OPTIONS = CLI_MODEL | CLI_BEAM | CLI_MAX_LENGTH | CLI_LENGTH_PENALTY | CLI_MAX_PIXELS;

static int parse_args(int argc, char **argv, CaptionArgs *a) {
    *a = (CaptionArgs){.caption = CAPTION_OPTIONS_DEFAULT, .images = argv};
    int only_images = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        Error err;
        if (only_images || arg[0] != '-' || arg[1] == '\0') {
            a->images[a->image_count++] = argv[i]; /* compacts argv in place */
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_images = 1;
        } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            print_help(stdout);
            exit(0);
        } else if (strcmp(arg, "--json") == 0) {
            a->json = 1;
        } else if (strcmp(arg, "--attention") == 0) {
            a->attention = 1;
        } else if (!value) {
            return cli_usage_error("caption", "%s needs a value", arg);
        } else {
            int taken = cli_take_option(&a->caption, NULL, OPTIONS, arg, value, &err);
            if (taken < 0) return fprintf(stderr, "caption: %s\n", err.message), -1;
            if (taken == 0) return cli_usage_error("caption", "unknown option %s", arg);
            i++;
        }
    }
    if (a->image_count == 0) {
        fprintf(stderr, "caption: no images given (usage: caption [options] IMAGE...; see caption --help)\n");
        return -1;
    }
    return 0;
}

static void print_caption(const caption_model *model, const CaptionArgs *a, const char *path,
                          const caption_result *result) {
    /* The internal Caption and model behind the handles: the JSON record
     * (caption_json.c) and the plain line are formatted as they always were. */
    const SatModel *m = caption_internal_model(model);
    const Caption *c = caption_internal_caption(result);
    if (a->json) {
        cJSON *record = caption_to_json(m, path, c, a->attention);
        char *text = json_print_utf8(record);
        if (text) printf("%s\n", text);
        free(text);
        cJSON_Delete(record);
    } else {
        char text[4096];
        printf("%s\t%s\n", path, caption_text(m, c, text, sizeof text));
    }
    fflush(stdout);
}

/* Prints a library error as every other error of `caption` is printed
 * (error_print: one line, control characters escaped). */
static void print_error(const caption_error *failure) {
    Error err;
    snprintf(err.message, sizeof err.message, "%s", failure->message);
    error_print(stderr, "caption", &err);
}

/* Opening and captioning go through libcaption (caption.h), as any program
 * embedding it would. */
int cmd_caption(int argc, char **argv) {
    CaptionArgs a;
    if (parse_args(argc, argv, &a) != 0) return 2;
    const caption_options options = {.beam = a.caption.beam,
                                     .max_length = a.caption.max_length,
                                     .length_penalty = a.caption.length_penalty,
                                     .max_pixels = a.caption.max_pixels};
    caption_model *model;
    caption_error failure;
    /* One image at a time: a second core, when there is one, is the helper's. */
    caption_status status =
        caption_model_open(&model, a.caption.model, &options, CAPTION_OPEN_HELPER_THREAD, &failure);
    if (status == CAPTION_ERROR_MODEL_NOT_FOUND) {
        cli_model_not_found(&a.caption, "caption"); /* a usage error, in the CLI's words (--model) */
        return 2;
    }
    if (status != CAPTION_OK) {
        print_error(&failure);
        return 1;
    }
    int failures = 0;
    for (int i = 0; i < a.image_count; i++) {
        caption_result *result;
        if (caption_model_caption_file(model, a.images[i], NULL, &result, &failure) != CAPTION_OK) {
            print_error(&failure);
            failures++;
            continue;
        }
        print_caption(model, &a, a.images[i], result);
        caption_result_free(result);
    }
    caption_model_close(model);
    return failures ? 1 : 0;
}
