#include "caption_sets.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collections.h"
#include "json_utf8.h"

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */


static uint64_t hash_string(const char *text) { return hash_bytes(text, strlen(text)); }

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Makes text[0..*length) (with room for a NUL after it) a C string: the
 * UTF-8 byte order mark removed, a NUL byte inside refused. */
static int finish_text(const char *name, char *text, size_t *length, Error *err) {
    text[*length] = '\0';
    if (*length >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        memmove(text, text + 3, *length - 2);
        *length -= 3;
    }
    if (memchr(text, '\0', *length)) return error_set(err, "%s: contains a NUL byte; is it a text file?", name);
    return 0;
}

/* Far above any caption file (COCO's largest is 150 MB): reading stops
 * there, so that a device such as /dev/zero cannot fill the memory. */
enum { MAX_TEXT_BYTES = 1 << 30 };

/* Reads the whole file as text (see finish_text). */
static int read_whole_file(const char *path, char **data, size_t *size, Error *err) {
    FILE *file = fopen(path, "rb");
    if (!file) return error_set(err, "cannot open %s: %s", path, strerror(errno));
    char *buffer = NULL;
    size_t length = 0, capacity = 0;
    for (;;) {
        if (length > MAX_TEXT_BYTES) {
            free(buffer);
            fclose(file);
            return error_set(err, "%s: more than %d MiB; not a caption file", path, MAX_TEXT_BYTES >> 20);
        }
        if (ARRAY_RESERVE(buffer, capacity, length + 65536 + 1) < 0) {
            free(buffer);
            fclose(file);
            return error_set(err, "out of memory reading %s", path);
        }
        size_t got = fread(buffer + length, 1, capacity - length - 1, file);
        length += got;
        if (got == 0) break;
    }
    int failed = ferror(file);
    fclose(file);
    if (failed) {
        free(buffer);
        return error_set(err, "cannot read %s", path);
    }
    if (finish_text(path, buffer, &length, err) < 0) {
        free(buffer);
        return -1;
    }
    *data = buffer;
    *size = length;
    return 0;
}

/* The same for bytes in memory (copied: the readers cut lines in place). */
static int copy_text(const char *name, const char *bytes, size_t size, char **data, size_t *length, Error *err) {
    char *buffer = malloc(size + 1);
    if (!buffer) return error_set(err, "out of memory reading %s", name);
    if (size) memcpy(buffer, bytes, size);
    *length = size;
    if (finish_text(name, buffer, length, err) < 0) {
        free(buffer);
        return -1;
    }
    *data = buffer;
    return 0;
}

static char first_non_space(const char *text) {
    while (*text && isspace((unsigned char)*text)) text++;
    return *text;
}

static bool is_blank(const char *line) { return first_non_space(line) == '\0'; }

/* Iterates over the lines of a NUL-terminated buffer, cutting it in place:
 * each call returns the next line without its '\n' or "\r\n", or NULL. */
typedef struct {
    char *next;
    size_t number;
} LineCursor;

static char *next_line(LineCursor *cursor) {
    if (!cursor->next) return NULL;
    char *line = cursor->next;
    char *newline = strchr(line, '\n');
    if (newline) {
        *newline = '\0';
        cursor->next = newline[1] ? newline + 1 : NULL;
    } else {
        cursor->next = NULL;
        if (!*line) return NULL;
    }
    size_t length = strlen(line);
    if (length && line[length - 1] == '\r') line[length - 1] = '\0';
    cursor->number++;
    return line;
}

/* Trims spaces at both ends, in place. */
static char *trim(char *text) {
    while (isspace((unsigned char)*text)) text++;
    size_t length = strlen(text);
    while (length && isspace((unsigned char)text[length - 1])) text[--length] = '\0';
    return text;
}

/* ------------------------------------------------------------------------ */
/* CaptionSet                                                               */
/* ------------------------------------------------------------------------ */

void caption_set_init(CaptionSet *set) { memset(set, 0, sizeof *set); }

static void image_captions_free(ImageCaptions *image) {
    free(image->image);
    for (size_t c = 0; c < image->caption_count; c++) free(image->captions[c]);
    free(image->captions);
    free(image->split);
}

void caption_set_free(CaptionSet *set) {
    if (!set) return;
    for (size_t i = 0; i < set->image_count; i++) image_captions_free(&set->images[i]);
    free(set->images);
    free(set->slots);
    free(set->path);
    caption_set_init(set);
}

/* Slot of the image in the name index: the one holding it, or the empty one
 * where it belongs. */
static size_t name_slot(const CaptionSet *set, const size_t *slots, size_t capacity,
                        const char *image) {
    size_t mask = capacity - 1;
    size_t slot = hash_string(image) & mask;
    while (slots[slot] && strcmp(set->images[slots[slot] - 1].image, image) != 0)
        slot = (slot + 1) & mask;
    return slot;
}

static int rebuild_index(CaptionSet *set, size_t capacity) {
    size_t *slots = calloc(capacity, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < set->image_count; i++)
        slots[name_slot(set, slots, capacity, set->images[i].image)] = i + 1;
    free(set->slots);
    set->slots = slots;
    set->slot_capacity = capacity;
    return 0;
}

static long find_index(const CaptionSet *set, const char *image) {
    if (!set->slot_capacity) return -1;
    size_t slot = name_slot(set, set->slots, set->slot_capacity, image);
    return set->slots[slot] ? (long)(set->slots[slot] - 1) : -1;
}

const ImageCaptions *caption_set_find(const CaptionSet *set, const char *image) {
    long index = find_index(set, image);
    return index < 0 ? NULL : &set->images[index];
}

/* Adds a new image with no captions; returns its index or -1. */
static long add_image(CaptionSet *set, const char *image, size_t where, Error *err) {
    if (2 * (set->image_count + 1) > set->slot_capacity &&
        rebuild_index(set, set->slot_capacity ? 2 * set->slot_capacity : 1024) < 0)
        return error_set(err, "out of memory indexing images of %s", set->path);
    if (ARRAY_RESERVE(set->images, set->image_capacity, set->image_count + 1) < 0)
        return error_set(err, "out of memory reading %s", set->path);
    ImageCaptions *entry = &set->images[set->image_count];
    memset(entry, 0, sizeof *entry);
    entry->image = strdup(image);
    if (!entry->image) return error_set(err, "out of memory reading %s", set->path);
    entry->where = where;
    entry->coco_id = -1;
    set->slots[name_slot(set, set->slots, set->slot_capacity, image)] = set->image_count + 1;
    return (long)set->image_count++;
}

static int add_caption(CaptionSet *set, size_t index, const char *caption, Error *err) {
    ImageCaptions *image = &set->images[index];
    if (ARRAY_RESERVE(image->captions, image->caption_capacity, image->caption_count + 1) < 0)
        return error_set(err, "out of memory reading %s", set->path);
    char *copy = strdup(caption);
    if (!copy) return error_set(err, "out of memory reading %s", set->path);
    image->captions[image->caption_count++] = copy;
    return 0;
}

int caption_set_add(CaptionSet *set, const char *image, const char *caption, size_t where,
                    Error *err) {
    long index = find_index(set, image);
    if (index < 0) index = add_image(set, image, where, err);
    if (index < 0) return -1;
    return add_caption(set, (size_t)index, caption, err);
}

size_t caption_set_caption_count(const CaptionSet *set) {
    size_t total = 0;
    for (size_t i = 0; i < set->image_count; i++) total += set->images[i].caption_count;
    return total;
}

void caption_set_describe(const CaptionSet *set, size_t where, char *buffer, size_t size) {
    const char *path = set->path ? set->path : "(captions)";
    /* JSON entries are named as JSON paths, 0-based like the read errors. */
    if (set->format == CAPTION_FORMAT_COCO || set->format == CAPTION_FORMAT_KARPATHY)
        snprintf(buffer, size, "%s: images[%zu]", path, where - 1);
    else if (set->format == CAPTION_FORMAT_COCO_RESULTS)
        snprintf(buffer, size, "%s: [%zu]", path, where - 1);
    else
        snprintf(buffer, size, "%s:%zu", path, where);
}

static int start_set(CaptionSet *set, const char *path, CaptionFormat format, Error *err) {
    if (set->image_count || set->path)
        return error_set(err, "reading %s: the caption set is not empty", path);
    set->path = strdup(path);
    if (!set->path) return error_set(err, "out of memory reading %s", path);
    set->format = format;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* JSON helpers                                                             */
/* ------------------------------------------------------------------------ */

static size_t line_of(const char *text, const char *position) {
    size_t line = 1;
    for (const char *p = text; p < position && *p; p++)
        if (*p == '\n') line++;
    return line;
}

static cJSON *parse_json(const char *path, const char *text, size_t length, size_t first_line,
                         Error *err) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, length, &end, false);
    if (!root) {
        error_set(err, "%s:%zu: invalid JSON", path,
                  first_line - 1 + line_of(text, end ? end : text));
        return NULL;
    }
    if (end && first_non_space(end) != '\0') {
        error_set(err, "%s:%zu: unexpected text after the JSON value", path,
                  first_line - 1 + line_of(text, end));
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

static const char *json_string(const cJSON *object, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* Reads an integral JSON number; false if absent or not an integer. */
static bool json_integer(const cJSON *item, long long *value) {
    if (!cJSON_IsNumber(item)) return false;
    double number = item->valuedouble;
    if (number != floor(number) || fabs(number) > 9007199254740992.0) return false;
    *value = (long long)number;
    return true;
}

/* ------------------------------------------------------------------------ */
/* References                                                               */
/* ------------------------------------------------------------------------ */

/* "dir/img.jpg#3" -> "img.jpg": the "#N" caption number is dropped. */
static void flickr_image_name(char *field) {
    char *hash = strrchr(field, '#');
    if (hash && hash[1]) {
        bool digits = true;
        for (char *p = hash + 1; *p; p++)
            if (!isdigit((unsigned char)*p)) digits = false;
        if (digits) *hash = '\0';
    }
}

static int read_flickr_lines(const char *path, char *text, CaptionSet *refs, Error *err) {
    LineCursor cursor = {text, 0};
    for (char *line; (line = next_line(&cursor));) {
        if (is_blank(line)) continue;
        char *tab = strchr(line, '\t');
        if (!tab)
            return error_set(err, "%s:%zu: expected 'image.jpg#N<TAB>caption', found no tab",
                             path, cursor.number);
        *tab = '\0';
        char *field = trim(line);
        flickr_image_name(field);
        const char *image = base_name(field);
        char *caption = trim(tab + 1);
        if (!*image) return error_set(err, "%s:%zu: empty image name", path, cursor.number);
        if (!*caption)
            return error_set(err, "%s:%zu: empty caption for image %s", path, cursor.number, image);
        if (caption_set_add(refs, image, caption, cursor.number, err) < 0) return -1;
    }
    if (refs->image_count == 0) return error_set(err, "%s: no captions found", path);
    return 0;
}

typedef struct {
    long long id;
    size_t index;
} IdIndex;

static int compare_id(const void *a, const void *b) {
    long long x = ((const IdIndex *)a)->id, y = ((const IdIndex *)b)->id;
    return (x > y) - (x < y);
}

static const IdIndex *find_id(const IdIndex *table, size_t count, long long id) {
    IdIndex key = {id, 0};
    if (count == 0) return NULL; /* table may then be NULL, which bsearch must not get */
    return bsearch(&key, table, count, sizeof *table, compare_id);
}

static int read_coco_refs(const char *path, const cJSON *root, CaptionSet *refs, Error *err) {
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(root, "images");
    const cJSON *annotations = cJSON_GetObjectItemCaseSensitive(root, "annotations");
    if (!cJSON_IsArray(images) || !cJSON_IsArray(annotations))
        return error_set(err, "%s: a COCO captions file needs \"images\" and \"annotations\" arrays",
                         path);
    size_t image_total = (size_t)cJSON_GetArraySize(images);
    IdIndex *ids = malloc((image_total ? image_total : 1) * sizeof *ids);
    if (!ids) return error_set(err, "out of memory reading %s", path);
    int rc = 0;
    size_t entry = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, images) {
        entry++;
        long long id;
        const char *file_name = json_string(item, "file_name");
        if (!json_integer(cJSON_GetObjectItemCaseSensitive(item, "id"), &id) || !file_name) {
            rc = error_set(err, "%s: images[%zu] needs an integer \"id\" and a string \"file_name\"",
                           path, entry - 1);
            break;
        }
        const char *name = base_name(file_name);
        if (find_index(refs, name) >= 0) {
            rc = error_set(err, "%s: images[%zu]: file name %s appears twice", path, entry - 1,
                           name);
            break;
        }
        long index = add_image(refs, name, entry, err);
        if (index < 0) {
            rc = -1;
            break;
        }
        refs->images[index].coco_id = id;
        ids[index] = (IdIndex){id, (size_t)index};
    }
    if (rc == 0) {
        qsort(ids, refs->image_count, sizeof *ids, compare_id);
        for (size_t i = 1; i < refs->image_count; i++)
            if (ids[i].id == ids[i - 1].id) {
                rc = error_set(err, "%s: image id %lld appears twice in \"images\"", path, ids[i].id);
                break;
            }
    }
    entry = 0;
    if (rc == 0) cJSON_ArrayForEach(item, annotations) {
        entry++;
        long long id;
        const char *caption = json_string(item, "caption");
        if (!json_integer(cJSON_GetObjectItemCaseSensitive(item, "image_id"), &id) || !caption) {
            rc = error_set(err,
                           "%s: annotations[%zu] needs an integer \"image_id\" and a string \"caption\"",
                           path, entry - 1);
            break;
        }
        const IdIndex *found = find_id(ids, refs->image_count, id);
        if (!found) {
            rc = error_set(err, "%s: annotations[%zu]: image_id %lld is not in \"images\"", path,
                           entry - 1, id);
            break;
        }
        if (add_caption(refs, found->index, caption, err) < 0) {
            rc = -1;
            break;
        }
    }
    free(ids);
    if (rc < 0) return -1;
    for (size_t i = 0; i < refs->image_count; i++)
        if (refs->images[i].caption_count == 0)
            return error_set(err, "%s: image %s (id %lld) has no caption in \"annotations\"", path,
                             refs->images[i].image, refs->images[i].coco_id);
    if (refs->image_count == 0) return error_set(err, "%s: no images", path);
    return 0;
}

/* A Karpathy sentence: "raw" text, or else its "tokens" joined by spaces. */
static int karpathy_sentence(const char *path, size_t image_entry, size_t sentence_entry,
                             const cJSON *sentence, char **caption, Error *err) {
    const char *raw = json_string(sentence, "raw");
    if (raw) {
        *caption = strdup(raw);
        return *caption ? 0 : error_set(err, "out of memory reading %s", path);
    }
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(sentence, "tokens");
    if (!cJSON_IsArray(tokens))
        return error_set(err, "%s: images[%zu].sentences[%zu] has neither \"raw\" nor \"tokens\"",
                         path, image_entry, sentence_entry);
    size_t length = 1;
    const cJSON *token;
    cJSON_ArrayForEach(token, tokens) {
        if (!cJSON_IsString(token))
            return error_set(err, "%s: images[%zu].sentences[%zu].tokens holds a non-string", path,
                             image_entry, sentence_entry);
        length += strlen(token->valuestring) + 1;
    }
    char *joined = malloc(length);
    if (!joined) return error_set(err, "out of memory reading %s", path);
    joined[0] = '\0';
    size_t used = 0;
    cJSON_ArrayForEach(token, tokens) {
        size_t n = strlen(token->valuestring);
        if (used) joined[used++] = ' ';
        memcpy(joined + used, token->valuestring, n + 1);
        used += n;
    }
    *caption = joined;
    return 0;
}

static int read_karpathy_refs(const char *path, const cJSON *root, CaptionSet *refs, Error *err) {
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(root, "images");
    size_t entry = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, images) {
        entry++;
        const char *file_name = json_string(item, "filename");
        const cJSON *sentences = cJSON_GetObjectItemCaseSensitive(item, "sentences");
        if (!file_name || !cJSON_IsArray(sentences))
            return error_set(err, "%s: images[%zu] needs a string \"filename\" and a \"sentences\" array",
                             path, entry - 1);
        const char *name = base_name(file_name);
        if (find_index(refs, name) >= 0)
            return error_set(err, "%s: images[%zu]: file name %s appears twice", path, entry - 1,
                             name);
        long index = add_image(refs, name, entry, err);
        if (index < 0) return -1;
        ImageCaptions *image = &refs->images[index];
        long long coco_id;
        if (json_integer(cJSON_GetObjectItemCaseSensitive(item, "cocoid"), &coco_id))
            image->coco_id = coco_id;
        const char *split = json_string(item, "split");
        if (split && !(image->split = strdup(split)))
            return error_set(err, "out of memory reading %s", path);
        size_t sentence_entry = 0;
        const cJSON *sentence;
        cJSON_ArrayForEach(sentence, sentences) {
            char *caption;
            if (karpathy_sentence(path, entry - 1, sentence_entry++, sentence, &caption, err) < 0)
                return -1;
            int rc = add_caption(refs, (size_t)index, caption, err);
            free(caption);
            if (rc < 0) return -1;
        }
        if (image->caption_count == 0)
            return error_set(err, "%s: images[%zu] (%s) has no sentences", path, entry - 1, name);
    }
    if (refs->image_count == 0) return error_set(err, "%s: no images", path);
    return 0;
}

int caption_sets_read_flickr_tokens(const char *path, CaptionSet *refs, Error *err) {
    char *text = NULL;
    size_t size = 0;
    if (start_set(refs, path, CAPTION_FORMAT_FLICKR_TOKENS, err) < 0) return -1;
    if (read_whole_file(path, &text, &size, err) < 0) return -1;
    int rc = read_flickr_lines(path, text, refs, err);
    free(text);
    return rc;
}

/* References from their text (format detected); path names them. */
static int read_refs_text(const char *path, char *text, size_t size, CaptionSet *refs, Error *err) {
    char first = first_non_space(text);
    int rc;
    if (first == '[') {
        rc = error_set(err, "%s: a JSON array is a results (hypothesis) file; references must be a "
                            "Flickr8k token file, COCO captions JSON or Karpathy-split JSON", path);
    } else if (first == '{') {
        cJSON *root = parse_json(path, text, size, 1, err);
        if (!root) {
            rc = -1;
        } else {
            const cJSON *images = cJSON_GetObjectItemCaseSensitive(root, "images");
            const cJSON *first_image = cJSON_IsArray(images) ? cJSON_GetArrayItem(images, 0) : NULL;
            if (cJSON_HasObjectItem(root, "annotations")) {
                rc = start_set(refs, path, CAPTION_FORMAT_COCO, err);
                if (rc == 0) rc = read_coco_refs(path, root, refs, err);
            } else if (first_image && cJSON_HasObjectItem(first_image, "sentences")) {
                rc = start_set(refs, path, CAPTION_FORMAT_KARPATHY, err);
                if (rc == 0) rc = read_karpathy_refs(path, root, refs, err);
            } else {
                rc = error_set(err, "%s: JSON is neither COCO captions (\"images\" and "
                                    "\"annotations\") nor Karpathy-split (\"images\" with "
                                    "\"sentences\")", path);
            }
            cJSON_Delete(root);
        }
    } else {
        rc = start_set(refs, path, CAPTION_FORMAT_FLICKR_TOKENS, err);
        if (rc == 0) rc = read_flickr_lines(path, text, refs, err);
    }
    return rc;
}

int caption_sets_read_refs(const char *path, CaptionSet *refs, Error *err) {
    char *text = NULL;
    size_t size = 0;
    if (read_whole_file(path, &text, &size, err) < 0) return -1;
    int rc = read_refs_text(path, text, size, refs, err);
    free(text);
    return rc;
}

int caption_sets_read_refs_memory(const char *data, size_t size, const char *name, CaptionSet *refs, Error *err) {
    char *text = NULL;
    size_t length = 0;
    const char *shown = name ? name : "<references in memory>";
    if (copy_text(shown, data, size, &text, &length, err) < 0) return -1;
    int rc = read_refs_text(shown, text, length, refs, err);
    free(text);
    return rc;
}

int caption_set_keep_split(CaptionSet *set, const char *split, Error *err) {
    if (set->format != CAPTION_FORMAT_KARPATHY)
        return error_set(err, "%s: only Karpathy-split JSON records splits; cannot select split '%s'",
                         set->path ? set->path : "captions", split);
    size_t kept = 0;
    for (size_t i = 0; i < set->image_count; i++) {
        ImageCaptions *image = &set->images[i];
        if (image->split && strcmp(image->split, split) == 0)
            set->images[kept++] = *image;
        else
            image_captions_free(image);
    }
    set->image_count = kept;
    if (rebuild_index(set, set->slot_capacity ? set->slot_capacity : 1024) < 0)
        return error_set(err, "out of memory indexing images of %s", set->path);
    if (kept == 0)
        return error_set(err, "%s: no image is in split '%s'", set->path, split);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Hypotheses                                                               */
/* ------------------------------------------------------------------------ */

static int add_hypothesis(CaptionSet *hyps, const char *image, const char *caption, size_t where,
                          Error *err) {
    const ImageCaptions *existing = caption_set_find(hyps, image);
    if (existing) {
        char here[600], before[600];
        caption_set_describe(hyps, where, here, sizeof here);
        caption_set_describe(hyps, existing->where, before, sizeof before);
        return error_set(err, "%s: second hypothesis for image %s (the first is at %s)", here,
                         image, before);
    }
    return caption_set_add(hyps, image, caption, where, err);
}

static int read_tsv_hyps(const char *path, char *text, CaptionSet *hyps, Error *err) {
    LineCursor cursor = {text, 0};
    for (char *line; (line = next_line(&cursor));) {
        if (is_blank(line)) continue;
        char *tab = strchr(line, '\t');
        if (!tab)
            return error_set(err, "%s:%zu: expected 'image<TAB>caption', found no tab", path,
                             cursor.number);
        *tab = '\0';
        const char *image = base_name(trim(line));
        if (!*image) return error_set(err, "%s:%zu: empty image name", path, cursor.number);
        if (add_hypothesis(hyps, image, trim(tab + 1), cursor.number, err) < 0) return -1;
    }
    return 0;
}

static int read_json_lines_hyps(const char *path, char *text, CaptionSet *hyps, Error *err) {
    LineCursor cursor = {text, 0};
    for (char *line; (line = next_line(&cursor));) {
        if (is_blank(line)) continue;
        cJSON *object = parse_json(path, line, strlen(line), cursor.number, err);
        if (!object) return -1;
        /* The exact name: path_bytes when `caption --json` had to write a
         * name that is not UTF-8 with U+FFFD in "path" (json_utf8.h). */
        char *image_path = json_record_path(object);
        const char *caption = json_string(object, "caption");
        int rc = 0;
        if (!cJSON_IsObject(object) || !image_path || !caption)
            rc = error_set(err, "%s:%zu: expected an object with string \"path\" and \"caption\"",
                           path, cursor.number);
        else if (!*base_name(image_path))
            rc = error_set(err, "%s:%zu: \"path\" names no file", path, cursor.number);
        else
            rc = add_hypothesis(hyps, base_name(image_path), caption, cursor.number, err);
        free(image_path);
        cJSON_Delete(object);
        if (rc < 0) return -1;
    }
    return 0;
}

/* Maps numeric COCO image ids to reference images, either through the
 * references' own COCO ids or through the digits of their file names. */
typedef struct {
    IdIndex *entries;
    size_t count;
    bool from_file_names;
} IdMap;

/* Appends the value of the digit run at [start, end) (if any) as a key. */
static void add_digit_key(IdIndex *entries, size_t *count, const char *start, const char *end,
                          size_t index) {
    if (end - start == 0 || end - start > 18) return;
    long long value = 0;
    for (const char *p = start; p < end; p++) value = value * 10 + (*p - '0');
    if (*count > 0 && entries[*count - 1].index == index && entries[*count - 1].id == value) return;
    entries[(*count)++] = (IdIndex){value, index};
}

#define AMBIGUOUS_INDEX SIZE_MAX

static int build_id_map(const CaptionSet *refs, IdMap *map, Error *err) {
    memset(map, 0, sizeof *map);
    if (!refs || refs->image_count == 0) return 0;
    size_t with_ids = 0;
    for (size_t i = 0; i < refs->image_count; i++) with_ids += refs->images[i].coco_id >= 0;
    map->from_file_names = with_ids == 0;
    map->entries = malloc(2 * refs->image_count * sizeof *map->entries);
    if (!map->entries) return error_set(err, "out of memory mapping COCO image ids");
    for (size_t i = 0; i < refs->image_count; i++) {
        const ImageCaptions *image = &refs->images[i];
        if (!map->from_file_names) {
            if (image->coco_id >= 0) map->entries[map->count++] = (IdIndex){image->coco_id, i};
            continue;
        }
        /* Leading and trailing digit runs of the name without extension. */
        const char *name = image->image;
        const char *dot = strrchr(name, '.');
        const char *stem_end = dot && dot != name ? dot : name + strlen(name);
        const char *p = name;
        while (p < stem_end && isdigit((unsigned char)*p)) p++;
        add_digit_key(map->entries, &map->count, name, p, i);
        const char *q = stem_end;
        while (q > name && isdigit((unsigned char)q[-1])) q--;
        add_digit_key(map->entries, &map->count, q, stem_end, i);
    }
    qsort(map->entries, map->count, sizeof *map->entries, compare_id);
    /* Collapse duplicate keys; a key naming two images is ambiguous. */
    size_t kept = 0;
    for (size_t i = 0; i < map->count; i++) {
        if (kept > 0 && map->entries[kept - 1].id == map->entries[i].id) {
            if (map->entries[kept - 1].index != map->entries[i].index)
                map->entries[kept - 1].index = AMBIGUOUS_INDEX;
            continue;
        }
        map->entries[kept++] = map->entries[i];
    }
    map->count = kept;
    return 0;
}

static int read_coco_results_hyps(const char *path, const char *text, size_t size,
                                  const CaptionSet *refs, CaptionSet *hyps, Error *err) {
    cJSON *root = parse_json(path, text, size, 1, err);
    if (!root) return -1;
    IdMap map;
    if (build_id_map(refs, &map, err) < 0) {
        cJSON_Delete(root);
        return -1;
    }
    int rc = 0;
    size_t entry = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        entry++;
        const cJSON *image_id = cJSON_GetObjectItemCaseSensitive(item, "image_id");
        const char *caption = json_string(item, "caption");
        long long id;
        char name[64];
        const char *image = NULL;
        if (cJSON_IsString(image_id)) {
            image = base_name(image_id->valuestring);
        } else if (json_integer(image_id, &id)) {
            const IdIndex *found = find_id(map.entries, map.count, id);
            if (found && found->index == AMBIGUOUS_INDEX) {
                rc = error_set(err, "%s: [%zu]: image_id %lld matches the file names of several "
                                    "reference images", path, entry - 1, id);
                break;
            }
            if (found) {
                image = refs->images[found->index].image;
            } else {
                snprintf(name, sizeof name, "image_id %lld", id);
                image = name;
            }
        }
        if (!image || !*image || !caption) {
            rc = error_set(err, "%s: [%zu] needs an \"image_id\" (integer or file name) and a "
                                "string \"caption\"", path, entry - 1);
            break;
        }
        if ((rc = add_hypothesis(hyps, image, caption, entry, err)) < 0) break;
    }
    free(map.entries);
    cJSON_Delete(root);
    return rc;
}

/* Hypotheses from their text (format detected); path names them. */
static int read_hyps_text(const char *path, char *text, size_t size, const CaptionSet *refs, CaptionSet *hyps,
                          Error *err) {
    char first = first_non_space(text);
    CaptionFormat format = first == '[' ? CAPTION_FORMAT_COCO_RESULTS
                           : first == '{' ? CAPTION_FORMAT_JSON_LINES
                                          : CAPTION_FORMAT_TSV;
    int rc = start_set(hyps, path, format, err);
    if (rc == 0) {
        if (format == CAPTION_FORMAT_COCO_RESULTS)
            rc = read_coco_results_hyps(path, text, size, refs, hyps, err);
        else if (format == CAPTION_FORMAT_JSON_LINES)
            rc = read_json_lines_hyps(path, text, hyps, err);
        else
            rc = read_tsv_hyps(path, text, hyps, err);
    }
    if (rc == 0 && hyps->image_count == 0) rc = error_set(err, "%s: no hypotheses found", path);
    return rc;
}

int caption_sets_read_hyps(const char *path, const CaptionSet *refs, CaptionSet *hyps,
                           Error *err) {
    char *text = NULL;
    size_t size = 0;
    if (read_whole_file(path, &text, &size, err) < 0) return -1;
    int rc = read_hyps_text(path, text, size, refs, hyps, err);
    free(text);
    return rc;
}

int caption_sets_read_hyps_memory(const char *data, size_t size, const char *name, const CaptionSet *refs,
                                  CaptionSet *hyps, Error *err) {
    char *text = NULL;
    size_t length = 0;
    const char *shown = name ? name : "<hypotheses in memory>";
    if (copy_text(shown, data, size, &text, &length, err) < 0) return -1;
    int rc = read_hyps_text(shown, text, length, refs, hyps, err);
    free(text);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Pairing                                                                  */
/* ------------------------------------------------------------------------ */

void caption_pairing_free(CaptionPairing *pairing) {
    if (!pairing) return;
    free(pairing->refs_index);
    free(pairing->hyps_index);
    memset(pairing, 0, sizeof *pairing);
}

int caption_sets_pair(const CaptionSet *refs, const CaptionSet *hyps, bool intersection,
                      CaptionPairing *pairing, Error *err) {
    memset(pairing, 0, sizeof *pairing);
    size_t capacity = refs->image_count ? refs->image_count : 1;
    pairing->refs_index = malloc(capacity * sizeof *pairing->refs_index);
    pairing->hyps_index = malloc(capacity * sizeof *pairing->hyps_index);
    if (!pairing->refs_index || !pairing->hyps_index) {
        caption_pairing_free(pairing);
        return error_set(err, "out of memory pairing captions");
    }
    const char *refs_path = refs->path ? refs->path : "references";
    const char *hyps_path = hyps->path ? hyps->path : "hypotheses";
    long first_missing = -1;
    for (size_t i = 0; i < refs->image_count; i++) {
        long h = find_index(hyps, refs->images[i].image);
        if (h < 0) {
            if (first_missing < 0) first_missing = (long)i;
            pairing->refs_without_hypothesis++;
            continue;
        }
        pairing->refs_index[pairing->count] = i;
        pairing->hyps_index[pairing->count] = (size_t)h;
        pairing->count++;
    }
    pairing->hyps_without_refs = hyps->image_count - pairing->count;
    int rc = 0;
    if (!intersection && first_missing >= 0) {
        const ImageCaptions *image = &refs->images[first_missing];
        char where[600], more[64] = "";
        caption_set_describe(refs, image->where, where, sizeof where);
        if (pairing->refs_without_hypothesis > 1)
            snprintf(more, sizeof more, " (and so do %zu more images)",
                     pairing->refs_without_hypothesis - 1);
        rc = error_set(err, "%s: image %s has references but no hypothesis in %s%s; "
                            "use --intersection to score only the images present in both",
                       where, image->image, hyps_path, more);
    } else if (!intersection && pairing->hyps_without_refs > 0) {
        for (size_t i = 0; i < hyps->image_count; i++) {
            const ImageCaptions *image = &hyps->images[i];
            if (find_index(refs, image->image) >= 0) continue;
            char where[600], more[64] = "";
            caption_set_describe(hyps, image->where, where, sizeof where);
            if (pairing->hyps_without_refs > 1)
                snprintf(more, sizeof more, " (and so do %zu more hypotheses)",
                         pairing->hyps_without_refs - 1);
            rc = error_set(err, "%s: hypothesis for image %s, which has no references in %s%s; "
                                "use --intersection to score only the images present in both",
                           where, image->image, refs_path, more);
            break;
        }
    } else if (pairing->count == 0) {
        rc = error_set(err, "no image of %s has a hypothesis in %s", refs_path, hyps_path);
    }
    if (rc < 0) caption_pairing_free(pairing);
    return rc;
}
