#ifndef APP_TRAIN_H
#define APP_TRAIN_H

#include <signal.h>

#include "train_options.h"

/* `caption train`: the whole pipeline from a dataset to a model file.
 * resume_path: a checkpoint to continue from exactly (NULL: start fresh).
 * stop_requested is set asynchronously (SIGINT); training then writes a
 * checkpoint and returns. Returns 0 when training finished (epochs, early
 * stopping or time limit), 1 on errors, 130 when interrupted. */
int train_run(const TrainOptions *options, const char *resume_path, volatile sig_atomic_t *stop_requested);

#endif
