#include "model_path.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef CAPTION_SOURCE_ASSETS
#define CAPTION_SOURCE_ASSETS "assets"
#endif
#ifndef CAPTION_INSTALLED_ASSETS
#define CAPTION_INSTALLED_ASSETS "/usr/local/share/caption"
#endif

static const char MODEL_SUFFIX[] = "-model.safetensors";
static const char ENSEMBLE_SUFFIX[] = "-ensemble.txt";
static const char *const FOLDERS[2] = {CAPTION_SOURCE_ASSETS, CAPTION_INSTALLED_ASSETS};

/* Candidate i (0..2) of model `name` into buffer; returns 0 when it does not apply. */
static int candidate(const char *name, int i, char *buffer, size_t size) {
    const char *env = getenv("CAPTION_MODEL");
    if (i == 0 && (!env || !*env || strcmp(name, "default") != 0)) return 0;
    int written = i == 0 ? snprintf(buffer, size, "%s", env)
                         : snprintf(buffer, size, "%s/%s%s", FOLDERS[i - 1], name, MODEL_SUFFIX);
    return written > 0 && (size_t)written < size;
}

static int has_name_characters(const char *text) {
    if (!*text || strlen(text) > 64) return 0;
    for (const char *p = text; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) return 0;
    return 1;
}

/* The first line of file that is neither blank nor a '#' comment, without
 * surrounding white space, into line; 0 when there is none. */
static int first_content_line(FILE *file, char *line, size_t size) {
    while (fgets(line, (int)size, file)) {
        char *start = line + strspn(line, " \t\r\n"), *end = start + strlen(start);
        while (end > start && strchr(" \t\r\n", end[-1])) end--;
        *end = '\0';
        if (*start && *start != '#') {
            memmove(line, start, (size_t)(end - start) + 1);
            return 1;
        }
    }
    return 0;
}

/* Each member name of an ensemble file's list, as folder/NAME-model.safetensors,
 * joined with commas into buffer. */
static int join_bundled_members(const char *file_path, const char *folder, const char *list, char *buffer,
                                size_t size, Error *err) {
    size_t used = 0;
    for (const char *cursor = list; cursor;) {
        char member[128], path[4096];
        if (model_path_list_next(&cursor, member, sizeof member) != 0 || !has_name_characters(member))
            return error_set(err, "%s: '%s' is not a list of bundled model names separated by single commas "
                                  "(lower-case letters, digits and '-'), e.g. transformer,deep-transformer",
                             file_path, list);
        snprintf(path, sizeof path, "%s/%s%s", folder, member, MODEL_SUFFIX);
        if (access(path, R_OK) != 0)
            return error_set(err, "%s: its model '%s' is not bundled (no readable %s); reinstall the models, "
                                  "or pass the ensemble's files as --model A,B",
                             file_path, member, path);
        int written = snprintf(buffer + used, size - used, "%s%s", used ? "," : "", path);
        if (written < 0 || (size_t)written >= size - used)
            return error_set(err, "%s: the members' paths are longer than %zu bytes together", file_path, size - 1);
        used += (size_t)written;
    }
    return 0;
}

/* A bundled ensemble, folder/NAME-ensemble.txt: 1 with its members' paths
 * joined by commas in buffer, 0 when the folder has none, -1 (err) when the
 * file is unreadable or malformed or names a model the folder lacks. */
static int bundled_ensemble(const char *folder, const char *name, char *buffer, size_t size, Error *err) {
    char file_path[4096], list[1024];
    int written = snprintf(file_path, sizeof file_path, "%s/%s%s", folder, name, ENSEMBLE_SUFFIX);
    if (written < 0 || (size_t)written >= sizeof file_path || access(file_path, F_OK) != 0) return 0;
    FILE *file = fopen(file_path, "r");
    if (!file) return error_set(err, "%s: cannot be read", file_path);
    int found = first_content_line(file, list, sizeof list);
    fclose(file);
    if (!found) return error_set(err, "%s: holds no list of models (one line: names separated by commas)", file_path);
    return join_bundled_members(file_path, folder, list, buffer, size, err) == 0 ? 1 : -1;
}

const char *model_path_named(const char *name, char *buffer, size_t size, Error *err) {
    for (int i = 0; i < 3; i++) {
        if (candidate(name, i, buffer, size) && access(buffer, R_OK) == 0) return buffer;
        if (i > 0) {
            int ensemble = bundled_ensemble(FOLDERS[i - 1], name, buffer, size, err);
            if (ensemble != 0) return ensemble > 0 ? buffer : NULL;
        }
    }
    return NULL;
}

const char *model_path_default(char *buffer, size_t size) {
    return model_path_named("default", buffer, size, &(Error){0});
}

int model_path_is_name(const char *text) { return has_name_characters(text) && access(text, F_OK) != 0; }

int model_path_is_list(const char *text) { return text && strchr(text, ',') && access(text, F_OK) != 0; }

int model_path_list_next(const char **cursor, char *out, size_t size) {
    const char *start = *cursor, *comma = strchr(start, ',');
    size_t length = comma ? (size_t)(comma - start) : strlen(start);
    if (length == 0 || length >= size) return -1;
    memcpy(out, start, length);
    out[length] = '\0';
    *cursor = comma ? comma + 1 : NULL;
    return 0;
}

/* An ensemble's members resolved one by one, joined with commas into buffer. */
static const char *resolve_list(const char *value, char *buffer, size_t size, Error *err) {
    size_t used = 0;
    for (const char *cursor = value; cursor;) {
        char member[4096], found[4096];
        if (model_path_list_next(&cursor, member, sizeof member) != 0) {
            error_set(err, "%s: an ensemble is models (files or bundled names) separated by single commas", value);
            return NULL;
        }
        const char *path = model_path_resolve(member, found, sizeof found, err);
        if (!path) {
            error_prefix(err, "%s", value);
            return NULL;
        }
        int written = snprintf(buffer + used, size - used, "%s%s", used ? "," : "", path);
        if (written < 0 || (size_t)written >= size - used) {
            error_set(err, "%s: the ensemble's paths are longer than %zu bytes together", value, size - 1);
            return NULL;
        }
        used += (size_t)written;
    }
    return buffer;
}

const char *model_path_resolve(const char *value, char *buffer, size_t size, Error *err) {
    if (model_path_is_list(value)) return resolve_list(value, buffer, size, err);
    if (value && !model_path_is_name(value)) return value;
    Error broken = {{0}};
    const char *found = model_path_named(value ? value : "default", buffer, size, &broken);
    if (found) return found;
    if (broken.message[0]) {
        if (err) *err = broken;
        error_prefix(err, "%s", value ? value : "default");
        return NULL;
    }
    char names[512];
    model_path_list_names(names, sizeof names);
    if (value) {
        error_set(err, "%s: no such file, and no bundled model of that name (bundled: %s); "
                       "pass a .safetensors file or one of those names", value, *names ? names : "none found");
        return NULL;
    }
    error_set(err, "no default model found: $CAPTION_MODEL is not set to a readable file, and neither %s nor %s "
                   "holds default-model.safetensors or default-ensemble.txt; pass a model file, or set $CAPTION_MODEL to one",
              FOLDERS[0], FOLDERS[1]);
    return NULL;
}

/* The length of the bundled-model suffix name ends with (a model's or an
 * ensemble's, after at least one character), or 0. */
static size_t bundled_suffix_length(const char *name) {
    static const char *const suffixes[] = {MODEL_SUFFIX, ENSEMBLE_SUFFIX};
    size_t length = strlen(name);
    for (size_t i = 0; i < 2; i++) {
        size_t suffix = strlen(suffixes[i]);
        if (length > suffix && strcmp(name + length - suffix, suffixes[i]) == 0) return suffix;
    }
    return 0;
}

static int compare_names(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

void model_path_list_names(char *buffer, size_t size) {
    char names[32][65];
    int count = 0;
    for (int f = 0; f < 2; f++) {
        DIR *dir = opendir(FOLDERS[f]);
        struct dirent *entry;
        while (dir && (entry = readdir(dir)) != NULL && count < 32) {
            size_t length = strlen(entry->d_name), suffix = bundled_suffix_length(entry->d_name);
            if (!suffix || length - suffix > 64) continue;
            snprintf(names[count], sizeof names[count], "%.*s", (int)(length - suffix), entry->d_name);
            int seen = 0;
            for (int k = 0; k < count; k++) seen |= strcmp(names[k], names[count]) == 0;
            count += !seen;
        }
        if (dir) closedir(dir);
    }
    qsort(names, (size_t)count, sizeof names[0], compare_names);
    size_t used = 0;
    buffer[0] = '\0';
    for (int k = 0; k < count && used < size; k++)
        used += (size_t)snprintf(buffer + used, size - used, "%s%s", k ? ", " : "", names[k]);
}

void model_path_describe(char *out, size_t size) {
    static const char *const labels[] = {"$CAPTION_MODEL", "source tree", "install prefix"};
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < 3 && used < size; i++) {
        char path[4096];
        int applies = candidate("default", i, path, sizeof path);
        /* A folder's default may be an ensemble; its model file would win. */
        if (applies && i > 0 && access(path, R_OK) != 0) {
            char ensemble[4096];
            int written = snprintf(ensemble, sizeof ensemble, "%s/default%s", FOLDERS[i - 1], ENSEMBLE_SUFFIX);
            if (written > 0 && (size_t)written < sizeof ensemble && access(ensemble, F_OK) == 0)
                memcpy(path, ensemble, (size_t)written + 1);
        }
        used += (size_t)snprintf(out + used, size - used, "    %-15s %s%s\n", labels[i], applies ? path : "(not set)",
                                 !applies ? "" : access(path, R_OK) == 0 ? "  [found]" : "  [missing]");
    }
    char names[512];
    model_path_list_names(names, sizeof names);
    if (used < size)
        snprintf(out + used, size - used, "bundled models (--model NAME, as NAME-model.safetensors in those folders, or NAME-ensemble.txt "
                 "listing bundled models to decode with together): %s\n",
                 *names ? names : "none found");
}
