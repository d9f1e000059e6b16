#include "heatmap.h"

#include <math.h>
#include <stdio.h>

#include "draw.h"

static const Rgb BACKGROUND = {255, 255, 255}, INK = {20, 20, 20}, GRID = {225, 225, 225};
enum { MAX_SIDE = 8192, MARGIN = 12 };

static int widest(const Font *font, const char *const *labels, int count, float px) {
    int w = 0;
    for (int i = 0; i < count; i++) {
        int t = labels && labels[i] ? font_text_width(font, labels[i], px) : 0;
        w = t > w ? t : w;
    }
    return w;
}

/* Black or white, whichever reads better on the cell's colour. */
static Rgb ink_on(Rgb c) {
    float luma = 0.299f * c.r + 0.587f * c.g + 0.114f * c.b;
    return luma > 140.0f ? INK : BACKGROUND;
}

int heatmap_render(Image *out, const float *values, int rows, int cols, const int *row_lengths,
                   const char *const *row_labels, const char *const *col_labels, const HeatmapOptions *o,
                   const Font *font, Error *err) {
    *out = (Image){0};
    if (rows < 1 || cols < 1) return error_set(err, "heatmap: %d x %d is empty", rows, cols);
    float top = 0.0f;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < (row_lengths ? row_lengths[r] : cols) && c < cols; c++) {
            float v = values[(long)r * cols + c];
            if (!isfinite(v)) return error_set(err, "heatmap: the value at row %d, column %d is not finite", r, c);
            top = v > top ? v : top;
        }
    int cell = o->cell > 0 ? o->cell : 36;
    float label_px = 0.42f * cell, value_px = 0.3f * cell, title_px = 0.5f * cell;
    int left = MARGIN + widest(font, row_labels, rows, label_px) + MARGIN / 2;
    int head = MARGIN + widest(font, col_labels, cols, label_px) + MARGIN / 2;
    int title_h = o->title && *o->title ? font_line_height(font, title_px) + MARGIN / 2 : 0;
    long width = (long)left + (long)cols * cell + MARGIN, height = (long)title_h + head + (long)rows * cell + MARGIN;
    if (width > MAX_SIDE || height > MAX_SIDE)
        return error_set(err, "heatmap: %ld x %ld pixels is too large; use smaller cells", width, height);
    if (image_alloc(out, (int)width, (int)height, 3, err) != 0) return -1;
    draw_fill(out, BACKGROUND);
    if (title_h) font_draw_text(out, font, o->title, MARGIN, MARGIN / 2, title_px, INK);
    int y0 = title_h + head;
    for (int c = 0; c < cols; c++)
        if (col_labels && col_labels[c])
            font_draw_text_vertical(out, font, col_labels[c], left + c * cell + (cell - font_line_height(font, label_px)) / 2,
                                    y0 - MARGIN / 2, label_px, INK);
    for (int r = 0; r < rows; r++) {
        int y = y0 + r * cell, length = row_lengths ? row_lengths[r] : cols;
        if (row_labels && row_labels[r]) {
            int w = font_text_width(font, row_labels[r], label_px);
            font_draw_text(out, font, row_labels[r], left - MARGIN / 2 - w, y + (cell - font_line_height(font, label_px)) / 2,
                           label_px, INK);
        }
        for (int c = 0; c < cols; c++) {
            int x = left + c * cell;
            draw_rect_outline(out, x, y, x + cell, y + cell, 1, GRID);
            if (c >= length) continue;
            float v = values[(long)r * cols + c];
            Rgb color = colormap_color(o->colormap, top > 0.0f ? v / top : 0.0f);
            draw_fill_rect(out, x + 1, y + 1, x + cell - 1, y + cell - 1, color);
            if (cell >= 28) {
                char text[16];
                snprintf(text, sizeof text, "%.2f", (double)v);
                int w = font_text_width(font, text, value_px);
                font_draw_text(out, font, text, x + (cell - w) / 2, y + (cell - font_line_height(font, value_px)) / 2,
                               value_px, ink_on(color));
            }
        }
    }
    return 0;
}
