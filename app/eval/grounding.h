#ifndef APP_GROUNDING_H
#define APP_GROUNDING_H

#include "shapes.h"

/* Does attention land on what is named? For captions whose words name
 * objects with known boxes (the shapes dataset), the share of the attention
 * map, at the step that emits an object's noun, that falls on the grid
 * cells the object covers (shapes_object_cell_mask), and, as a control,
 * the share that falls on the scene's other objects at the same step. A
 * model that attends to shapes in general but not to the one it names
 * scores high on both; one that follows its words, high on the first only. */
typedef struct {
    int images;            /* images added */
    int objects;           /* objects measured */
    double named_mass;     /* sum over objects of the mass on their own cells at their noun's step */
    int named_strong;      /* objects with that mass >= 0.5 */
    double min_named_mass; /* the smallest such mass; 1 before any object */
    double color_mass;     /* sum of the same at the colour word's step (the word before the noun) */
    double noun_beta;      /* sum of beta (how much the model looks at the image) at the noun's step */
    int other_objects;     /* objects of scenes with several objects */
    double other_mass;     /* sum of their mass at the noun's step on the other objects' cells */
    int other_strong;      /* of those, objects with that mass >= 0.5 */
} Grounding;

void grounding_init(Grounding *g);

/* Adds one image captioned exactly as its reference, so that each object's
 * noun_index is the step that named it: alpha holds word_count maps of
 * grid_h x grid_w cells (beta, may be NULL, the word_count gates), the
 * canvas is canvas x canvas pixels. Objects whose
 * noun_index is outside the caption (or has no colour word before it) are
 * skipped. Returns -1 only when out of memory. */
int grounding_add(Grounding *g, const ShapeObject *objects, int object_count, int canvas, const float *alpha,
                  const float *beta, int word_count, int grid_h, int grid_w);

/* Means and shares over what was added; 0 when nothing was. */
double grounding_named_mean(const Grounding *g);
double grounding_named_share(const Grounding *g);
double grounding_color_mean(const Grounding *g);
double grounding_noun_beta_mean(const Grounding *g);
double grounding_other_mean(const Grounding *g);
double grounding_other_share(const Grounding *g);

#endif
