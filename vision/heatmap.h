#ifndef VISION_HEATMAP_H
#define VISION_HEATMAP_H

#include "error.h"
#include "image.h"
#include "overlay.h"
#include "text.h"

/* A labelled matrix of weights as a heatmap, e.g. a Transformer decoder's
 * self-attention: one row per generated word over the words it could see
 * (the translation heatmap of Bahdanau et al., for captions). Row labels at
 * the left, column labels written vertically at the top, a cell per value
 * coloured by the colormap from 0 (the colormap's low end) to the largest
 * value shown (its high end), the value printed in cells large enough;
 * cells beyond a row's `row_lengths[r]` (NULL = all columns) are left blank
 * and their values are not read. */
typedef struct {
    const char *title;   /* above the matrix; NULL or "" = none */
    Colormap colormap;
    int cell;            /* cell side in pixels; 0 = 36 */
} HeatmapOptions;

/* values: [rows, cols]. On failure *out is left zeroed and err says why (no
 * rows, a value that is not finite, too large a figure, no memory). */
int heatmap_render(Image *out, const float *values, int rows, int cols, const int *row_lengths,
                   const char *const *row_labels, const char *const *col_labels, const HeatmapOptions *options,
                   const Font *font, Error *err);

#endif
