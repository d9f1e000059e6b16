#ifndef VISION_OVERLAY_H
#define VISION_OVERLAY_H

#include "draw.h"
#include "error.h"
#include "image.h"

/* Attention heatmaps drawn over a picture: the one renderer the figure, the
 * frames, the viewer and batch export all use, so the same image and options
 * give the same pixels everywhere.
 *
 * From an attention map alpha [grid_h, grid_w] (row-major, cell i = y*W + x,
 * as Caption.alpha stores each word's map) to an RGB image:
 *  1. Upsampling: the map is bilinearly interpolated to the picture's size,
 *     cell (x, y) sitting at the pixel position ((x + 0.5)/W, (y + 0.5)/H) of
 *     the picture (so a 2x2 map puts its cells at the quarter points), and
 *     held constant from the outermost cell centres to the border.
 *  2. Smoothing: a separable Gaussian blur with standard deviation
 *     `sigma` grid cells (sigma * picture width / W pixels across, sigma *
 *     height / H down; borders replicate the edge). Both steps are linear and
 *     separable, so they are computed exactly as per-axis weights: about W
 *     multiply-adds per pixel, whatever sigma is.
 *  3. Normalisation (OverlayNormalize), so the colours mean something
 *     whatever the number of cells (softmax weights over many cells are small):
 *     RANGE (the default) maps the smoothed map's minimum..maximum to 0..1,
 *     as matplotlib's imshow autoscaling did in Xu et al.'s own figures:
 *     each word's peak takes the top of the colormap and its least attended
 *     region the bottom, so even the diffuse attention of a real model shows
 *     where it looked (but small differences of a near-uniform map are
 *     exaggerated: attention_peak tells them apart). MAX divides by the
 *     maximum only: the peak is at the top and diffuse attention honestly
 *     looks diffuse (a near-uniform map is near the top, i.e. heavily
 *     coloured, everywhere). NONE is one scale for every word and every grid:
 *     m = log(v L) / log(L) for L cells, clamped to [0, 1], so a weight at or
 *     below uniform (1/L) is 0 and all the attention on one cell is 1 (raw
 *     softmax weights, e.g. 0.09 on 36 cells, would barely show). A constant
 *     map gives 0 everywhere under RANGE, 1 under MAX; a zero map stays 0.
 *  4. Colouring and blending, per pixel with normalised attention m:
 *        a     = opacity * m
 *        shade = 1 - OVERLAY_DIM * opacity * (1 - m)
 *        out   = (1 - a) * shade * picture + a * colormap(m)
 *     so where the model looked the colour covers the photo at the full
 *     opacity, and where it did not the photo is only darkened a little:
 *     its own colours, no tint (a grey photo stays grey), visibly "not
 *     looked at". Opacity 0 returns the picture unchanged. */

typedef enum { COLORMAP_VIRIDIS, COLORMAP_INFERNO, COLORMAP_JET } Colormap;
#define COLORMAP_COUNT 3

typedef enum { OVERLAY_NORMALIZE_RANGE, OVERLAY_NORMALIZE_MAX, OVERLAY_NORMALIZE_NONE } OverlayNormalize;
#define OVERLAY_NORMALIZE_COUNT 3

/* How much zero attention darkens the picture at full opacity (step 4). */
#define OVERLAY_DIM 0.3f

#define OVERLAY_DEFAULT_OPACITY 0.7f
#define OVERLAY_DEFAULT_SIGMA 0.5f
/* sigma is limited so the blur kernel stays a sane size. */
#define OVERLAY_MAX_SIGMA 16.0f

typedef struct {
    Colormap colormap;
    float opacity;  /* 0..1 */
    float sigma;    /* Gaussian smoothing in grid cells, 0..OVERLAY_MAX_SIGMA; 0 = bilinear only */
    OverlayNormalize normalize; /* step 3 */
} OverlayOptions;

/* viridis, opacity OVERLAY_DEFAULT_OPACITY, sigma OVERLAY_DEFAULT_SIGMA,
 * OVERLAY_NORMALIZE_RANGE. A zeroed OverlayOptions is viridis and RANGE but
 * opacity 0 (the plain picture): start from these defaults. */
void overlay_options_default(OverlayOptions *opts);

/* "viridis", "inferno", "jet" (case-insensitive) -> *out; returns 0, or -1
 * with err listing the accepted names. */
int colormap_parse(const char *name, Colormap *out, Error *err);
/* The lowercase name; "unknown" for a value outside the enum. */
const char *colormap_name(Colormap colormap);

/* "range", "max", "none" (case-insensitive), as colormap_parse. */
int overlay_normalize_parse(const char *name, OverlayNormalize *out, Error *err);
const char *overlay_normalize_name(OverlayNormalize normalize);

/* The colour at t in [0, 1] (clamped; NaN reads as 0). Viridis and inferno
 * are matplotlib's published 256-entry tables (8-bit, rounded), linearly
 * interpolated between entries, so t = 0 and t = 1 give the first and last
 * entries exactly; jet is matplotlib's piecewise-linear definition. */
Rgb colormap_color(Colormap colormap, float t);

/* Steps 1-3: writes the normalised attention map at width x height into
 * map (width*height floats, row-major). alpha must hold grid_h*grid_w
 * finite, non-negative values. opts NULL = defaults. */
int overlay_attention_map(float *map, int width, int height, const float *alpha, int grid_h, int grid_w,
                          const OverlayOptions *opts, Error *err);

/* The largest of a map's `cells` weights: with softmax weights, 1/cells
 * means uniform attention and 1 all of it on one cell. The figure and the
 * viewer print it so a peaked map can be told from a near-uniform one that
 * per-word normalisation draws as hot. */
float attention_peak(const float *alpha, int cells);

/* The whole overlay: *out is allocated as an RGB image of the picture's size
 * (image may have 1-4 channels: gray is replicated, alpha ignored). On
 * failure *out is left zeroed and err says what is wrong (bad grid, alpha
 * values, options, no memory). */
int overlay_attention(Image *out, const Image *image, const float *alpha, int grid_h, int grid_w,
                      const OverlayOptions *opts, Error *err);

#endif
