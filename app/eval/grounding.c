#include "grounding.h"

#include <stdlib.h>
#include <string.h>

void grounding_init(Grounding *g) {
    memset(g, 0, sizeof *g);
    g->min_named_mass = 1.0;
}

/* Sum of a map over the marked cells. */
static double mass_on(const float *map, const unsigned char *mask, int cells) {
    double sum = 0.0;
    for (int c = 0; c < cells; c++) sum += mask[c] ? map[c] : 0.0f;
    return sum;
}

/* Marks in `other` the cells of the scene's objects other than o that are
 * not o's own; scratch holds one more mask. */
static void mark_other_objects(const ShapeObject *objects, int count, int o, int canvas, int grid_h, int grid_w,
                               const unsigned char *own, unsigned char *other, unsigned char *scratch) {
    int cells = grid_h * grid_w;
    memset(other, 0, (size_t)cells);
    for (int k = 0; k < count; k++) {
        if (k == o) continue;
        shapes_object_cell_mask(&objects[k], canvas, grid_h, grid_w, scratch);
        for (int c = 0; c < cells; c++) other[c] |= scratch[c] && !own[c];
    }
}

int grounding_add(Grounding *g, const ShapeObject *objects, int object_count, int canvas, const float *alpha,
                  const float *beta, int word_count, int grid_h, int grid_w) {
    int cells = grid_h * grid_w;
    unsigned char *masks = malloc(3 * (size_t)cells);
    if (!masks) return -1;
    unsigned char *own = masks, *other = masks + cells, *scratch = masks + 2 * cells;
    g->images++;
    for (int o = 0; o < object_count; o++) {
        const ShapeObject *obj = &objects[o];
        if (obj->noun_index < 1 || obj->noun_index >= word_count) continue;
        shapes_object_cell_mask(obj, canvas, grid_h, grid_w, own);
        const float *noun_map = alpha + (size_t)obj->noun_index * cells;
        double named = mass_on(noun_map, own, cells);
        g->objects++;
        g->named_mass += named;
        g->named_strong += named >= 0.5;
        if (named < g->min_named_mass) g->min_named_mass = named;
        g->color_mass += mass_on(noun_map - cells, own, cells);
        g->noun_beta += beta ? beta[obj->noun_index] : 1.0;
        if (object_count > 1) {
            mark_other_objects(objects, object_count, o, canvas, grid_h, grid_w, own, other, scratch);
            double elsewhere = mass_on(noun_map, other, cells);
            g->other_objects++;
            g->other_mass += elsewhere;
            g->other_strong += elsewhere >= 0.5;
        }
    }
    free(masks);
    return 0;
}

static double ratio(double part, int whole) { return whole > 0 ? part / whole : 0.0; }

double grounding_named_mean(const Grounding *g) { return ratio(g->named_mass, g->objects); }
double grounding_named_share(const Grounding *g) { return ratio(g->named_strong, g->objects); }
double grounding_color_mean(const Grounding *g) { return ratio(g->color_mass, g->objects); }
double grounding_noun_beta_mean(const Grounding *g) { return ratio(g->noun_beta, g->objects); }
double grounding_other_mean(const Grounding *g) { return ratio(g->other_mass, g->other_objects); }
double grounding_other_share(const Grounding *g) { return ratio(g->other_strong, g->other_objects); }
