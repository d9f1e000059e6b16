#include "viewer_files.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "collections.h"
#include "image.h"

static int append(ImageList *list, const char *path, Error *err) {
    char *copy = strdup(path);
    if (!copy || ARRAY_RESERVE(list->paths, list->capacity, list->count + 1) != 0) {
        free(copy);
        return error_set(err, "out of memory");
    }
    list->paths[list->count++] = copy;
    return 0;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The folder's image paths, sorted, appended to list. */
static int add_folder(ImageList *list, const char *dir, Error *err) {
    DIR *d = opendir(dir);
    if (!d) return error_set(err, "%s: cannot read the folder: %s", dir, strerror(errno));
    size_t first = list->count;
    const char *sep = dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/";
    int status = 0;
    for (struct dirent *e; status == 0 && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        size_t size = strlen(dir) + strlen(e->d_name) + 2;
        char *path = malloc(size);
        if (!path) {
            status = error_set(err, "out of memory");
            break;
        }
        snprintf(path, size, "%s%s%s", dir, sep, e->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && image_is_image_file(path))
            status = append(list, path, err);
        free(path);
    }
    closedir(d);
    if (status != 0) return -1;
    if (list->count > first) /* paths may be NULL when nothing was found */
        qsort(list->paths + first, list->count - first, sizeof *list->paths, compare_names);
    return (int)(list->count - first);
}

int image_list_add(ImageList *list, const char *path, Error *err) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return add_folder(list, path, err);
    return append(list, path, err) == 0 ? 1 : -1;
}

void image_list_free(ImageList *list) {
    for (size_t i = 0; i < list->count; i++) free(list->paths[i]);
    free(list->paths);
    memset(list, 0, sizeof *list);
}
