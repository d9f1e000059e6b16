#ifndef APP_CHECKPOINT_H
#define APP_CHECKPOINT_H

#include "metrics.h"
#include "rng.h"
#include "trainer.h"

/* Training history and position: everything besides tensors that a
 * checkpoint must hold for training to continue exactly. */
typedef struct {
    int epoch;           /* 1-based */
    long step;
    double train_loss, dev_loss;
    double train_reward; /* self-critical training: mean CIDEr-D of the sampled captions; 0 otherwise */
    MetricScores scores;
    int distinct, captioned;
    double minutes;
    float lr;
} EpochRecord;

typedef struct {
    long epoch;          /* current epoch, 0-based */
    int batch;           /* next batch of that epoch */
    Rng rng;             /* dropout */
    double best_cider;
    int best_epoch, bad_epochs;
    double seconds;      /* training time before this process */
    double epoch_loss_sum, epoch_reward_sum;
    long epoch_loss_count;
    EpochRecord *history;
    int history_count;
} TrainState;

void train_state_free(TrainState *state);
int train_state_append(TrainState *state, const EpochRecord *record);

/* Model + optimiser moments + state + options, atomically. */
int checkpoint_save(const char *path, const SatTrainer *trainer, const TrainState *state, const char *options_json,
                    Error *err);

/* Reads the options JSON of a checkpoint (caller frees). */
char *checkpoint_read_options(const char *path, Error *err);

/* Restores the optimiser moments, step and state into a trainer whose model
 * was loaded from the same file (sat_model_load). */
int checkpoint_restore(const char *path, SatTrainer *trainer, TrainState *state, Error *err);

#endif
