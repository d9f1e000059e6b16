#include "shapes.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "folders.h"
#include "rng.h"

static const char *const color_words[SHAPE_COLOR_COUNT] = {"red", "green", "blue", "yellow"};
static const char *const kind_words[SHAPE_KIND_COUNT] = {"circle", "square", "triangle"};

Rgb shapes_color_rgb(ShapeColor color) {
    /* Saturated and far apart, and far from the light background. */
    static const Rgb colors[SHAPE_COLOR_COUNT] = {
        {220, 30, 30}, {30, 160, 50}, {30, 70, 220}, {235, 200, 20}};
    return colors[(unsigned)color % SHAPE_COLOR_COUNT];
}

const char *shapes_color_word(ShapeColor color) { return color_words[(unsigned)color % SHAPE_COLOR_COUNT]; }
const char *shapes_kind_word(ShapeKind kind) { return kind_words[(unsigned)kind % SHAPE_KIND_COUNT]; }

void shapes_options_default(ShapesOptions *options) {
    *options = (ShapesOptions){
        .canvas_size = 224, .grid = 3, .min_objects = 1, .max_objects = 3, .fill_fraction = 0.7f};
}

/* Replaces zero fields by defaults and rejects impossible combinations. */
static int resolve_options(const ShapesOptions *given, ShapesOptions *out, Error *err) {
    ShapesOptions defaults;
    shapes_options_default(&defaults);
    *out = given ? *given : defaults;
    if (out->canvas_size == 0) out->canvas_size = defaults.canvas_size;
    if (out->grid == 0) out->grid = defaults.grid;
    if (out->min_objects == 0) out->min_objects = defaults.min_objects;
    if (out->max_objects == 0) out->max_objects = defaults.max_objects;
    if (out->fill_fraction == 0.0f) out->fill_fraction = defaults.fill_fraction;
    if (out->grid < 1 || out->grid > SHAPES_MAX_GRID)
        return error_set(err, "shapes: grid %d is out of range; use 1 to %d", out->grid, SHAPES_MAX_GRID);
    if (out->canvas_size < 4 * out->grid || out->canvas_size > 8192)
        return error_set(err, "shapes: canvas size %d does not fit a %dx%d grid; use %d to 8192 pixels",
                         out->canvas_size, out->grid, out->grid, 4 * out->grid);
    int most = out->grid * out->grid < SHAPES_MAX_OBJECTS ? out->grid * out->grid : SHAPES_MAX_OBJECTS;
    if (out->min_objects < 1 || out->max_objects > most || out->min_objects > out->max_objects)
        return error_set(err, "shapes: %d to %d objects per scene is not possible on a %dx%d grid; use 1 to %d",
                         out->min_objects, out->max_objects, out->grid, out->grid, most);
    if (!(out->fill_fraction > 0.0f && out->fill_fraction <= 1.0f))
        return error_set(err, "shapes: fill fraction %g is out of range; use a value in (0, 1]",
                         (double)out->fill_fraction);
    return 0;
}

/* ---- scene layout ---- */

/* Two cells whose row and column distances are equal would make "above"
 * versus "left of" a coin toss, so such pairs are never drawn. */
static int is_unambiguous_pair(int a, int b, int grid) {
    return abs(a / grid - b / grid) != abs(a % grid - b % grid);
}

static void choose_unambiguous_pair(Rng *rng, int grid, int cells[2]) {
    int cell_count = grid * grid, valid = 0;
    for (int a = 0; a < cell_count; a++)
        for (int b = a + 1; b < cell_count; b++) valid += is_unambiguous_pair(a, b, grid);
    int wanted = (int)rng_below(rng, (uint32_t)valid);
    for (int a = 0; a < cell_count; a++)
        for (int b = a + 1; b < cell_count; b++)
            if (is_unambiguous_pair(a, b, grid) && wanted-- == 0) {
                /* Random order: the caption order is decided later. */
                int swap = (int)rng_below(rng, 2);
                cells[0] = swap ? b : a;
                cells[1] = swap ? a : b;
                return;
            }
}

/* Draws `count` distinct values from 0..n-1 (partial Fisher-Yates). */
static void choose_distinct(Rng *rng, int n, int count, int *chosen) {
    int pool[SHAPES_MAX_GRID * SHAPES_MAX_GRID];
    for (int i = 0; i < n; i++) pool[i] = i;
    for (int i = 0; i < count; i++) {
        int j = i + (int)rng_below(rng, (uint32_t)(n - i));
        int t = pool[i];
        pool[i] = pool[j];
        pool[j] = t;
        chosen[i] = pool[i];
    }
}

static void place_object(ShapeObject *obj, int cell, const ShapesOptions *options) {
    float cell_size = (float)options->canvas_size / (float)options->grid;
    int side = (int)lroundf(options->fill_fraction * cell_size);
    if (side < 1) side = 1;
    obj->row = cell / options->grid;
    obj->col = cell % options->grid;
    obj->x0 = (int)lroundf(((float)obj->col + 0.5f) * cell_size - 0.5f * (float)side);
    obj->y0 = (int)lroundf(((float)obj->row + 0.5f) * cell_size - 0.5f * (float)side);
    obj->x1 = obj->x0 + side;
    obj->y1 = obj->y0 + side;
}

static int reading_order(const void *a, const void *b) {
    const ShapeObject *p = a, *q = b;
    return p->row != q->row ? p->row - q->row : p->col - q->col;
}

/* Puts the objects in caption order; returns 1 when a pair is related by
 * "above" (rows differ more), 0 otherwise. */
static int order_for_caption(ShapeObject *objects, int count) {
    if (count != 2) {
        qsort(objects, (size_t)count, sizeof *objects, reading_order);
        return 0;
    }
    int above = abs(objects[0].row - objects[1].row) > abs(objects[0].col - objects[1].col);
    int second_first = above ? objects[1].row < objects[0].row : objects[1].col < objects[0].col;
    if (second_first) {
        ShapeObject t = objects[0];
        objects[0] = objects[1];
        objects[1] = t;
    }
    return above;
}

/* ---- caption ---- */

typedef struct {
    char *text;
    size_t capacity, length;
    int words;
} Caption;

/* Appends a word and returns its index. The longest caption the grammar
 * makes is about 60 characters, so the check below never drops a word. */
static int caption_add(Caption *caption, const char *word) {
    size_t separator = caption->length ? 1 : 0, word_length = strlen(word);
    if (caption->length + separator + word_length < caption->capacity) {
        if (separator) caption->text[caption->length++] = ' ';
        memcpy(caption->text + caption->length, word, word_length + 1);
        caption->length += word_length;
    }
    return caption->words++;
}

static void caption_add_object(Caption *caption, ShapeObject *obj) {
    caption_add(caption, "a");
    caption_add(caption, shapes_color_word(obj->color));
    obj->noun_index = caption_add(caption, shapes_kind_word(obj->kind));
}

static void write_caption(ShapesScene *scene, int related_above) {
    Caption caption = {.text = scene->caption, .capacity = sizeof scene->caption};
    scene->caption[0] = '\0';
    ShapeObject *objects = scene->objects;
    caption_add_object(&caption, &objects[0]);
    if (scene->object_count == 2) {
        if (related_above) {
            caption_add(&caption, "above");
        } else {
            caption_add(&caption, "left");
            caption_add(&caption, "of");
        }
        caption_add_object(&caption, &objects[1]);
    } else if (scene->object_count == 3) {
        caption_add(&caption, ",");
        caption_add_object(&caption, &objects[1]);
        caption_add(&caption, "and");
        caption_add_object(&caption, &objects[2]);
    }
}

/* ---- drawing ---- */

static void draw_object(Image *img, const ShapeObject *obj) {
    Rgb color = shapes_color_rgb(obj->color);
    switch (obj->kind) {
    case SHAPE_SQUARE:
        draw_fill_rect(img, obj->x0, obj->y0, obj->x1, obj->y1, color);
        break;
    case SHAPE_CIRCLE:
        draw_fill_circle(img, 0.5f * (float)(obj->x0 + obj->x1), 0.5f * (float)(obj->y0 + obj->y1),
                         0.5f * (float)(obj->x1 - obj->x0), color);
        break;
    case SHAPE_TRIANGLE:
    default:
        draw_fill_triangle_up(img, obj->x0, obj->y0, obj->x1, obj->y1, color);
        break;
    }
}

int shapes_scene_generate(ShapesScene *scene, uint64_t seed, int index, const ShapesOptions *options_in,
                          Error *err) {
    *scene = (ShapesScene){0};
    ShapesOptions options;
    if (resolve_options(options_in, &options, err)) return -1;
    if (index < 0) return error_set(err, "shapes: scene index %d is negative", index);

    /* One stream per index: scene i does not depend on how many scenes
     * were generated before it. */
    Rng rng;
    rng_seed_stream(&rng, seed, (uint64_t)index);
    int count = options.min_objects + (int)rng_below(&rng, (uint32_t)(options.max_objects - options.min_objects + 1));
    int looks[SHAPES_MAX_OBJECTS], cells[SHAPES_MAX_OBJECTS];
    choose_distinct(&rng, SHAPE_KIND_COUNT * SHAPE_COLOR_COUNT, count, looks);
    if (count == 2)
        choose_unambiguous_pair(&rng, options.grid, cells);
    else
        choose_distinct(&rng, options.grid * options.grid, count, cells);
    unsigned char background = (unsigned char)(215 + rng_below(&rng, 41));

    scene->object_count = count;
    for (int i = 0; i < count; i++) {
        ShapeObject *obj = &scene->objects[i];
        obj->kind = (ShapeKind)(looks[i] / SHAPE_COLOR_COUNT);
        obj->color = (ShapeColor)(looks[i] % SHAPE_COLOR_COUNT);
        place_object(obj, cells[i], &options);
    }
    write_caption(scene, order_for_caption(scene->objects, count));

    if (image_alloc(&scene->image, options.canvas_size, options.canvas_size, 3, err))
        return error_prefix(err, "shapes scene %d", index);
    draw_fill(&scene->image, (Rgb){background, background, background});
    for (int i = 0; i < count; i++) draw_object(&scene->image, &scene->objects[i]);
    return 0;
}

void shapes_scene_free(ShapesScene *scene) {
    if (scene) image_free(&scene->image);
}

void shapes_object_cell_mask(const ShapeObject *obj, int canvas, int grid_h, int grid_w, unsigned char *mask) {
    float cell_w = (float)canvas / (float)grid_w, cell_h = (float)canvas / (float)grid_h;
    float center_x = 0.5f * (float)(obj->x0 + obj->x1), center_y = 0.5f * (float)(obj->y0 + obj->y1);
    int center_col = (int)floorf(center_x / cell_w), center_row = (int)floorf(center_y / cell_h);
    for (int r = 0; r < grid_h; r++) {
        float top = (float)r * cell_h;
        float overlap_h = fminf((float)obj->y1, top + cell_h) - fmaxf((float)obj->y0, top);
        for (int c = 0; c < grid_w; c++) {
            float left = (float)c * cell_w;
            float overlap_w = fminf((float)obj->x1, left + cell_w) - fmaxf((float)obj->x0, left);
            int overlaps = overlap_h > 0.0f && overlap_w > 0.0f && overlap_h * overlap_w >= 0.25f * cell_w * cell_h;
            mask[r * grid_w + c] = (unsigned char)(overlaps || (r == center_row && c == center_col));
        }
    }
}

/* ---- dataset writer ---- */

static char *join_path(const char *dir, const char *name, Error *err) {
    size_t size = strlen(dir) + strlen(name) + 2;
    char *path = malloc(size);
    if (!path) {
        error_set(err, "out of memory building the path '%s/%s'", dir, name);
        return NULL;
    }
    snprintf(path, size, "%s/%s", dir, name);
    return path;
}

enum { OUTPUT_CAPTIONS, OUTPUT_TRAIN, OUTPUT_DEV, OUTPUT_OBJECTS, OUTPUT_COUNT };

static const char OBJECTS_HEADER[] = "image\tnoun_index\tnoun\tcolor\tx0\ty0\tx1\ty1";

/* Word `index` of a caption counted without its punctuation tokens (","):
 * its position once tokenised as training and evaluation tokenise. */
static int index_without_punctuation(const char *caption, int index) {
    int kept = 0, word = 0;
    for (const char *p = caption; *p && word < index; word++) {
        size_t length = strcspn(p, " ");
        kept += !(length == 1 && *p == ',');
        p += length;
        p += *p == ' ';
    }
    return kept;
}

static int write_scene(const char *images_dir, AtomicFile outputs[OUTPUT_COUNT], int index, int train_count,
                       uint64_t seed, const ShapesOptions *options, Error *err) {
    char name[32];
    snprintf(name, sizeof name, "%05d.png", index);
    char *image_path = join_path(images_dir, name, err);
    if (!image_path) return -1;
    ShapesScene scene;
    int status = shapes_scene_generate(&scene, seed, index, options, err);
    if (status == 0) status = image_write_png(&scene.image, image_path, err);
    if (status == 0) {
        fprintf(outputs[OUTPUT_CAPTIONS].file, "%s#0\t%s\n", name, scene.caption);
        fprintf(outputs[index < train_count ? OUTPUT_TRAIN : OUTPUT_DEV].file, "%s\n", name);
        for (int o = 0; o < scene.object_count; o++) {
            const ShapeObject *obj = &scene.objects[o];
            fprintf(outputs[OUTPUT_OBJECTS].file, "%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\n", name,
                    index_without_punctuation(scene.caption, obj->noun_index), shapes_kind_word(obj->kind), shapes_color_word(obj->color), obj->x0, obj->y0, obj->x1, obj->y1);
        }
    }
    shapes_scene_free(&scene);
    free(image_path);
    return status;
}

static int write_all_scenes(const char *dir, AtomicFile outputs[OUTPUT_COUNT], int train_count, int dev_count,
                            uint64_t seed, const ShapesOptions *options, Error *err) {
    char *images_dir = join_path(dir, "images", err);
    if (!images_dir) return -1;
    int status = make_folders(images_dir, err);
    for (int i = 0; status == 0 && i < train_count + dev_count; i++)
        status = write_scene(images_dir, outputs, i, train_count, seed, options, err);
    free(images_dir);
    return status;
}

int shapes_write_dataset(const char *dir, int train_count, int dev_count, uint64_t seed,
                         const ShapesOptions *options, Error *err) {
    if (train_count < 0 || dev_count < 0 || train_count > 1000000 - dev_count)
        return error_set(err, "shapes dataset '%s': %d training and %d dev images is not a valid split", dir,
                         train_count, dev_count);
    ShapesOptions resolved;
    if (resolve_options(options, &resolved, err)) return -1;
    if (make_folders(dir, err)) return -1;
    static const char *const names[OUTPUT_COUNT] = {"captions.txt", "train.txt", "dev.txt", SHAPES_OBJECTS_FILE};
    AtomicFile outputs[OUTPUT_COUNT] = {{0}};
    int status = 0;
    for (int i = 0; status == 0 && i < OUTPUT_COUNT; i++) {
        char *path = join_path(dir, names[i], err);
        status = path ? atomic_file_open(&outputs[i], path, err) : -1;
        free(path);
    }
    if (status == 0) fprintf(outputs[OUTPUT_OBJECTS].file, "%s\n", OBJECTS_HEADER);
    if (status == 0) status = write_all_scenes(dir, outputs, train_count, dev_count, seed, &resolved, err);
    for (int i = 0; status == 0 && i < OUTPUT_COUNT; i++) status = atomic_file_commit(&outputs[i], err);
    for (int i = 0; i < OUTPUT_COUNT; i++) atomic_file_close(&outputs[i]);
    return status;
}

/* ---- objects.tsv reader ---- */

void shapes_object_table_free(ShapesObjectTable *table) {
    for (int i = 0; i < table->count; i++) free(table->images[i].image);
    free(table->images);
    *table = (ShapesObjectTable){0};
}

static int word_index(const char *word, const char *const *words, int count) {
    for (int i = 0; i < count; i++)
        if (strcmp(word, words[i]) == 0) return i;
    return -1;
}

/* Splits a line at tabs in place; returns the number of fields (at most max). */
static int split_tabs(char *line, char **fields, int max) {
    int n = 0;
    line[strcspn(line, "\r\n")] = '\0';
    for (char *field = line; n < max; n++) {
        fields[n] = field;
        char *tab = strchr(field, '\t');
        if (!tab) return n + 1;
        *tab = '\0';
        field = tab + 1;
    }
    return max + 1;
}

static int parse_object(char **fields, ShapeObject *obj) {
    int kind = word_index(fields[2], kind_words, SHAPE_KIND_COUNT);
    int color = word_index(fields[3], color_words, SHAPE_COLOR_COUNT);
    int values[5];
    for (int k = 0; k < 5; k++) {
        char *end;
        long v = strtol(fields[k == 0 ? 1 : k + 3], &end, 10);
        if (*end || end == fields[k == 0 ? 1 : k + 3] || v < 0 || v > 1000000) return -1;
        values[k] = (int)v;
    }
    if (kind < 0 || color < 0 || values[1] >= values[3] || values[2] >= values[4]) return -1;
    *obj = (ShapeObject){.kind = (ShapeKind)kind, .color = (ShapeColor)color, .row = -1, .col = -1,
                         .noun_index = values[0], .x0 = values[1], .y0 = values[2], .x1 = values[3], .y1 = values[4]};
    return 0;
}

/* Adds obj to the table's last image, or starts a new image. */
static int table_add(ShapesObjectTable *table, int *capacity, const char *image, const ShapeObject *obj) {
    ShapesImageObjects *last = table->count ? &table->images[table->count - 1] : NULL;
    if (!last || strcmp(last->image, image) != 0) {
        if (table->count == *capacity) {
            int grown = *capacity ? 2 * *capacity : 256;
            ShapesImageObjects *images = realloc(table->images, (size_t)grown * sizeof *images);
            if (!images) return -1;
            table->images = images;
            *capacity = grown;
        }
        last = &table->images[table->count];
        *last = (ShapesImageObjects){.image = strdup(image)};
        if (!last->image) return -1;
        table->count++;
    }
    if (last->object_count == SHAPES_MAX_OBJECTS) return -2;
    last->objects[last->object_count++] = *obj;
    return 0;
}

static int compare_images(const void *a, const void *b) {
    return strcmp(((const ShapesImageObjects *)a)->image, ((const ShapesImageObjects *)b)->image);
}

int shapes_read_objects(const char *dir, ShapesObjectTable *table, Error *err) {
    *table = (ShapesObjectTable){0};
    char *path = join_path(dir, SHAPES_OBJECTS_FILE, err);
    if (!path) return -1;
    FILE *file = fopen(path, "r");
    if (!file) {
        int missing = errno == ENOENT || errno == ENOTDIR;
        if (!missing) error_set(err, "cannot read '%s': %s", path, strerror(errno));
        free(path);
        return missing ? 1 : -1;
    }
    char line[1024], *fields[9];
    int capacity = 0, status = 0, number = 0;
    while (status == 0 && fgets(line, sizeof line, file)) {
        number++;
        int n = split_tabs(line, fields, 8);
        if (number == 1) {
            if (n != 8 || strcmp(fields[0], "image") != 0 || strcmp(fields[7], "y1") != 0)
                status = error_set(err, "%s: line 1 is not the header 'image, noun_index, noun, color, x0, y0, x1, "
                                   "y1' (tab-separated); write the dataset again with `caption shapes`", path);
            continue;
        }
        ShapeObject obj;
        if (n != 8 || parse_object(fields, &obj) != 0) {
            status = error_set(err, "%s: line %d is not 'image, noun_index, noun (circle/square/triangle), color "
                               "(red/green/blue/yellow), x0, y0, x1, y1' with x0 < x1 and y0 < y1", path, number);
            break;
        }
        int added = table_add(table, &capacity, fields[0], &obj);
        if (added == -1) status = error_set(err, "out of memory reading '%s'", path);
        if (added == -2)
            status = error_set(err, "%s: line %d gives image '%s' more than %d objects, or its lines are not "
                               "together", path, number, fields[0], SHAPES_MAX_OBJECTS);
    }
    if (status == 0 && ferror(file)) status = error_set(err, "cannot read '%s': %s", path, strerror(errno));
    if (status == 0 && number == 0) status = error_set(err, "%s is empty: it needs its header line", path);
    fclose(file);
    free(path);
    if (status != 0) {
        shapes_object_table_free(table);
        return -1;
    }
    qsort(table->images, (size_t)table->count, sizeof *table->images, compare_images);
    for (int i = 1; i < table->count; i++)
        if (strcmp(table->images[i - 1].image, table->images[i].image) == 0) {
            error_set(err, "%s/%s: the lines of image '%s' are not together", dir, SHAPES_OBJECTS_FILE,
                      table->images[i].image);
            shapes_object_table_free(table);
            return -1;
        }
    return 0;
}

const ShapesImageObjects *shapes_find_objects(const ShapesObjectTable *table, const char *image) {
    ShapesImageObjects key = {.image = (char *)image};
    return table->count ? bsearch(&key, table->images, (size_t)table->count, sizeof *table->images, compare_images)
                        : NULL;
}
