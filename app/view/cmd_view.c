#include "cmd_view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CAPTION_HAVE_VIEWER

#include "cli.h"
#include "folders.h"
#include "pipeline.h"
#include "viewer.h"

typedef struct {
    CaptionOptions caption;
    FigureOptions figure; /* its overlay settings: what the window starts with */
    const char *script, *screenshot_dir;
    char note[512];       /* "no images in A, B": the arguments that gave none */
} ViewArgs;

static void print_help(FILE *out) {
    cli_print_help(out,
            "usage: caption view [options] [IMAGE|DIR...]\n"
            "\n"
            "Opens a window showing each image, its caption with the current word\n"
            "highlighted, and where the model looked for that word. Folders are expanded\n"
            "into their images, sorted by name; images can also be dropped on the window.\n"
            "\n"
            "options:\n"
            "  --model FILE          model weights (.safetensors), a bundled model's name, or A,B: an\n"
            "                        ensemble (caption --help); default: the bundled model\n"
            "  --beam N              beam width to start with (default 3; 1 = greedy; `b` cycles 1, 3, 5)\n"
            "  --max-pixels N        refuse images larger than N pixels (default 67108864)\n"
            "  --colormap NAME       viridis (default), inferno or jet (`c` cycles them)\n"
            "  --normalize MODE      each word's map scaled from its least (range, default) or from 0 (max),\n"
            "                        or one scale for every word (none: uniform at the bottom, one cell\n"
            "                        at the top), as in caption export\n"
            "  --opacity A           overlay opacity where attention peaks, 0..1 (default 0.7; + and - change it)\n"
            "  --smooth S            Gaussian smoothing of the map, in grid cells (default 0.5)\n"
            "  --screenshot-dir DIR  where `s` saves caption-view-NNNN.png, made if missing (default: the current folder)\n"
            "  --script FILE         run a scripted session (tests): lines `key NAME`, `mouse X Y`,\n"
            "                        `drop PATH`, `resize W H`, `wait-caption`, `wait MS`,\n"
            "                        `screenshot PATH`, `quit`\n"
            "  -h, --help            this help\n"
            "\n"
            "keys:\n"
            "  left / right          previous / next word (hovering a word does the same)\n"
            "  Home / End            first / last word\n"
            "  space                 play the words as an animation\n"
            "  a                     attention overlay on / off\n"
            "  + / -                 overlay opacity\n"
            "  c                     colormap (viridis, inferno, jet)\n"
            "  b                     beam width 1, 3, 5 (captions again)\n"
            "  l / k                 a Transformer model: next layer / next head, then the heads' mean\n"
            "  g                     grid of all the words\n"
            "  s                     save what is shown as PNG (the name is printed on stderr)\n"
            "  n / p, PgDn / PgUp    next / previous image\n"
            "  h                     show the keys\n"
            "  q, Esc                quit\n"
            "\n"
            "exit status: 0 closed, 1 model or window could not be opened, 2 usage error\n");
}

static const unsigned OPTIONS =
    CLI_MODEL | CLI_BEAM | CLI_MAX_PIXELS | CLI_COLORMAP | CLI_NORMALIZE | CLI_OPACITY | CLI_SMOOTH;

static int is_value_option(const char *arg) {
    return cli_takes_option(OPTIONS, arg) || strcmp(arg, "--script") == 0 ||
           strcmp(arg, "--screenshot-dir") == 0;
}

/* Options, and the image arguments expanded into files. -1 after printing the problem. */
static int parse_args(int argc, char **argv, ViewArgs *a, ImageList *files) {
    *a = (ViewArgs){.caption = CAPTION_OPTIONS_DEFAULT};
    figure_options_default(&a->figure);
    int only_images = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        Error err;
        if (only_images || arg[0] != '-' || arg[1] == '\0') {
            int added = image_list_add(files, arg, &err);
            if (added < 0) return error_print(stderr, "caption view", &err), -1;
            if (added == 0) {
                fprintf(stderr, "caption view: no images in %s\n", arg);
                size_t used = strlen(a->note);
                snprintf(a->note + used, sizeof a->note - used, "%s%s", used ? ", " : "no images in ", arg);
            }
        } else if (strcmp(arg, "--") == 0) {
            only_images = 1;
        } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            print_help(stdout);
            exit(0);
        } else if (!is_value_option(arg)) {
            return cli_usage_error("caption view", "unknown option %s", arg);
        } else if (!value) {
            return cli_usage_error("caption view", "%s needs a value", arg);
        } else if (strcmp(arg, "--script") == 0) {
            a->script = argv[++i];
        } else if (strcmp(arg, "--screenshot-dir") == 0) {
            a->screenshot_dir = argv[++i];
        } else if (cli_take_option(&a->caption, &a->figure, OPTIONS, arg, argv[++i], &err) < 0) {
            return fprintf(stderr, "caption view: %s\n", err.message), -1;
        }
    }
    return 0;
}

static int run(const ViewArgs *a, ImageList *files) {
    Error folder_err;
    /* Made now (with its parents), so that `s` does not fail later for a folder that is not there. */
    if (a->screenshot_dir && make_folders(a->screenshot_dir, &folder_err) != 0) {
        error_print(stderr, "caption view: --screenshot-dir", &folder_err);
        return 1;
    }
    char default_path[4096];
    const char *model = cli_model_path(&a->caption, "caption view", default_path, sizeof default_path);
    if (!model) return 2;
    CaptionPipeline pipeline;
    Error err;
    /* Room for the widest beam `b` offers, so changing it never reloads the model. */
    if (cli_pipeline_open(&pipeline, model, &a->caption, 5, 1, &err) != 0) {
        error_print(stderr, "caption view", &err);
        return 1;
    }
    ViewerOptions options = {files, a->caption.beam, a->script, a->screenshot_dir, &a->figure.overlay, a->note};
    int status = viewer_run(&pipeline, &options, &err);
    if (status != 0) error_print(stderr, "caption view", &err);
    pipeline_close(&pipeline);
    return status != 0 ? 1 : 0;
}

int cmd_view(int argc, char **argv) {
    ViewArgs a;
    ImageList files = {0};
    int status = parse_args(argc, argv, &a, &files) == 0 ? run(&a, &files) : 2;
    image_list_free(&files);
    return status;
}

#else

int cmd_view(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "caption view: this build of caption has no viewer: SDL2 was not found when it was "
                    "configured (or -Dviewer=disabled was given).\n"
                    "To get it, install SDL2's development files (Debian/Ubuntu: sudo apt-get install "
                    "libsdl2-dev) and rebuild: meson setup --reconfigure -Dviewer=enabled build && "
                    "meson compile -C build\n");
    return 1;
}

#endif
