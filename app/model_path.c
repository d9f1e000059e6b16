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
static const char *const FOLDERS[2] = {CAPTION_SOURCE_ASSETS, CAPTION_INSTALLED_ASSETS};

/* Candidate i (0..2) of model `name` into buffer; returns 0 when it does not apply. */
static int candidate(const char *name, int i, char *buffer, size_t size) {
    const char *env = getenv("CAPTION_MODEL");
    if (i == 0 && (!env || !*env || strcmp(name, "default") != 0)) return 0;
    int written = i == 0 ? snprintf(buffer, size, "%s", env)
                         : snprintf(buffer, size, "%s/%s%s", FOLDERS[i - 1], name, MODEL_SUFFIX);
    return written > 0 && (size_t)written < size;
}

const char *model_path_named(const char *name, char *buffer, size_t size) {
    for (int i = 0; i < 3; i++)
        if (candidate(name, i, buffer, size) && access(buffer, R_OK) == 0) return buffer;
    return NULL;
}

const char *model_path_default(char *buffer, size_t size) { return model_path_named("default", buffer, size); }

int model_path_is_name(const char *text) {
    if (!*text || strlen(text) > 64 || access(text, F_OK) == 0) return 0;
    for (const char *p = text; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) return 0;
    return 1;
}

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
    const char *found = model_path_named(value ? value : "default", buffer, size);
    if (found) return found;
    char names[512];
    model_path_list_names(names, sizeof names);
    if (value) {
        error_set(err, "%s: no such file, and no bundled model of that name (bundled: %s); "
                       "pass a .safetensors file or one of those names", value, *names ? names : "none found");
        return NULL;
    }
    error_set(err, "no default model found: $CAPTION_MODEL is not set to a readable file, and neither %s nor %s "
                   "holds default-model.safetensors; pass a model file, or set $CAPTION_MODEL to one",
              FOLDERS[0], FOLDERS[1]);
    return NULL;
}

static int compare_names(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

void model_path_list_names(char *buffer, size_t size) {
    char names[32][65];
    int count = 0;
    for (int f = 0; f < 2; f++) {
        DIR *dir = opendir(FOLDERS[f]);
        struct dirent *entry;
        while (dir && (entry = readdir(dir)) != NULL && count < 32) {
            size_t length = strlen(entry->d_name), suffix = sizeof MODEL_SUFFIX - 1;
            if (length <= suffix || length - suffix > 64 || strcmp(entry->d_name + length - suffix, MODEL_SUFFIX) != 0)
                continue;
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
        used += (size_t)snprintf(out + used, size - used, "    %-15s %s%s\n", labels[i], applies ? path : "(not set)",
                                 !applies ? "" : access(path, R_OK) == 0 ? "  [found]" : "  [missing]");
    }
    char names[512];
    model_path_list_names(names, sizeof names);
    if (used < size)
        snprintf(out + used, size - used, "bundled models (--model NAME, as NAME-model.safetensors in those folders): %s\n",
                 *names ? names : "none found");
}
