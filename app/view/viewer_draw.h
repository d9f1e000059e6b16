#ifndef APP_VIEWER_DRAW_H
#define APP_VIEWER_DRAW_H

/* The viewer's colours, sizes and small drawing helpers on top of
 * vision/draw and vision/text. */
#include "draw.h"
#include "image.h"
#include "text.h"

#define VIEW_BACKGROUND ((Rgb){28, 29, 33})
#define VIEW_TEXT ((Rgb){236, 236, 236})
#define VIEW_DIM ((Rgb){150, 153, 162})
#define VIEW_ACCENT ((Rgb){255, 196, 40})
#define VIEW_ON_ACCENT ((Rgb){18, 18, 18})
#define VIEW_BETA ((Rgb){96, 200, 224})
#define VIEW_BAR_BACK ((Rgb){66, 68, 76})
#define VIEW_ERROR ((Rgb){255, 128, 116})

typedef struct {
    float caption_px, info_px, status_px;
    int caption_lh, info_lh, status_lh;
    int caption_advance; /* from one caption line to the next */
    int margin, gap, pad;
} ViewMetrics;

/* Text sizes follow the window's height, so a large window stays readable
 * and a small one still fits. */
ViewMetrics view_metrics(const Font *font, int width, int height);

/* Copies an RGB src into dst at (x, y), clipped. */
void draw_blit(Image *dst, const Image *src, int x, int y);

/* Blends colour over the rectangle with opacity a (0..1), clipped. */
void draw_shade(Image *dst, int x0, int y0, int x1, int y1, Rgb color, float a);

/* Draws text at (x, y_top) (img NULL: only measures); returns the x after it. */
int draw_text_at(Image *img, const Font *font, const char *text, int x, int y, float px, Rgb color);
void draw_text_centered(Image *img, const Font *font, const char *text, int centre_x, int y, float px, Rgb color);

/* text, cut to fit max_width pixels: whole when it fits, else as many whole
 * UTF-8 characters as fit followed by "\u2026" (nothing at all when not even
 * that fits). out holds size bytes. */
const char *elide_text(const Font *font, const char *text, float px, int max_width, char *out, size_t size);

/* A small horizontal bar filled to value (0..1) sitting on a text line of
 * m->info_px at y; returns the x after it. img NULL only measures. */
int draw_bar(Image *img, int x, int y, const ViewMetrics *m, float value, Rgb color);

/* Word-wraps text to area's width and centres the block in area. */
void draw_wrapped(Image *img, const Font *font, const char *text, int x, int y, int w, int h, float px,
                  Rgb color);

#endif
