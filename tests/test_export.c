/* `caption export` end to end: a random-weight model and test pictures
 * (RGB, gray, RGBA, not square) -> the built executable -> PNGs that decode,
 * have the layout's size and the very pixels export_caption draws in
 * process; frames; usage and data errors with their exit codes. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "cmd_export.h"
#include "model.h"
#include "pipeline.h"
#include "test_util.h"

static const char *const VOCAB[] = {"<pad>", "<start>", "<end>", "<unk>", "a",     "red",  "blue",
                                    "circle", "square", "left",   "of",    "above", "grass"};
#define VOCAB_SIZE ((int)(sizeof VOCAB / sizeof VOCAB[0]))

/* A small model with random weights that never emits <end>, so captions are
 * exactly --max-length words. */
/* attention: 0 bottleneck, 1 attention, 2 Transformer (2 layers of 2 heads). */
static int write_model(const char *path, int attention) {
    SatConfig config;
    sat_config_defaults(&config);
    config.image_size = 32;
    snprintf(config.encoder_spec, sizeof config.encoder_spec, "%s", "8,16p,16p");
    config.embed_dim = 16, config.hidden_dim = 32, config.attention_dim = 16;
    config.vocab_size = VOCAB_SIZE;
    config.use_attention = attention > 0;
    if (attention == 2) {
        sat_decoder_parse("transformer", &config);
        config.heads = 2, config.decoder_layers = 2, config.ff_dim = 24;
    }
    SatModel model;
    Error err;
    if (sat_model_create(&model, &config, VOCAB, &err) != 0) return fprintf(stderr, "%s\n", err.message), -1;
    sat_model_init_params(&model, 7);
    (attention == 2 ? model.p.transformer.out_bias : model.p.out_bias)[TOKEN_END] = -100.0f;
    int status = sat_model_save(&model, path, 0, &err);
    if (status != 0) fprintf(stderr, "%s\n", err.message);
    sat_model_free(&model);
    return status;
}

/* A picture with some structure: a gradient and a bright block. */
static int write_picture(const char *path, int width, int height, int channels) {
    Image img;
    Error err;
    if (image_alloc(&img, width, height, channels, &err) != 0) return -1;
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            for (int ch = 0; ch < channels; ch++) {
                int v = ch == 3 ? 255 : (x * 255 / width + ch * 60 + (x > width / 2 && y < height / 3) * 120) % 256;
                img.pixels[((size_t)y * width + x) * channels + ch] = (unsigned char)v;
            }
    int status = image_write_png(&img, path, &err);
    image_free(&img);
    return status;
}

/* Runs the executable with args (NULL-terminated, args[0] = "caption"),
 * stdout and stderr to files; returns the exit status. */
static int run(const char *exe, char *const *args, const char *out_path, const char *err_path) {
    pid_t pid = fork();
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int errfd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(out, 1);
        dup2(errfd, 2);
        execv(exe, args);
        _exit(127);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) < 0) return -1;
    return exit_code_of(status);
}

/* The file's first line, and whether it is the only one. */
static int one_line(const char *path, char *line, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    line[0] = '\0';
    int ok = fgets(line, (int)size, f) != NULL;
    char extra[16];
    ok = ok && fgets(extra, sizeof extra, f) == NULL;
    fclose(f);
    return ok;
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int same_pixels(const Image *a, const Image *b) {
    return a->width == b->width && a->height == b->height && a->channels == b->channels &&
           memcmp(a->pixels, b->pixels, (size_t)a->width * a->height * a->channels) == 0;
}

typedef struct {
    const char *exe, *dir;
    char model[512], bottleneck[512], out[512], err[512];
} Fixture;

/* --words keeps the listed words' panels (every occurrence), in process as
 * with the CLI, and their frames; a list none of whose words is in the
 * caption is an error that says so. */
static void test_word_selection(CheckCounts *c, const Fixture *f, const char *picture, const SatModel *model,
                                const Caption *caption, const Image *image, const FigureOptions *o,
                                const Font *font) {
    char list[200], png[600], mine[600], frames[600];
    const char *second = model->vocab[caption->tokens[1]], *last = model->vocab[caption->tokens[3]];
    snprintf(list, sizeof list, "%s,%s,zebra-not-a-word", second, last);
    int expected = 0;
    for (int k = 0; k < caption->length; k++) {
        const char *word = model->vocab[caption->tokens[k]];
        expected += strcmp(word, second) == 0 || strcmp(word, last) == 0;
    }
    snprintf(png, sizeof png, "%s/words.png", f->dir);
    snprintf(mine, sizeof mine, "%s/words-mine.png", f->dir);
    snprintf(frames, sizeof frames, "%s/words-frames", f->dir);
    char *args[] = {"caption", "export", (char *)picture, "-o", png, "--model", (char *)f->model, "--panel-size",
                    "48", "--columns", "3", "--max-length", "4", "--colormap", "inferno", "--show-beta",
                    "--words", list, "--frames", frames, NULL};
    CHECK(c, run(f->exe, args, f->out, f->err) == 0);
    Error err;
    Image cli = {0}, figure = {0};
    CHECK(c, export_caption(model, caption, image, mine, NULL, list, NULL, o, font, &err) == 0);
    CHECK(c, image_load(&cli, png, NULL, &err) == 0 && image_load(&figure, mine, NULL, &err) == 0);
    CHECK(c, cli.pixels && figure.pixels && same_pixels(&cli, &figure));
    CHECK(c, count_files(frames) == expected);
    printf("--words %s: %d panels, figure %dx%d\n", list, expected, cli.width, cli.height);
    image_free(&cli), image_free(&figure);
    char *none[] = {"caption", "export", (char *)picture, "-o", png, "--model", (char *)f->model,
                    "--words", "zebra-not-a-word", NULL};
    CHECK(c, run(f->exe, none, f->out, f->err) == 1);
    char line[1024];
    CHECK(c, one_line(f->err, line, sizeof line) && strstr(line, "none of the words 'zebra-not-a-word'"));
}

/* Exports one picture with the CLI and in process; compares them. */
static void test_picture(CheckCounts *c, const Fixture *f, const char *picture, int expect_w, int expect_h) {
    char png[600], frames[600];
    snprintf(png, sizeof png, "%s/figure.png", f->dir);
    snprintf(frames, sizeof frames, "%s/frames-%dx%d", f->dir, expect_w, expect_h);
    char *args[] = {"caption", "export", (char *)picture, "-o", png, "--model", (char *)f->model, "--panel-size",
                    "48", "--columns", "3", "--max-length", "4", "--frames", frames, "--colormap", "inferno",
                    "--show-beta", NULL};
    CHECK(c, run(f->exe, args, f->out, f->err) == 0);
    char line[1024];
    CHECK(c, one_line(f->out, line, sizeof line) && strncmp(line, picture, strlen(picture)) == 0);

    /* The same export in process. */
    CaptionPipeline p;
    Caption caption = {0};
    Image image = {0}, cli = {0}, figure = {0};
    Font *font = NULL;
    Error err;
    char font_path[4096];
    CHECK(c, font_default_path(font_path, sizeof font_path) && font_load(&font, font_path, &err) == 0);
    CHECK(c, pipeline_open(&p, f->model, 3, 4, &err) == 0);
    /* As the command does (cli_pipeline_open, single image): the same threads, the same bits. */
    if (sysconf(_SC_NPROCESSORS_ONLN) > 1) CHECK(c, captioner_use_second_thread(p.captioner, &err) == 0);
    p.decode = (DecodeOptions){3, 4, 0.0f};
    CHECK(c, pipeline_caption_file(&p, picture, &caption, &image, &err) == 0);
    CHECK(c, image.width == expect_w && image.height == expect_h && caption.length == 4);
    FigureOptions o;
    figure_options_default(&o);
    o.panel_height = 48, o.columns = 3, o.overlay.colormap = COLORMAP_INFERNO, o.show_beta = 1;
    char mine[600];
    snprintf(mine, sizeof mine, "%s/mine.png", f->dir);
    CHECK(c, export_caption(&p.model, &caption, &image, mine, NULL, NULL, NULL, &o, font, &err) == 0);
    CHECK(c, image_load(&cli, png, NULL, &err) == 0);
    CHECK(c, image_load(&figure, mine, NULL, &err) == 0);
    CHECK(c, cli.pixels && figure.pixels && same_pixels(&cli, &figure));
    /* 5 panels in 3 columns: two rows of 48-pixel panels. */
    int pw, ph;
    figure_panel_size(expect_w, expect_h, 48, &pw, &ph);
    CHECK(c, cli.width >= 3 * pw && cli.height >= 2 * ph);
    printf("%s: %dx%d -> figure %dx%d\n", picture, expect_w, expect_h, cli.width, cli.height);

    CHECK(c, count_files(frames) == caption.length);
    for (int k = 0; k < caption.length; k++) {
        char name[128], path[800];
        export_frame_name(name, sizeof name, k, caption.length, p.model.vocab[caption.tokens[k]]);
        snprintf(path, sizeof path, "%s/%s", frames, name);
        Image frame = {0};
        CHECK(c, image_load(&frame, path, NULL, &err) == 0 && frame.width >= pw && frame.height > ph);
        image_free(&frame);
    }
    test_word_selection(c, f, picture, &p.model, &caption, &image, &o, font);
    image_free(&cli), image_free(&figure), image_free(&image);
    caption_free(&caption);
    pipeline_close(&p);
    font_free(font);
}

static void expect_failure(CheckCounts *c, const Fixture *f, char **args, int code, const char *needle) {
    CHECK(c, run(f->exe, args, f->out, f->err) == code);
    char line[1024];
    CHECK(c, one_line(f->err, line, sizeof line) && strncmp(line, "caption export: ", 16) == 0);
    if (needle && !strstr(line, needle)) fprintf(stderr, "expected '%s' in: %s", needle, line);
    CHECK(c, !needle || strstr(line, needle));
}

static void test_errors(CheckCounts *c, const Fixture *f, const char *picture) {
    char png[600];
    snprintf(png, sizeof png, "%s/never.png", f->dir);
    char *m = (char *)f->model, *pic = (char *)picture;
    char *no_output[] = {"caption", "export", pic, "--model", m, NULL};
    char *bad_colormap[] = {"caption", "export", pic, "-o", png, "--model", m, "--colormap", "plasma", NULL};
    char *bad_opacity[] = {"caption", "export", pic, "-o", png, "--model", m, "--opacity", "1.5", NULL};
    char *two_images[] = {"caption", "export", pic, pic, "-o", png, "--model", m, NULL};
    char *missing[] = {"caption", "export", "/nonexistent/x.png", "-o", png, "--model", m, NULL};
    char *bottleneck[] = {"caption", "export", pic, "-o", png, "--model", (char *)f->bottleneck, NULL};
    char *bad_folder[] = {"caption", "export", pic, "-o", "/nonexistent/dir/out.png", "--model", m, NULL};
    expect_failure(c, f, no_output, 2, "-o");
    expect_failure(c, f, bad_colormap, 2, "plasma");
    expect_failure(c, f, bad_opacity, 2, "--opacity");
    expect_failure(c, f, two_images, 2, "one image");
    expect_failure(c, f, missing, 1, "/nonexistent/x.png");
    expect_failure(c, f, bottleneck, 1, "bottleneck");
    expect_failure(c, f, bad_folder, 1, "/nonexistent/dir/out.png");
    struct stat st;
    CHECK(c, stat(png, &st) != 0); /* nothing written on failure */
    char *help[] = {"caption", "export", "--help", NULL};
    CHECK(c, run(f->exe, help, f->out, f->err) == 0);
}

static void test_frame_names(CheckCounts *c) {
    char name[128];
    export_frame_name(name, sizeof name, 3, 10, "dog");
    CHECK(c, strcmp(name, "03-dog.png") == 0);
    export_frame_name(name, sizeof name, 0, 2, "<unk>");
    CHECK(c, strcmp(name, "00-unk.png") == 0);
    export_frame_name(name, sizeof name, 1, 2, "../a b/c");
    CHECK(c, strcmp(name, "01-a_b_c.png") == 0);
    export_frame_name(name, sizeof name, 7, 150, ".");
    CHECK(c, strcmp(name, "007-word.png") == 0);
    export_frame_name(name, sizeof name, 12, 20, "caf\xc3\xa9");
    CHECK(c, strcmp(name, "12-caf.png") == 0);
}

/* -o FILE.jpg writes JPEG (any case of the extension); another extension is refused. */
static void test_output_formats(CheckCounts *c, const Fixture *f, const char *picture_path) {
    char *picture = (char *)picture_path;
    Error err;
    /* The --frames folder is made as mkdir -p makes it, before anything is rendered: one that
     * cannot be made fails the command with no figure written. */
    char nested[600], frames[600], blocked[700], blocker[600], kept[600];
    snprintf(nested, sizeof nested, "%s/figure-beside-frames.png", f->dir);
    snprintf(frames, sizeof frames, "%s/new/frames/a/b", f->dir);
    char *deep[] = {"caption", "export", picture, "-o", nested, "--model", (char *)f->model, "--max-length", "2",
                    "--frames", frames, NULL};
    CHECK(c, run(f->exe, deep, f->out, f->err) == 0);
    CHECK(c, access(nested, F_OK) == 0 && count_files(frames) == 2);
    snprintf(blocker, sizeof blocker, "%s/a-file", f->dir);
    CHECK(c, write_picture(blocker, 4, 4, 3) == 0);
    snprintf(blocked, sizeof blocked, "%s/sub", blocker);
    snprintf(kept, sizeof kept, "%s/never-written.png", f->dir);
    char *fails[] = {"caption", "export", picture, "-o", kept, "--model", (char *)f->model, "--frames", blocked, NULL};
    expect_failure(c, f, fails, 1, "is a file, not a folder");
    CHECK(c, access(kept, F_OK) != 0);
    /* -o FILE.jpg writes JPEG, the same size as the PNG; another extension is refused. */
    char jpeg[600], gif[600];
    snprintf(jpeg, sizeof jpeg, "%s/figure.JPG", f->dir);
    snprintf(gif, sizeof gif, "%s/figure.gif", f->dir);
    char *as_jpeg[] = {"caption", "export", picture, "-o", jpeg, "--model", (char *)f->model, "--panel-size", "48",
                       NULL};
    CHECK(c, run(f->exe, as_jpeg, f->out, f->err) == 0);
    size_t jpeg_size = 0;
    unsigned char *bytes = (unsigned char *)read_whole_file(jpeg, &jpeg_size);
    Image decoded = {0};
    CHECK(c, bytes && jpeg_size > 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF);
    CHECK(c, image_load(&decoded, jpeg, NULL, &err) == 0 && decoded.width > 0);
    image_free(&decoded);
    free(bytes);
    char *as_gif[] = {"caption", "export", picture, "-o", gif, "--model", (char *)f->model, NULL};
    expect_failure(c, f, as_gif, 1, "end it in .png (lossless) or .jpg");
    CHECK(c, access(gif, F_OK) != 0);
}

/* A Transformer model: --layer/--head choose the map drawn (the CLI's figure
 * equals the in-process one with caption_attention_map's map), and
 * --self-attention writes the words x words figure; bad choices are refused. */
static void test_transformer_maps(CheckCounts *c, const Fixture *f) {
    char model[600], picture[600], png[600], self[600], mine[600];
    snprintf(model, sizeof model, "%s/transformer.safetensors", f->dir);
    snprintf(picture, sizeof picture, "%s/picture-0.png", f->dir);
    snprintf(png, sizeof png, "%s/transformer.png", f->dir);
    snprintf(self, sizeof self, "%s/self.png", f->dir);
    snprintf(mine, sizeof mine, "%s/transformer-mine.png", f->dir);
    CHECK(c, write_model(model, 2) == 0);
    char *args[] = {"caption", "export", picture, "-o", png, "--model", model, "--max-length", "4", "--panel-size",
                    "48", "--layer", "1", "--head", "2", "--self-attention", self, NULL};
    CHECK(c, run(f->exe, args, f->out, f->err) == 0);
    CaptionPipeline p;
    Caption caption = {0};
    Image image = {0}, cli = {0}, figure = {0}, heat = {0};
    Font *font = NULL;
    Error err;
    char font_path[4096];
    CHECK(c, font_default_path(font_path, sizeof font_path) && font_load(&font, font_path, &err) == 0);
    CHECK(c, pipeline_open(&p, model, 3, 4, &err) == 0);
    if (sysconf(_SC_NPROCESSORS_ONLN) > 1) CHECK(c, captioner_use_second_thread(p.captioner, &err) == 0);
    p.decode = (DecodeOptions){3, 4, 0.0f};
    CHECK(c, pipeline_caption_file(&p, picture, &caption, &image, &err) == 0 && caption.length == 4);
    float alpha[4 * 64], rows[16];
    CHECK(c, caption.cells <= 64 && caption_attention_map(&caption, 0, 1, alpha, rows) == 0);
    CHECK(c, caption_attention_map(&caption, 2, 0, alpha, rows) == -1 && caption_attention_map(&caption, 0, 2, alpha, NULL) == -1);
    Caption view = caption;
    view.alpha = alpha;
    FigureOptions o;
    figure_options_default(&o);
    o.panel_height = 48;
    CHECK(c, export_caption(&p.model, &view, &image, mine, NULL, NULL, "layer 1, head 2", &o, font, &err) == 0);
    CHECK(c, image_load(&cli, png, NULL, &err) == 0 && image_load(&figure, mine, NULL, &err) == 0);
    CHECK(c, cli.pixels && figure.pixels && same_pixels(&cli, &figure));
    /* The self-attention figure: 4 words over 4 inputs of 36-pixel cells, plus labels. */
    CHECK(c, image_load(&heat, self, NULL, &err) == 0 && heat.width > 4 * 36 && heat.height > 4 * 36);
    printf("transformer export: layer 1 head 2 figure %dx%d, self-attention %dx%d\n", cli.width, cli.height,
           heat.width, heat.height);
    image_free(&cli), image_free(&figure), image_free(&image), image_free(&heat);
    caption_free(&caption);
    pipeline_close(&p);
    font_free(font);
    char *bad_layer[] = {"caption", "export", picture, "-o", png, "--model", model, "--layer", "3", NULL};
    expect_failure(c, f, bad_layer, 1, "--layer 3: the model has decoder layers 1 to 2");
    char *bad_head[] = {"caption", "export", picture, "-o", png, "--model", model, "--head", "0", NULL};
    expect_failure(c, f, bad_head, 1, "--head 0: use mean, all or a head from 1 to 2");
    char *lstm[] = {"caption", "export", picture, "-o", png, "--model", (char *)f->model, "--head", "1", NULL};
    expect_failure(c, f, lstm, 1, "are for Transformer models");
}

/* Whether part's pixels are page's rows from y0 on, flush left. */
static int rows_match(const Image *page, int y0, const Image *part) {
    if (page->channels != part->channels || part->width > page->width || y0 + part->height > page->height) return 0;
    for (int y = 0; y < part->height; y++)
        if (memcmp(page->pixels + ((size_t)(y0 + y) * page->width) * page->channels,
                   part->pixels + (size_t)y * part->width * part->channels, (size_t)part->width * part->channels))
            return 0;
    return 1;
}

/* --head all: one figure, the figures of --head 1, --head 2 and --head mean
 * stacked in that order, pixel for pixel (each titled with its map). */
static void test_every_head(CheckCounts *c, const Fixture *f) {
    char model[600], picture[600], all[600], part[3][600];
    snprintf(model, sizeof model, "%s/transformer.safetensors", f->dir); /* test_transformer_maps's, 2 heads */
    snprintf(picture, sizeof picture, "%s/picture-0.png", f->dir);
    snprintf(all, sizeof all, "%s/every-head.png", f->dir);
    char *args[] = {"caption", "export", picture, "-o", all, "--model", model, "--max-length", "4", "--panel-size",
                    "48", "--columns", "5", "--head", "all", NULL};
    CHECK(c, run(f->exe, args, f->out, f->err) == 0);
    const char *heads[3] = {"1", "2", "mean"};
    Image page = {0}, figures[3] = {{0}};
    Error err;
    CHECK(c, image_load(&page, all, NULL, &err) == 0);
    int y = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(part[i], sizeof part[i], "%s/head-%s.png", f->dir, heads[i]);
        args[4] = part[i], args[14] = (char *)heads[i];
        CHECK(c, run(f->exe, args, f->out, f->err) == 0 && image_load(&figures[i], part[i], NULL, &err) == 0);
        CHECK(c, figures[i].pixels && page.pixels && rows_match(&page, y, &figures[i]));
        y += figures[i].height;
    }
    CHECK(c, page.height == y && page.width == figures[0].width);
    printf("every head: %dx%d, three rows\n", page.width, page.height);
    image_free(&page);
    for (int i = 0; i < 3; i++) image_free(&figures[i]);
    char *with_frames[] = {"caption", "export", picture, "-o", all, "--model", model, "--head", "all", "--frames",
                           (char *)f->dir, NULL};
    expect_failure(c, f, with_frames, 2, "--head all draws one figure with a row per head");
}

int main(int argc, char **argv) {
    CheckCounts c = {0};
    if (argc < 2) {
        fprintf(stderr, "usage: test_export PATH-TO-CAPTION-EXECUTABLE\n");
        return 1;
    }
    char dir[] = "/tmp/test_export_XXXXXX";
    CHECK(&c, mkdtemp(dir) != NULL);
    Fixture f = {.exe = argv[1], .dir = dir};
    snprintf(f.model, sizeof f.model, "%s/model.safetensors", dir);
    snprintf(f.bottleneck, sizeof f.bottleneck, "%s/bottleneck.safetensors", dir);
    snprintf(f.out, sizeof f.out, "%s/stdout.txt", dir);
    snprintf(f.err, sizeof f.err, "%s/stderr.txt", dir);
    CHECK(&c, write_model(f.model, 1) == 0);
    CHECK(&c, write_model(f.bottleneck, 0) == 0);
    const int pictures[][3] = {{90, 60, 3}, {50, 70, 1}, {40, 40, 4}};
    for (int i = 0; i < 3; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/picture-%d.png", dir, i);
        CHECK(&c, write_picture(path, pictures[i][0], pictures[i][1], pictures[i][2]) == 0);
        test_picture(&c, &f, path, pictures[i][0], pictures[i][1]);
        if (i == 0) test_errors(&c, &f, path);
        if (i == 0) test_output_formats(&c, &f, path);
    }
    test_frame_names(&c);
    test_transformer_maps(&c, &f);
    test_every_head(&c, &f);
    if (c.failed == 0) {
        char command[700];
        snprintf(command, sizeof command, "rm -rf '%s'", dir);
        if (system(command) != 0) fprintf(stderr, "could not remove %s\n", dir);
    } else {
        fprintf(stderr, "files kept in %s\n", dir);
    }
    return check_summary(&c);
}
