#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int error_set(Error *err, const char *format, ...) {
    if (!err) return -1;
    va_list args;
    va_start(args, format);
    vsnprintf(err->message, sizeof err->message, format, args);
    va_end(args);
    return -1;
}

void error_print(FILE *out, const char *program, const Error *err) {
    fprintf(out, "%s: ", program);
    for (const unsigned char *c = (const unsigned char *)err->message; *c; c++) {
        if (*c == '\n') fputs("\\n", out);
        else if (*c == '\t') fputs("\\t", out);
        else if (*c == '\r') fputs("\\r", out);
        else if (*c < 0x20 || *c == 0x7f) fprintf(out, "\\x%02x", *c);
        else fputc(*c, out);
    }
    fputc('\n', out);
}

int error_prefix(Error *err, const char *format, ...) {
    if (!err) return -1;
    char prefix[512];
    va_list args;
    va_start(args, format);
    vsnprintf(prefix, sizeof prefix, format, args);
    va_end(args);
    size_t prefix_len = strlen(prefix), capacity = sizeof err->message;
    size_t message_len = strnlen(err->message, capacity - 1);
    size_t shift = prefix_len + 2; /* "prefix: " */
    size_t kept = message_len + shift < capacity ? message_len : capacity - 1 - shift;
    memmove(err->message + shift, err->message, kept);
    err->message[shift + kept] = '\0';
    memcpy(err->message, prefix, prefix_len);
    memcpy(err->message + prefix_len, ": ", 2);
    return -1;
}
