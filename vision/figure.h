#ifndef VISION_FIGURE_H
#define VISION_FIGURE_H

#include "error.h"
#include "image.h"
#include "overlay.h"
#include "text.h"

/* The attention figure of Xu et al. (2015), Fig. 2 and 3: the picture, then
 * one panel per generated word showing where the model looked (the overlay
 * of overlay.h), the word printed under each panel, in a grid of `columns`
 * panels per row; an optional title (the whole caption) above. White
 * background, margins, anti-aliased text in the given font.
 *
 * Every panel is panel_width x panel_height pixels (figure_panel_size: the
 * height is fixed, the width follows the picture's aspect ratio), made as
 * image_resize(picture, panel size) then overlay_attention(...) with the
 * options' OverlayOptions, so the viewer, batch export and `caption export`
 * draw the same pixels for the same picture and settings. Text sizes, gaps
 * and margins scale with panel_height. A column is as wide as the panel or
 * the widest label, whichever is wider (the panel is centred in it); the
 * title is word-wrapped to the figure's width. */

#define FIGURE_DEFAULT_COLUMNS 5
#define FIGURE_DEFAULT_PANEL_HEIGHT 160
#define FIGURE_MIN_PANEL_HEIGHT 16
#define FIGURE_MAX_PANEL_HEIGHT 2048
#define FIGURE_MAX_COLUMNS 64
/* A very wide picture's panels are limited to this many panel heights in
 * width (their height shrinks instead), so one panel cannot get enormous. */
#define FIGURE_MAX_PANEL_ASPECT 4

typedef struct {
    int columns;            /* panels per row, the picture's included; 0 = FIGURE_DEFAULT_COLUMNS */
    int panel_height;       /* pixels; 0 = FIGURE_DEFAULT_PANEL_HEIGHT */
    OverlayOptions overlay;
    const char *title;      /* above the panels, e.g. the caption; NULL or "" = none */
    int show_beta;          /* print "β 0.87" under each word; needs beta */
    const float *beta;      /* [count]: the gate beta_t of each word */
    const float *prob;      /* [count]: each word's probability, printed as "p 0.93" (after β); NULL = not shown */
} FigureOptions;

/* Defaults: 5 columns, 160-pixel panels, overlay_options_default, no title,
 * no beta, no probabilities. */
void figure_options_default(FigureOptions *opts);

/* The panel size for a picture: height panel_height (0 = default), width
 * round(panel_height * width / height) and at least 1, limited to
 * FIGURE_MAX_PANEL_ASPECT * panel_height (then the height shrinks to keep
 * the aspect ratio). */
void figure_panel_size(int image_width, int image_height, int panel_height, int *panel_width_out,
                       int *panel_height_out);

/* The whole figure: the picture plus `count` word panels (count may be 0:
 * just the picture). words[k] (NULL = "") and alpha + k * grid_h * grid_w
 * belong to word k. The picture may have 1-4 channels; the result is RGB.
 * On failure *out is left zeroed and err says what is wrong (a bad option,
 * grid or attention value, no font, no memory). */
int figure_render(Image *out, const Image *image, const char *const *words, const float *alpha, int grid_h,
                  int grid_w, int count, const FigureOptions *opts, const Font *font, Error *err);

/* One frame: only word `step`'s panel with its label(s) under it, in the same
 * style and size as in figure_render (columns and title are ignored). */
int figure_render_step(Image *out, const Image *image, const char *const *words, const float *alpha, int grid_h,
                       int grid_w, int count, int step, const FigureOptions *opts, const Font *font, Error *err);

/* The size figure_render would produce, without drawing; -1 with err for
 * invalid options. */
int figure_size(int *width, int *height, const Image *image, const char *const *words, int count,
                const FigureOptions *opts, const Font *font, Error *err);

#endif
