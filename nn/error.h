#ifndef NN_ERROR_H
#define NN_ERROR_H

#include <stdio.h>

/* The one error convention of the project: a function that can fail takes an
 * Error * as its last argument, fills in a message a user can act on (which
 * file, what was wrong, what to do), and returns -1 (or NULL). The caller
 * decides whether to print it; libraries never print and never exit. */
typedef struct {
    char message[1024];
} Error;

/* Formats the message into err (if non-NULL) and returns -1. */
int error_set(Error *err, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Prepends "context: " to an existing message and returns -1. */
int error_prefix(Error *err, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "program: message" and a newline on out. Control characters in the
 * message (a file name may hold a newline) are written as \n, \t, \r or
 * \xNN, so that every error is exactly one line. */
void error_print(FILE *out, const char *program, const Error *err);

#endif
