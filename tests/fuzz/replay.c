/* Replays fuzz inputs as a regression test: every file under the folders
 * (or files) given is fed to the harness's LLVMFuzzerTestOneInput, so each
 * input that once crashed, and the seed corpus, must now be handled (refused
 * or accepted) without a crash, a sanitizer report or a broken invariant. */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return fprintf(stderr, "cannot open %s\n", path), -1;
    size_t capacity = 4096, size = 0, got;
    uint8_t *data = malloc(capacity);
    while (data && (got = fread(data + size, 1, capacity - size, f)) > 0) {
        size += got;
        if (size == capacity) {
            uint8_t *grown = realloc(data, capacity *= 2);
            if (!grown) free(data);
            data = grown;
        }
    }
    fclose(f);
    if (!data) return fprintf(stderr, "out of memory reading %s\n", path), -1;
    printf("%s\n", path); /* before the call: a crash then names its input */
    fflush(stdout);
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    return 0;
}

/* Replays path (a file, or every file below a folder); counts into *count. */
static int replay(const char *path, int *count) {
    struct stat st;
    if (stat(path, &st) != 0) return 0; /* a harness may have no regressions yet */
    if (!S_ISDIR(st.st_mode)) return replay_file(path) == 0 ? ((*count)++, 0) : -1;
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort); /* sorted: the same order on every machine */
    int status = n < 0 ? -1 : 0;
    for (int i = 0; i < n; i++) {
        char child[4096];
        if (names[i]->d_name[0] != '.') {
            snprintf(child, sizeof child, "%s/%s", path, names[i]->d_name);
            if (replay(child, count) != 0) status = -1;
        }
        free(names[i]);
    }
    free(names);
    return status;
}

int main(int argc, char **argv) {
    int count = 0, unreadable = 0;
    for (int i = 1; i < argc; i++) unreadable += replay(argv[i], &count) != 0;
    printf("%d passed, %d failed\n", count, unreadable);
    return unreadable ? 1 : 0;
}
