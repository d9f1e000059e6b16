/* vision/overlay and vision/figure: colormap values, the upsampling and
 * smoothing math (against a direct implementation), blending, and the
 * figure's layout. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "test_pixels.h"
#include "figure.h"
#include "overlay.h"

static int near_rgb(Rgb a, int r, int g, int b, int tolerance) {
    return abs(a.r - r) <= tolerance && abs(a.g - g) <= tolerance && abs(a.b - b) <= tolerance;
}

static Rgb pixel_at(const Image *img, int x, int y) {
    const unsigned char *p = img->pixels + ((size_t)y * (size_t)img->width + (size_t)x) * (size_t)img->channels;
    return img->channels >= 3 ? (Rgb){p[0], p[1], p[2]} : (Rgb){p[0], p[0], p[0]};
}

static int make_image(Image *img, int width, int height, int channels, Rgb color) {
    Error err;
    if (image_alloc(img, width, height, channels, &err) != 0) return -1;
    draw_fill(img, color);
    return 0;
}

/* matplotlib's published first and last entries, rounded to 8 bits:
 * viridis #440154 .. #fde725, inferno (0.001462, 0.000466, 0.013866) ..
 * (0.988362, 0.998364, 0.644924); jet (0, 0, 0.5) .. (0.5, 0, 0). */
static void test_colormaps(CheckCounts *c) {
    CHECK(c, near_rgb(colormap_color(COLORMAP_VIRIDIS, 0.0f), 0x44, 0x01, 0x54, 0));
    CHECK(c, near_rgb(colormap_color(COLORMAP_VIRIDIS, 1.0f), 0xfd, 0xe7, 0x25, 0));
    CHECK(c, near_rgb(colormap_color(COLORMAP_VIRIDIS, 128.0f / 255.0f), 0x21, 0x91, 0x8c, 0)); /* entry 128 */
    CHECK(c, near_rgb(colormap_color(COLORMAP_INFERNO, 0.0f), 0, 0, 4, 0));
    CHECK(c, near_rgb(colormap_color(COLORMAP_INFERNO, 1.0f), 252, 255, 164, 0));
    CHECK(c, near_rgb(colormap_color(COLORMAP_JET, 0.0f), 0, 0, 128, 0));
    CHECK(c, near_rgb(colormap_color(COLORMAP_JET, 1.0f), 128, 0, 0, 0));
    CHECK(c, near_rgb(colormap_color(COLORMAP_JET, 0.5f), 123, 255, 123, 1)); /* (0.484, 1, 0.484) */
    CHECK(c, near_rgb(colormap_color(COLORMAP_VIRIDIS, -3.0f), 0x44, 0x01, 0x54, 0)); /* clamped */
    CHECK(c, near_rgb(colormap_color(COLORMAP_VIRIDIS, NAN), 0x44, 0x01, 0x54, 0));
    Colormap m;
    Error err;
    for (int i = 0; i < COLORMAP_COUNT; i++) {
        CHECK(c, colormap_parse(colormap_name((Colormap)i), &m, &err) == 0 && m == (Colormap)i);
    }
    CHECK(c, colormap_parse("Inferno", &m, &err) == 0 && m == COLORMAP_INFERNO);
    CHECK(c, colormap_parse("plasma", &m, &err) == -1 && strstr(err.message, "plasma"));
    OverlayNormalize n;
    CHECK(c, overlay_normalize_parse("max", &n, &err) == 0 && n == OVERLAY_NORMALIZE_MAX);
    CHECK(c, overlay_normalize_parse("bogus", &n, &err) == -1);
    CHECK(c, strcmp(overlay_normalize_name(OVERLAY_NORMALIZE_RANGE), "range") == 0);
}

/* ---- the map math, against a direct implementation ------------------------ */

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Bilinear upsampling with cell centres at (j + 0.5) / cells, then a 2-D
 * Gaussian blur with replicated borders, pixel by pixel. */
static void direct_map(double *out, int width, int height, const float *alpha, int gh, int gw, float sigma) {
    double *up = malloc(sizeof(double) * (size_t)width * height);
    double *tmp = malloc(sizeof(double) * (size_t)width * height);
    for (int y = 0; y < height; y++) {
        double v = fmin(fmax((y + 0.5) * gh / height - 0.5, 0.0), gh - 1.0);
        int i0 = (int)floor(v), i1 = i0 + 1 < gh ? i0 + 1 : i0;
        double fy = v - i0;
        for (int x = 0; x < width; x++) {
            double u = fmin(fmax((x + 0.5) * gw / width - 0.5, 0.0), gw - 1.0);
            int j0 = (int)floor(u), j1 = j0 + 1 < gw ? j0 + 1 : j0;
            double fx = u - j0;
            up[y * width + x] = (1 - fy) * ((1 - fx) * alpha[i0 * gw + j0] + fx * alpha[i0 * gw + j1]) +
                                fy * ((1 - fx) * alpha[i1 * gw + j0] + fx * alpha[i1 * gw + j1]);
        }
    }
    double sx = fmax(sigma * width / gw, 1e-3), sy = fmax(sigma * height / gh, 1e-3);
    int rx = sx < 0.05 ? 0 : (int)ceil(3 * sx), ry = sy < 0.05 ? 0 : (int)ceil(3 * sy);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            double sum = 0, total = 0;
            for (int k = -rx; k <= rx; k++) {
                double g = exp(-0.5 * k * k / (sx * sx));
                sum += g * up[y * width + clampi(x + k, 0, width - 1)];
                total += g;
            }
            tmp[y * width + x] = sum / total;
        }
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            double sum = 0, total = 0;
            for (int k = -ry; k <= ry; k++) {
                double g = exp(-0.5 * k * k / (sy * sy));
                sum += g * tmp[clampi(y + k, 0, height - 1) * width + x];
                total += g;
            }
            out[y * width + x] = sum / total;
        }
    free(up);
    free(tmp);
}

static void test_map_matches_direct(CheckCounts *c) {
    enum { W = 37, H = 23, GH = 3, GW = 4 };
    float alpha[GH * GW] = {0.05f, 0.1f, 0.02f, 0.0f, 0.3f, 0.01f, 0.07f, 0.05f, 0.1f, 0.2f, 0.04f, 0.06f};
    OverlayOptions o;
    overlay_options_default(&o);
    o.normalize = OVERLAY_NORMALIZE_MAX;
    float map[W * H];
    double expected[W * H];
    Error err;
    /* Sizes smaller than the grid, and sigmas whose kernel is wider than the image. */
    int sizes[][2] = {{W, H}, {3, 2}, {1, 5}, {W, 1}};
    float sigmas[] = {0.0f, 0.4f, 1.3f, 6.0f};
    for (int z = 0; z < 4; z++) {
        int w = sizes[z][0], h = sizes[z][1];
        for (int s = 0; s < 4; s++) {
            o.sigma = sigmas[s];
            CHECK(c, overlay_attention_map(map, w, h, alpha, GH, GW, &o, &err) == 0);
            direct_map(expected, w, h, alpha, GH, GW, o.sigma);
            double worst = 0, high = 0;
            for (int i = 0; i < w * h; i++) high = fmax(high, expected[i]);
            for (int i = 0; i < w * h; i++) worst = fmax(worst, fabs(map[i] * high - expected[i]));
            if (worst >= 1e-5) printf("%dx%d sigma %.1f: off by %.2g\n", w, h, (double)o.sigma, worst);
            CHECK(c, worst < 1e-5);
        }
    }
    /* Normalisation: the same map scaled; NONE on the log scale of the
     * weight against uniform (1/12 here). */
    o.sigma = 0.4f;
    direct_map(expected, W, H, alpha, GH, GW, o.sigma);
    double low = expected[0], high = expected[0];
    for (int i = 0; i < W * H; i++) low = fmin(low, expected[i]), high = fmax(high, expected[i]);
    o.normalize = OVERLAY_NORMALIZE_RANGE;
    overlay_attention_map(map, W, H, alpha, GH, GW, &o, &err);
    CHECK(c, fabs(map[100] - (expected[100] - low) / (high - low)) < 1e-5);
    o.normalize = OVERLAY_NORMALIZE_NONE;
    overlay_attention_map(map, W, H, alpha, GH, GW, &o, &err);
    int above = 0, below = 0;
    for (int i = 0; i < W * H; i++) {
        double want = fmin(1.0, fmax(0.0, log(expected[i] * GH * GW) / log(GH * GW)));
        CHECK(c, fabs(map[i] - want) < 1e-5);
        above += expected[i] > 1.0 / (GH * GW), below += expected[i] < 1.0 / (GH * GW);
    }
    CHECK(c, above > 0 && below > 0); /* both sides of uniform were exercised */
}

/* --normalize none: one scale for every word, so a peaked map and a
 * near-uniform one look different (per-word scaling draws both as hot). */
static void test_absolute_scale(CheckCounts *c) {
    enum { CELLS = 36 };
    float peaked[CELLS], flat[CELLS], map[CELLS]; /* one pixel per cell, at its centre */
    /* The two maps on 36 cells: a peak of 0.09 (3.2x uniform) and a
     * near-uniform one whose top is 0.037 (uniform: 0.028). */
    for (int i = 0; i < CELLS; i++) peaked[i] = 0.91f / (CELLS - 1), flat[i] = 0.963f / (CELLS - 1);
    peaked[14] = 0.09f, flat[14] = 0.037f;
    OverlayOptions o;
    overlay_options_default(&o);
    o.sigma = 0.0f;
    Error err;
    float top[2][3];
    const float *maps[2] = {peaked, flat};
    OverlayNormalize modes[3] = {OVERLAY_NORMALIZE_RANGE, OVERLAY_NORMALIZE_MAX, OVERLAY_NORMALIZE_NONE};
    for (int k = 0; k < 2; k++)
        for (int m = 0; m < 3; m++) {
            o.normalize = modes[m];
            CHECK(c, overlay_attention_map(map, 6, 6, maps[k], 6, 6, &o, &err) == 0);
            top[k][m] = 0.0f;
            for (int i = 0; i < CELLS; i++) top[k][m] = fmaxf(top[k][m], map[i]);
        }
    printf("hottest colour: peaked %.2f / %.2f / %.2f, near-uniform %.2f / %.2f / %.2f (range / max / none)\n",
           (double)top[0][0], (double)top[0][1], (double)top[0][2], (double)top[1][0], (double)top[1][1],
           (double)top[1][2]);
    CHECK(c, top[0][0] > 0.99f && top[1][0] > 0.99f); /* per-word range: both look equally hot */
    /* One scale: log(0.09 * 36) / log(36) = 0.33, log(0.037 * 36) / log(36) = 0.08. */
    CHECK(c, fabsf(top[0][2] - 0.328f) < 0.002f && fabsf(top[1][2] - 0.080f) < 0.002f);
    CHECK(c, fabsf(attention_peak(peaked, CELLS) - 0.09f) < 1e-6f);
}

static void test_flat_maps(CheckCounts *c) {
    float uniform[6] = {1 / 6.f, 1 / 6.f, 1 / 6.f, 1 / 6.f, 1 / 6.f, 1 / 6.f}, zero[6] = {0};
    float map[20 * 10];
    OverlayOptions o;
    overlay_options_default(&o);
    Error err;
    OverlayNormalize modes[3] = {OVERLAY_NORMALIZE_RANGE, OVERLAY_NORMALIZE_MAX, OVERLAY_NORMALIZE_NONE};
    float expect_uniform[3] = {0.0f, 1.0f, 0.0f}; /* none: uniform is the bottom */
    for (int m = 0; m < 3; m++) {
        o.normalize = modes[m];
        CHECK(c, overlay_attention_map(map, 20, 10, uniform, 2, 3, &o, &err) == 0);
        CHECK(c, fabsf(map[0] - expect_uniform[m]) < 1e-5f && fabsf(map[199] - expect_uniform[m]) < 1e-5f);
        CHECK(c, overlay_attention_map(map, 20, 10, zero, 2, 3, &o, &err) == 0 && map[57] == 0.0f);
    }
}

/* A one-hot map: the hot colour at the cell's centre, the far corners close
 * to the picture, a smooth single bump in between (not blocky). */
static void test_one_hot(CheckCounts *c) {
    enum { W = 140, H = 100, GW = 7, GH = 5 };
    float alpha[GH * GW] = {0};
    alpha[3 * GW + 2] = 1.0f; /* cell x = 2, y = 3: centre at (50, 70) */
    Image img, out;
    Error err;
    Rgb gray = {128, 128, 128};
    CHECK(c, make_image(&img, W, H, 3, gray) == 0);
    OverlayOptions o;
    overlay_options_default(&o);
    o.opacity = 1.0f;
    CHECK(c, overlay_attention(&out, &img, alpha, GH, GW, &o, &err) == 0);
    CHECK(c, out.width == W && out.height == H && out.channels == 3);
    Rgb hot = colormap_color(o.colormap, 1.0f), cold = colormap_color(o.colormap, 0.0f);
    CHECK(c, near_rgb(pixel_at(&out, 49, 69), hot.r, hot.g, hot.b, 1));
    CHECK(c, near_rgb(pixel_at(&out, 50, 70), hot.r, hot.g, hot.b, 1));
    /* Corners: m ~ 0, so the picture only darkened, still grey: no tint of
     * the cold colour (a grey photo must not turn lavender). */
    (void)cold;
    int e = (int)lroundf(128 * (1.0f - OVERLAY_DIM * o.opacity));
    int corners[4][2] = {{0, 0}, {W - 1, 0}, {0, H - 1}, {W - 1, H - 1}};
    for (int k = 0; k < 4; k++) CHECK(c, near_rgb(pixel_at(&out, corners[k][0], corners[k][1]), e, e, e, 2));
    image_free(&out);

    /* The map along the row through the peak: one smooth bump. */
    float *map = malloc(sizeof(float) * W * H);
    CHECK(c, overlay_attention_map(map, W, H, alpha, GH, GW, &o, &err) == 0);
    const float *row = map + 70 * W;
    float steepest = 0;
    int rising_then_falling = 1;
    for (int x = 1; x < W; x++) {
        steepest = fmaxf(steepest, fabsf(row[x] - row[x - 1]));
        if (x <= 49 && row[x] < row[x - 1] - 1e-6f) rising_then_falling = 0;
        if (x > 50 && row[x] > row[x - 1] + 1e-6f) rising_then_falling = 0;
    }
    printf("one-hot map: steepest step between neighbouring pixels %.3f\n", (double)steepest);
    CHECK(c, rising_then_falling);
    CHECK(c, steepest < 0.08f); /* a blocky 20-pixel cell would jump by ~1 */
    free(map);

    /* Opacity 0 is the picture, exactly. */
    for (int i = 0; i < W * H * 3; i++) img.pixels[i] = (unsigned char)(i * 7 % 251);
    o.opacity = 0.0f;
    CHECK(c, overlay_attention(&out, &img, alpha, GH, GW, &o, &err) == 0);
    CHECK(c, out.pixels && memcmp(out.pixels, img.pixels, (size_t)W * H * 3) == 0);
    image_free(&out);
    image_free(&img);
}

static void test_sizes_and_errors(CheckCounts *c) {
    float alpha[12] = {0.1f, 0.2f, 0.3f, 0.4f, 0, 0, 0, 0, 0, 0, 0, 0};
    int sizes[][2] = {{37, 91}, {200, 13}, {1, 1}, {5, 300}};
    Error err;
    for (int s = 0; s < 4; s++) {
        for (int channels = 1; channels <= 4; channels++) {
            Image img, out;
            make_image(&img, sizes[s][0], sizes[s][1], channels, (Rgb){90, 160, 30});
            CHECK(c, overlay_attention(&out, &img, alpha, 3, 4, NULL, &err) == 0);
            CHECK(c, out.width == sizes[s][0] && out.height == sizes[s][1] && out.channels == 3);
            image_free(&out);
            image_free(&img);
        }
    }
    Image img, out;
    make_image(&img, 30, 20, 3, (Rgb){1, 2, 3});
    OverlayOptions o;
    overlay_options_default(&o);
    float bad[4] = {0.1f, NAN, 0.2f, 0.3f}, negative[4] = {0.1f, -0.5f, 0.2f, 0.3f};
    CHECK(c, overlay_attention(&out, &img, bad, 2, 2, &o, &err) == -1 && !out.pixels);
    CHECK(c, overlay_attention(&out, &img, negative, 2, 2, &o, &err) == -1 && strstr(err.message, "-0.5"));
    CHECK(c, overlay_attention(&out, &img, alpha, 0, 2, &o, &err) == -1);
    o.opacity = 1.5f;
    CHECK(c, overlay_attention(&out, &img, alpha, 2, 2, &o, &err) == -1 && strstr(err.message, "opacity"));
    o.opacity = 0.5f, o.sigma = -1.0f;
    CHECK(c, overlay_attention(&out, &img, alpha, 2, 2, &o, &err) == -1);
    image_free(&img);
}

/* ---- the figure ------------------------------------------------------------ */

/* Connected regions of pure red pixels (the test picture's colour; text and
 * background are never pure red). */
static int count_red_regions(const Image *img) {
    size_t n = (size_t)img->width * img->height;
    unsigned char *seen = calloc(n, 1);
    int *stack = malloc(sizeof(int) * n), regions = 0;
    for (size_t start = 0; start < n; start++) {
        const unsigned char *p = img->pixels + start * 3;
        if (seen[start] || !(p[0] == 255 && p[1] == 0 && p[2] == 0)) continue;
        regions++;
        int top = 0;
        stack[top++] = (int)start;
        seen[start] = 1;
        while (top) {
            int i = stack[--top], x = i % img->width, y = i / img->width;
            int next[4][2] = {{x - 1, y}, {x + 1, y}, {x, y - 1}, {x, y + 1}};
            for (int k = 0; k < 4; k++) {
                int nx = next[k][0], ny = next[k][1];
                if (nx < 0 || ny < 0 || nx >= img->width || ny >= img->height) continue;
                int j = ny * img->width + nx;
                const unsigned char *q = img->pixels + (size_t)j * 3;
                if (!seen[j] && q[0] == 255 && q[1] == 0 && q[2] == 0) seen[j] = 1, stack[top++] = j;
            }
        }
    }
    free(seen);
    free(stack);
    return regions;
}

static int load_font_for_test(Font **font) {
    char path[4096];
    Error err;
    if (!font_default_path(path, sizeof path) || font_load(font, path, &err) != 0) {
        fprintf(stderr, "no font found\n");
        return -1;
    }
    return 0;
}

static void test_figure(CheckCounts *c, const Font *font) {
    static const char *const words[] = {"a", "dog", "runs", "through", "the", "tall", "grass"};
    enum { GH = 2, GW = 3 };
    float alpha[7 * GH * GW];
    for (int i = 0; i < 7 * GH * GW; i++) alpha[i] = (float)((i * 5) % 7) / 7.0f;
    float beta[7] = {0.9f, 0.5f, 0.4f, 0.3f, 0.2f, 0.6f, 0.7f};
    Image img;
    make_image(&img, 120, 80, 3, (Rgb){255, 0, 0});
    FigureOptions o;
    figure_options_default(&o);
    o.columns = 4;
    o.panel_height = 60;
    o.overlay.opacity = 0.0f; /* panels stay pure red, so they can be counted */
    int pw, ph;
    figure_panel_size(img.width, img.height, o.panel_height, &pw, &ph);
    CHECK(c, pw == 90 && ph == 60);
    Error err;
    int last_w = 0, last_h = 0;
    int counts[] = {0, 3, 7};
    for (int k = 0; k < 3; k++) {
        Image fig;
        int w, h;
        CHECK(c, figure_size(&w, &h, &img, words, counts[k], &o, font, &err) == 0);
        CHECK(c, figure_render(&fig, &img, words, alpha, GH, GW, counts[k], &o, font, &err) == 0);
        CHECK(c, fig.width == w && fig.height == h && fig.channels == 3);
        CHECK(c, count_red_regions(&fig) == counts[k] + 1);
        CHECK(c, w >= last_w && h >= last_h && (w > last_w || h > last_h));
        CHECK(c, w >= 4 * pw || counts[k] < 3);
        printf("figure with %d words: %dx%d\n", counts[k], w, h);
        last_w = w, last_h = h;
        image_free(&fig);
    }
    /* 8 panels in 4 columns: two rows, so taller than one row. */
    int one_row_w, one_row_h, w, h;
    figure_size(&one_row_w, &one_row_h, &img, words, 3, &o, font, &err);
    figure_size(&w, &h, &img, words, 7, &o, font, &err);
    CHECK(c, w == one_row_w && h >= 2 * ph + one_row_h - ph);
    /* A title and beta lines add height; frames have one panel. */
    o.title = "a dog runs through the tall grass";
    o.show_beta = 1, o.beta = beta;
    int tw, th;
    CHECK(c, figure_size(&tw, &th, &img, words, 7, &o, font, &err) == 0 && tw == w && th > h);
    Image frame;
    CHECK(c, figure_render_step(&frame, &img, words, alpha, GH, GW, 7, 3, &o, font, &err) == 0);
    CHECK(c, count_red_regions(&frame) == 1 && frame.width < w && frame.height > ph);
    image_free(&frame);
    CHECK(c, figure_render_step(&frame, &img, words, alpha, GH, GW, 7, 7, &o, font, &err) == -1);
    o.show_beta = 1, o.beta = NULL;
    CHECK(c, figure_render(&frame, &img, words, alpha, GH, GW, 7, &o, font, &err) == -1 && !frame.pixels);
    image_free(&img);
}

/* Automatic layout: never enlarged, a landscape shape whatever the picture's,
 * text sized by the panel's area, a frame on every panel, the highlighted
 * word's panel marked, and figure_fit's panels the largest that fit. */
static void test_figure_layout(CheckCounts *c, const Font *font) {
    static const char *const words[] = {"a", "man", "rides", "a", "bike", "down", "a", "steep", "hill", "in",
                                        "the", "rain"};
    enum { COUNT = 12, GH = 2, GW = 3 };
    float alpha[COUNT * GH * GW];
    for (int i = 0; i < COUNT * GH * GW; i++) alpha[i] = 1.0f / (GH * GW);
    int w, h;
    figure_panel_size(100, 50, 0, &w, &h); /* smaller than the default: its own size */
    CHECK(c, w == 100 && h == 50);
    figure_panel_size(1000, 500, 0, &w, &h);
    CHECK(c, w == 320 && h == FIGURE_DEFAULT_PANEL_HEIGHT);
    Error err;
    FigureOptions o;
    figure_options_default(&o);
    Image pano;
    make_image(&pano, 800, 200, 3, (Rgb){255, 0, 0});
    /* Automatic columns: the shape closest to the target of all column counts. */
    CHECK(c, figure_size(&w, &h, &pano, words, COUNT, &o, font, &err) == 0);
    double automatic = fabs(log((double)w / h / FIGURE_TARGET_ASPECT));
    int closest = 1;
    for (int columns = 1; columns <= COUNT + 1; columns++) {
        FigureOptions fixed = o;
        fixed.columns = columns;
        int fw, fh;
        figure_size(&fw, &fh, &pano, words, COUNT, &fixed, font, &err);
        closest = closest && automatic <= fabs(log((double)fw / fh / FIGURE_TARGET_ASPECT)) + 1e-9;
    }
    printf("4:1 picture, 12 words, automatic columns: %dx%d\n", w, h);
    CHECK(c, closest && w < 2 * h);
    /* Text follows the panel's area: a 4:1 picture's 320x80 panels get the
     * labels and margins of 160x160 ones (the same area). */
    Image wide, square;
    make_image(&wide, 640, 160, 3, (Rgb){255, 0, 0});
    make_image(&square, 160, 160, 3, (Rgb){255, 0, 0});
    int wide_w, wide_h, square_w, square_h;
    o.columns = 2;
    o.panel_height = 80;
    figure_size(&wide_w, &wide_h, &wide, words, 1, &o, font, &err);
    o.panel_height = 160;
    figure_size(&square_w, &square_h, &square, words, 1, &o, font, &err);
    printf("label block: 8:1 panels %d px, square panels %d px\n", wide_h - 80, square_h - 160);
    CHECK(c, wide_h - 80 == square_h - 160);
    /* Frames and the highlight. */
    static const Rgb frame = {200, 200, 200}, accent = {230, 120, 20};
    Image fig, white;
    make_image(&white, 60, 40, 3, (Rgb){255, 255, 255});
    o.columns = 4, o.panel_height = 40, o.overlay.opacity = 0.0f;
    CHECK(c, figure_render(&fig, &white, words, alpha, GH, GW, 3, &o, font, &err) == 0);
    CHECK(c, count_color(&fig, frame) >= 4 * 2 * (60 + 40) && count_color(&fig, accent) == 0);
    image_free(&fig);
    o.highlight = 2;
    CHECK(c, figure_render(&fig, &white, words, alpha, GH, GW, 3, &o, font, &err) == 0);
    long marked = count_color(&fig, accent);
    printf("highlight: %ld accent pixels\n", marked);
    CHECK(c, marked >= 2 * (60 + 40));
    /* Only around the third panel (word 2): nothing left of its column. */
    int left_of = 0, third_x = fig.width / 2;
    for (int y = 0; y < fig.height; y++)
        for (int x = 0; x < third_x - 60; x++) {
            const unsigned char *p = fig.pixels + ((size_t)y * fig.width + x) * 3;
            left_of += p[0] == accent.r && p[1] == accent.g && p[2] == accent.b;
        }
    CHECK(c, left_of == 0);
    image_free(&fig);
    /* figure_fit: inside the box, and no column count fits larger panels. */
    figure_options_default(&o);
    int box_w = 320, box_h = 240;
    CHECK(c, figure_fit(&o, &pano, words, COUNT, font, box_w, box_h, 480, &err) == 0);
    CHECK(c, figure_size(&w, &h, &pano, words, COUNT, &o, font, &err) == 0 && w <= box_w && h <= box_h);
    int larger_fits = 0;
    for (int columns = 1; columns <= COUNT + 1; columns++) {
        FigureOptions bigger = o;
        bigger.columns = columns, bigger.panel_height = o.panel_height + 1;
        int bw, bh;
        figure_size(&bw, &bh, &pano, words, COUNT, &bigger, font, &err);
        larger_fits += bw <= box_w && bh <= box_h;
    }
    printf("fit 320x240: %d columns, panels %d px high, figure %dx%d\n", o.columns, o.panel_height, w, h);
    CHECK(c, larger_fits == 0);
    image_free(&pano), image_free(&wide), image_free(&square), image_free(&white);
}

static void test_panel_sizes(CheckCounts *c) {
    int w, h;
    figure_panel_size(100, 200, 160, &w, &h);
    CHECK(c, w == 80 && h == 160);
    figure_panel_size(1000, 10, 80, &w, &h); /* capped at 4 panel heights wide */
    CHECK(c, w == 320 && h == 3);
    figure_panel_size(3, 3000, 64, &w, &h);
    CHECK(c, w == 1 && h == 64);
}

/* figure_stack: flush left, white where a narrower figure leaves room. */
static void test_stack(CheckCounts *c) {
    Image parts[2] = {{0}}, page = {0}, gray = {0};
    Error err;
    CHECK(c, make_image(&parts[0], 3, 2, 3, (Rgb){200, 0, 0}) == 0);
    CHECK(c, make_image(&parts[1], 5, 1, 3, (Rgb){0, 0, 200}) == 0);
    CHECK(c, figure_stack(&page, parts, 2, &err) == 0 && page.width == 5 && page.height == 3 && page.channels == 3);
    if (page.pixels) {
        CHECK(c, near_rgb(pixel_at(&page, 0, 0), 200, 0, 0, 0) && near_rgb(pixel_at(&page, 2, 1), 200, 0, 0, 0));
        CHECK(c, near_rgb(pixel_at(&page, 3, 0), 255, 255, 255, 0));
        CHECK(c, near_rgb(pixel_at(&page, 4, 1), 255, 255, 255, 0));
        CHECK(c, near_rgb(pixel_at(&page, 0, 2), 0, 0, 200, 0) && near_rgb(pixel_at(&page, 4, 2), 0, 0, 200, 0));
    }
    image_free(&page);
    CHECK(c, figure_stack(&page, parts, 0, &err) == -1 && page.pixels == NULL && strstr(err.message, "nothing"));
    CHECK(c, make_image(&gray, 2, 2, 1, (Rgb){9, 9, 9}) == 0);
    Image mixed[2] = {parts[0], gray};
    CHECK(c, figure_stack(&page, mixed, 2, &err) == -1 && page.pixels == NULL && strstr(err.message, "RGB"));
    image_free(&parts[0]), image_free(&parts[1]), image_free(&gray);
}

int main(void) {
    CheckCounts c = {0};
    test_colormaps(&c);
    test_map_matches_direct(&c);
    test_flat_maps(&c);
    test_absolute_scale(&c);
    test_one_hot(&c);
    test_sizes_and_errors(&c);
    test_panel_sizes(&c);
    test_stack(&c);
    Font *font = NULL;
    CHECK(&c, load_font_for_test(&font) == 0);
    if (font) test_figure(&c, font);
    if (font) test_figure_layout(&c, font);
    font_free(font);
    return check_summary(&c);
}
