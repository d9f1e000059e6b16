/* The viewer for real: `caption view` runs a scripted session in an X
 * server (meson runs this test under xvfb-run) on a small random-weight
 * model, then the screenshots are checked: where the current word's
 * attention peaks the overlay changes the picture; with the overlay off the
 * picture is the image resized, and with it on it is exactly
 * overlay_attention of that, as `caption export` draws it; the help and
 * grid views change the frame; `s` saved a file; a broken image is reported
 * without a crash; folders are expanded to their image files only; an image
 * over --max-pixels is refused with the reason; a Transformer's layers and
 * heads are chosen with l and k. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "test_util.h"
#include "image.h"
#include "model.h"
#include "overlay.h"
#include "pipeline.h"
#include "text.h"
#include "viewer_draw.h"

static const char *const VOCAB[] = {"<pad>", "<start>", "<end>", "<unk>", "dog", "runs", "cat", "on"};

/* A random model whose captions are several words long: enough to step. */
static int make_model(const char *path) {
    SatModel m;
    SatConfig c;
    Error err;
    sat_config_defaults(&c);
    c.image_size = 32;
    snprintf(c.encoder_spec, sizeof c.encoder_spec, "4,6p,8p"); /* an 8x8 grid */
    c.vocab_size = 8, c.embed_dim = 5, c.hidden_dim = 7, c.attention_dim = 4;
    if (sat_model_create(&m, &c, VOCAB, &err) != 0) return fprintf(stderr, "%s\n", err.message), -1;
    sat_model_init_params(&m, 11);
    for (int i = 0; i < 8 * 5; i++) m.p.out_weight[i] *= 6.0f;
    m.p.out_bias[TOKEN_END] -= 5.0f;
    int status = sat_model_prepare_inference(&m, &err) == 0 && sat_model_save(&m, path, 0, &err) == 0 ? 0 : -1;
    if (status != 0) fprintf(stderr, "%s\n", err.message);
    sat_model_free(&m);
    return status;
}

static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)n + 1);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) free(data), data = NULL;
    if (data) data[n] = '\0', *size = (size_t)n;
    fclose(f);
    return data;
}

static int write_file(const char *path, const char *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t written = fwrite(data, 1, size, f);
    return fclose(f) == 0 && written == size ? 0 : -1;
}

typedef struct {
    int x0, y0, x1, y1;      /* the argmax cell of step 1 */
    int px, py, pw, ph;      /* the picture */
} Report;

/* The viewer's line for step 1 with the overlay on. */
static int find_report(const char *log, Report *r) {
    const char *line = strstr(log, "caption view: step=1 ");
    if (!line) return -1;
    const char *region = strstr(line, "region="), *picture = strstr(line, "picture=");
    if (!region || !picture) return -1;
    if (sscanf(region, "region=%d,%d,%d,%d", &r->x0, &r->y0, &r->x1, &r->y1) != 4) return -1;
    return sscanf(picture, "picture=%d,%d,%d,%d", &r->px, &r->py, &r->pw, &r->ph) == 4 ? 0 : -1;
}

/* Mean absolute difference of two frames over a rectangle. */
static double mean_difference(const Image *a, const Image *b, int x0, int y0, int x1, int y1) {
    double sum = 0.0;
    long n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            for (int c = 0; c < 3; c++, n++) {
                size_t i = ((size_t)y * a->width + x) * 3 + c;
                sum += fabs((double)a->pixels[i] - b->pixels[i]);
            }
    return n ? sum / n : 0.0;
}

/* Share of the picture's pixels (at r) within 2 levels of want. */
static double share_matching(const Image *frame, const Report *r, const Image *want) {
    long close = 0, total = (long)want->width * want->height * 3;
    for (int y = 0; y < want->height; y++)
        for (int x = 0; x < want->width * 3; x++) {
            int got = frame->pixels[((size_t)(r->py + y) * frame->width + r->px) * 3 + x];
            close += abs(got - want->pixels[(size_t)y * want->width * 3 + x]) <= 2;
        }
    return (double)close / total;
}

static int load(Image *img, const char *path) {
    Error err;
    if (image_load(img, path, NULL, &err) == 0) return 0;
    fprintf(stderr, "%s\n", err.message);
    return -1;
}

/* The picture as the viewer should show it with the overlay off and on,
 * from the same caption the viewer computed (same model, file and beam). */
static int expected_pictures(const char *model, const char *image, int step, const Report *r, Image *off,
                             Image *on, const OverlayOptions *options) {
    CaptionPipeline p;
    Caption caption;
    Image picture;
    Error err;
    if (pipeline_open(&p, model, 3, 30, &err) != 0) return fprintf(stderr, "%s\n", err.message), -1;
    p.decode.beam_width = 3;
    int status = pipeline_caption_file(&p, image, &caption, &picture, &err);
    if (status == 0) {
        OverlayOptions o;
        overlay_options_default(&o);
        if (options) o = *options;
        status = image_resize(off, &picture, r->pw, r->ph, &err);
        if (status == 0)
            status = overlay_attention(on, off, caption.alpha + (size_t)step * caption.cells, caption.grid_h,
                                       caption.grid_w, &o, &err);
        image_free(&picture);
        caption_free(&caption);
    }
    if (status != 0) fprintf(stderr, "%s\n", err.message);
    pipeline_close(&p);
    return status;
}

/* The centre of the pixels of the figure's highlight colour (the current
 * word's frame in the grid); 0 if there are none. */
static int highlight_centre(const Image *img, double *x, double *y) {
    double sx = 0, sy = 0;
    long n = 0;
    for (int py = 0; py < img->height; py++)
        for (int px = 0; px < img->width; px++) {
            const unsigned char *p = img->pixels + ((size_t)py * img->width + px) * 3;
            if (p[0] == 230 && p[1] == 120 && p[2] == 20) sx += px, sy += py, n++;
        }
    if (n == 0) return 0;
    *x = sx / n, *y = sy / n;
    return 1;
}

/* In the grid, → moves the highlight to the next word's panel. */
static void check_grid_highlight(CheckCounts *c, const Image *grid) {
    Image next = {0};
    double x0, y0, x1, y1;
    CHECK(c, load(&next, "grid-next.png") == 0);
    if (!next.pixels) return;
    int found = highlight_centre(grid, &x0, &y0) && highlight_centre(&next, &x1, &y1);
    CHECK(c, found);
    if (found) printf("grid highlight: (%.0f, %.0f) -> (%.0f, %.0f) after right\n", x0, y0, x1, y1);
    CHECK(c, found && (x1 > x0 + 10 || y1 > y0 + 10));
    image_free(&next);
}

static void check_pictures(CheckCounts *c, const Report *r) {
    Image on = {0}, off = {0}, help = {0}, grid = {0}, want_off = {0}, want_on = {0};
    CHECK(c, load(&on, "on.png") == 0 && load(&off, "off.png") == 0);
    CHECK(c, load(&help, "help.png") == 0 && load(&grid, "grid.png") == 0);
    if (!on.pixels || !off.pixels || !help.pixels || !grid.pixels) goto done;
    CHECK(c, on.width == off.width && on.height == off.height && r->x1 <= on.width && r->y1 <= on.height);
    double looked = mean_difference(&on, &off, r->x0, r->y0, r->x1, r->y1);
    printf("overlay on vs off where step 1 looks most: mean difference %.1f levels\n", looked);
    CHECK(c, looked > 25.0);
    CHECK(c, expected_pictures("model.safetensors", "images/a-chelsea.png", 1, r, &want_off, &want_on, NULL) == 0);
    if (want_on.pixels) {
        double off_share = share_matching(&off, r, &want_off), on_share = share_matching(&on, r, &want_on);
        printf("picture matches the resized image %.4f, overlay_attention %.4f\n", off_share, on_share);
        CHECK(c, off_share > 0.999 && on_share > 0.999);
    }
    /* The help box darkens the middle; the grid is on white. */
    CHECK(c, mean_difference(&on, &help, on.width / 3, on.height / 3, 2 * on.width / 3, 2 * on.height / 3) > 20.0);
    CHECK(c, mean_difference(&on, &grid, 0, 0, on.width, on.height) > 20.0);
    check_grid_highlight(c, &grid);
done:
    image_free(&on), image_free(&off), image_free(&help), image_free(&grid);
    image_free(&want_off), image_free(&want_on);
}

static int setup(const char *data_dir) {
    char path[4096];
    size_t size;
    snprintf(path, sizeof path, "%s/../assets/examples/chelsea.png", data_dir);
    char *chelsea = read_file(path, &size);
    if (!chelsea) return fprintf(stderr, "cannot read %s\n", path), -1;
    int status = mkdir("images", 0755) == 0 && mkdir("shots", 0755) == 0 ? 0 : -1;
    if (status == 0) status = write_file("images/a-chelsea.png", chelsea, size);
    if (status == 0) status = write_file("images/b-fake.png", "not a picture", 13);
    if (status == 0) status = write_file("broken.png", "not a picture", 13);
    if (status == 0) status = write_file("images/notes.txt", "notes", 5);
    free(chelsea);
    return status == 0 ? make_model("model.safetensors") : -1;
}

/* The status line's elision: a text that fits stays whole; one that does not
 * keeps whole UTF-8 characters and ends in an ellipsis within the width. */
static void test_elide(CheckCounts *c) {
    char path[4096], out[128];
    Font *font = NULL;
    Error err;
    CHECK(c, font_default_path(path, sizeof path) && font_load(&font, path, &err) == 0);
    if (!font) return;
    const char *text = "caf\xc3\xa9-photo-with-a-long-name.png";
    CHECK(c, strcmp(elide_text(font, text, 14.0f, 1000, out, sizeof out), text) == 0);
    int width = font_text_width(font, text, 14.0f) / 2;
    elide_text(font, text, 14.0f, width, out, sizeof out);
    size_t n = strlen(out);
    CHECK(c, font_text_width(font, out, 14.0f) <= width && n > 3 && strcmp(out + n - 3, "\xe2\x80\xa6") == 0 &&
                 strncmp(out, text, n - 3) == 0);
    elide_text(font, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 14.0f, font_text_width(font, "\xc3\xa9\xe2\x80\xa6", 14.0f), out,
               sizeof out);
    CHECK(c, strcmp(out, "\xc3\xa9\xe2\x80\xa6") == 0); /* never half a character */
    CHECK(c, strcmp(elide_text(font, text, 14.0f, 1, out, sizeof out), "") == 0);
    font_free(font);
}

/* Runs `caption view OPTIONS IMAGE` on a script (written to NAME.txt),
 * its messages into NAME.log; returns them (malloc'd; NULL if none) and
 * the exit status in *status. */
static char *run_session(const char *caption, const char *name, const char *script, const char *options,
                         const char *image, int *status) {
    char path[256], command[2000];
    snprintf(path, sizeof path, "%s.txt", name);
    if (write_file(path, script, strlen(script)) != 0) return NULL;
    snprintf(command, sizeof command, "timeout 60 '%s' view %s --script %s.txt %s 2> %s.log", caption, options, name,
             image, name);
    *status = system(command);
    snprintf(path, sizeof path, "%s.log", name);
    size_t size = 0;
    return read_file(path, &size);
}

/* After b the status line keeps the beam of the caption shown and says the
 * new one is on its way, until it comes. */
static void test_beam_status(CheckCounts *c, const char *caption) {
    int status = -1;
    char *log = run_session(caption, "beam", "wait-caption\nkey b\nwait 1\nwait-caption\nwait 1\nquit\n",
                            "--model model.safetensors", "images/a-chelsea.png", &status);
    const char *pending = log ? strstr(log, "captioning with beam 5") : NULL;
    const char *line_start = pending;
    while (line_start && line_start > log && line_start[-1] != '\n') line_start--;
    int old_beam_shown = line_start && strncmp(line_start, "caption view: status: ", 22) == 0 &&
                         strstr(line_start, "beam 3") && strstr(line_start, "beam 3") < pending;
    const char *after = pending ? strstr(pending, "captioned images/a-chelsea.png (beam 5)") : NULL;
    const char *status_after = after ? strstr(after, "caption view: status: ") : NULL;
    const char *done = status_after ? strstr(status_after, "\xc2\xb7  beam 5") : NULL;
    printf("after b: %s\n", old_beam_shown && done ? "beam 3 shown while beam 5 is captioned, then beam 5" : "WRONG");
    CHECK(c, status == 0 && old_beam_shown && done);
    free(log);
}

/* --colormap, --normalize, --opacity and --smooth set what the window starts
 * with: its overlay is overlay_attention's with those settings. */
static void test_overlay_options(CheckCounts *c, const char *caption) {
    int status = -1;
    char *log = run_session(caption, "options", "wait-caption\nkey right\nscreenshot options.png\nquit\n",
                            "--model model.safetensors --colormap jet --normalize max --opacity 0.9 --smooth 0",
                            "images/a-chelsea.png", &status);
    Report r;
    Image shot = {0}, want_off = {0}, want_on = {0};
    OverlayOptions o;
    overlay_options_default(&o);
    o.colormap = COLORMAP_JET, o.normalize = OVERLAY_NORMALIZE_MAX, o.opacity = 0.9f, o.sigma = 0.0f;
    CHECK(c, status == 0 && log && find_report(log, &r) == 0 && load(&shot, "options.png") == 0);
    if (shot.pixels &&
        expected_pictures("model.safetensors", "images/a-chelsea.png", 1, &r, &want_off, &want_on, &o) == 0) {
        double share = share_matching(&shot, &r, &want_on);
        printf("viewer with --colormap jet --normalize max --opacity 0.9 --smooth 0: overlay_attention %.4f\n", share);
        CHECK(c, share > 0.999);
    }
    image_free(&shot), image_free(&want_off), image_free(&want_on);
    free(log);
    char command[600];
    snprintf(command, sizeof command, "'%s' view --normalize sideways 2>/dev/null", caption);
    CHECK(c, shell_exit_code(command) == 2);
}

/* A random Transformer (2 layers of 2 heads) on the 8x8 grid. */
static int make_transformer(const char *path) {
    SatModel m;
    SatConfig c;
    Error err;
    sat_config_defaults(&c);
    c.image_size = 32;
    snprintf(c.encoder_spec, sizeof c.encoder_spec, "4,6p,8p");
    c.vocab_size = 8, c.embed_dim = 8, c.heads = 2, c.decoder_layers = 2, c.ff_dim = 12, c.tied = 0;
    sat_decoder_parse("transformer", &c);
    if (sat_model_create(&m, &c, VOCAB, &err) != 0) return fprintf(stderr, "%s\n", err.message), -1;
    sat_model_init_params(&m, 12);
    for (int i = 0; i < 8 * 8; i++) m.p.transformer.out_weight[i] *= 6.0f;
    m.p.transformer.out_bias[TOKEN_END] -= 5.0f;
    int status = sat_model_save(&m, path, 0, &err) == 0 ? 0 : -1;
    sat_model_free(&m);
    return status;
}

/* The viewer's keys l and k: each report after them names the layer and head
 * shown, and its peak cell is that of caption_attention_map's map for them. */
static void test_transformer_keys(CheckCounts *c, const char *caption) {
    CHECK(c, make_transformer("transformer.safetensors") == 0);
    int status = -1;
    char *log = run_session(caption, "keys", "wait-caption\nkey right\nkey k\nkey k\nkey l\nkey k\nquit\n",
                            "--model transformer.safetensors", "images/a-chelsea.png", &status);
    CHECK(c, status == 0 && log);
    CaptionPipeline p;
    Caption caption_made = {0};
    Error err;
    int reports = 0, agree = 0;
    if (pipeline_open(&p, "transformer.safetensors", 3, 30, &err) == 0) {
        p.decode = (DecodeOptions){3, 30, 0.0f};
        if (pipeline_caption_file(&p, "images/a-chelsea.png", &caption_made, NULL, &err) == 0) {
            float *alpha = malloc(sizeof(float) * caption_made.length * caption_made.cells);
            for (const char *at = log; alpha && at && (at = strstr(at, "caption view: step=")) != NULL; at++) {
                int step, cx, cy, layer, head;
                const char *cell = strstr(at, "cell="), *map = strstr(at, "layer=");
                const char *end = strchr(at, '\n');
                if (!cell || !map || (end && map > end) || sscanf(at, "caption view: step=%d", &step) != 1 ||
                    sscanf(cell, "cell=%d,%d", &cx, &cy) != 2 || sscanf(map, "layer=%d head=%d", &layer, &head) != 2)
                    continue;
                reports++;
                if (caption_attention_map(&caption_made, layer - 1, head - 1, alpha, NULL) != 0) continue;
                const float *row = alpha + (size_t)step * caption_made.cells;
                int best = 0;
                for (int i = 1; i < caption_made.cells; i++)
                    if (row[i] > row[best]) best = i;
                agree += best == cy * caption_made.grid_w + cx;
            }
            free(alpha);
            caption_free(&caption_made);
        }
        pipeline_close(&p);
    }
    printf("transformer in the viewer: %d reports after l/k, %d on the map's peak\n", reports, agree);
    CHECK(c, reports >= 3 && agree == reports && log && strstr(log, "layer=1 head=2"));
    free(log);
}

int main(int argc, char **argv) {
    CheckCounts c = {0};
    const char *data_dir = getenv("CAPTION_TEST_DATA");
    char dir[] = "/tmp/test_viewer.XXXXXX", command[12000];
    if (argc < 2 || !data_dir) return fprintf(stderr, "usage: CAPTION_TEST_DATA=tests/ test_viewer CAPTION\n"), 2;
    /* Absolute, since the test runs in its temporary folder. */
    char *caption = realpath(argv[1], NULL), *data = realpath(data_dir, NULL);
    if (!caption || !data) return fprintf(stderr, "test_viewer: cannot find %s or %s\n", argv[1], data_dir), 1;
    if (!mkdtemp(dir) || chdir(dir) != 0) return perror("temporary folder"), 1;
    if (setup(data) != 0) return fprintf(stderr, "test_viewer: setup failed in %s\n", dir), 1;
    snprintf(command, sizeof command,
             "timeout 120 '%s' view --model model.safetensors --script '%s/data/viewer/session.txt' "
             "--screenshot-dir shots images broken.png 2> view.log",
             caption, data);
    free(data);
    int status = system(command);
    size_t size = 0;
    char *log = read_file("view.log", &size);
    printf("caption view exited with %d; its messages:\n%s", status, log ? log : "(none)\n");
    CHECK(&c, status == 0 && log);
    Report r;
    CHECK(&c, log && find_report(log, &r) == 0);
    if (log && find_report(log, &r) == 0) check_pictures(&c, &r);
    /* images/a-chelsea.png, then broken.png reported, then back to the first: the folder's
     * b-fake.png and notes.txt were skipped (not images by content). */
    const char *first = log ? strstr(log, "captioned images/a-chelsea.png") : NULL;
    const char *broken = first ? strstr(first, "'broken.png'") : NULL;
    CHECK(&c, broken && strstr(broken, "not an image") && strstr(broken, "captioned images/a-chelsea.png"));
    CHECK(&c, log && strstr(log, "saved shots/caption-view-0001.png"));
    CHECK(&c, access("shots/caption-view-0001.png", F_OK) == 0);
    free(log);
    /* --max-pixels: the 451x300 picture is refused before decoding. */
    CHECK(&c, write_file("quick.txt", "wait-caption\nquit\n", 18) == 0);
    snprintf(command, sizeof command, "timeout 60 '%s' view --model model.safetensors --max-pixels 1000 "
             "--script quick.txt images/a-chelsea.png 2> limit.log", caption);
    status = system(command);
    log = read_file("limit.log", &size);
    CHECK(&c, status == 0 && log && strstr(log, "more than the limit of 1000 pixels"));
    free(log);
    test_transformer_keys(&c, caption);
    test_overlay_options(&c, caption);
    test_beam_status(&c, caption);
    test_elide(&c);
    free(caption);
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    if (c.failed || getenv("TEST_VIEWER_KEEP")) printf("the screenshots are in %s\n", dir); /* to look at */
    else if (system(command) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary(&c);
}
