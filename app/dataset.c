#include "dataset.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "caption_sets.h"
#include "metrics.h"

static int is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *join_path(const char *dir, const char *name) {
    size_t size = strlen(dir) + strlen(name) + 2;
    char *path = malloc(size);
    if (path) snprintf(path, size, "%s/%s", dir, name);
    return path;
}

static char *parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    size_t length = slash == path ? 1 : (size_t)(slash - path);
    char *dir = malloc(length + 1);
    if (dir) {
        memcpy(dir, path, length);
        dir[length] = '\0';
    }
    return dir;
}

/* Hands the memory freed after parsing (a 120k-image JSON's tree, ~1 GB)
 * back to the system: glibc's malloc keeps freed small blocks for reuse, so
 * without this the peak stays resident for the whole run. */
static void release_free_memory(void) {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

void dataset_free(Dataset *d) {
    for (int i = 0; i < d->count; i++) {
        DatasetImage *image = &d->images[i];
        for (int c = 0; c < image->caption_count; c++) free(image->captions[c]);
        free(image->captions);
        free(image->name);
        free(image->path);
    }
    free(d->images);
    free(d->source);
    memset(d, 0, sizeof *d);
}

static int add_image(Dataset *d, const ImageCaptions *entry, const char *image_dir, Error *err) {
    DatasetImage *image = &d->images[d->count];
    memset(image, 0, sizeof *image);
    image->name = strdup(entry->image);
    image->path = join_path(image_dir, entry->image);
    image->captions = calloc(entry->caption_count ? entry->caption_count : 1, sizeof(char *));
    if (!image->name || !image->path || !image->captions) return error_set(err, "out of memory reading %s", d->source);
    d->count++;
    for (size_t c = 0; c < entry->caption_count; c++) {
        image->captions[c] = metrics_tokenize(entry->captions[c], err);
        if (!image->captions[c]) return -1;
        image->caption_count++;
    }
    return 0;
}

/* Reads a split list: one image name per line; blank lines skipped. */
static int read_split_list(const char *path, const CaptionSet *refs, Dataset *d, const char *image_dir, Error *err) {
    FILE *f = fopen(path, "r");
    if (!f) return error_set(err, "%s: %s (the split list of the dataset)", path, strerror(errno));
    char line[4096];
    int line_number = 0, status = 0;
    size_t capacity = refs->image_count;
    d->images = calloc(capacity ? capacity : 1, sizeof *d->images);
    if (!d->images) status = error_set(err, "out of memory");
    while (status == 0 && fgets(line, sizeof line, f)) {
        line_number++;
        size_t length = strcspn(line, "\r\n");
        line[length] = '\0';
        if (length == 0) continue;
        if (strchr(line, '\t') || strchr(line, ' ')) {
            status = error_set(err, "%s:%d: expected one image file name per line, got \"%s\"", path, line_number, line);
            break;
        }
        const ImageCaptions *entry = caption_set_find(refs, line);
        if (!entry) {
            status = error_set(err, "%s:%d: image %s has no captions in %s", path, line_number, line, refs->path);
        } else if ((size_t)d->count >= capacity) {
            status = error_set(err, "%s:%d: image %s is listed twice", path, line_number, line);
        } else {
            status = add_image(d, entry, image_dir, err);
        }
    }
    fclose(f);
    if (status == 0 && d->count == 0) status = error_set(err, "%s: lists no images", path);
    return status;
}

/* The captions of the whole dataset, parsed once for every split, and the
 * image folder. */
static int read_refs(const char *source, const char *image_dir, int folder, CaptionSet *refs, char **dir,
                     Error *err) {
    if (folder) {
        char *captions = join_path(source, "captions.txt");
        *dir = join_path(source, "images");
        int status = captions && *dir ? caption_sets_read_flickr_tokens(captions, refs, err)
                                      : error_set(err, "out of memory");
        free(captions);
        return status;
    }
    if (caption_sets_read_refs(source, refs, err) != 0) return -1;
    char *parent = parent_dir(source);
    *dir = image_dir ? strdup(image_dir) : parent ? join_path(parent, "images") : NULL;
    free(parent);
    if (!*dir) return error_set(err, "out of memory");
    if (!is_directory(*dir)) return error_set(err, "image folder %s does not exist; pass it with --images DIR", *dir);
    return 0;
}

/* The images of one split: a Flickr8k folder's `<split>.txt`, a Karpathy
 * JSON's images of that split ("dev" is its "val"), or a COCO JSON's all. */
static int fill_split(Dataset *d, const CaptionSet *refs, const char *source, const char *dir, int folder,
                      const char *split, Error *err) {
    if (folder) {
        size_t name_size = strlen(split) + 5;
        char *list_name = malloc(name_size);
        if (list_name) snprintf(list_name, name_size, "%s.txt", split);
        char *list = list_name ? join_path(source, list_name) : NULL;
        int status = list ? read_split_list(list, refs, d, dir, err) : error_set(err, "out of memory");
        free(list_name);
        free(list);
        return status;
    }
    const char *wanted = strcmp(split, "dev") == 0 ? "val" : split;
    int karpathy = refs->format == CAPTION_FORMAT_KARPATHY;
    d->images = calloc(refs->image_count ? refs->image_count : 1, sizeof *d->images);
    if (!d->images) return error_set(err, "out of memory");
    for (size_t i = 0; i < refs->image_count; i++) {
        const ImageCaptions *image = &refs->images[i];
        if (karpathy && !(image->split && strcmp(image->split, wanted) == 0)) continue;
        if (add_image(d, image, dir, err) != 0) return -1;
    }
    if (karpathy && d->count == 0) return error_set(err, "%s: no image is in split '%s'", source, wanted);
    return 0;
}

int dataset_load_splits(Dataset *datasets, const char *const *splits, int count, const char *source,
                        const char *image_dir, Error *err) {
    for (int k = 0; k < count; k++) memset(&datasets[k], 0, sizeof datasets[k]);
    struct stat st;
    if (stat(source, &st) != 0)
        return error_set(err, "dataset %s: %s (expected a Flickr8k-layout folder or a Karpathy / COCO captions JSON)",
                         source, strerror(errno));
    int folder = is_directory(source);
    CaptionSet refs;
    caption_set_init(&refs);
    char *dir = NULL;
    int status = read_refs(source, image_dir, folder, &refs, &dir, err);
    for (int k = 0; status == 0 && k < count; k++) {
        datasets[k].source = strdup(source);
        status = datasets[k].source ? fill_split(&datasets[k], &refs, source, dir, folder, splits[k], err)
                                    : error_set(err, "out of memory");
    }
    free(dir);
    caption_set_free(&refs);
    release_free_memory();
    if (status != 0)
        for (int k = 0; k < count; k++) dataset_free(&datasets[k]);
    return status;
}

int dataset_load(Dataset *d, const char *source, const char *image_dir, const char *split, Error *err) {
    return dataset_load_splits(d, &split, 1, source, image_dir, err);
}
