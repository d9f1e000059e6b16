/* Tests for vision/text (font loading, UTF-8, text placement, clipping) and
 * vision/plot (line and bar charts, degenerate data, errors). The charts are
 * also written as PNGs to $TMPDIR (default /tmp), test_plot_*.png, for a
 * person to look at. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "test_pixels.h"
#include "heatmap.h"
#include "plot.h"
#include "text.h"

static const Rgb WHITE = {255, 255, 255};
static const Rgb BLACK = {0, 0, 0};

/* Writes the image as OUT_DIR/test_plot_NAME.png for a person to look at; a
 * chart that cannot be written counts as a failure. */
static void save(CheckCounts *c, const char *out_dir, const Image *img, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/test_plot_%s.png", out_dir, name);
    Error err = {{0}};
    if (image_write_png(img, path, &err) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, err.message);
        c->failed++;
    }
}

static int white_canvas(CheckCounts *c, Image *img, int w, int h) {
    Error err = {{0}};
    if (image_alloc(img, w, h, 3, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        c->failed++;
        return -1;
    }
    draw_fill(img, WHITE);
    return 0;
}

/* Bounding box of the non-white pixels; returns how many there are. */
static long ink_box(const Image *img, int *x0, int *y0, int *x1, int *y1) {
    long n = 0;
    *x0 = img->width, *y0 = img->height, *x1 = -1, *y1 = -1;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++) {
            const unsigned char *p = img->pixels + ((size_t)y * img->width + x) * 3;
            if (p[0] == 255 && p[1] == 255 && p[2] == 255) continue;
            n++;
            if (x < *x0) *x0 = x;
            if (y < *y0) *y0 = y;
            if (x > *x1) *x1 = x;
            if (y > *y1) *y1 = y;
        }
    return n;
}

static Font *load_test_font(void) {
    char path[1024];
    const char *data = getenv("CAPTION_TEST_DATA");
    if (data && *data)
        snprintf(path, sizeof path, "%s/../assets/fonts/DejaVuSans.ttf", data);
    else if (!font_default_path(path, sizeof path))
        return NULL;
    Font *font = NULL;
    Error err = {{0}};
    if (font_load(&font, path, &err) != 0) fprintf(stderr, "font_load: %s\n", err.message);
    return font;
}

static void test_font_errors(CheckCounts *c, const char *out_dir) {
    Font *font = (Font *)1;
    Error err = {{0}};
    CHECK(c, font_load(&font, "/nonexistent/font.ttf", &err) == -1);
    CHECK(c, font == NULL);
    CHECK_MESSAGE(c, err, "/nonexistent/font.ttf");
    CHECK(c, font_load(&font, out_dir, &err) == -1);
    CHECK_MESSAGE(c, err, "directory");

    char path[1200];
    snprintf(path, sizeof path, "%s/test_plot_empty.ttf", out_dir);
    FILE *f = fopen(path, "wb");
    CHECK(c, f != NULL);
    if (f) fclose(f);
    CHECK(c, font_load(&font, path, &err) == -1);
    CHECK_MESSAGE(c, err, "empty");

    f = fopen(path, "wb");
    if (f) {
        fputs("this is plain text, not a font at all", f);
        fclose(f);
    }
    CHECK(c, font_load(&font, path, &err) == -1);
    CHECK_MESSAGE(c, err, "not a TrueType font");

    /* The real font cut short: its table directory points past the end. */
    char real[1024];
    if (font_default_path(real, sizeof real)) {
        FILE *in = fopen(real, "rb");
        unsigned char head[4096];
        size_t got = in ? fread(head, 1, sizeof head, in) : 0;
        if (in) fclose(in);
        f = fopen(path, "wb");
        if (f) {
            fwrite(head, 1, got, f);
            fclose(f);
        }
        CHECK(c, font_load(&font, path, &err) == -1);
        CHECK_MESSAGE(c, err, "truncated");
    }
    unlink(path);
    CHECK(c, font == NULL);
    font_free(NULL);
}

static void test_metrics(CheckCounts *c, const Font *font) {
    int w1 = font_text_width(font, "a", 16), w2 = font_text_width(font, "ab", 16), w3 = font_text_width(font, "abc", 16);
    CHECK(c, w1 > 0 && w1 < w2 && w2 < w3);
    CHECK(c, font_text_width(font, "", 16) == 0);
    CHECK(c, font_text_width(font, NULL, 16) == 0);
    CHECK(c, font_text_width(font, "abc", 32) > w3 * 3 / 2);
    CHECK(c, font_text_width(font, "abc", 0) == 0);
    CHECK(c, font_text_width(font, "abc", NAN) == 0);
    CHECK(c, font_line_height(font, 16) == 16);
    int ascent = font_ascent(font, 16);
    CHECK(c, ascent > 8 && ascent < 16);

    /* Invalid UTF-8 and characters the font lacks are drawn as U+FFFD. */
    int replacement = font_text_width(font, "\xEF\xBF\xBD", 20);
    CHECK(c, replacement > 0);
    CHECK(c, font_text_width(font, "\xFF", 20) == replacement);                 /* never valid */
    CHECK(c, font_text_width(font, "\x80", 20) == replacement);                 /* stray continuation */
    CHECK(c, font_text_width(font, "\xC0\xAF", 20) == font_text_width(font, "\xEF\xBF\xBD\xEF\xBF\xBD", 20)); /* overlong */
    CHECK(c, font_text_width(font, "\xED\xA0\x80", 20) == font_text_width(font, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD", 20)); /* surrogate */
    CHECK(c, font_text_width(font, "\xE4\xB8\xAD", 20) == replacement);         /* U+4E2D, not in DejaVu Sans */
    CHECK(c, font_text_width(font, "\xE2\x82", 20) > 0);                       /* truncated at the end */
    /* Controls are skipped; tab is a space. */
    CHECK(c, font_text_width(font, "a\x01" "b", 20) == font_text_width(font, "ab", 20));
    CHECK(c, font_text_width(font, "a\tb", 20) == font_text_width(font, "a b", 20));
}

static void test_drawing(CheckCounts *c, const Font *font, const char *out_dir) {
    Image img = {0};
    if (white_canvas(c, &img, 300, 80) != 0) return;
    const char *text = "Hello, plot";
    int x = 40, y = 20, w = font_text_width(font, text, 24), h = font_line_height(font, 24);
    font_draw_text(&img, font, text, x, y, 24, BLACK);
    int x0, y0, x1, y1;
    long ink = ink_box(&img, &x0, &y0, &x1, &y1);
    CHECK(c, ink > 100);
    /* Only near where it was drawn: inside the line box, give or take the
     * anti-aliasing and overhangs. */
    CHECK(c, x0 >= x - 2 && x1 <= x + w + 2);
    CHECK(c, y0 >= y - 2 && y1 <= y + h + 1);
    CHECK(c, x0 <= x + 3 && x1 >= x + w - 4); /* and really spans the text */
    CHECK(c, count_color(&img, BLACK) > 20);   /* solid stem pixels */
    save(c, out_dir, &img, "text");
    image_free(&img);

    /* UTF-8 renders, and differently from its ASCII look-alike. */
    Image accented = {0}, plain = {0};
    if (white_canvas(c, &accented, 200, 50) == 0 && white_canvas(c, &plain, 200, 50) == 0) {
        font_draw_text(&accented, font, "caf\xC3\xA9 \xC3\xBC", 10, 10, 24, BLACK);
        font_draw_text(&plain, font, "cafe u", 10, 10, 24, BLACK);
        CHECK(c, memcmp(accented.pixels, plain.pixels, (size_t)200 * 50 * 3) != 0);
        CHECK(c, ink_box(&accented, &x0, &y0, &x1, &y1) > 50);
        /* Accents sit above the x-height of the plain letters. */
        int px0, py0, px1, py1;
        ink_box(&plain, &px0, &py0, &px1, &py1);
        CHECK(c, y0 < py0);
        save(c, out_dir, &accented, "utf8");
    }
    image_free(&accented);
    image_free(&plain);

    /* Clipping: text across every edge and far away does not crash and only
     * touches the image where it overlaps. */
    Image small = {0};
    if (white_canvas(c, &small, 40, 30) == 0) {
        font_draw_text(&small, font, "clipped text", -25, -8, 24, BLACK);
        font_draw_text(&small, font, "clipped text", 30, 20, 24, BLACK);
        font_draw_text(&small, font, "far", -100000, 100000, 24, BLACK);
        font_draw_text(&small, font, "far", 2000000000, -2000000000, 24, BLACK);
        font_draw_text_vertical(&small, font, "vertical", 35, 5, 20, BLACK);
        font_draw_text(&small, font, "\xFF\xFE\x80 bad", 0, 5, 12, BLACK);
        font_draw_text(&small, font, "x", 0, 0, 100000.0f, BLACK); /* too big: nothing */
        CHECK(c, ink_box(&small, &x0, &y0, &x1, &y1) > 0);
    }
    image_free(&small);

    /* Vertical text stays in its rotated box. */
    if (white_canvas(c, &img, 80, 200) == 0) {
        const char *label = "CIDEr-D";
        int vw = font_text_width(font, label, 18), vh = font_line_height(font, 18);
        font_draw_text_vertical(&img, font, label, 20, 150, 18, BLACK);
        ink_box(&img, &x0, &y0, &x1, &y1);
        CHECK(c, x0 >= 20 - 2 && x1 <= 20 + vh + 1);
        CHECK(c, y0 >= 150 - vw - 2 && y1 <= 150 + 2);
        CHECK(c, y1 - y0 > x1 - x0); /* tall, not wide */
        save(c, out_dir, &img, "vertical");
    }
    image_free(&img);

    /* Gray images get the luma. */
    Image gray = {0};
    Error err = {{0}};
    if (image_alloc(&gray, 60, 30, 1, &err) == 0) {
        memset(gray.pixels, 255, 60 * 30);
        font_draw_text(&gray, font, "ab", 5, 5, 18, BLACK);
        int dark = 0;
        for (int i = 0; i < 60 * 30; i++) dark += gray.pixels[i] == 0;
        CHECK(c, dark > 5);
    }
    image_free(&gray);
}

static const Rgb TRAIN = {31, 119, 180}, DEV = {255, 127, 14}, CIDER = {44, 160, 44};

static void test_learning_curve(CheckCounts *c, const Font *font, const char *out_dir) {
    enum { EPOCHS = 20 };
    float epoch[EPOCHS], train[EPOCHS], dev[EPOCHS], cider[EPOCHS];
    for (int i = 0; i < EPOCHS; i++) {
        epoch[i] = (float)(i + 1);
        train[i] = 2.0f + 2.6f * expf(-0.25f * i);
        dev[i] = 2.4f + 2.2f * expf(-0.3f * i) + 0.004f * i * i;
        cider[i] = 0.9f * (1.0f - expf(-0.2f * i)) + 0.02f * sinf((float)i);
    }
    PlotSeries series[] = {
        {"training loss", epoch, train, EPOCHS, TRAIN, 0},
        {"dev loss", epoch, dev, EPOCHS, DEV, 0},
        {"dev CIDEr-D", epoch, cider, EPOCHS, CIDER, 1},
    };
    PlotOptions opts = {"Learning curve", "epoch", "loss", "CIDEr-D", 0, 0};
    Image img = {0};
    Error err = {{0}};
    CHECK(c, plot_render(&img, series, 3, &opts, font, &err) == 0);
    if (!img.pixels) {
        fprintf(stderr, "plot_render: %s\n", err.message);
        return;
    }
    CHECK(c, img.width == 800 && img.height == 500 && img.channels == 3);
    CHECK(c, count_color(&img, TRAIN) > 200);
    CHECK(c, count_color(&img, DEV) > 200);
    CHECK(c, count_color(&img, CIDER) > 200);
    save(c, out_dir, &img, "learning_curve");
    image_free(&img);

    /* Same data, small image, no right axis, many points. */
    enum { MANY = 300 };
    float xs[MANY], ys[MANY];
    for (int i = 0; i < MANY; i++) xs[i] = i * 0.1f, ys[i] = 1000.0f * sinf(i * 0.05f) + 20000.0f;
    PlotSeries many = {"sine", xs, ys, MANY, TRAIN, 0};
    PlotOptions small = {"A rather long title that will not fit into a small chart at all, so it is shortened",
                         "time (s)", "value", NULL, 320, 240};
    CHECK(c, plot_render(&img, &many, 1, &small, font, &err) == 0);
    CHECK(c, count_color(&img, TRAIN) > 100);
    save(c, out_dir, &img, "small");
    image_free(&img);
}

static void test_degenerate(CheckCounts *c, const Font *font, const char *out_dir) {
    float x[] = {1, 2, 3, 4, 5}, constant[] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    float holes[] = {1.0f, NAN, 3.0f, INFINITY, 2.0f}, all_nan[] = {NAN, NAN, NAN, NAN, NAN};
    float one_x[] = {3}, one_y[] = {7};
    Image img = {0};
    Error err = {{0}};
    PlotOptions opts = {"Degenerate", "x", "y", "y2", 400, 300};

    PlotSeries empty = {"empty", NULL, NULL, 0, TRAIN, 0};
    CHECK(c, plot_render(&img, &empty, 1, &opts, font, &err) == 0);
    save(c, out_dir, &img, "empty");
    image_free(&img);
    CHECK(c, plot_render(&img, NULL, 0, NULL, font, &err) == 0);
    CHECK(c, img.width == 800 && img.height == 500);
    image_free(&img);

    PlotSeries one = {"one point", one_x, one_y, 1, DEV, 0};
    CHECK(c, plot_render(&img, &one, 1, &opts, font, &err) == 0);
    CHECK(c, count_color(&img, DEV) > 10); /* drawn as a marker */
    save(c, out_dir, &img, "one_point");
    image_free(&img);

    PlotSeries flat = {"constant", x, constant, 5, CIDER, 0};
    CHECK(c, plot_render(&img, &flat, 1, &opts, font, &err) == 0);
    CHECK(c, count_color(&img, CIDER) > 100);
    save(c, out_dir, &img, "constant");
    image_free(&img);

    PlotSeries mixed[] = {{"holes", x, holes, 5, TRAIN, 0}, {"all NaN", x, all_nan, 5, DEV, 1},
                          {"constant right", x, constant, 5, CIDER, 1}, {NULL, one_x, one_y, 1, BLACK, 0}};
    CHECK(c, plot_render(&img, mixed, 4, &opts, font, &err) == 0);
    CHECK(c, count_color(&img, TRAIN) > 10);
    save(c, out_dir, &img, "nan");
    image_free(&img);

    /* Only right-axis series: one axis, on the left. */
    PlotSeries right_only = {"right only", x, holes, 5, DEV, 1};
    CHECK(c, plot_render(&img, &right_only, 1, &opts, font, &err) == 0);
    CHECK(c, count_color(&img, DEV) > 10);
    image_free(&img);

    /* Errors. */
    PlotSeries no_x = {"broken", NULL, constant, 5, TRAIN, 0};
    CHECK(c, plot_render(&img, &no_x, 1, &opts, font, &err) == -1);
    CHECK_MESSAGE(c, err, "broken");
    CHECK_MESSAGE(c, err, "no x values");
    CHECK(c, img.pixels == NULL);
    PlotSeries negative = {"negative", x, constant, -1, TRAIN, 0};
    CHECK(c, plot_render(&img, &negative, 1, &opts, font, &err) == -1);
    CHECK_MESSAGE(c, err, "negative");
    CHECK(c, plot_render(&img, &flat, -1, &opts, font, &err) == -1);
    CHECK(c, plot_render(&img, &flat, 1, &opts, NULL, &err) == -1);
    CHECK_MESSAGE(c, err, "font");
    PlotOptions tiny = {NULL, NULL, NULL, NULL, 50, 40};
    CHECK(c, plot_render(&img, &flat, 1, &tiny, font, &err) == -1);
    CHECK_MESSAGE(c, err, "50 x 40");
    PlotOptions cramped = {"A title", "x", "y", NULL, 200, 200};
    int rc = plot_render(&img, &flat, 1, &cramped, font, &err); /* either fits or says why */
    CHECK(c, rc == 0 || strstr(err.message, "too small") != NULL);
    image_free(&img);
}

static void test_bars(CheckCounts *c, const Font *font, const char *out_dir) {
    const char *labels[] = {"greedy decode, batch 1", "greedy decode, batch 32", "beam search (k=3)",
                            "beam search (k=5), attention maps saved", "encoder only"};
    float values[] = {41.7f, 312.5f, 18.25f, 9.9f, 655.0f};
    Rgb colors[] = {TRAIN, DEV, CIDER, {214, 39, 40}, {148, 103, 189}};
    PlotOptions opts = {"Throughput", "images / s", NULL, NULL, 0, 0};
    Image img = {0};
    Error err = {{0}};
    CHECK(c, plot_bars(&img, labels, values, colors, 5, &opts, font, &err) == 0);
    if (img.pixels) {
        CHECK(c, img.width == 800);
        for (int i = 0; i < 5; i++) CHECK(c, count_color(&img, colors[i]) > 50);
        save(c, out_dir, &img, "bars");
    } else {
        fprintf(stderr, "plot_bars: %s\n", err.message);
    }
    image_free(&img);

    float mixed[] = {-3.5f, 12.0f, NAN, 0.0f};
    const char *names[] = {"slower", "faster", NULL, "same"};
    PlotOptions given = {"Change vs. baseline", "%", "variant", NULL, 500, 260};
    CHECK(c, plot_bars(&img, names, mixed, NULL, 4, &given, font, &err) == 0);
    CHECK(c, img.height == 260);
    save(c, out_dir, &img, "bars_negative");
    image_free(&img);

    CHECK(c, plot_bars(&img, NULL, NULL, NULL, 0, NULL, font, &err) == 0);
    image_free(&img);
    CHECK(c, plot_bars(&img, labels, NULL, NULL, 3, NULL, font, &err) == -1);
    CHECK_MESSAGE(c, err, "no values");
    float lots[100];
    for (int i = 0; i < 100; i++) lots[i] = (float)i;
    PlotOptions short_one = {NULL, NULL, NULL, NULL, 400, 200};
    CHECK(c, plot_bars(&img, NULL, lots, NULL, 100, &short_one, font, &err) == -1);
    CHECK_MESSAGE(c, err, "too small for 100 bars");
    CHECK(c, img.pixels == NULL);
}

static int pixel_is(const Image *img, int x, int y, Rgb color) {
    const unsigned char *p = img->pixels + ((size_t)y * img->width + x) * 3;
    return abs(p[0] - color.r) <= 1 && abs(p[1] - color.g) <= 1 && abs(p[2] - color.b) <= 1;
}

/* The self-attention heatmap: each cell coloured by its value over the
 * largest, cells beyond a row's length blank, a figure that grows with the
 * labels; empty and non-finite input refused. */
static void test_heatmap(CheckCounts *c, const Font *font) {
    const float values[6] = {0.8f, 123.0f, 0.0f, 0.2f, 0.4f, 0.6f};
    const int lengths[2] = {1, 3};
    const char *rows[2] = {"a", "dog"}, *cols[3] = {"<start>", "a", "dog"};
    HeatmapOptions o = {.colormap = COLORMAP_VIRIDIS, .cell = 20};
    Image img;
    Error err;
    CHECK(c, heatmap_render(&img, values, 2, 3, lengths, rows, cols, &o, font, &err) == 0);
    if (!img.pixels) return;
    /* The grid's top-left corner: bottom-right of the image less the margin. */
    int x0 = img.width - 12 - 3 * 20, y0 = img.height - 12 - 2 * 20;
    CHECK(c, pixel_is(&img, x0 + 10, y0 + 10, colormap_color(COLORMAP_VIRIDIS, 1.0f)));      /* 0.8: the largest */
    CHECK(c, pixel_is(&img, x0 + 30, y0 + 10, (Rgb){255, 255, 255}));                       /* beyond row 0 */
    CHECK(c, pixel_is(&img, x0 + 10, y0 + 30, colormap_color(COLORMAP_VIRIDIS, 0.25f)));     /* 0.2 / 0.8 */
    CHECK(c, pixel_is(&img, x0 + 50, y0 + 30, colormap_color(COLORMAP_VIRIDIS, 0.75f)));     /* 0.6 / 0.8 */
    image_free(&img);
    CHECK(c, heatmap_render(&img, values, 0, 3, NULL, rows, cols, &o, font, &err) == -1);
    const float bad[2] = {0.5f, NAN};
    CHECK(c, heatmap_render(&img, bad, 1, 2, NULL, rows, cols, &o, font, &err) == -1 && !img.pixels);
    CHECK(c, strstr(err.message, "not finite") != NULL);
}

int main(void) {
    CheckCounts c = {0};
    char out_dir[1024];
    const char *tmp = getenv("TMPDIR");
    snprintf(out_dir, sizeof out_dir, "%s", tmp && *tmp ? tmp : "/tmp");

    char path[1024];
    CHECK(&c, font_default_path(path, sizeof path) != NULL);
    CHECK(&c, font_default_path(path, 4) == NULL); /* too small a buffer */

    test_font_errors(&c, out_dir);
    Font *font = load_test_font();
    CHECK(&c, font != NULL);
    if (!font) {
        fprintf(stderr, "no font; cannot test drawing\n");
        return check_summary(&c);
    }
    test_metrics(&c, font);
    test_drawing(&c, font, out_dir);
    test_learning_curve(&c, font, out_dir);
    test_degenerate(&c, font, out_dir);
    test_heatmap(&c, font);
    test_bars(&c, font, out_dir);
    font_free(font);
    printf("charts in %s/test_plot_*.png\n", out_dir);
    return check_summary(&c);
}
