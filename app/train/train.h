#ifndef APP_TRAIN_H
#define APP_TRAIN_H

#include <signal.h>

#include "replicas.h"
#include "train_options.h"

/* `caption train`: the whole pipeline from a dataset to a model file.
 * resume_path: a checkpoint to continue from exactly (NULL: start fresh).
 * stop_requested is set asynchronously (SIGINT); training then writes a
 * checkpoint and returns. Returns 0 when training finished (epochs, early
 * stopping or time limit), 1 on errors, 130 when interrupted. */
int train_run(const TrainOptions *options, const char *resume_path, volatile sig_atomic_t *stop_requested);

/* The same as one of the replicas of data-parallel training (replicas.h):
 * every rank calls it with the same options; rank 0 prints, evaluates and
 * writes the run's files. A rank that fails returns 1 having printed why; the
 * caller then ends the job (replicas_abort). */
int train_run_replicated(const TrainOptions *options, const char *resume_path, volatile sig_atomic_t *stop_requested,
                         Replicas *replicas);

#endif
