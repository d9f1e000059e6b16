#include "cmd_caption.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "caption_json.h"
#include "model_path.h"
#include "pipeline.h"

typedef struct {
    const char *model;
    int beam, max_length, json, attention;
    float length_penalty;
    long long max_pixels;
    char **images;
    int image_count;
} CaptionArgs;

static void print_help(FILE *out) {
    char places[8192];
    model_path_describe(places, sizeof places);
    fprintf(out,
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
            "  --model FILE          model weights (.safetensors); default: the bundled model\n"
            "  --beam N              beam width (default 3; 1 = greedy)\n"
            "  --max-length N        at most N words (default 30)\n"
            "  --length-penalty A    rank beams by logprob / length^A (default 0)\n"
            "  --json                one JSON object per image: path, caption, tokens, logprob\n"
            "  --attention           with --json: per-word attention maps (alpha) and gates (beta)\n"
            "  --max-pixels N        refuse images larger than N pixels (default 67108864)\n"
            "  -h, --help            this help\n"
            "\n"
            "exit status: 0 all images captioned, 1 some failed (each reported on stderr), 2 usage error\n"
            "\n"
            "the default model is looked for in:\n%s",
            places);
}

static int parse_args(int argc, char **argv, CaptionArgs *a) {
    *a = (CaptionArgs){.beam = 3, .max_length = 30, .images = argv};
    int only_images = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
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
            fprintf(stderr, "caption: %s needs a value (see caption --help)\n", arg);
            return -1;
        } else if (strcmp(arg, "--model") == 0) {
            a->model = value, i++;
        } else if (strcmp(arg, "--beam") == 0) {
            if (cli_parse_int(value, 1, 64, &a->beam) != 0) {
                fprintf(stderr, "caption: --beam takes a whole number from 1 to 64, not '%s'\n", value);
                return -1;
            }
            i++;
        } else if (strcmp(arg, "--max-length") == 0) {
            if (cli_parse_int(value, 1, 1000, &a->max_length) != 0) {
                fprintf(stderr, "caption: --max-length takes a whole number from 1 to 1000, not '%s'\n", value);
                return -1;
            }
            i++;
        } else if (strcmp(arg, "--length-penalty") == 0) {
            char *end;
            a->length_penalty = strtof(value, &end);
            if (*end || end == value || !(a->length_penalty >= 0.0f && a->length_penalty <= 10.0f)) {
                fprintf(stderr, "caption: --length-penalty takes a number from 0 to 10, not '%s'\n", value);
                return -1;
            }
            i++;
        } else if (strcmp(arg, "--max-pixels") == 0) {
            if (cli_parse_count(value, &a->max_pixels)) {
                fprintf(stderr, "caption: --max-pixels takes a positive whole number, not '%s'\n", value);
                return -1;
            }
            i++;
        } else {
            fprintf(stderr, "caption: unknown option %s (see caption --help)\n", arg);
            return -1;
        }
    }
    if (a->image_count == 0) {
        fprintf(stderr, "caption: no images given (usage: caption [options] IMAGE...; see caption --help)\n");
        return -1;
    }
    return 0;
}

static void print_caption(const CaptionPipeline *p, const CaptionArgs *a, const char *path, const Caption *c) {
    if (a->json) {
        cJSON *record = caption_to_json(&p->model, path, c, a->attention);
        char *text = cJSON_PrintUnformatted(record);
        if (text) printf("%s\n", text);
        free(text);
        cJSON_Delete(record);
    } else {
        char text[4096];
        printf("%s\t%s\n", path, caption_text(&p->model, c, text, sizeof text));
    }
    fflush(stdout);
}

int cmd_caption(int argc, char **argv) {
    CaptionArgs a;
    if (parse_args(argc, argv, &a) != 0) return 2;
    char default_path[4096];
    const char *model = a.model ? a.model : model_path_default(default_path, sizeof default_path);
    if (!model) {
        fprintf(stderr, "caption: no model given and no default model found; pass --model FILE "
                        "(caption --help lists where the default is looked for)\n");
        return 2;
    }
    CaptionPipeline pipeline;
    Error err;
    if (pipeline_open(&pipeline, model, a.beam, a.max_length, &err) != 0) {
        error_print(stderr, "caption", &err);
        return 1;
    }
    pipeline.decode = (DecodeOptions){a.beam, a.max_length, a.length_penalty};
    pipeline.load.max_pixels = a.max_pixels;
    int failures = 0;
    for (int i = 0; i < a.image_count; i++) {
        Caption caption;
        if (pipeline_caption_file(&pipeline, a.images[i], &caption, NULL, &err) != 0) {
            error_print(stderr, "caption", &err);
            failures++;
            continue;
        }
        print_caption(&pipeline, &a, a.images[i], &caption);
        caption_free(&caption);
    }
    pipeline_close(&pipeline);
    return failures ? 1 : 0;
}
