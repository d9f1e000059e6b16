#ifndef APP_BENCH_REPORT_H
#define APP_BENCH_REPORT_H

#include "bench_results.h"

/* The rows and targets every form of the report (table, markdown, chart,
 * JSON "targets") is made from, so they cannot disagree. */

enum { BENCH_TARGET_COUNT = 4, BENCH_ROW_MAX = 16 };

typedef struct {
    const char *key;   /* JSON key under "targets" */
    char label[96];
    char goal[32];     /* e.g. ">= 2.0x PyTorch" */
    char shown[32];    /* the measured value, formatted; "n/a" when not measured */
    double value;      /* the ratio or amount compared; NaN when not measured */
    double threshold;
    int at_least;      /* met when value >= threshold (else value <= threshold) */
    int met;           /* 1, 0, or -1 when not measured */
} BenchTarget;

typedef struct {
    char label[96], c[32], torch[32], ratio[32];
} BenchRow;

void bench_targets(const BenchResults *r, BenchTarget out[BENCH_TARGET_COUNT]);
/* The measurement rows: label, C value, PyTorch value, C's speed-up. Returns the count. */
int bench_rows(const BenchResults *r, BenchRow rows[BENCH_ROW_MAX]);

#endif
