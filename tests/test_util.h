#ifndef TESTS_TEST_UTIL_H
#define TESTS_TEST_UTIL_H

/* Helpers shared by the tests that drive the built executable, so that they
 * all read its output files and judge how its processes ended the same way.
 * static inline: every test program gets its own copy and none warns about
 * the ones it does not use. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>

/* The whole file: NUL-terminated, so text output can be searched with the
 * string functions, and with its size in *size (when size is not NULL), so
 * binary files that hold NULs can be compared too. NULL when it cannot be
 * opened or measured; the caller frees it. */
static inline char *read_whole_file(const char *path, size_t *size) {
    FILE *file = fopen(path, "rb");
    if (!file) return NULL;
    fseek(file, 0, SEEK_END);
    long length = ftell(file);
    fseek(file, 0, SEEK_SET);
    /* ftell gives -1 where the file cannot seek (a pipe, say); without this
     * the buffer would be malloc(0) and the terminator written past its end. */
    if (length < 0) {
        fclose(file);
        return NULL;
    }
    char *data = malloc((size_t)length + 1);
    size_t got = data ? fread(data, 1, (size_t)length, file) : 0;
    fclose(file);
    if (data) data[got] = '\0';
    if (size) *size = got;
    return data;
}

/* Waits for the child and gives its exit code, or minus the signal that
 * ended it: a crash or our own SIGKILL must never pass for an exit code, and
 * a negative number cannot. */
static inline int wait_exit_code(pid_t child) {
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

#endif
