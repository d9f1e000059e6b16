#ifndef APP_PROGRESS_H
#define APP_PROGRESS_H

#include <stdio.h>

/* Progress of a long job on stderr: a live bar redrawn in place on a
 * terminal, a plain line every so often otherwise (logs, CI, Slurm). The
 * rate is shown in the items it counts (e.g. images/s) while done and total
 * may count larger units (batches of items_per_unit images): the time left
 * is (total - done) * items_per_unit / rate, and with several epochs the
 * line also gives the time left for the whole run ("run 1:25:40"). */
typedef struct {
    FILE *out;
    int live;
    double start, last_print, smoothed_loss, smoothed_rate;
    int has_loss, drawn;
    const char *loss_name; /* what the "loss" number is, e.g. "reward"; "loss" by default */
    double items_per_unit; /* items the rate counts per unit of done/total; 0 = 1 */
    double interval;       /* seconds between lines; 0 = 0.2 on a terminal, 30 in a log */
} Progress;

void progress_init(Progress *progress, FILE *out);
/* loss < 0: no loss to show. rate: items per second of the last step (<= 0:
 * the average since progress_init). */
void progress_update(Progress *progress, long epoch, long epochs, long done, long total, double loss, double rate);
/* The time left, in seconds, at the smoothed rate: of this epoch, or of the
 * whole run when `run` is set (the epochs after this one included). */
double progress_seconds_left(const Progress *progress, long epoch, long epochs, long done, long total, int run);
/* Ends a live bar's line. */
void progress_finish(Progress *progress);

#endif
