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
 * background, margins, anti-aliased text in the given font; each panel has a
 * thin grey frame so a white picture edge does not vanish into the page.
 *
 * Every panel is panel_width x panel_height pixels (figure_panel_size: the
 * height is given, the width follows the picture's aspect ratio), made as
 * image_resize(picture, panel size) then overlay_attention(...) with the
 * options' OverlayOptions, so the viewer, batch export and `caption export`
 * draw the same pixels for the same picture and settings. Text sizes, gaps
 * and margins follow the panel's area (the geometric mean of its sides), not
 * its height alone, so a panorama's narrow panels and a tall picture's
 * slender ones get labels of the same size as a square picture's panels of
 * the same area. A column is as wide as the panel or the widest label,
 * whichever is wider (the panel is centred in it); the title is word-wrapped
 * to the figure's width. */

#define FIGURE_DEFAULT_PANEL_HEIGHT 160
#define FIGURE_MIN_PANEL_HEIGHT 16
#define FIGURE_MAX_PANEL_HEIGHT 2048
#define FIGURE_MAX_COLUMNS 64
/* A very wide picture's panels are limited to this many panel heights in
 * width (their height shrinks instead), so one panel cannot get enormous. */
#define FIGURE_MAX_PANEL_ASPECT 4
/* Automatic columns aim at a figure of about this width / height (a screen's
 * or a page's landscape shape). */
#define FIGURE_TARGET_ASPECT 1.6

typedef struct {
    int columns;            /* panels per row, the picture's included; 0 = automatic: the count that
                               brings the figure closest to FIGURE_TARGET_ASPECT */
    int panel_height;       /* pixels; 0 = automatic: FIGURE_DEFAULT_PANEL_HEIGHT, or less so that no
                               panel is larger than the picture itself (never enlarged) */
    OverlayOptions overlay;
    const char *title;      /* above the panels, e.g. the caption; NULL or "" = none */
    int show_beta;          /* print "β 0.87" under each word; needs beta */
    const float *beta;      /* [count]: the gate beta_t of each word */
    const float *prob;      /* [count]: each word's probability, printed as "p 0.93" (after β); NULL = not shown */
    const float *peak;      /* [count]: each word's largest attention weight, printed as "peak 0.09"
                               (so a focused map can be told from a near-uniform one); NULL = not shown */
    int highlight;          /* 1-based word whose panel gets an accent frame (the viewer's current word);
                               0 = none */
} FigureOptions;

/* Defaults: automatic columns and panel height, overlay_options_default, no
 * title, no beta, probabilities or peaks, no highlight. */
void figure_options_default(FigureOptions *opts);

/* The panel size for a picture: height panel_height (0 = automatic, see
 * FigureOptions), width round(panel_height * width / height) and at least 1,
 * limited to FIGURE_MAX_PANEL_ASPECT * panel_height (then the height shrinks
 * to keep the aspect ratio). */
void figure_panel_size(int image_width, int image_height, int panel_height, int *panel_width_out,
                       int *panel_height_out);

/* For a window or page of box_width x box_height: sets o->columns and
 * o->panel_height (at most max_panel_height) to the layout whose panels are
 * largest with the whole figure inside the box; among equals, the one whose
 * shape is closest to the box's. When nothing fits even at
 * FIGURE_MIN_PANEL_HEIGHT, the layout at that height that needs the least
 * shrinking. -1 with err for invalid options. */
int figure_fit(FigureOptions *o, const Image *image, const char *const *words, int count, const Font *font,
               int box_width, int box_height, int max_panel_height, Error *err);

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

/* Figures one above the other on a white page, each flush left (for
 * figures of the same caption drawn from different maps, e.g. one per
 * attention head). The inputs must be RGB; the result is as wide as the
 * widest and as tall as all of them together. -1 with err when count < 1,
 * an input is not RGB, or memory runs out. */
int figure_stack(Image *out, const Image *figures, int count, Error *err);

/* The size figure_render would produce, without drawing; -1 with err for
 * invalid options. */
int figure_size(int *width, int *height, const Image *image, const char *const *words, int count,
                const FigureOptions *opts, const Font *font, Error *err);

#endif
