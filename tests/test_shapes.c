/* Tests for app/shapes: determinism, captions that match the drawn scene,
 * attention-grid cell masks, and the Flickr8k-layout dataset writer. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "shapes.h"

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *entry;
    char path[512];
    while ((entry = readdir(d)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
        struct stat info;
        if (stat(path, &info) == 0 && S_ISDIR(info.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Splits a copy of the caption into words; returns the count. */
static int split_words(const char *caption, char *buffer, size_t size, char **words, int max_words) {
    snprintf(buffer, size, "%s", caption);
    int count = 0;
    for (char *save = NULL, *w = strtok_r(buffer, " ", &save); w && count < max_words; w = strtok_r(NULL, " ", &save))
        words[count++] = w;
    return count;
}

/* The caption as the grammar in shapes.h defines it, from the objects alone. */
static void expected_caption(const ShapesScene *scene, char *out, size_t size) {
    const ShapeObject *o = scene->objects;
    char phrase[3][40];
    for (int i = 0; i < scene->object_count; i++)
        snprintf(phrase[i], sizeof phrase[i], "a %s %s", shapes_color_word(o[i].color), shapes_kind_word(o[i].kind));
    if (scene->object_count == 1) {
        snprintf(out, size, "%s", phrase[0]);
    } else if (scene->object_count == 2) {
        int dr = abs(o[0].row - o[1].row), dc = abs(o[0].col - o[1].col);
        snprintf(out, size, "%s %s %s", phrase[0], dr > dc ? "above" : "left of", phrase[1]);
    } else {
        snprintf(out, size, "%s , %s and %s", phrase[0], phrase[1], phrase[2]);
    }
}

static int pixel_is(const Image *img, int x, int y, Rgb color) {
    const unsigned char *p = img->pixels + ((size_t)y * img->width + x) * 3;
    return p[0] == color.r && p[1] == color.g && p[2] == color.b;
}

static void check_scene(CheckCounts *c, const ShapesScene *scene, int grid, int *seen_counts, int *seen_above,
                        int *seen_left) {
    const Image *img = &scene->image;
    CHECK(c, img->width == 224 && img->height == 224 && img->channels == 3 && img->pixels);
    int n = scene->object_count;
    CHECK(c, n >= 1 && n <= 3);
    seen_counts[n]++;
    char expected[160];
    expected_caption(scene, expected, sizeof expected);
    CHECK(c, strcmp(expected, scene->caption) == 0);

    char buffer[160], *words[32];
    int word_count = split_words(scene->caption, buffer, sizeof buffer, words, 32);
    float cell = 224.0f / (float)grid;
    for (int i = 0; i < n; i++) {
        const ShapeObject *o = &scene->objects[i];
        CHECK(c, o->noun_index >= 2 && o->noun_index < word_count);
        if (o->noun_index < word_count) CHECK(c, strcmp(words[o->noun_index], shapes_kind_word(o->kind)) == 0);
        if (i > 0) CHECK(c, o->noun_index > scene->objects[i - 1].noun_index);
        /* Inside the canvas and inside its own cell. */
        CHECK(c, o->x0 >= (int)(o->col * cell) && o->x1 <= (int)((o->col + 1) * cell) + 1);
        CHECK(c, o->y0 >= (int)(o->row * cell) && o->y1 <= (int)((o->row + 1) * cell) + 1);
        CHECK(c, o->x0 >= 0 && o->y0 >= 0 && o->x1 <= 224 && o->y1 <= 224);
        /* The drawn colour at the centre is the caption's colour. */
        CHECK(c, pixel_is(img, (o->x0 + o->x1) / 2, (o->y0 + o->y1) / 2, shapes_color_rgb(o->color)));
        for (int j = 0; j < i; j++) {
            const ShapeObject *p = &scene->objects[j];
            CHECK(c, p->row != o->row || p->col != o->col);
            CHECK(c, p->kind != o->kind || p->color != o->color);
        }
    }
    if (n == 2) {
        const ShapeObject *a = &scene->objects[0], *b = &scene->objects[1];
        int dr = abs(a->row - b->row), dc = abs(a->col - b->col);
        CHECK(c, dr != dc);
        if (dr > dc) {
            CHECK(c, a->row < b->row);
            (*seen_above)++;
        } else {
            CHECK(c, a->col < b->col);
            (*seen_left)++;
        }
    }
    if (n == 3)
        for (int i = 1; i < 3; i++) {
            const ShapeObject *a = &scene->objects[i - 1], *b = &scene->objects[i];
            CHECK(c, a->row < b->row || (a->row == b->row && a->col < b->col));
        }
    /* The corner is background: a light, neutral gray. */
    const unsigned char *corner = img->pixels;
    CHECK(c, corner[0] >= 215 && corner[0] == corner[1] && corner[1] == corner[2]);
}

static void test_scenes_match_captions(CheckCounts *c) {
    int seen_counts[4] = {0}, seen_above = 0, seen_left = 0;
    Error err = {0};
    for (int grid = 3; grid <= 4; grid++) {
        ShapesOptions options = {.grid = grid};
        for (int i = 0; i < 150; i++) {
            ShapesScene scene;
            if (shapes_scene_generate(&scene, 42, i, &options, &err) != 0) {
                fprintf(stderr, "generate failed: %s\n", err.message);
                c->failed++;
                continue;
            }
            check_scene(c, &scene, grid, seen_counts, &seen_above, &seen_left);
            shapes_scene_free(&scene);
        }
    }
    CHECK(c, seen_counts[1] > 0 && seen_counts[2] > 0 && seen_counts[3] > 0);
    CHECK(c, seen_above > 0 && seen_left > 0);
}

static void test_determinism(CheckCounts *c) {
    Error err = {0};
    ShapesScene a, b, other;
    CHECK(c, shapes_scene_generate(&a, 7, 12, NULL, &err) == 0);
    CHECK(c, shapes_scene_generate(&b, 7, 12, NULL, &err) == 0);
    CHECK(c, strcmp(a.caption, b.caption) == 0);
    CHECK(c, a.object_count == b.object_count && memcmp(a.objects, b.objects, sizeof a.objects) == 0);
    CHECK(c, memcmp(a.image.pixels, b.image.pixels, 224 * 224 * 3) == 0);
    /* Other seeds and indices give other scenes (at least one of 10 differs). */
    int differs = 0;
    for (int i = 0; i < 10; i++) {
        CHECK(c, shapes_scene_generate(&other, 8, 12 + i, NULL, &err) == 0);
        differs += strcmp(a.caption, other.caption) != 0 ||
                   memcmp(a.image.pixels, other.image.pixels, 224 * 224 * 3) != 0;
        shapes_scene_free(&other);
    }
    CHECK(c, differs > 0);
    shapes_scene_free(&a);
    shapes_scene_free(&b);
    shapes_scene_free(&b); /* idempotent */
}

static void test_options(CheckCounts *c) {
    Error err = {0};
    ShapesScene scene;
    ShapesOptions bad_grid = {.grid = SHAPES_MAX_GRID + 1};
    CHECK(c, shapes_scene_generate(&scene, 1, 0, &bad_grid, &err) == -1);
    CHECK_MESSAGE(c, err, "grid");
    ShapesOptions crowded = {.grid = 1, .max_objects = 3};
    CHECK(c, shapes_scene_generate(&scene, 1, 0, &crowded, &err) == -1);
    CHECK_MESSAGE(c, err, "objects");
    ShapesOptions single = {.grid = 1, .max_objects = 1, .canvas_size = 64};
    CHECK(c, shapes_scene_generate(&scene, 1, 0, &single, &err) == 0);
    CHECK(c, scene.object_count == 1 && scene.image.width == 64);
    shapes_scene_free(&scene);
    ShapesOptions pairs = {.min_objects = 2, .max_objects = 2, .grid = 2};
    for (int i = 0; i < 20; i++) {
        CHECK(c, shapes_scene_generate(&scene, 3, i, &pairs, &err) == 0);
        CHECK(c, scene.object_count == 2);
        /* On a 2x2 grid only same-row or same-column pairs are unambiguous. */
        CHECK(c, scene.objects[0].row == scene.objects[1].row || scene.objects[0].col == scene.objects[1].col);
        shapes_scene_free(&scene);
    }
}

static int mask_count(const unsigned char *mask, int n) {
    int count = 0;
    for (int i = 0; i < n; i++) count += mask[i];
    return count;
}

static void test_cell_masks(CheckCounts *c) {
    unsigned char mask[14 * 14];
    /* Top-left quarter of the canvas. */
    ShapeObject quarter = {.x0 = 0, .y0 = 0, .x1 = 112, .y1 = 112};
    shapes_object_cell_mask(&quarter, 224, 2, 2, mask);
    CHECK(c, mask[0] == 1 && mask[1] == 0 && mask[2] == 0 && mask[3] == 0);
    shapes_object_cell_mask(&quarter, 224, 4, 4, mask);
    for (int r = 0; r < 4; r++)
        for (int col = 0; col < 4; col++) CHECK(c, mask[r * 4 + col] == (r < 2 && col < 2));

    /* A small box straddling the middle covers little of each 2x2 cell:
     * only the cell holding its centre counts. */
    ShapeObject middle = {.x0 = 100, .y0 = 100, .x1 = 124, .y1 = 124};
    shapes_object_cell_mask(&middle, 224, 2, 2, mask);
    CHECK(c, mask[0] == 0 && mask[1] == 0 && mask[2] == 0 && mask[3] == 1);

    /* On 14x14 (16-pixel cells) the box [100,118) overlaps columns/rows 6
     * by 12 and 7 by 6 pixels: cell (7,7) gets 36 of 256, under a quarter. */
    ShapeObject corner = {.x0 = 100, .y0 = 100, .x1 = 118, .y1 = 118};
    shapes_object_cell_mask(&corner, 224, 14, 14, mask);
    CHECK(c, mask[6 * 14 + 6] == 1 && mask[6 * 14 + 7] == 1 && mask[7 * 14 + 6] == 1);
    CHECK(c, mask[7 * 14 + 7] == 0);
    CHECK(c, mask_count(mask, 14 * 14) == 3);

    /* Non-square grids work too. */
    shapes_object_cell_mask(&quarter, 224, 1, 4, mask);
    CHECK(c, mask[0] == 1 && mask[1] == 1 && mask[2] == 0 && mask[3] == 0);

    /* Every generated object covers its centre cell on a 6x6 grid. */
    Error err = {0};
    ShapesScene scene;
    CHECK(c, shapes_scene_generate(&scene, 5, 0, NULL, &err) == 0);
    for (int i = 0; i < scene.object_count; i++) {
        const ShapeObject *o = &scene.objects[i];
        shapes_object_cell_mask(o, 224, 6, 6, mask);
        int row = (o->y0 + o->y1) / 2 * 6 / 224, col = (o->x0 + o->x1) / 2 * 6 / 224;
        CHECK(c, mask[row * 6 + col] == 1);
        CHECK(c, mask_count(mask, 36) >= 1 && mask_count(mask, 36) <= 9);
    }
    shapes_scene_free(&scene);
}

static int count_lines(const char *path, char lines[][256], int max_lines) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int count = 0;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (count < max_lines) memcpy(lines[count], line, sizeof line);
        count++;
    }
    fclose(f);
    return count;
}

/* Writes text to root/objects.tsv. */
static void write_objects_file(const char *root, const char *text) {
    char path[160];
    snprintf(path, sizeof path, "%s/objects.tsv", root);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* objects.tsv reads back as the scenes' objects, with the noun positions of
 * the tokenised caption (no ","); malformed files name their line. */
static void test_object_table(CheckCounts *c, const char *root) {
    ShapesObjectTable table;
    Error err = {0};
    CHECK(c, shapes_read_objects(root, &table, &err) == 0);
    CHECK(c, table.count == 8);
    for (int i = 0; i < 8; i++) {
        char name[32];
        snprintf(name, sizeof name, "%05d.png", i);
        ShapesScene scene;
        CHECK(c, shapes_scene_generate(&scene, 99, i, NULL, &err) == 0);
        const ShapesImageObjects *found = shapes_find_objects(&table, name);
        CHECK(c, found && found->object_count == scene.object_count);
        for (int o = 0; found && o < found->object_count; o++) {
            const ShapeObject *a = &found->objects[o], *b = &scene.objects[o];
            CHECK(c, a->kind == b->kind && a->color == b->color && a->x0 == b->x0 && a->y0 == b->y0 &&
                         a->x1 == b->x1 && a->y1 == b->y1);
            /* The word at noun_index of the caption without "," is the noun. */
            char words[200], *tokens[32];
            int n = 0;
            snprintf(words, sizeof words, "%s", scene.caption);
            for (char *w = strtok(words, " "); w && n < 32; w = strtok(NULL, " "))
                if (strcmp(w, ",") != 0) tokens[n++] = w;
            CHECK(c, a->noun_index < n && strcmp(tokens[a->noun_index], shapes_kind_word(b->kind)) == 0 &&
                         strcmp(tokens[a->noun_index - 1], shapes_color_word(b->color)) == 0);
        }
        shapes_scene_free(&scene);
    }
    CHECK(c, shapes_find_objects(&table, "nothing.png") == NULL);
    shapes_object_table_free(&table);

    char missing[160];
    snprintf(missing, sizeof missing, "%s/images", root);
    CHECK(c, shapes_read_objects(missing, &table, &err) == 1 && table.count == 0);
    const char *header = "image\tnoun_index\tnoun\tcolor\tx0\ty0\tx1\ty1\n";
    const char *broken[][2] = {
        {"image\tnoun\n", "line 1 is not the header"},
        {"", "needs its header line"},
        {"00000.png\t2\tcircle\tred\t10\t10\t5\t20\n", "line 2 is not"},
        {"00000.png\t2\thexagon\tred\t1\t1\t5\t5\n", "line 2 is not"},
        {"00000.png\t2\tcircle\tred\t1\t1\t5\n", "line 2 is not"},
        {"a.png\t2\tcircle\tred\t1\t1\t5\t5\nb.png\t2\tcircle\tred\t1\t1\t5\t5\n"
         "a.png\t2\tsquare\tred\t1\t1\t5\t5\n", "'a.png' are not together"},
    };
    for (size_t k = 0; k < sizeof broken / sizeof broken[0]; k++) {
        char text[400];
        snprintf(text, sizeof text, "%s%s", k < 2 ? "" : header, broken[k][0]);
        write_objects_file(root, text);
        CHECK(c, shapes_read_objects(root, &table, &err) == -1 && table.count == 0);
        CHECK_MESSAGE(c, err, broken[k][1]);
    }
}

static void test_dataset_writer(CheckCounts *c) {
    char dir[] = "/tmp/test_shapes_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        c->failed++;
        return;
    }
    char root[64], path[128];
    snprintf(root, sizeof root, "%s/shapes", dir);
    Error err = {0};
    CHECK(c, shapes_write_dataset(root, 5, 3, 99, NULL, &err) == 0);

    char lines[16][256];
    snprintf(path, sizeof path, "%s/captions.txt", root);
    CHECK(c, count_lines(path, lines, 16) == 8);
    ShapesScene scene;
    CHECK(c, shapes_scene_generate(&scene, 99, 6, NULL, &err) == 0);
    char expected[200];
    snprintf(expected, sizeof expected, "00006.png#0\t%s\n", scene.caption);
    CHECK(c, strcmp(lines[6], expected) == 0);

    snprintf(path, sizeof path, "%s/images/00006.png", root);
    Image img;
    CHECK(c, image_load(&img, path, NULL, &err) == 0);
    CHECK(c, img.pixels && memcmp(img.pixels, scene.image.pixels, 224 * 224 * 3) == 0);
    image_free(&img);
    shapes_scene_free(&scene);
    for (int i = 0; i < 8; i++) {
        snprintf(path, sizeof path, "%s/images/%05d.png", root, i);
        CHECK(c, image_is_image_file(path));
    }

    snprintf(path, sizeof path, "%s/train.txt", root);
    CHECK(c, count_lines(path, lines, 16) == 5);
    CHECK(c, strcmp(lines[0], "00000.png\n") == 0 && strcmp(lines[4], "00004.png\n") == 0);
    snprintf(path, sizeof path, "%s/dev.txt", root);
    CHECK(c, count_lines(path, lines, 16) == 3);
    CHECK(c, strcmp(lines[0], "00005.png\n") == 0 && strcmp(lines[2], "00007.png\n") == 0);

    test_object_table(c, root);

    /* Rewriting over an existing dataset works and leaves no temporaries. */
    CHECK(c, shapes_write_dataset(root, 2, 1, 99, NULL, &err) == 0);
    snprintf(path, sizeof path, "%s/captions.txt", root);
    CHECK(c, count_lines(path, lines, 16) == 3);
    DIR *d = opendir(root);
    struct dirent *entry;
    while (d && (entry = readdir(d)) != NULL) CHECK(c, strstr(entry->d_name, ".tmp-") == NULL);
    if (d) closedir(d);

    CHECK(c, shapes_write_dataset(root, -1, 1, 99, NULL, &err) == -1);
    snprintf(path, sizeof path, "%s/captions.txt/sub", root);
    CHECK(c, shapes_write_dataset(path, 1, 1, 99, NULL, &err) == -1);
    CHECK_MESSAGE(c, err, "captions.txt/sub");
    remove_tree(dir);
}

int main(void) {
    CheckCounts c = {0};
    test_determinism(&c);
    test_scenes_match_captions(&c);
    test_options(&c);
    test_cell_masks(&c);
    test_dataset_writer(&c);
    return check_summary(&c);
}
