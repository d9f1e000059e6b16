#include "folders.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* One level: 0 when the folder exists or was made. */
static int make_one(const char *path, const char *full, Error *err) {
    if (mkdir(path, 0755) == 0) return 0;
    int saved = errno;
    struct stat info;
    if (saved == EEXIST && stat(path, &info) == 0 && S_ISDIR(info.st_mode)) return 0;
    if (saved == EEXIST)
        return error_set(err, "cannot create the folder '%s': '%s' is a file, not a folder", full, path);
    return error_set(err, "cannot create the folder '%s': %s", full, strerror(saved));
}

int make_folders(const char *path, Error *err) {
    size_t length = strlen(path);
    if (length == 0) return error_set(err, "an empty folder name");
    char *partial = malloc(length + 1);
    if (!partial) return error_set(err, "out of memory");
    int status = 0;
    for (size_t i = 1; status == 0 && i <= length; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        if (path[i] == '/' && path[i - 1] == '/') continue;
        memcpy(partial, path, i);
        partial[i] = '\0';
        status = make_one(partial, path, err);
    }
    free(partial);
    return status;
}
