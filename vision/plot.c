#include "plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- look ------------------------------------------------------------------ */

static const Rgb WHITE = {255, 255, 255};
static const Rgb TITLE_COLOR = {20, 20, 20};
static const Rgb TEXT_COLOR = {50, 50, 50};
static const Rgb AXIS_COLOR = {70, 70, 70};
static const Rgb GRID_COLOR = {228, 228, 228};
static const Rgb MUTED_COLOR = {150, 150, 150};

/* The "tab10" palette, for bars without colours. */
static const Rgb PALETTE[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
                              {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};

#define DEFAULT_WIDTH 800
#define DEFAULT_HEIGHT 500
#define LINE_WIDTH 2.2f
#define MARKER_RADIUS 3.3f
#define TICK_LENGTH 5
#define MIN_PLOT_AREA 60 /* pixels, each way */

/* Everything drawing needs: the image, the font and sizes derived from the
 * image size. */
typedef struct {
    Image *img;
    const Font *font;
    float tick_px, label_px, title_px; /* font pixel heights */
    int pad;
} Canvas;

typedef struct {
    int x0, y0, x1, y1; /* half-open */
} Rect;

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }
static float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }
static int has_text(const char *s) { return s && *s; }

static void canvas_init(Canvas *c, Image *img, const Font *font) {
    c->img = img;
    c->font = font;
    float base = clampf(fminf((float)img->height / 35.0f, (float)img->width / 56.0f), 10.0f, 24.0f);
    c->tick_px = roundf(base);
    c->label_px = roundf(base * 1.12f);
    c->title_px = roundf(base * 1.35f);
    c->pad = (int)lroundf(base * 0.9f);
}

static int line_h(const Canvas *c, float px) { return font_line_height(c->font, px); }
static int text_w(const Canvas *c, const char *s, float px) { return font_text_width(c->font, s, px); }

/* ---- text fitting ---------------------------------------------------------- */

/* Copies text into buf, shortened to whole UTF-8 characters plus "..." (one
 * character, U+2026) when wider than max_width pixels. */
static const char *fit_text(const Canvas *c, const char *text, float px, int max_width, char *buf, size_t size) {
    /* Copy what fits, cut at a character boundary. */
    size_t len = text ? strlen(text) : 0;
    if (len >= size) {
        len = size - 1;
        while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80) len--;
    }
    if (len) memcpy(buf, text, len);
    buf[len] = '\0';
    if (text_w(c, buf, px) <= max_width) return buf;
    static const char ELLIPSIS[] = "\xE2\x80\xA6";
    while (len > 0) {
        do len--;
        while (len > 0 && ((unsigned char)buf[len] & 0xC0) == 0x80);
        while (len > 0 && buf[len - 1] == ' ') len--;
        if (len + sizeof ELLIPSIS > size) continue;
        memcpy(buf + len, ELLIPSIS, sizeof ELLIPSIS);
        if (text_w(c, buf, px) <= max_width) return buf;
    }
    buf[0] = '\0';
    if (text_w(c, ELLIPSIS, px) <= max_width) snprintf(buf, size, "%s", ELLIPSIS);
    return buf;
}

static void text_at(const Canvas *c, const char *s, int x, int y, float px, Rgb color) {
    font_draw_text(c->img, c->font, s, x, y, px, color);
}
static void text_centered(const Canvas *c, const char *s, int cx, int y, float px, Rgb color) {
    font_draw_text(c->img, c->font, s, cx - text_w(c, s, px) / 2, y, px, color);
}
static void text_right(const Canvas *c, const char *s, int right, int y, float px, Rgb color) {
    font_draw_text(c->img, c->font, s, right - text_w(c, s, px), y, px, color);
}

/* ---- anti-aliased shapes via a coverage mask -------------------------------- */

/* Coverage (0..255) over a rectangle of the image. Shapes are accumulated
 * with max() and the mask is blended once, so the joints of a polyline are
 * not painted twice. */
typedef struct {
    Rect r;
    unsigned char *a;
} Mask;

static int mask_init(Mask *m, Rect r) {
    m->r = r;
    size_t n = (size_t)imax(r.x1 - r.x0, 0) * (size_t)imax(r.y1 - r.y0, 0);
    m->a = calloc(n ? n : 1, 1);
    return m->a ? 0 : -1;
}

static void mask_put(Mask *m, int x, int y, float coverage) {
    if (coverage <= 0.0f) return;
    unsigned value = coverage >= 1.0f ? 255u : (unsigned)lroundf(coverage * 255.0f);
    unsigned char *p = m->a + (size_t)(y - m->r.y0) * (size_t)(m->r.x1 - m->r.x0) + (size_t)(x - m->r.x0);
    if (value > *p) *p = (unsigned char)value;
}

/* A segment of the given width with round caps; (x, y) are continuous pixel
 * coordinates, pixel (i, j) covering [i, i+1) x [j, j+1). */
static void mask_segment(Mask *m, float x0, float y0, float x1, float y1, float width) {
    float r = width * 0.5f;
    int bx0 = imax(m->r.x0, (int)floorf(fminf(x0, x1) - r - 1.0f));
    int bx1 = imin(m->r.x1, (int)ceilf(fmaxf(x0, x1) + r + 1.0f));
    int by0 = imax(m->r.y0, (int)floorf(fminf(y0, y1) - r - 1.0f));
    int by1 = imin(m->r.y1, (int)ceilf(fmaxf(y0, y1) + r + 1.0f));
    float dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    for (int y = by0; y < by1; y++) {
        float py = (float)y + 0.5f;
        for (int x = bx0; x < bx1; x++) {
            float px = (float)x + 0.5f;
            float t = len2 > 0.0f ? clampf(((px - x0) * dx + (py - y0) * dy) / len2, 0.0f, 1.0f) : 0.0f;
            float ex = x0 + t * dx - px, ey = y0 + t * dy - py;
            mask_put(m, x, y, r + 0.5f - sqrtf(ex * ex + ey * ey));
        }
    }
}

static void mask_disc(Mask *m, float cx, float cy, float radius) { mask_segment(m, cx, cy, cx, cy, 2.0f * radius); }

static unsigned char mix(unsigned char under, unsigned char over, unsigned alpha) {
    return (unsigned char)(((unsigned)under * (255u - alpha) + (unsigned)over * alpha + 127u) / 255u);
}

static void mask_blend(const Mask *m, Image *img, Rgb color) {
    int w = m->r.x1 - m->r.x0;
    for (int y = imax(m->r.y0, 0); y < imin(m->r.y1, img->height); y++) {
        for (int x = imax(m->r.x0, 0); x < imin(m->r.x1, img->width); x++) {
            unsigned a = m->a[(size_t)(y - m->r.y0) * (size_t)w + (size_t)(x - m->r.x0)];
            if (!a) continue;
            unsigned char *p = img->pixels + ((size_t)y * (size_t)img->width + (size_t)x) * 3;
            p[0] = mix(p[0], color.r, a);
            p[1] = mix(p[1], color.g, a);
            p[2] = mix(p[2], color.b, a);
        }
    }
}

/* ---- axes and ticks ---------------------------------------------------------- */

typedef struct {
    double lo, hi;   /* axis limits (the plot area's edges) */
    double step;     /* tick spacing */
    long long k0, k1; /* ticks at k * step for k0 <= k <= k1 */
    int decimals;
    int scientific;
} Axis;

static double tick_value(const Axis *a, long long k) { return (double)k * a->step; }

static void format_tick(char *buf, size_t size, const Axis *a, double v) {
    if (fabs(v) < a->step * 1e-6) v = 0.0; /* no "-0.0" */
    if (a->scientific)
        snprintf(buf, size, "%.3g", v);
    else
        snprintf(buf, size, "%.*f", a->decimals, v);
}

/* Value label of a bar: about three significant digits, no exponent for
 * ordinary magnitudes. */
static void format_value(char *buf, size_t size, double v) {
    double m = fabs(v);
    if (!isfinite(v))
        snprintf(buf, size, "n/a");
    else if (m != 0.0 && (m >= 1e7 || m < 1e-3))
        snprintf(buf, size, "%.3g", v);
    else
        snprintf(buf, size, "%.*f", m >= 100.0 || m == 0.0 ? 0 : m >= 10.0 ? 1 : m >= 1.0 ? 2 : 3, v);
}

/* Limits around [min, max] with 5% margins; a degenerate range gets a small
 * range around its value; no data gives 0..1. */
static void axis_limits(Axis *a, int has_data, double min, double max, int integer) {
    if (!has_data) {
        a->lo = 0.0, a->hi = 1.0;
        return;
    }
    double span = max - min;
    if (!(span > 1e-9 * fmax(fabs(min), fabs(max)))) {
        double pad = fabs(max) * 0.05;
        if (integer || pad == 0.0) pad = fmax(pad, 0.5);
        a->lo = min - pad, a->hi = max + pad;
    } else {
        a->lo = min - 0.05 * span, a->hi = max + 0.05 * span;
    }
}

/* Picks the smallest 1-2-5 step whose tick labels fit: along a horizontal
 * axis of `length` pixels the labels must not crowd each other; along a
 * vertical one the ticks must be at least ~3 text lines apart. */
static void choose_ticks(Axis *a, const Canvas *c, int integer, int horizontal, int length) {
    static const int MANTISSAS[] = {1, 2, 5};
    double span = a->hi - a->lo;
    int e0 = (int)floor(log10(span)) - 2;
    double biggest = fmax(fabs(a->lo), fabs(a->hi));
    int max_vertical = imax(2, (int)((float)length / (c->tick_px * 3.2f)));
    for (int e = e0; e <= e0 + 3; e++) {
        for (int i = 0; i < 3; i++) {
            double step = MANTISSAS[i] * pow(10.0, e);
            if (integer && step < 1.0) continue;
            a->step = step;
            a->k0 = (long long)ceil(a->lo / step - 1e-9);
            a->k1 = (long long)floor(a->hi / step + 1e-9);
            a->decimals = e < 0 ? -e : 0;
            a->scientific = biggest >= 1e7 || step < 1e-5;
            long long count = a->k1 - a->k0 + 1;
            if (!horizontal) {
                if (count <= max_vertical) return;
                continue;
            }
            if (count > 15) continue;
            int widest = 0;
            char label[64];
            for (long long k = a->k0; k <= a->k1; k++) {
                format_tick(label, sizeof label, a, tick_value(a, k));
                widest = imax(widest, text_w(c, label, c->tick_px));
            }
            if (count * (widest + (int)(c->tick_px * 2.5f)) <= length) return;
        }
    }
    /* Nothing fits: the last candidate (the largest step) stays. */
}

static int widest_tick_label(const Canvas *c, const Axis *a) {
    int widest = 0;
    char label[64];
    for (long long k = a->k0; k <= a->k1; k++) {
        format_tick(label, sizeof label, a, tick_value(a, k));
        widest = imax(widest, text_w(c, label, c->tick_px));
    }
    return widest;
}

/* Continuous pixel coordinate of v along [from, to). */
static float axis_map(const Axis *a, double v, int from, int to) {
    return (float)((double)from + (v - a->lo) / (a->hi - a->lo) * (double)(to - from));
}
static int axis_pixel(const Axis *a, double v, int from, int to) {
    int p = (int)floorf(axis_map(a, v, from, to));
    return imin(imax(p, imin(from, to)), imax(from, to) - 1);
}

/* Grid lines and ticks of a vertical axis; labels on the left (side < 0)
 * or right (side > 0) of the plot rectangle. */
static void draw_y_axis(const Canvas *c, const Axis *a, Rect p, int side, int grid) {
    char label[64];
    int lh = line_h(c, c->tick_px);
    for (long long k = a->k0; k <= a->k1; k++) {
        int y = axis_pixel(a, tick_value(a, k), p.y1, p.y0);
        if (grid) draw_fill_rect(c->img, p.x0, y, p.x1, y + 1, GRID_COLOR);
        format_tick(label, sizeof label, a, tick_value(a, k));
        if (side < 0) {
            draw_fill_rect(c->img, p.x0 - 1 - TICK_LENGTH, y, p.x0 - 1, y + 1, AXIS_COLOR);
            text_right(c, label, p.x0 - 1 - TICK_LENGTH - 4, y - lh / 2, c->tick_px, TEXT_COLOR);
        } else {
            draw_fill_rect(c->img, p.x1 + 1, y, p.x1 + 1 + TICK_LENGTH, y + 1, AXIS_COLOR);
            text_at(c, label, p.x1 + 1 + TICK_LENGTH + 4, y - lh / 2, c->tick_px, TEXT_COLOR);
        }
    }
}

static void draw_x_axis(const Canvas *c, const Axis *a, Rect p, int grid) {
    char label[64];
    for (long long k = a->k0; k <= a->k1; k++) {
        int x = axis_pixel(a, tick_value(a, k), p.x0, p.x1);
        if (grid) draw_fill_rect(c->img, x, p.y0, x + 1, p.y1, GRID_COLOR);
        draw_fill_rect(c->img, x, p.y1 + 1, x + 1, p.y1 + 1 + TICK_LENGTH, AXIS_COLOR);
        format_tick(label, sizeof label, a, tick_value(a, k));
        text_centered(c, label, x, p.y1 + 1 + TICK_LENGTH + 3, c->tick_px, TEXT_COLOR);
    }
}

static void draw_frame(const Canvas *c, Rect p) {
    draw_rect_outline(c->img, p.x0 - 1, p.y0 - 1, p.x1 + 1, p.y1 + 1, 1, AXIS_COLOR);
}

/* Title centred at the top; returns the y below it. */
static int draw_title(const Canvas *c, const char *title, int y) {
    if (!has_text(title)) return y;
    char buf[512];
    fit_text(c, title, c->title_px, c->img->width - 2 * c->pad, buf, sizeof buf);
    text_centered(c, buf, c->img->width / 2, y, c->title_px, TITLE_COLOR);
    return y + line_h(c, c->title_px) + c->pad / 2;
}

/* The x-axis label, and the space the x axis needs under the plot. */
static int x_axis_height(const Canvas *c, const char *x_label) {
    int h = 1 + TICK_LENGTH + 3 + line_h(c, c->tick_px);
    if (has_text(x_label)) h += c->pad / 2 + line_h(c, c->label_px);
    return h;
}

static void draw_x_label(const Canvas *c, const char *x_label, Rect p) {
    if (!has_text(x_label)) return;
    char buf[512];
    fit_text(c, x_label, c->label_px, p.x1 - p.x0, buf, sizeof buf);
    int y = p.y1 + 1 + TICK_LENGTH + 3 + line_h(c, c->tick_px) + c->pad / 2;
    text_centered(c, buf, (p.x0 + p.x1) / 2, y, c->label_px, TEXT_COLOR);
}

/* A rotated axis label with its line box's left edge at x. */
static void draw_y_label(const Canvas *c, const char *label, int x, Rect p) {
    if (!has_text(label)) return;
    char buf[512];
    fit_text(c, label, c->label_px, p.y1 - p.y0, buf, sizeof buf);
    int w = text_w(c, buf, c->label_px);
    font_draw_text_vertical(c->img, c->font, buf, x, (p.y0 + p.y1) / 2 + w / 2, c->label_px, TEXT_COLOR);
}

static int check_size(const char *who, int width, int height, Error *err) {
    if (width < PLOT_MIN_SIZE || width > PLOT_MAX_SIZE || height < PLOT_MIN_SIZE || height > PLOT_MAX_SIZE)
        return error_set(err, "%s: image size %d x %d is out of range (each side %d..%d pixels, or 0 for the default)",
                         who, width, height, PLOT_MIN_SIZE, PLOT_MAX_SIZE);
    return 0;
}

static int check_plot_area(const char *who, Rect p, int width, int height, Error *err) {
    if (p.x1 - p.x0 < MIN_PLOT_AREA || p.y1 - p.y0 < MIN_PLOT_AREA)
        return error_set(err,
                         "%s: image %d x %d is too small for its titles, legend and labels (the plot area "
                         "would be %d x %d pixels; at least %d x %d needed)",
                         who, width, height, imax(p.x1 - p.x0, 0), imax(p.y1 - p.y0, 0), MIN_PLOT_AREA,
                         MIN_PLOT_AREA);
    return 0;
}

/* ---- line chart ------------------------------------------------------------------ */

static int point_ok(const PlotSeries *s, int i) { return isfinite(s->x[i]) && isfinite(s->y[i]); }

/* Range of x (axis 0), left y (1) or right y (2) over the finite points. */
static int data_range(const PlotSeries *series, int n, int which, int two_axes, double *min, double *max,
                      int *all_integer) {
    int any = 0;
    *min = INFINITY, *max = -INFINITY;
    if (all_integer) *all_integer = 1;
    for (int s = 0; s < n; s++) {
        int right = two_axes && series[s].right_axis;
        if ((which == 1 && right) || (which == 2 && !right)) continue;
        for (int i = 0; i < series[s].count; i++) {
            if (!point_ok(&series[s], i)) continue;
            double v = which == 0 ? series[s].x[i] : series[s].y[i];
            any = 1;
            *min = fmin(*min, v);
            *max = fmax(*max, v);
            if (all_integer && v != floor(v)) *all_integer = 0;
        }
    }
    return any;
}

/* Legend entries laid out in centred rows under the title. */
#define SWATCH_WIDTH 24
#define SWATCH_GAP 6

typedef struct {
    char text[256];
    int width; /* swatch + gap + text */
    int row;
} LegendEntry;

static int legend_layout(const Canvas *c, const PlotSeries *series, int n, int mark_right, LegendEntry *entries,
                         int *rows) {
    int avail = c->img->width - 2 * c->pad, spacing = (int)(c->tick_px * 1.6f), row = 0, used = 0, any = 0;
    for (int s = 0; s < n; s++) {
        LegendEntry *e = &entries[s];
        e->width = 0;
        e->row = -1;
        if (!has_text(series[s].label)) continue;
        char full[300];
        snprintf(full, sizeof full, "%s%s", series[s].label, mark_right && series[s].right_axis ? " (right axis)" : "");
        fit_text(c, full, c->tick_px, avail - SWATCH_WIDTH - SWATCH_GAP, e->text, sizeof e->text);
        e->width = SWATCH_WIDTH + SWATCH_GAP + text_w(c, e->text, c->tick_px);
        if (used > 0 && used + spacing + e->width > avail) row++, used = 0;
        used += (used > 0 ? spacing : 0) + e->width;
        e->row = row;
        any = 1;
    }
    *rows = any ? row + 1 : 0;
    return any;
}

static int draw_legend(const Canvas *c, const PlotSeries *series, int n, const LegendEntry *entries, int rows,
                       int y) {
    int spacing = (int)(c->tick_px * 1.6f), lh = line_h(c, c->tick_px), row_h = lh + 4;
    for (int row = 0; row < rows; row++) {
        int total = 0;
        for (int s = 0; s < n; s++)
            if (entries[s].row == row) total += (total > 0 ? spacing : 0) + entries[s].width;
        int x = (c->img->width - total) / 2, ry = y + row * row_h;
        for (int s = 0; s < n; s++) {
            if (entries[s].row != row) continue;
            Rect box = {x, ry, x + SWATCH_WIDTH, ry + lh};
            Mask m;
            if (mask_init(&m, box) == 0) {
                float mid = (float)ry + (float)lh * 0.5f;
                mask_segment(&m, (float)x + 2.0f, mid, (float)(x + SWATCH_WIDTH) - 2.0f, mid, LINE_WIDTH);
                mask_disc(&m, (float)x + SWATCH_WIDTH * 0.5f, mid, MARKER_RADIUS);
                mask_blend(&m, c->img, series[s].color);
                free(m.a);
            }
            text_at(c, entries[s].text, x + SWATCH_WIDTH + SWATCH_GAP, ry, c->tick_px, TEXT_COLOR);
            x += entries[s].width + spacing;
        }
    }
    return y + rows * row_h;
}

static int draw_series(const Canvas *c, const PlotSeries *s, const Axis *ax, const Axis *ay, Rect p) {
    Mask m;
    if (mask_init(&m, p) != 0) return -1;
    int finite = 0;
    for (int i = 0; i < s->count; i++) finite += point_ok(s, i);
    int markers = finite <= (p.x1 - p.x0) / 14;
    float px = 0.0f, py = 0.0f;
    int have_previous = 0;
    for (int i = 0; i < s->count; i++) {
        if (!point_ok(s, i)) {
            have_previous = 0;
            continue;
        }
        float x = axis_map(ax, s->x[i], p.x0, p.x1), y = axis_map(ay, s->y[i], p.y1, p.y0);
        if (have_previous) mask_segment(&m, px, py, x, y, LINE_WIDTH);
        int isolated = !have_previous && (i + 1 >= s->count || !point_ok(s, i + 1));
        if (markers || isolated) mask_disc(&m, x, y, MARKER_RADIUS);
        px = x, py = y, have_previous = 1;
    }
    mask_blend(&m, c->img, s->color);
    free(m.a);
    return 0;
}

int plot_render(Image *out, const PlotSeries *series, int series_count, const PlotOptions *opts, const Font *font,
                Error *err) {
    static const char WHO[] = "plot_render";
    if (!out) return error_set(err, "%s: no output image given", WHO);
    memset(out, 0, sizeof *out);
    if (!font) return error_set(err, "%s: no font given (load one with font_load; font_default_path finds it)", WHO);
    if (series_count < 0) return error_set(err, "%s: negative series count %d", WHO, series_count);
    if (series_count > 0 && !series) return error_set(err, "%s: %d series announced but none given", WHO, series_count);
    int has_left = 0, has_right = 0;
    for (int s = 0; s < series_count; s++) {
        const PlotSeries *ps = &series[s];
        const char *name = has_text(ps->label) ? ps->label : "(unlabelled)";
        if (ps->count < 0) return error_set(err, "%s: series %d \"%s\" has a negative point count %d", WHO, s, name, ps->count);
        if (ps->count > 0 && (!ps->x || !ps->y))
            return error_set(err, "%s: series %d \"%s\" has %d points but no %s values", WHO, s, name, ps->count,
                             !ps->x ? "x" : "y");
        if (ps->right_axis)
            has_right = 1;
        else
            has_left = 1;
    }
    /* Series all on the right axis are simply plotted on the left one. */
    int two_axes = has_left && has_right;
    PlotOptions o = opts ? *opts : (PlotOptions){0};
    if (has_right && !has_left && !has_text(o.y_label)) o.y_label = o.y2_label;
    int width = o.width ? o.width : DEFAULT_WIDTH, height = o.height ? o.height : DEFAULT_HEIGHT;
    if (check_size(WHO, width, height, err) != 0) return -1;

    Image img = {0};
    if (image_alloc(&img, width, height, 3, err) != 0) return error_prefix(err, "%s", WHO);
    draw_fill(&img, WHITE);
    Canvas c;
    canvas_init(&c, &img, font);

    LegendEntry *entries = calloc((size_t)(series_count > 0 ? series_count : 1), sizeof *entries);
    if (!entries) {
        image_free(&img);
        return error_set(err, "%s: out of memory for the legend of %d series", WHO, series_count);
    }

    /* Vertical layout: title, legend, plot, x axis. */
    int top = draw_title(&c, o.title, c.pad);
    int rows = 0;
    if (legend_layout(&c, series, series_count, two_axes, entries, &rows))
        top = draw_legend(&c, series, series_count, entries, rows, top) + c.pad / 2;
    top += line_h(&c, c.tick_px) / 2 + 2; /* room for the top y tick label */
    Rect p = {0, top, 0, height - c.pad - x_axis_height(&c, o.x_label)};

    /* Ranges and y ticks (they depend on the plot height only). */
    double min, max;
    int x_integer;
    Axis ax, ay, ay2;
    int has_x = data_range(series, series_count, 0, two_axes, &min, &max, &x_integer);
    axis_limits(&ax, has_x, min, max, has_x && x_integer);
    int has_y = data_range(series, series_count, 1, two_axes, &min, &max, NULL);
    axis_limits(&ay, has_y, min, max, 0);
    int has_y2 = data_range(series, series_count, 2, two_axes, &min, &max, NULL);
    axis_limits(&ay2, has_y2, min, max, 0);
    choose_ticks(&ay, &c, 0, 0, p.y1 - p.y0);
    choose_ticks(&ay2, &c, 0, 0, p.y1 - p.y0);

    /* Horizontal layout: y label, tick labels, plot, right tick labels, y2 label. */
    p.x0 = c.pad + widest_tick_label(&c, &ay) + 4 + TICK_LENGTH + 1;
    if (has_text(o.y_label)) p.x0 += line_h(&c, c.label_px) + c.pad / 2;
    int right = c.pad;
    if (two_axes) {
        right += widest_tick_label(&c, &ay2) + 4 + TICK_LENGTH + 1;
        if (has_text(o.y2_label)) right += line_h(&c, c.label_px) + c.pad / 2;
    } else {
        right += c.pad;
    }
    p.x1 = width - right;
    for (int pass = 0; pass < 2 && p.x1 - p.x0 >= MIN_PLOT_AREA; pass++) {
        choose_ticks(&ax, &c, has_x && x_integer, 1, p.x1 - p.x0);
        if (two_axes) break;
        /* Without a right axis the last x label may stick out of the plot. */
        char label[64];
        format_tick(label, sizeof label, &ax, tick_value(&ax, ax.k1));
        int x = axis_pixel(&ax, tick_value(&ax, ax.k1), p.x0, p.x1);
        int overflow = x + text_w(&c, label, c.tick_px) / 2 + c.pad / 2 - width;
        if (overflow <= 0) break;
        p.x1 -= overflow;
    }
    if (check_plot_area(WHO, p, width, height, err) != 0) {
        free(entries);
        image_free(&img);
        return -1;
    }

    draw_x_axis(&c, &ax, p, 1);
    draw_y_axis(&c, &ay, p, -1, 1);
    if (two_axes) draw_y_axis(&c, &ay2, p, 1, 0);
    for (int s = 0; s < series_count; s++) {
        if (draw_series(&c, &series[s], &ax, two_axes && series[s].right_axis ? &ay2 : &ay, p) != 0) {
            free(entries);
            image_free(&img);
            return error_set(err, "%s: out of memory drawing series %d", WHO, s);
        }
    }
    draw_frame(&c, p);
    if (!has_x)
        text_centered(&c, "no data", (p.x0 + p.x1) / 2, (p.y0 + p.y1 - line_h(&c, c.label_px)) / 2, c.label_px,
                      MUTED_COLOR);
    draw_x_label(&c, o.x_label, p);
    draw_y_label(&c, o.y_label, c.pad, p);
    if (two_axes) draw_y_label(&c, o.y2_label, width - c.pad - line_h(&c, c.label_px), p);

    free(entries);
    *out = img;
    return 0;
}

/* ---- bar chart ---------------------------------------------------------------------- */

int plot_bars(Image *out, const char *const *labels, const float *values, const Rgb *colors, int count,
              const PlotOptions *opts, const Font *font, Error *err) {
    static const char WHO[] = "plot_bars";
    if (!out) return error_set(err, "%s: no output image given", WHO);
    memset(out, 0, sizeof *out);
    if (!font) return error_set(err, "%s: no font given (load one with font_load; font_default_path finds it)", WHO);
    if (count < 0) return error_set(err, "%s: negative bar count %d", WHO, count);
    if (count > 0 && !values) return error_set(err, "%s: %d bars announced but no values given", WHO, count);
    PlotOptions o = opts ? *opts : (PlotOptions){0};
    int width = o.width ? o.width : DEFAULT_WIDTH;

    /* Sizes come from the width when the height is automatic. */
    Image probe = {.width = width, .height = o.height ? o.height : (int)(width * 0.625), .channels = 3};
    if (check_size(WHO, width, probe.height, err) != 0) return -1;
    Canvas c;
    canvas_init(&c, &probe, font);
    float label_px = c.tick_px;
    int top = c.pad + (has_text(o.title) ? line_h(&c, c.title_px) + c.pad / 2 : 0) + c.pad / 2;
    int bottom = c.pad + x_axis_height(&c, o.x_label);
    int rows = count > 0 ? count : 1;
    int height = o.height;
    if (height == 0) {
        int row_h = imax((int)(line_h(&c, label_px) * 2.0f), 24);
        height = imax(top + bottom + rows * row_h, PLOT_MIN_SIZE);
        if (height > PLOT_MAX_SIZE)
            return error_set(err, "%s: %d bars need an image %d pixels high, more than the %d allowed", WHO, count,
                             height, PLOT_MAX_SIZE);
    } else {
        /* A given height: shrink the bar labels to the rows, down to 8 px. */
        float row_h = (float)(height - top - bottom) / (float)rows;
        label_px = fminf(label_px, floorf(row_h - 2.0f));
        if (label_px < 8.0f)
            return error_set(err, "%s: height %d is too small for %d bars (each needs at least 10 pixels; "
                             "use height 0 for automatic)", WHO, height, count);
    }
    if (check_size(WHO, width, height, err) != 0) return -1;

    Image img = {0};
    if (image_alloc(&img, width, height, 3, err) != 0) return error_prefix(err, "%s", WHO);
    draw_fill(&img, WHITE);
    c.img = &img;
    draw_title(&c, o.title, c.pad);

    /* Horizontal layout: y label, bar labels (at most 40% of the width),
     * plot, room for value labels at the ends of the longest bars. */
    double vmin = 0.0, vmax = 0.0;
    int widest_label = 0, widest_value = 0;
    char buf[512];
    for (int i = 0; i < count; i++) {
        if (labels && labels[i]) widest_label = imax(widest_label, text_w(&c, labels[i], label_px));
        format_value(buf, sizeof buf, values[i]);
        widest_value = imax(widest_value, text_w(&c, buf, label_px));
        if (isfinite(values[i])) vmin = fmin(vmin, values[i]), vmax = fmax(vmax, values[i]);
    }
    int label_column = imin(widest_label, (int)(width * 0.4f));
    Rect p = {c.pad + label_column + 8, top, width - c.pad - widest_value - 8, height - bottom};
    if (has_text(o.y_label)) p.x0 += line_h(&c, c.label_px) + c.pad / 2;
    if (check_plot_area(WHO, p, width, height, err) != 0) {
        image_free(&img);
        return -1;
    }

    /* Value axis from zero; negative bars leave room for their labels on the left. */
    Axis ax;
    ax.lo = vmin, ax.hi = vmax;
    if (vmax > 0.0) ax.hi = vmax * 1.02;
    if (vmin < 0.0) {
        double room = fmin((double)(widest_value + 8) / (double)(p.x1 - p.x0), 0.4);
        ax.lo = ax.hi - (ax.hi - vmin * 1.02) / (1.0 - room);
    }
    if (!(ax.hi - ax.lo > 0.0)) ax.lo = 0.0, ax.hi = 1.0;
    choose_ticks(&ax, &c, 0, 1, p.x1 - p.x0);

    draw_x_axis(&c, &ax, p, 1);
    int zero = axis_pixel(&ax, 0.0, p.x0, p.x1);
    float row_h = (float)(p.y1 - p.y0) / (float)rows;
    int lh = line_h(&c, label_px);
    for (int i = 0; i < count; i++) {
        float centre = (float)p.y0 + row_h * ((float)i + 0.5f);
        int y0 = (int)lroundf(centre - row_h * 0.34f), y1 = (int)lroundf(centre + row_h * 0.34f);
        if (y1 <= y0) y1 = y0 + 1;
        int ty = (int)lroundf(centre) - lh / 2;
        if (labels && labels[i]) {
            fit_text(&c, labels[i], label_px, label_column, buf, sizeof buf);
            text_right(&c, buf, p.x0 - 8, ty, label_px, TEXT_COLOR);
        }
        format_value(buf, sizeof buf, values[i]);
        int vw = text_w(&c, buf, label_px);
        if (!isfinite(values[i])) {
            text_at(&c, buf, zero + 4, ty, label_px, MUTED_COLOR);
            continue;
        }
        Rgb color = colors ? colors[i] : PALETTE[i % (int)(sizeof PALETTE / sizeof PALETTE[0])];
        int end = (int)lroundf(axis_map(&ax, values[i], p.x0, p.x1));
        if (values[i] >= 0.0f) {
            draw_fill_rect(&img, zero, y0, imax(end, zero + 1), y1, color);
            text_at(&c, buf, imax(end, zero + 1) + 4, ty, label_px, TEXT_COLOR);
        } else {
            draw_fill_rect(&img, end, y0, zero, y1, color);
            text_at(&c, buf, end - 4 - vw, ty, label_px, TEXT_COLOR);
        }
    }
    if (ax.lo < 0.0) draw_fill_rect(&img, zero, p.y0, zero + 1, p.y1, AXIS_COLOR);
    draw_frame(&c, p);
    if (count == 0)
        text_centered(&c, "no data", (p.x0 + p.x1) / 2, (p.y0 + p.y1 - line_h(&c, c.label_px)) / 2, c.label_px,
                      MUTED_COLOR);
    draw_x_label(&c, o.x_label, p);
    draw_y_label(&c, o.y_label, c.pad, p);
    *out = img;
    return 0;
}
