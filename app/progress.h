#ifndef APP_PROGRESS_H
#define APP_PROGRESS_H

#include <stdio.h>

/* Progress of a long job on stderr: a live bar redrawn in place on a
 * terminal, a plain line every so often otherwise (logs, CI). */
typedef struct {
    FILE *out;
    int live;
    double start, last_print, smoothed_loss, smoothed_rate;
    int has_loss, drawn;
    const char *loss_name; /* what the "loss" number is, e.g. "reward"; "loss" by default */
} Progress;

void progress_init(Progress *progress, FILE *out);
/* loss < 0: no loss to show. rate: items per second of the last step. */
void progress_update(Progress *progress, long epoch, long epochs, long done, long total, double loss, double rate);
/* Ends a live bar's line. */
void progress_finish(Progress *progress);

#endif
