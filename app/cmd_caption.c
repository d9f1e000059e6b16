#include "cmd_caption.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "caption_json.h"
#include "json_utf8.h"
#include "pipeline.h"

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
            "  --model FILE          model weights (.safetensors); default: the bundled model\n"
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

static void print_caption(const CaptionPipeline *p, const CaptionArgs *a, const char *path, const Caption *c) {
    if (a->json) {
        cJSON *record = caption_to_json(&p->model, path, c, a->attention);
        char *text = json_print_utf8(record);
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
    const char *model = cli_model_path(&a.caption, "caption", default_path, sizeof default_path);
    if (!model) return 2;
    CaptionPipeline pipeline;
    Error err;
    if (cli_pipeline_open(&pipeline, model, &a.caption, 1, 1, &err) != 0) {
        error_print(stderr, "caption", &err);
        return 1;
    }
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
