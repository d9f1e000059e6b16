#ifndef TESTS_CHECK_H
#define TESTS_CHECK_H

/* The tests' shared assertions: a failed check prints where and what, and the
 * program goes on so one run shows every failure; check_summary() prints the
 * closing line CI reads and gives the exit status. */
#include <stdio.h>
#include <string.h>

typedef struct {
    int passed, failed;
} CheckCounts;

#define CHECK(counts, cond)                                                                        \
    do {                                                                                           \
        if (cond) {                                                                                \
            (counts)->passed++;                                                                    \
        } else {                                                                                   \
            (counts)->failed++;                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

/* For an Error (anything with a .message string): passes when the message
 * holds text, since an error that does not name the file or the reason is a
 * failure in itself; on failure prints the whole message to show what it said. */
#define CHECK_MESSAGE(counts, err, text)                                                           \
    do {                                                                                           \
        if (strstr((err).message, (text))) {                                                       \
            (counts)->passed++;                                                                    \
        } else {                                                                                   \
            (counts)->failed++;                                                                    \
            fprintf(stderr, "%s:%d: error message lacks \"%s\": %s\n", __FILE__, __LINE__, (text), \
                    (err).message);                                                                \
        }                                                                                          \
    } while (0)

static inline int check_summary(const CheckCounts *counts) {
    printf("%d passed, %d failed\n", counts->passed, counts->failed);
    return counts->failed ? 1 : 0;
}

#endif
