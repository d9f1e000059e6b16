#ifndef APP_SHAPES_H
#define APP_SHAPES_H

#include <stdint.h>

#include "error.h"
#include "draw.h"

/* The procedural "shapes" dataset: 1-3 coloured shapes on a plain canvas,
 * each centred in its own cell of a G x G grid, with a caption that is a
 * deterministic function of the scene. Small enough for a small captioning
 * model to learn, and every object's position is known, so tests can check
 * where the model attends.
 *
 * Caption grammar (vocabulary: a red green blue yellow circle square
 * triangle above left of , and):
 *   one shape:    "a red circle"
 *   two shapes:   "a red circle above a blue square"   (rows differ more;
 *                 the upper shape first) or
 *                 "a red circle left of a blue square" (columns differ more;
 *                 the left shape first). Placements where the rows and the
 *                 columns differ equally are never generated, so the
 *                 relation is never ambiguous.
 *   three shapes: "a red circle , a blue square and a green triangle" in
 *                 reading order (by row, then by column).
 * No two shapes in a scene have both the same kind and the same colour. */

typedef enum { SHAPE_CIRCLE, SHAPE_SQUARE, SHAPE_TRIANGLE, SHAPE_KIND_COUNT } ShapeKind;
typedef enum { SHAPE_RED, SHAPE_GREEN, SHAPE_BLUE, SHAPE_YELLOW, SHAPE_COLOR_COUNT } ShapeColor;

typedef struct {
    ShapeKind kind;
    ShapeColor color;
    int row, col;           /* cell in the generator's G x G grid */
    int x0, y0, x1, y1;     /* pixel bounding box, half-open: x0 <= x < x1 */
    int noun_index;         /* 0-based index, among the caption's space-separated
                               words, of this shape's noun ("circle", ...) */
} ShapeObject;

typedef struct {
    int canvas_size;     /* square canvas side in pixels; 0 = 224 */
    int grid;            /* G; 0 = 3; at most SHAPES_MAX_GRID */
    int min_objects;     /* 0 = 1 */
    int max_objects;     /* 0 = 3; at most 3 and at most G*G */
    float fill_fraction; /* shape size / cell size; 0 = 0.7 */
} ShapesOptions;

#define SHAPES_MAX_GRID 16
#define SHAPES_MAX_OBJECTS 3

typedef struct {
    Image image; /* RGB, canvas_size x canvas_size; owned */
    int object_count;
    ShapeObject objects[SHAPES_MAX_OBJECTS]; /* in caption order */
    char caption[160];
} ShapesScene;

/* Fills *options with the defaults (all zero means the same). */
void shapes_options_default(ShapesOptions *options);

/* Generates scene number `index` of the dataset named by `seed`; the same
 * (seed, index) always gives the same pixels and caption, independently of
 * other indices. options may be NULL. Free with shapes_scene_free. */
int shapes_scene_generate(ShapesScene *scene, uint64_t seed, int index, const ShapesOptions *options, Error *err);
void shapes_scene_free(ShapesScene *scene);

/* Display colour of a ShapeColor, and the words used in captions. */
Rgb shapes_color_rgb(ShapeColor color);
const char *shapes_color_word(ShapeColor color);
const char *shapes_kind_word(ShapeKind kind);

/* Marks (1) the cells of a grid_h x grid_w grid laid over the canvas (e.g. a
 * model's attention grid) that the object covers: cells at least a quarter
 * of whose area overlaps the object's bounding box, plus the cell holding
 * the box's centre. Others are 0. mask has grid_h * grid_w entries,
 * row-major. */
void shapes_object_cell_mask(const ShapeObject *obj, int canvas, int grid_h, int grid_w, unsigned char *mask);

/* Writes a dataset in the Flickr8k layout under dir (created if missing):
 *   dir/images/NNNNN.png   scenes 0 .. train_count+dev_count-1 of `seed`
 *   dir/captions.txt       "NNNNN.png#0<TAB>caption", one line per image
 *   dir/train.txt          the first train_count image names, one per line
 *   dir/dev.txt            the remaining dev_count names
 *   dir/objects.tsv        one line per object, after a header line:
 *                          image, noun_index, noun, color, x0, y0, x1, y1
 *                          (ShapeObject's fields; the box in pixels, half-open;
 *                          noun_index counts the caption's words without its
 *                          punctuation, as training and evaluation tokenise)
 * Text files are written to temporaries and renamed when complete. */
int shapes_write_dataset(const char *dir, int train_count, int dev_count, uint64_t seed,
                         const ShapesOptions *options, Error *err);

#define SHAPES_OBJECTS_FILE "objects.tsv"

/* The objects of each image of a written dataset, as read back from its
 * objects.tsv: what `caption eval` measures attention against. */
typedef struct {
    char *image; /* file name, e.g. "00012.png"; owned */
    int object_count;
    ShapeObject objects[SHAPES_MAX_OBJECTS]; /* row and col are -1: not in the file */
} ShapesImageObjects;

typedef struct {
    ShapesImageObjects *images; /* sorted by image name */
    int count;
} ShapesObjectTable;

/* Reads dir/objects.tsv. Returns 1 when the dataset has none (not a shapes
 * dataset: the table is left empty), 0 when read, -1 on a malformed file
 * (the error names the line and what was wrong). */
int shapes_read_objects(const char *dir, ShapesObjectTable *table, Error *err);
/* The image's objects, or NULL when the table has none for it. */
const ShapesImageObjects *shapes_find_objects(const ShapesObjectTable *table, const char *image);
void shapes_object_table_free(ShapesObjectTable *table);

#endif
