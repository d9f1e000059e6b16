#include "cli.h"

#include <errno.h>
#include <stdlib.h>

int cli_parse_int(const char *text, int low, int high, int *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || end == text || v < low || v > high) return -1;
    *out = (int)v;
    return 0;
}

int cli_parse_float(const char *text, float low, float high, float *out) {
    char *end;
    errno = 0;
    float v = strtof(text, &end);
    if (errno || *end || end == text || !(v >= low && v <= high)) return -1;
    *out = v;
    return 0;
}

int cli_parse_count(const char *text, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || end == text || v < 1) return -1;
    *out = v;
    return 0;
}
