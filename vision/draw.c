#include "draw.h"

#include <math.h>

static int clamp_int(int value, int low, int high) { return value < low ? low : value > high ? high : value; }

/* Callers have clipped (x, y) to the image. */
static void put_pixel(Image *img, int x, int y, Rgb color) {
    unsigned char *p = img->pixels + ((size_t)y * (size_t)img->width + (size_t)x) * (size_t)img->channels;
    if (img->channels >= 3) {
        p[0] = color.r;
        p[1] = color.g;
        p[2] = color.b;
    } else {
        /* ITU-R BT.601 luma, the usual RGB -> gray weights. */
        p[0] = (unsigned char)((299u * color.r + 587u * color.g + 114u * color.b + 500u) / 1000u);
    }
}

void draw_fill(Image *img, Rgb color) { draw_fill_rect(img, 0, 0, img->width, img->height, color); }

void draw_fill_rect(Image *img, int x0, int y0, int x1, int y1, Rgb color) {
    x0 = clamp_int(x0, 0, img->width);
    x1 = clamp_int(x1, 0, img->width);
    y0 = clamp_int(y0, 0, img->height);
    y1 = clamp_int(y1, 0, img->height);
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) put_pixel(img, x, y, color);
}

void draw_rect_outline(Image *img, int x0, int y0, int x1, int y1, int thickness, Rgb color) {
    if (thickness <= 0 || x1 <= x0 || y1 <= y0) return;
    draw_fill_rect(img, x0, y0, x1, y0 + thickness, color);
    draw_fill_rect(img, x0, y1 - thickness, x1, y1, color);
    draw_fill_rect(img, x0, y0, x0 + thickness, y1, color);
    draw_fill_rect(img, x1 - thickness, y0, x1, y1, color);
}

/* Pixel rows/columns whose centres can fall in [low, high], clipped to [0, limit). */
static void covered_range(float low, float high, int limit, int *first, int *end) {
    *first = clamp_int((int)floorf(low - 0.5f), 0, limit);
    *end = clamp_int((int)ceilf(high - 0.5f) + 1, 0, limit);
}

void draw_fill_circle(Image *img, float cx, float cy, float radius, Rgb color) {
    if (radius <= 0.0f) return;
    int x_first, x_end, y_first, y_end;
    covered_range(cx - radius, cx + radius, img->width, &x_first, &x_end);
    covered_range(cy - radius, cy + radius, img->height, &y_first, &y_end);
    float radius_squared = radius * radius;
    for (int y = y_first; y < y_end; y++) {
        float dy = (float)y + 0.5f - cy;
        for (int x = x_first; x < x_end; x++) {
            float dx = (float)x + 0.5f - cx;
            if (dx * dx + dy * dy <= radius_squared) put_pixel(img, x, y, color);
        }
    }
}

/* Twice the signed area of (a, b, p): which side of edge a->b the point is on. */
static float edge_function(float ax, float ay, float bx, float by, float px, float py) {
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax);
}

void draw_fill_triangle(Image *img, const float xs[3], const float ys[3], Rgb color) {
    float area = edge_function(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2]);
    if (area == 0.0f) return;
    /* Normalise the winding so "inside" is always edge >= 0. */
    float sign = area > 0.0f ? 1.0f : -1.0f;
    float min_x = fminf(xs[0], fminf(xs[1], xs[2])), max_x = fmaxf(xs[0], fmaxf(xs[1], xs[2]));
    float min_y = fminf(ys[0], fminf(ys[1], ys[2])), max_y = fmaxf(ys[0], fmaxf(ys[1], ys[2]));
    int x_first, x_end, y_first, y_end;
    covered_range(min_x, max_x, img->width, &x_first, &x_end);
    covered_range(min_y, max_y, img->height, &y_first, &y_end);
    for (int y = y_first; y < y_end; y++) {
        float py = (float)y + 0.5f;
        for (int x = x_first; x < x_end; x++) {
            float px = (float)x + 0.5f;
            if (sign * edge_function(xs[0], ys[0], xs[1], ys[1], px, py) >= 0.0f &&
                sign * edge_function(xs[1], ys[1], xs[2], ys[2], px, py) >= 0.0f &&
                sign * edge_function(xs[2], ys[2], xs[0], ys[0], px, py) >= 0.0f)
                put_pixel(img, x, y, color);
        }
    }
}

void draw_fill_triangle_up(Image *img, int x0, int y0, int x1, int y1, Rgb color) {
    const float xs[3] = {(float)x0, (float)x1, 0.5f * (float)(x0 + x1)};
    const float ys[3] = {(float)y1, (float)y1, (float)y0};
    draw_fill_triangle(img, xs, ys, color);
}
