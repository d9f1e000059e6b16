/* The multi-panel attention figure (Xu et al. 2015, Fig. 2 and 3). */
#include "figure.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const Rgb WHITE = {255, 255, 255};
static const Rgb WORD_COLOR = {20, 20, 20};
static const Rgb INFO_COLOR = {105, 105, 105};
static const Rgb PANEL_FRAME = {200, 200, 200};
static const Rgb HIGHLIGHT = {230, 120, 20};

/* Everything about where things go; all sizes in pixels. */
typedef struct {
    int panel_w, panel_h;
    int columns, rows, panels;
    int first_word;      /* panel index of the first word: 1 after the picture, 0 in a frame */
    int cell_w;          /* column width: the panel or the widest label */
    int margin, gap_x, gap_y, label_pad;
    float word_px, info_px, title_px;
    int info_lines;      /* lines of numbers under each word: 0, 1 (β, p) or 2 (and the peak) */
    int label_h;         /* text block under a panel */
    int title_lines, title_h;
    int width, height;
} Layout;

void figure_options_default(FigureOptions *opts) {
    *opts = (FigureOptions){0};
    overlay_options_default(&opts->overlay);
}

void figure_panel_size(int image_width, int image_height, int panel_height, int *panel_width_out,
                       int *panel_height_out) {
    int h = panel_height > 0 ? panel_height : FIGURE_DEFAULT_PANEL_HEIGHT;
    if (panel_height <= 0 && image_height > 0 && image_height < h) h = image_height; /* never enlarged */
    double aspect = image_height > 0 && image_width > 0 ? (double)image_width / image_height : 1.0;
    int w = (int)lround(h * aspect);
    if (w > FIGURE_MAX_PANEL_ASPECT * h) {
        w = FIGURE_MAX_PANEL_ASPECT * h;
        h = (int)lround(w / aspect);
    }
    *panel_width_out = w > 0 ? w : 1;
    *panel_height_out = h > 0 ? h : 1;
}

/* ---- text ------------------------------------------------------------------ */

static const char *word_at(const char *const *words, int k) { return words && words[k] ? words[k] : ""; }

/* Line 0: "β 0.87 · p 0.93", or just one part; line 1: "peak 0.09". "" when
 * the line is not shown. */
static void info_text(char *buf, size_t size, const FigureOptions *o, int k, int line) {
    int n = 0;
    buf[0] = '\0';
    if (line == 1) {
        if (o->peak) snprintf(buf, size, "peak %.2f", (double)o->peak[k]);
        return;
    }
    if (o->show_beta && o->beta) n = snprintf(buf, size, "\xce\xb2 %.2f", (double)o->beta[k]);
    if (o->prob && n >= 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, "%sp %.2f", n ? " \xc2\xb7 " : "", (double)o->prob[k]);
}

static int info_line_count(const FigureOptions *o) {
    int first = (o->show_beta && o->beta) || o->prob;
    return o->peak ? 2 : first;
}

/* The bytes [start, *end) of text that fit in max_width as one line (at
 * least one word, even if wider); returns 0 when no words are left. scratch
 * holds strlen(text) + 1 bytes. */
static int next_line(const char *text, size_t *start, size_t *end, char *scratch, const Font *font, float px,
                     int max_width) {
    size_t s = *start;
    while (text[s] == ' ') s++;
    if (!text[s]) return 0;
    size_t e = s, fitted = 0;
    while (text[e]) {
        size_t next = e;
        while (text[next] == ' ') next++;
        while (text[next] && text[next] != ' ') next++;
        memcpy(scratch, text + s, next - s);
        scratch[next - s] = '\0';
        if (fitted && font_text_width(font, scratch, px) > max_width) break;
        e = fitted = next;
    }
    *start = s;
    *end = e;
    return 1;
}

/* Lines of the title wrapped to max_width, and the widest single word. */
static int title_lines(const char *title, const Font *font, float px, int max_width, int *widest_word) {
    size_t length = strlen(title), start = 0, end;
    char *scratch = malloc(length + 1);
    int lines = 0;
    *widest_word = 0;
    if (!scratch) return 0;
    while (next_line(title, &start, &end, scratch, font, px, 1)) { /* one word per line */
        memcpy(scratch, title + start, end - start);
        scratch[end - start] = '\0';
        int w = font_text_width(font, scratch, px);
        if (w > *widest_word) *widest_word = w;
        start = end;
    }
    start = 0;
    while (next_line(title, &start, &end, scratch, font, px, max_width)) lines++, start = end;
    free(scratch);
    return lines;
}

static void draw_title(Image *out, const Layout *L, const char *title, const Font *font) {
    size_t length = strlen(title), start = 0, end;
    char *scratch = malloc(length + 1);
    if (!scratch) return;
    int line_h = font_line_height(font, L->title_px), y = L->margin;
    while (next_line(title, &start, &end, scratch, font, L->title_px, L->width - 2 * L->margin)) {
        memcpy(scratch, title + start, end - start);
        scratch[end - start] = '\0';
        int w = font_text_width(font, scratch, L->title_px);
        font_draw_text(out, font, scratch, (L->width - w) / 2, y, L->title_px, WORD_COLOR);
        y += line_h;
        start = end;
    }
    free(scratch);
}

/* ---- layout ------------------------------------------------------------------ */

static int check_options(const Image *image, int count, const float *alpha, const FigureOptions *o,
                         const Font *font, Error *err) {
    if (!image || !image->pixels || image->width < 1 || image->height < 1 || image->channels < 1 ||
        image->channels > 4)
        return error_set(err, "figure: the picture has no pixels");
    if (!font) return error_set(err, "figure: no font given (the bundled font was not found?)");
    if (count < 0) return error_set(err, "figure: negative word count %d", count);
    if (count > 0 && !alpha) return error_set(err, "figure: no attention maps given for %d words", count);
    if (o->columns < 0 || o->columns > FIGURE_MAX_COLUMNS)
        return error_set(err, "figure: %d columns is outside 1..%d", o->columns, FIGURE_MAX_COLUMNS);
    if (o->panel_height != 0 &&
        (o->panel_height < FIGURE_MIN_PANEL_HEIGHT || o->panel_height > FIGURE_MAX_PANEL_HEIGHT))
        return error_set(err, "figure: panel height %d is outside %d..%d pixels", o->panel_height,
                         FIGURE_MIN_PANEL_HEIGHT, FIGURE_MAX_PANEL_HEIGHT);
    if (o->show_beta && !o->beta && count > 0)
        return error_set(err, "figure: show_beta is set but no beta values given");
    return 0;
}

/* Sizes of text, gaps and margins: proportional to the panel's geometric
 * mean side (its height for a square panel), with floors so small panels
 * stay legible. */
static void layout_metrics(Layout *L, const Font *font, int info_lines) {
    int h = (int)lround(sqrt((double)L->panel_w * (double)L->panel_h));
    L->word_px = fmaxf(12.0f, 0.12f * (float)h);
    L->info_px = fmaxf(10.0f, 0.75f * L->word_px);
    L->title_px = 1.15f * L->word_px;
    L->margin = h / 10 > 10 ? h / 10 : 10;
    L->gap_x = h / 16 > 6 ? h / 16 : 6;
    L->gap_y = h / 10 > 8 ? h / 10 : 8;
    L->label_pad = (int)(0.3f * L->word_px);
    L->info_lines = info_lines;
    L->label_h = L->label_pad + font_line_height(font, L->word_px) + info_lines * font_line_height(font, L->info_px);
}

/* Widest word or info line among words first..last - 1. */
static int widest_label(const Layout *L, const char *const *words, int first, int last, const FigureOptions *o,
                        const Font *font) {
    int widest = 0;
    char info[64];
    for (int k = first; k < last; k++) {
        int w = font_text_width(font, word_at(words, k), L->word_px);
        widest = w > widest ? w : widest;
        for (int line = 0; line < L->info_lines; line++) {
            info_text(info, sizeof info, o, k, line);
            int wi = font_text_width(font, info, L->info_px);
            widest = wi > widest ? wi : widest;
        }
    }
    return widest;
}

/* Columns, rows, width and height for the given number of columns (the
 * metrics and cell width already set). */
static void layout_columns(Layout *L, int columns, const char *title, const Font *font) {
    L->columns = columns < L->panels ? columns : L->panels;
    L->rows = (L->panels + L->columns - 1) / L->columns;
    int content_w = L->columns * L->cell_w + (L->columns - 1) * L->gap_x;
    L->width = 2 * L->margin + content_w;
    L->title_lines = L->title_h = 0;
    if (*title) {
        int title_word_w = 0;
        L->title_lines = title_lines(title, font, L->title_px, content_w, &title_word_w);
        if (title_word_w > content_w) L->width = 2 * L->margin + title_word_w;
        L->title_h = L->title_lines * font_line_height(font, L->title_px) + L->gap_y;
    }
    L->height = 2 * L->margin + L->title_h + L->rows * (L->panel_h + L->label_h) + (L->rows - 1) * L->gap_y;
}

/* How far a w x h figure is from the aspect ratio `target` (0 = exactly). */
static double aspect_distance(int w, int h, double target) { return fabs(log((double)w / h / target)); }

/* step < 0: the whole figure; otherwise the frame of that word. */
static int layout_make(Layout *L, const Image *image, const char *const *words, int count, int step,
                       const FigureOptions *o, const Font *font, Error *err) {
    *L = (Layout){0};
    figure_panel_size(image->width, image->height, o->panel_height, &L->panel_w, &L->panel_h);
    layout_metrics(L, font, count > 0 ? info_line_count(o) : 0);
    L->first_word = step < 0 ? 1 : 0;
    L->panels = step < 0 ? count + 1 : 1;
    int label_w = step < 0 ? widest_label(L, words, 0, count, o, font)
                           : widest_label(L, words, step, step + 1, o, font);
    L->cell_w = L->panel_w > label_w ? L->panel_w : label_w + 2;
    const char *title = step < 0 && o->title ? o->title : "";
    int columns = step < 0 ? o->columns : 1;
    if (columns == 0) { /* automatic: the shape closest to FIGURE_TARGET_ASPECT */
        double best = INFINITY;
        for (int c = 1; c <= L->panels && c <= FIGURE_MAX_COLUMNS; c++) {
            layout_columns(L, c, title, font);
            double d = aspect_distance(L->width, L->height, FIGURE_TARGET_ASPECT);
            if (d < best) best = d, columns = c;
        }
    }
    layout_columns(L, columns, title, font);
    if ((long long)L->width * L->height > 400LL * 1000 * 1000)
        return error_set(err, "figure: %d words at panel height %d make a %dx%d figure, too large", count,
                         L->panel_h, L->width, L->height);
    return 0;
}

/* ---- drawing ------------------------------------------------------------------ */

/* Copies src (1-4 channels) into the RGB image dst at (x0, y0). */
static void blit(Image *dst, const Image *src, int x0, int y0) {
    for (int y = 0; y < src->height; y++) {
        if (y0 + y < 0 || y0 + y >= dst->height) continue;
        for (int x = 0; x < src->width; x++) {
            if (x0 + x < 0 || x0 + x >= dst->width) continue;
            const unsigned char *s = src->pixels + ((size_t)y * (size_t)src->width + (size_t)x) * (size_t)src->channels;
            unsigned char *d = dst->pixels + ((size_t)(y0 + y) * (size_t)dst->width + (size_t)(x0 + x)) * 3;
            for (int c = 0; c < 3; c++) d[c] = s[src->channels < 3 ? 0 : c];
        }
    }
}

static void draw_centred(Image *out, const Font *font, const char *text, int cx, int y, float px, Rgb color) {
    font_draw_text(out, font, text, cx - font_text_width(font, text, px) / 2, y, px, color);
}

/* Panel `panel` of the layout: the picture itself, or word k's overlay. */
static int draw_panel(Image *out, const Layout *L, int panel, int k, const Image *resized, const char *const *words,
                      const float *alpha, int grid_h, int grid_w, const FigureOptions *o, const Font *font,
                      Error *err) {
    int col = panel % L->columns, row = panel / L->columns;
    int cell_x = L->margin + col * (L->cell_w + L->gap_x);
    int y = L->margin + L->title_h + row * (L->panel_h + L->label_h + L->gap_y);
    int x = cell_x + (L->cell_w - L->panel_w) / 2, cx = cell_x + L->cell_w / 2;
    draw_rect_outline(out, x - 1, y - 1, x + L->panel_w + 1, y + L->panel_h + 1, 1, PANEL_FRAME);
    if (k < 0) {
        blit(out, resized, x, y);
        return 0;
    }
    if (o->highlight == k + 1) {
        int t = L->gap_x / 2 > 2 ? L->gap_x / 2 : 2;
        draw_rect_outline(out, x - t - 1, y - t - 1, x + L->panel_w + t + 1, y + L->panel_h + t + 1, t, HIGHLIGHT);
    }
    Image overlay = {0};
    if (overlay_attention(&overlay, resized, alpha + (size_t)k * (size_t)grid_h * (size_t)grid_w, grid_h, grid_w,
                          &o->overlay, err) != 0)
        return error_prefix(err, "figure: word %d ('%s')", k + 1, word_at(words, k));
    blit(out, &overlay, x, y);
    image_free(&overlay);
    int text_y = y + L->panel_h + L->label_pad;
    draw_centred(out, font, word_at(words, k), cx, text_y, L->word_px, WORD_COLOR);
    char info[64];
    text_y += font_line_height(font, L->word_px);
    for (int line = 0; line < L->info_lines; line++, text_y += font_line_height(font, L->info_px)) {
        info_text(info, sizeof info, o, k, line);
        if (*info) draw_centred(out, font, info, cx, text_y, L->info_px, INFO_COLOR);
    }
    return 0;
}

static int render(Image *out, const Image *image, const char *const *words, const float *alpha, int grid_h,
                  int grid_w, int count, int step, const FigureOptions *opts, const Font *font, Error *err) {
    *out = (Image){0};
    FigureOptions defaults;
    figure_options_default(&defaults);
    const FigureOptions *o = opts ? opts : &defaults;
    Layout L;
    Image resized = {0};
    if (check_options(image, count, alpha, o, font, err) != 0 ||
        layout_make(&L, image, words, count, step, o, font, err) != 0 ||
        image_resize(&resized, image, L.panel_w, L.panel_h, err) != 0)
        return -1;
    if (image_alloc(out, L.width, L.height, 3, err) != 0) {
        image_free(&resized);
        return error_prefix(err, "figure");
    }
    draw_fill(out, WHITE);
    if (step < 0 && o->title && *o->title) draw_title(out, &L, o->title, font);
    int status = 0;
    for (int p = 0; p < L.panels && status == 0; p++) {
        int k = step >= 0 ? step : p - L.first_word;
        status = draw_panel(out, &L, p, k, &resized, words, alpha, grid_h, grid_w, o, font, err);
    }
    image_free(&resized);
    if (status != 0) image_free(out);
    return status;
}

int figure_render(Image *out, const Image *image, const char *const *words, const float *alpha, int grid_h,
                  int grid_w, int count, const FigureOptions *opts, const Font *font, Error *err) {
    return render(out, image, words, alpha, grid_h, grid_w, count, -1, opts, font, err);
}

int figure_render_step(Image *out, const Image *image, const char *const *words, const float *alpha, int grid_h,
                       int grid_w, int count, int step, const FigureOptions *opts, const Font *font, Error *err) {
    if (step < 0 || step >= count) {
        *out = (Image){0};
        return error_set(err, "figure: step %d is outside the caption's %d words", step, count);
    }
    return render(out, image, words, alpha, grid_h, grid_w, count, step, opts, font, err);
}

int figure_stack(Image *out, const Image *figures, int count, Error *err) {
    *out = (Image){0};
    if (count < 1) return error_set(err, "figure: nothing to stack");
    int width = 0, height = 0;
    for (int i = 0; i < count; i++) {
        if (figures[i].channels != 3)
            return error_set(err, "figure: stacking needs RGB figures, got %d channels", figures[i].channels);
        if (figures[i].width > width) width = figures[i].width;
        height += figures[i].height;
    }
    if (image_alloc(out, width, height, 3, err) != 0) return -1;
    draw_fill(out, WHITE);
    size_t stride = (size_t)width * 3;
    unsigned char *row = out->pixels;
    for (int i = 0; i < count; i++) {
        size_t line = (size_t)figures[i].width * 3;
        for (int y = 0; y < figures[i].height; y++, row += stride)
            memcpy(row, figures[i].pixels + (size_t)y * line, line);
    }
    return 0;
}

/* The largest panel height in [FIGURE_MIN_PANEL_HEIGHT, max_height] at which
 * the figure fits the box (0 if none), by bisection: the figure grows with
 * the panel height. */
static int largest_fitting_height(FigureOptions *o, const Image *image, const char *const *words, int count,
                                  const Font *font, int box_w, int box_h, int max_height, Error *err) {
    int low = FIGURE_MIN_PANEL_HEIGHT - 1, high = max_height, w, h; /* low: the largest known to fit */
    while (low < high) {
        int mid = (low + high + 1) / 2;
        o->panel_height = mid;
        if (figure_size(&w, &h, image, words, count, o, font, err) != 0) return -1;
        if (w <= box_w && h <= box_h) low = mid;
        else high = mid - 1;
    }
    return low >= FIGURE_MIN_PANEL_HEIGHT ? low : 0;
}

int figure_fit(FigureOptions *o, const Image *image, const char *const *words, int count, const Font *font,
               int box_width, int box_height, int max_panel_height, Error *err) {
    if (box_width < 1 || box_height < 1) return error_set(err, "figure: nothing fits a %dx%d box", box_width, box_height);
    int max_height = max_panel_height < FIGURE_MIN_PANEL_HEIGHT ? FIGURE_MIN_PANEL_HEIGHT : max_panel_height;
    double box_aspect = (double)box_width / box_height;
    int best_columns = 1, best_height = -1, w, h;
    double best_fit = -INFINITY; /* larger is better: the panel height, then closeness of shape */
    for (int columns = 1; columns <= count + 1 && columns <= FIGURE_MAX_COLUMNS; columns++) {
        o->columns = columns;
        int height = largest_fitting_height(o, image, words, count, font, box_width, box_height, max_height, err);
        if (height < 0) return -1;
        o->panel_height = height > 0 ? height : FIGURE_MIN_PANEL_HEIGHT;
        if (figure_size(&w, &h, image, words, count, o, font, err) != 0) return -1;
        /* Nothing fits: rank by how little the figure must shrink. */
        double fit = height > 0 ? height - aspect_distance(w, h, box_aspect) / 100.0
                                : -1.0 / fmin((double)box_width / w, (double)box_height / h);
        if (fit > best_fit) best_fit = fit, best_columns = columns, best_height = height;
    }
    o->columns = best_columns;
    o->panel_height = best_height > 0 ? best_height : FIGURE_MIN_PANEL_HEIGHT;
    return 0;
}

int figure_size(int *width, int *height, const Image *image, const char *const *words, int count,
                const FigureOptions *opts, const Font *font, Error *err) {
    FigureOptions defaults;
    figure_options_default(&defaults);
    const FigureOptions *o = opts ? opts : &defaults;
    Layout L;
    static const float no_alpha = 0.0f; /* only checked for presence */
    if (check_options(image, count, &no_alpha, o, font, err) != 0 ||
        layout_make(&L, image, words, count, -1, o, font, err) != 0)
        return -1;
    *width = L.width;
    *height = L.height;
    return 0;
}
