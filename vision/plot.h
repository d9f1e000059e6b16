#ifndef VISION_PLOT_H
#define VISION_PLOT_H

#include "draw.h"
#include "error.h"
#include "image.h"
#include "text.h"

/* Charts rendered into RGB Images (write them with image_write_png): a line
 * chart for learning curves and a horizontal bar chart for benchmarks.
 * White background, dark axes, light grid, tick values on 1-2-5 steps,
 * anti-aliased lines and text. Font sizes scale with the image size. */

typedef struct {
    const char *label;   /* legend text; NULL or "" = not in the legend */
    const float *x, *y;  /* count points; both required when count > 0 */
    int count;           /* 0 is fine (drawn as nothing) */
    Rgb color;
    int right_axis;      /* nonzero: plotted against the right-hand y axis */
} PlotSeries;

typedef struct {
    const char *title;    /* each text may be NULL or "" = none */
    const char *x_label;
    const char *y_label;  /* left axis; for plot_bars, drawn along the bars' labels */
    const char *y2_label; /* right axis, shown when a series has right_axis set */
    int width, height;    /* pixels; 0 = default (800 x 500; plot_bars: height from the bar count) */
} PlotOptions;

/* Smallest and largest accepted width and height. */
#define PLOT_MIN_SIZE 200
#define PLOT_MAX_SIZE 8192

/* Line chart. Each series is drawn as a 2-pixel line through its points in
 * order, with round markers at the points when they are few enough to tell
 * apart (and always at a point with no neighbour, so a one-point series
 * shows). Points whose x or y is NaN or infinite are skipped and break the
 * line. Axis ranges cover the finite data with 5% margins; a constant series
 * gets a small range around its value; with no finite data at all the axes
 * run 0..1 and "no data" is written in the plot. When every x value is a
 * whole number (epochs), x ticks are whole numbers. The legend sits under
 * the title; series on the right axis are marked "(right axis)" there when
 * both axes have series. The right axis has its own ticks (no grid lines).
 * If every series is on the right axis there is only one axis, the left one
 * (labelled with y2_label when y_label is unset).
 *
 * Allocates *out (width x height x 3); on failure *out is left zeroed and
 * err says what is wrong (a missing font, x/y missing for a series with
 * points, a negative count, a size out of range, no memory). */
int plot_render(Image *out, const PlotSeries *series, int series_count, const PlotOptions *opts,
                const Font *font, Error *err);

/* Horizontal bar chart: one bar per value from zero, top to bottom in the
 * given order, each labelled with labels[i] on the left (shortened with "..."
 * when very long) and with its value at the bar's end. The value axis (with
 * opts->x_label) is at the bottom and includes zero; negative values extend
 * left. colors may be NULL (a default palette), labels may be NULL or hold
 * NULLs (no label). A NaN or infinite value gets no bar and the value label
 * "n/a". With opts->height == 0 the height grows with the number of bars; a
 * given height too small for the bars is an error. Same allocation and error
 * conventions as plot_render. */
int plot_bars(Image *out, const char *const *labels, const float *values, const Rgb *colors, int count,
              const PlotOptions *opts, const Font *font, Error *err);

#endif
