#include "cmd_export.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "folders.h"
#include "heatmap.h"
#include "pipeline.h"

typedef struct {
    const char *image, *output, *frames, *words;
    const char *layer, *head, *self_attention; /* Transformer models: which map, and the words x words figure */
    CaptionOptions caption;
    FigureOptions figure;
} ExportArgs;

static void print_help(FILE *out) {
    cli_print_help(out,
            "usage: caption export IMAGE -o OUT.png [options]\n"
            "\n"
            "Captions IMAGE and draws where the model looked for each word, as in\n"
            "Xu et al. (2015) Fig. 2/3: the image, then one panel per word with that\n"
            "word's attention over the image, the word printed under it.\n"
            "Prints `IMAGE<TAB>caption` on success.\n"
            "\n"
            "options:\n"
            "  -o, --output FILE     the figure: PNG, or JPEG when FILE ends in .jpg (written atomically)\n"
            "  --model FILE          model weights (.safetensors), a bundled model's name, or A,B: an\n"
            "                        ensemble (caption --help); default: the bundled model\n"
            "  --beam N              beam width (default 3; 1 = greedy)\n"
            "  --max-length N        at most N words (default 30)\n"
            "  --colormap NAME       viridis (default), inferno or jet\n"
            "  --normalize MODE      how each word's map is scaled to the colormap: range (default;\n"
            "                        least..most attended), max (0..most attended) or none (one scale\n"
            "                        for every word: uniform attention at the bottom, all of it on one\n"
            "                        cell at the top)\n"
            "  --opacity A           heatmap opacity where attention peaks, 0..1 (default %.2g)\n"
            "  --smooth S            Gaussian smoothing of the attention map, in grid cells (default %.2g)\n"
            "  --panel-size PX       panel height in pixels, %d..%d (default %d, or the image's own\n"
            "                        height if smaller: panels are never enlarged; width follows the image)\n"
            "  --columns N           panels per row, the image included (default: the count that\n"
            "                        makes the figure about 16:10)\n"
            "  --show-beta           print under each word the gate beta, the word's probability and\n"
            "                        the map's peak weight (1/cells = uniform, 1 = one cell)\n"
            "  --frames DIR          also write one PNG per word to DIR: 00-word.png, 01-word.png, ...\n"
            "  --words LIST          only the panels of these words, comma-separated (e.g. dog,ball:\n"
            "                        the nouns); the title keeps the whole caption\n"
            "  --layer L             Transformer models: the cross-attention of decoder layer L\n"
            "                        (1 = first; default: the last)\n"
            "  --head H|mean|all     Transformer models: of head H (1 = first), the heads' mean (default),\n"
            "                        or all: one row per head and a last row for their mean\n"
            "  --self-attention FILE also write the words x words heatmap of the decoder's\n"
            "                        self-attention (the same layer and head) to FILE (PNG)\n"
            "  --max-pixels N        refuse images larger than N pixels (default 67108864)\n"
            "  -h, --help            this help\n"
            "\n"
            "Attention maps are upsampled bilinearly, smoothed, normalised (--normalize),\n"
            "and blended more strongly where attention is higher.\n"
            "A bottleneck model (no attention) cannot be exported: that is an error.\n"
            "\n"
            "exit status: 0 written, 1 data error (image, model, write), 2 usage error\n",
            (double)OVERLAY_DEFAULT_OPACITY, (double)OVERLAY_DEFAULT_SIGMA, FIGURE_MIN_PANEL_HEIGHT,
            FIGURE_MAX_PANEL_HEIGHT, FIGURE_DEFAULT_PANEL_HEIGHT);
}

/* Prints "caption export: <message> (see caption export --help)"; returns -1. */
#define usage_error(...) cli_usage_error("caption export", __VA_ARGS__)

static const unsigned OPTIONS = CLI_MODEL | CLI_BEAM | CLI_MAX_LENGTH | CLI_MAX_PIXELS | CLI_COLORMAP | CLI_NORMALIZE |
                               CLI_OPACITY | CLI_SMOOTH | CLI_PANEL_SIZE | CLI_COLUMNS;

/* Options that take a value; returns 0, or -1 after printing the problem. */
static int parse_value(ExportArgs *a, const char *arg, const char *value) {
    Error err;
    int taken = cli_take_option(&a->caption, &a->figure, OPTIONS, arg, value, &err);
    if (taken != 0) return taken < 0 ? usage_error("%s", err.message) : 0;
    if (strcmp(arg, "-o") == 0 || strcmp(arg, "--output") == 0) a->output = value;
    else if (strcmp(arg, "--frames") == 0) a->frames = value;
    else if (strcmp(arg, "--words") == 0) a->words = value;
    else if (strcmp(arg, "--layer") == 0) a->layer = value;
    else if (strcmp(arg, "--head") == 0) a->head = value;
    else if (strcmp(arg, "--self-attention") == 0) a->self_attention = value;
    else return usage_error("unknown option %s", arg);
    return 0;
}

static int parse_args(int argc, char **argv, ExportArgs *a) {
    *a = (ExportArgs){.caption = CAPTION_OPTIONS_DEFAULT};
    figure_options_default(&a->figure);
    int only_images = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (only_images || arg[0] != '-' || arg[1] == '\0') {
            if (a->image) return usage_error("one image at a time: got '%s' and '%s'", a->image, arg);
            a->image = arg;
        } else if (strcmp(arg, "--") == 0) {
            only_images = 1;
        } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            print_help(stdout);
            exit(0);
        } else if (strcmp(arg, "--show-beta") == 0) {
            a->figure.show_beta = 1;
        } else if (i + 1 >= argc) {
            return usage_error("%s needs a value", arg);
        } else if (parse_value(a, arg, argv[++i]) != 0) {
            return -1;
        }
    }
    if (!a->image) return usage_error("no image given (usage: caption export IMAGE -o OUT.png)");
    if (!a->output) return usage_error("no output file given: add -o OUT.png");
    if (a->head && strcmp(a->head, "all") == 0 && (a->frames || a->self_attention))
        return usage_error("--head all draws one figure with a row per head; --frames and --self-attention draw "
                           "one map: give them --head H or --head mean");
    return 0;
}

/* ---- export ------------------------------------------------------------ */

/* --head: the heads' mean (caption_attention_map's head -1), or a row per head. */
enum { HEAD_MEAN = -1, HEAD_ALL = -2 };

void export_frame_name(char *buf, size_t size, int step, int count, const char *word) {
    char clean[41];
    size_t n = 0;
    for (const char *p = word ? word : ""; *p && n < sizeof clean - 1; p++) {
        unsigned char ch = (unsigned char)*p;
        int keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-';
        if (keep || n > 0) clean[n++] = keep ? (char)ch : '_'; /* no leading '_' */
    }
    while (n > 0 && clean[n - 1] == '_') n--;
    clean[n] = '\0';
    int digits = 2;
    for (int limit = 100; count > limit && digits < 9; limit *= 10) digits++;
    snprintf(buf, size, "%0*d-%s.png", digits, step, n ? clean : "word");
}

static int write_frames(const Image *image, const char *const *words, const Caption *c, const char *dir,
                        const FigureOptions *o, const Font *font, Error *err) {
    if (make_folders(dir, err) != 0) return -1;
    for (int k = 0; k < c->length; k++) {
        char name[128], path[4200];
        export_frame_name(name, sizeof name, k, c->length, words[k]);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        Image frame;
        if (figure_render_step(&frame, image, words, c->alpha, c->grid_h, c->grid_w, c->length, k, o, font, err))
            return -1;
        int status = image_write_png(&frame, path, err);
        image_free(&frame);
        if (status != 0) return -1;
    }
    return 0;
}

/* Whether word is one of the comma-separated list. */
static int listed(const char *list, const char *word) {
    size_t length = strlen(word);
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n == length && strncmp(p, word, n) == 0) return 1;
        p += n;
        p += *p == ',';
    }
    return 0;
}

/* The panels to draw: every word of c, or those listed in only_words, with
 * their maps, gates and probabilities packed in caption order into view
 * (whose arrays are allocated here and freed by the caller). */
static int select_panels(const SatModel *model, const Caption *c, const char *only_words, Caption *view,
                         const char **words, float *prob, float *peak, Error *err) {
    int cells = c->cells;
    *view = *c;
    view->length = 0;
    view->alpha = malloc(sizeof(float) * (size_t)cells * (size_t)(c->length > 0 ? c->length : 1));
    view->beta = c->beta ? malloc(sizeof(float) * (size_t)(c->length > 0 ? c->length : 1)) : NULL;
    if (!view->alpha || (c->beta && !view->beta)) return error_set(err, "out of memory");
    for (int k = 0; k < c->length; k++) {
        int t = c->tokens[k];
        const char *word = t >= 0 && t < model->config.vocab_size ? model->vocab[t] : "?";
        if (only_words && !listed(only_words, word)) continue;
        int at = view->length++;
        words[at] = word;
        prob[at] = expf(c->token_logprobs[k]);
        peak[at] = attention_peak(c->alpha + (size_t)k * cells, cells);
        memcpy(view->alpha + (size_t)at * cells, c->alpha + (size_t)k * cells, sizeof(float) * (size_t)cells);
        if (view->beta) view->beta[at] = c->beta[k];
    }
    if (only_words && view->length == 0) {
        char text[4096];
        return error_set(err, "none of the words '%s' is in the caption \"%s\"; list words of the caption",
                         only_words, caption_text(model, c, text, sizeof text));
    }
    return 0;
}

/* A caption's panels and the figure options that go with them. */
typedef struct {
    Caption view;       /* the selected words' maps and gates, packed */
    const char **words;
    float *prob, *peak;
    FigureOptions options;
    char title[4096];
} Panels;

static void panels_close(Panels *p) {
    free(p->words), free(p->prob), free(p->peak);
    free(p->view.alpha), free(p->view.beta);
}

/* The panels of c (only_words: see export_caption), titled with the caption,
 * after "LABEL: " when label is not NULL. */
static int panels_open(Panels *p, const SatModel *model, const Caption *c, const char *only_words, const char *label,
                       const FigureOptions *opts, Error *err) {
    *p = (Panels){0};
    int n = c->length > 0 ? c->length : 1;
    p->words = malloc(sizeof *p->words * (size_t)n);
    p->prob = malloc(sizeof *p->prob * (size_t)n), p->peak = malloc(sizeof *p->peak * (size_t)n);
    int status = p->words && p->prob && p->peak
                         ? select_panels(model, c, only_words, &p->view, p->words, p->prob, p->peak, err)
                         : error_set(err, "out of memory");
    if (status != 0) {
        panels_close(p);
        return -1;
    }
    char text[4000];
    caption_display_text(model, c, text, sizeof text);
    if (label) snprintf(p->title, sizeof p->title, "%s: %s", label, text);
    else snprintf(p->title, sizeof p->title, "%s", text);
    p->options = *opts;
    p->options.title = p->title;
    /* The numbers go together under --show-beta; β only where there is a
     * gate (a Transformer has none: its β would read 1.00 everywhere). */
    p->options.prob = opts->show_beta ? p->prob : NULL;
    p->options.peak = opts->show_beta ? p->peak : NULL;
    p->options.beta = c->head_alpha ? NULL : p->view.beta;
    p->options.show_beta = opts->show_beta && p->options.beta;
    return 0;
}

static int render_panels(Image *figure, const Panels *p, const Image *image, const Font *font, Error *err) {
    return figure_render(figure, image, p->words, p->view.alpha, p->view.grid_h, p->view.grid_w, p->view.length,
                         &p->options, font, err);
}

int export_caption(const SatModel *model, const Caption *c, const Image *image, const char *out_path,
                   const char *frames_dir, const char *only_words, const char *label, const FigureOptions *opts,
                   const Font *font, Error *err) {
    if (!c->alpha) return error_set(err, "the model has no attention (a bottleneck model): there is nothing to draw");
    Panels p;
    if (panels_open(&p, model, c, only_words, label, opts, err) != 0) return -1;
    int status = 0;
    if (out_path) {
        Image figure = {0};
        status = render_panels(&figure, &p, image, font, err);
        if (status == 0) status = image_write_by_extension(&figure, out_path, err);
        image_free(&figure);
    }
    if (status == 0 && frames_dir) status = write_frames(image, p.words, &p.view, frames_dir, &p.options, font, err);
    panels_close(&p);
    return status;
}

/* What a Transformer's figure shows: "layer 2, head 3", "layer 2, mean of 4 heads". */
static void map_label(char *label, size_t size, int layer, int head, int heads) {
    if (head >= 0) snprintf(label, size, "layer %d, head %d", layer + 1, head + 1);
    else snprintf(label, size, "layer %d, mean of %d heads", layer + 1, heads);
}

/* One figure with a row per head of decoder layer `layer` and a last row for
 * their mean, each titled with what it shows (`--head all`). */
static int export_every_head(const SatModel *m, const Caption *c, const Image *image, const char *out_path,
                             const char *only_words, int layer, const FigureOptions *opts, const Font *font,
                             Error *err) {
    int rows = c->heads + 1;
    size_t n = c->length > 0 ? (size_t)c->length : 1;
    Image *figures = calloc((size_t)rows, sizeof *figures);
    float *alpha = malloc(sizeof(float) * n * c->cells);
    int status = figures && alpha ? 0 : error_set(err, "out of memory");
    for (int r = 0; status == 0 && r < rows; r++) {
        int head = r < c->heads ? r : HEAD_MEAN;
        char label[64];
        map_label(label, sizeof label, layer, head, c->heads);
        Caption view = *c;
        view.alpha = alpha;
        Panels p;
        status = caption_attention_map(c, layer, head, alpha, NULL) == 0
                         ? panels_open(&p, m, &view, only_words, label, opts, err)
                         : error_set(err, "the caption has no map for %s", label);
        if (status != 0) break;
        /* One line of panels a head, so the heads' maps of a word sit in one column. */
        if (opts->columns == 0 && p.view.length < FIGURE_MAX_COLUMNS) p.options.columns = p.view.length + 1;
        status = render_panels(&figures[r], &p, image, font, err);
        panels_close(&p);
    }
    Image page = {0};
    if (status == 0) status = figure_stack(&page, figures, rows, err);
    if (status == 0) status = image_write_by_extension(&page, out_path, err);
    image_free(&page);
    for (int r = 0; figures && r < rows; r++) image_free(&figures[r]);
    free(figures), free(alpha);
    return status;
}

/* ---- the command ---------------------------------------------------------- */

static int open_pipeline(CaptionPipeline *p, const ExportArgs *a, Error *err) {
    char default_path[4096];
    const char *model = cli_model_path(&a->caption, "caption export", default_path, sizeof default_path);
    if (!model) return 2;
    if (cli_pipeline_open(p, model, &a->caption, 1, 1, err) != 0) return 1;
    if (!p->model.config.use_attention) {
        error_set(err, "%s is a bottleneck model (no attention): there are no attention maps to draw; "
                       "use a model with attention", model);
        pipeline_close(p);
        return 1;
    }
    return 0;
}

static int load_font(Font **font, Error *err) {
    char path[4096];
    if (!font_default_path(path, sizeof path))
        return error_set(err, "the bundled font (assets/fonts/DejaVuSans.ttf) was not found");
    return font_load(font, path, err);
}

/* --layer and --head as 0-based indices (head HEAD_MEAN or HEAD_ALL); -1
 * with err when they do not fit the model. */
static int choose_layer_head(const ExportArgs *a, const SatModel *m, int *layer, int *head, Error *err) {
    if (!m->config.transformer) {
        if (a->layer || a->head || a->self_attention)
            return error_set(err, "--layer, --head and --self-attention are for Transformer models; %s has one "
                                  "attention map per word", "this model");
        return 0;
    }
    long long value = 0;
    *layer = m->config.decoder_layers - 1;
    *head = HEAD_MEAN;
    if (a->layer && (cli_parse_count(a->layer, &value) != 0 || value > m->config.decoder_layers))
        return error_set(err, "--layer %s: the model has decoder layers 1 to %d", a->layer, m->config.decoder_layers);
    if (a->layer) *layer = (int)value - 1;
    if (a->head && strcmp(a->head, "all") == 0) {
        *head = HEAD_ALL;
    } else if (a->head && strcmp(a->head, "mean") != 0) {
        if (cli_parse_count(a->head, &value) != 0 || value > m->config.heads)
            return error_set(err, "--head %s: use mean, all or a head from 1 to %d", a->head, m->config.heads);
        *head = (int)value - 1;
    }
    return 0;
}

/* The words x words figure of the chosen layer and head. */
static int write_self_attention(const SatModel *m, const Caption *c, const float *rows, const char *path,
                                int layer, int head, const Font *font, Error *err) {
    int n = c->length;
    if (n == 0) return error_set(err, "the caption has no words: there is no self-attention to draw");
    const char **words = malloc(sizeof *words * (size_t)n), **inputs = malloc(sizeof *inputs * (size_t)n);
    int *lengths = malloc(sizeof *lengths * (size_t)n);
    int status = words && inputs && lengths ? 0 : error_set(err, "out of memory");
    for (int t = 0; status == 0 && t < n; t++) {
        words[t] = m->vocab[c->tokens[t]];
        inputs[t] = t == 0 ? m->vocab[TOKEN_START] : m->vocab[c->tokens[t - 1]];
        lengths[t] = t + 1;
    }
    char label[64], title[160];
    map_label(label, sizeof label, layer, head, c->heads);
    snprintf(title, sizeof title, "self-attention, %s", label);
    HeatmapOptions options = {.title = title, .colormap = COLORMAP_VIRIDIS};
    Image figure = {0};
    if (status == 0) status = heatmap_render(&figure, rows, n, n, lengths, words, inputs, &options, font, err);
    if (status == 0) status = image_write_png(&figure, path, err);
    image_free(&figure);
    free(words), free(inputs), free(lengths);
    return status;
}

/* Exports the caption, with a Transformer's chosen layer and head. */
static int export_with_maps(const ExportArgs *a, const SatModel *m, const Caption *c, const Image *image,
                            const Font *font, Error *err) {
    int layer = 0, head = HEAD_MEAN;
    if (choose_layer_head(a, m, &layer, &head, err) != 0) return -1;
    if (!m->config.transformer)
        return export_caption(m, c, image, a->output, a->frames, a->words, NULL, &a->figure, font, err);
    if (head == HEAD_ALL) return export_every_head(m, c, image, a->output, a->words, layer, &a->figure, font, err);
    size_t n = c->length > 0 ? (size_t)c->length : 1;
    float *alpha = malloc(sizeof(float) * n * c->cells), *rows = malloc(sizeof(float) * n * n);
    int status = alpha && rows ? caption_attention_map(c, layer, head, alpha, rows) : error_set(err, "out of memory");
    Caption view = *c;
    view.alpha = alpha;
    /* A chosen map is named in the title; the default one (the last layer's mean) is not. */
    char label[64];
    map_label(label, sizeof label, layer, head, c->heads);
    const char *title_label = a->layer || a->head ? label : NULL;
    if (status == 0)
        status = export_caption(m, &view, image, a->output, a->frames, a->words, title_label, &a->figure, font, err);
    if (status == 0 && a->self_attention)
        status = write_self_attention(m, c, rows, a->self_attention, layer, head, font, err);
    free(alpha), free(rows);
    return status;
}

/* Checks where the outputs go before anything is rendered, so that a path
 * that cannot be written fails first and nothing is left half done: the
 * figures' folders must exist and be writable; the --frames folder is made,
 * parents included, as mkdir -p makes it. */
static int prepare_outputs(const ExportArgs *a, Error *err) {
    const char *outputs[2] = {a->output, a->self_attention};
    for (int i = 0; i < 2; i++) {
        if (!outputs[i]) continue;
        const char *slash = strrchr(outputs[i], '/');
        char folder[4096] = ".";                                         /* a bare name: here */
        if (slash == outputs[i]) snprintf(folder, sizeof folder, "/");     /* "/name" */
        else if (slash) snprintf(folder, sizeof folder, "%.*s", (int)(slash - outputs[i]), outputs[i]);
        if (access(folder, W_OK) != 0)
            return error_set(err, "cannot write %s: its folder %s %s", outputs[i], folder,
                             errno == ENOENT ? "does not exist; create it first" : "is not writable");
    }
    return a->frames ? make_folders(a->frames, err) : 0;
}

int cmd_export(int argc, char **argv) {
    ExportArgs a;
    if (parse_args(argc, argv, &a) != 0) return 2;
    CaptionPipeline pipeline;
    Error err;
    if (prepare_outputs(&a, &err) != 0) {
        error_print(stderr, "caption export", &err);
        return 1;
    }
    int status = open_pipeline(&pipeline, &a, &err);
    if (status != 0) {
        if (status == 1) error_print(stderr, "caption export", &err);
        return status;
    }
    Caption caption = {0};
    Image image = {0};
    Font *font = NULL;
    status = load_font(&font, &err) != 0 ||
             pipeline_caption_file(&pipeline, a.image, &caption, &image, &err) != 0 ||
             export_with_maps(&a, &pipeline.model, &caption, &image, font, &err) != 0;
    if (status) {
        error_print(stderr, "caption export", &err);
    } else {
        char text[4096];
        printf("%s\t%s\n", a.image, caption_text(&pipeline.model, &caption, text, sizeof text));
    }
    caption_free(&caption);
    image_free(&image);
    font_free(font);
    pipeline_close(&pipeline);
    return status ? 1 : 0;
}
