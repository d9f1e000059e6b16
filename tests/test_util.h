#ifndef TESTS_TEST_UTIL_H
#define TESTS_TEST_UTIL_H

/* Helpers shared by the tests that drive the built executable, so that they
 * all read its output files and judge how its processes ended the same way.
 * static inline: every test program gets its own copy and none warns about
 * the ones it does not use. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>

/* The whole file: NUL-terminated, so text output can be searched with the
 * string functions, and with its size in *size (when size is not NULL), so
 * binary files that hold NULs can be compared too. Read until the end, so
 * files that report no size (/proc, pipes) come whole too. NULL when it
 * cannot be opened or memory runs out; the caller frees it. */
static inline char *read_whole_file(const char *path, size_t *size) {
    FILE *file = fopen(path, "rb");
    if (!file) return NULL;
    size_t capacity = 4096, length = 0, got;
    char *data = malloc(capacity + 1);
    while (data && (got = fread(data + length, 1, capacity - length, file)) > 0) {
        length += got;
        if (length == capacity) {
            char *bigger = realloc(data, 2 * capacity + 1);
            if (!bigger) free(data);
            data = bigger, capacity *= 2;
        }
    }
    fclose(file);
    if (data) data[length] = '\0';
    if (size) *size = length;
    return data;
}

/* 1 when both files can be read and hold the same bytes. */
static inline int files_equal(const char *a, const char *b) {
    size_t size_a = 0, size_b = 0;
    char *data_a = read_whole_file(a, &size_a), *data_b = read_whole_file(b, &size_b);
    int equal = data_a && data_b && size_a == size_b && memcmp(data_a, data_b, size_a) == 0;
    free(data_a);
    free(data_b);
    return equal;
}

/* A status as system, pclose and waitpid give it: the exit code, or minus
 * the signal that ended the process: a crash or our own SIGKILL must never
 * pass for an exit code, and a negative number cannot. */
static inline int exit_code_of(int status) {
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/* Waits for the child and gives its exit code (exit_code_of). */
static inline int wait_exit_code(pid_t child) {
    int status = 0;
    waitpid(child, &status, 0);
    return exit_code_of(status);
}

/* Runs a shell command; its exit code (exit_code_of). */
static inline int shell_exit_code(const char *command) {
    return exit_code_of(system(command));
}

#endif
