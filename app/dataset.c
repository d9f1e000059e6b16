#include "dataset.h"

#include <errno.h>
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

static int load_flickr_folder(Dataset *d, const char *root, const char *split, Error *err) {
    char *captions = join_path(root, "captions.txt"), *images = join_path(root, "images");
    size_t name_size = strlen(split) + 5;
    char *list_name = malloc(name_size);
    if (list_name) snprintf(list_name, name_size, "%s.txt", split);
    char *list = list_name ? join_path(root, list_name) : NULL;
    CaptionSet refs;
    caption_set_init(&refs);
    int status = captions && images && list ? 0 : error_set(err, "out of memory");
    if (status == 0) status = caption_sets_read_flickr_tokens(captions, &refs, err);
    if (status == 0) status = read_split_list(list, &refs, d, images, err);
    caption_set_free(&refs);
    free(captions);
    free(images);
    free(list_name);
    free(list);
    return status;
}

static int load_json(Dataset *d, const char *path, const char *image_dir, const char *split, Error *err) {
    CaptionSet refs;
    caption_set_init(&refs);
    int status = caption_sets_read_refs(path, &refs, err);
    if (status == 0 && refs.format == CAPTION_FORMAT_KARPATHY)
        status = caption_set_keep_split(&refs, strcmp(split, "dev") == 0 ? "val" : split, err);
    char *dir = NULL;
    if (status == 0) {
        char *parent = parent_dir(path);
        dir = image_dir ? strdup(image_dir) : parent ? join_path(parent, "images") : NULL;
        free(parent);
        if (!dir) status = error_set(err, "out of memory");
        else if (!is_directory(dir))
            status = error_set(err, "image folder %s does not exist; pass it with --images DIR", dir);
    }
    if (status == 0) {
        d->images = calloc(refs.image_count ? refs.image_count : 1, sizeof *d->images);
        if (!d->images) status = error_set(err, "out of memory");
    }
    for (size_t i = 0; status == 0 && i < refs.image_count; i++) status = add_image(d, &refs.images[i], dir, err);
    free(dir);
    caption_set_free(&refs);
    return status;
}

int dataset_load(Dataset *d, const char *source, const char *image_dir, const char *split, Error *err) {
    memset(d, 0, sizeof *d);
    d->source = strdup(source);
    if (!d->source) return error_set(err, "out of memory");
    struct stat st;
    if (stat(source, &st) != 0) {
        error_set(err, "dataset %s: %s (expected a Flickr8k-layout folder or a Karpathy / COCO captions JSON)",
                  source, strerror(errno));
        dataset_free(d);
        return -1;
    }
    int status = is_directory(source) ? load_flickr_folder(d, source, split, err)
                                      : load_json(d, source, image_dir, split, err);
    if (status != 0) dataset_free(d);
    return status;
}
