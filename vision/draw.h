#ifndef VISION_DRAW_H
#define VISION_DRAW_H

#include "image.h"

/* Simple raster drawing without anti-aliasing: a pixel is painted when its
 * centre lies inside the shape, so edges are hard and colours exact (tests
 * and generated datasets rely on that). Everything is clipped to the image.
 * On 3- and 4-channel images r, g, b are written (alpha is left alone); on
 * 1- and 2-channel images the colour's luma is written. */

typedef struct {
    unsigned char r, g, b;
} Rgb;

/* Paints the whole image. */
void draw_fill(Image *img, Rgb color);

/* Fills the pixels x0 <= x < x1, y0 <= y < y1 (half-open, like a bounding box). */
void draw_fill_rect(Image *img, int x0, int y0, int x1, int y1, Rgb color);

/* Outlines the box x0 <= x < x1, y0 <= y < y1 with lines `thickness` pixels
 * wide, drawn inside the box. */
void draw_rect_outline(Image *img, int x0, int y0, int x1, int y1, int thickness, Rgb color);

/* Fills the pixels whose centres lie within `radius` of (cx, cy), in pixel
 * coordinates where pixel (x, y) covers [x, x+1) x [y, y+1). */
void draw_fill_circle(Image *img, float cx, float cy, float radius, Rgb color);

/* Fills the triangle with the given vertices (any winding), same coordinates. */
void draw_fill_triangle(Image *img, const float xs[3], const float ys[3], Rgb color);

/* Fills the isosceles triangle pointing up inscribed in the box
 * x0 <= x < x1, y0 <= y < y1: apex at the top middle, base along the bottom. */
void draw_fill_triangle_up(Image *img, int x0, int y0, int x1, int y1, Rgb color);

#endif
