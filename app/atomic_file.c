#include "atomic_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int atomic_file_open(AtomicFile *out, const char *path, Error *err) {
    *out = (AtomicFile){0};
    size_t size = strlen(path) + sizeof ".tmp-XXXXXX";
    out->path = strdup(path);
    out->temp_path = malloc(size);
    if (!out->path || !out->temp_path) return error_set(err, "out of memory writing '%s'", path);
    snprintf(out->temp_path, size, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(out->temp_path);
    if (fd < 0) return error_set(err, "cannot create a temporary file next to '%s': %s", path, strerror(errno));
    (void)fchmod(fd, 0644); /* mkstemp's 0600 would make the results private by accident */
    out->file = fdopen(fd, "w");
    if (!out->file) {
        int saved = errno;
        close(fd);
        unlink(out->temp_path);
        return error_set(err, "cannot write '%s': %s", path, strerror(saved));
    }
    return 0;
}

int atomic_file_commit(AtomicFile *out, Error *err) {
    int failed = ferror(out->file) || fflush(out->file) != 0 || fsync(fileno(out->file)) != 0;
    int saved = errno;
    if (fclose(out->file) != 0 && !failed) {
        failed = 1;
        saved = errno;
    }
    out->file = NULL;
    if (failed) {
        unlink(out->temp_path);
        return error_set(err, "cannot write '%s': %s", out->path, strerror(saved ? saved : EIO));
    }
    if (rename(out->temp_path, out->path) != 0) {
        saved = errno;
        unlink(out->temp_path);
        return error_set(err, "cannot move '%s' into place: %s", out->path, strerror(saved));
    }
    return 0;
}

void atomic_file_close(AtomicFile *out) {
    if (out->file) {
        fclose(out->file);
        unlink(out->temp_path);
    }
    free(out->path);
    free(out->temp_path);
    *out = (AtomicFile){0};
}

int atomic_file_write(const char *path, const char *data, size_t size, Error *err) {
    AtomicFile out;
    int status = atomic_file_open(&out, path, err);
    if (status == 0 && size > 0) fwrite(data, 1, size, out.file); /* a short write shows in ferror at commit */
    if (status == 0) status = atomic_file_commit(&out, err);
    atomic_file_close(&out);
    return status;
}
