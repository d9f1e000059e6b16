#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cpu.h"
#include "cross_entropy.h"
#include "dataset.h"
#include "decode.h"
#include "atomic_file.h"
#include "image_check.h"
#include "loader.h"
#include "metrics.h"
#include "plot.h"
#include "progress.h"
#include "replica_pool.h"
#include "replicas.h"
#include "folders.h"
#include "scst.h"
#include "vocab.h"

/* Everything one training run holds; freed in one place. */
typedef struct {
    const TrainOptions *o;
    TrainOptions options; /* as given, with the architecture of --init's model when there is one */
    char *options_json;
    Dataset train, dev;
    Vocab vocab;
    SatModel model;
    int model_ready;
    SatTrainer trainer;
    int trainer_ready;
    Loader *train_loader, *dev_loader;
    Captioner *captioner;
    Scst *scst; /* self-critical training; NULL for cross-entropy */
    SatReplicaPool *pool; /* data-parallel training on threads (--replicas); NULL: one */
    TrainState state;
    Progress progress;
    Replicas *replicas; /* data-parallel training; size 1 for one process */
    int rank0;          /* this process evaluates, logs and writes the run's files */
    double start_time;
    char path[3][1200]; /* checkpoint, best model, scratch */
} Run;

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static double trained_seconds(const Run *r) { return r->state.seconds + now_seconds() - r->start_time; }

static void out_path(const Run *r, char *buffer, size_t size, const char *name) {
    snprintf(buffer, size, "%s/%s", r->o->out, name);
}

static void report_dropped(const char *message, void *context) {
    fprintf(stderr, "caption train: skipping %s (in %s)\n", message, (const char *)context);
}

/* Decodes every image once; the verdicts are kept in the run folder, so a
 * --resume decodes only files that changed. */
static int check_images(Run *r, Error *err) {
    const TrainOptions *o = r->o;
    char path[1200];
    out_path(r, path, sizeof path, "image-check.tsv");
    ImageVerdicts verdicts;
    if (image_verdicts_load(&verdicts, path, err) != 0) return -1;
    if (r->rank0)
        fprintf(stderr, "caption train: checking %d training and %d dev images (%zu known from %s)\n", r->train.count,
                r->dev.count, verdicts.count, path);
    double start = now_seconds();
    Dataset *splits[2] = {&r->train, &r->dev};
    const char *names[2] = {o->train_split, o->dev_split};
    int status = 0, decoded = 0;
    for (int k = 0; k < 2 && status == 0; k++) {
        int new_ones = 0;
        /* The other ranks read rank 0's verdicts: quietly, and they decode nothing new. */
        if (dataset_drop_unreadable(splits[k], o->threads, r->rank0 ? stderr : NULL, &verdicts,
                                    r->rank0 ? report_dropped : NULL, (void *)names[k], &new_ones, err) < 0)
            status = -1;
        decoded += new_ones;
    }
    if (status == 0 && decoded > 0 && r->rank0) status = image_verdicts_save(&verdicts, path, err);
    if (status == 0 && r->rank0)
        fprintf(stderr, "caption train: %d images decoded, the rest unchanged since checked, in %.1f s\n", decoded,
                now_seconds() - start);
    image_verdicts_free(&verdicts);
    return status;
}

static int load_data(Run *r, Error *err) {
    const TrainOptions *o = r->o;
    Dataset splits[2];
    const char *names[2] = {o->train_split, o->dev_split};
    /* One parse of the whole captions file: no count to show while it runs,
     * so say what is being read, then how much and how fast. */
    double start = now_seconds();
    if (r->rank0) fprintf(stderr, "caption train: reading the captions of %s\n", o->data);
    if (dataset_load_splits(splits, names, 2, o->data, o->images[0] ? o->images : NULL, err) != 0) return -1;
    r->train = splits[0], r->dev = splits[1];
    if (r->rank0)
        fprintf(stderr, "caption train: %d training and %d dev images with their captions read in %.1f s\n",
                r->train.count, r->dev.count, now_seconds() - start);
    /* Rank 0 decodes; then the others find every verdict in its cache. */
    if (r->rank0 && (make_folders(o->out, err) != 0 || check_images(r, err) != 0)) return -1;
    replicas_barrier(r->replicas);
    if (!r->rank0 && check_images(r, err) != 0) return -1;
    if (r->train.count == 0 || r->dev.count == 0) return error_set(err, "%s: no readable images left", o->data);
    return 0;
}

static int build_vocab(Run *r, Error *err) {
    size_t total = 0;
    for (int i = 0; i < r->train.count; i++) total += r->train.images[i].caption_count;
    const char **captions = malloc(sizeof(char *) * (total ? total : 1));
    if (!captions) return error_set(err, "out of memory");
    size_t n = 0;
    for (int i = 0; i < r->train.count; i++)
        for (int c = 0; c < r->train.images[i].caption_count; c++) captions[n++] = r->train.images[i].captions[c];
    int status = vocab_build(&r->vocab, captions, (int)n, r->o->min_count, err);
    free(captions);
    return status;
}

/* --init: the weights, architecture and vocabulary of a trained model; the
 * training-only settings (dropout, the attention penalty) stay those of the options. */
static int load_initial_model(Run *r, Error *err) {
    if (sat_model_load(&r->model, r->o->init, err) != 0) return -1;
    r->model_ready = 1;
    r->model.config.dropout = r->o->model.dropout;
    r->model.config.doubly_stochastic = r->o->model.doubly_stochastic;
    r->model.config.penalty_excess_only = r->o->model.penalty_excess_only;
    sat_config_resolve_defaults(&r->model.config); /* lambda unset: the loaded decoder's default */
    r->options.model = r->model.config;
    r->options.model.vocab_size = 0;
    fprintf(stderr, "caption train: starting from %s (its architecture and vocabulary of %d words)\n", r->o->init,
            r->model.config.vocab_size);
    rng_seed_stream(&r->state.rng, r->o->seed, 0xD0D0ULL);
    return vocab_from_words(&r->vocab, (const char *const *)r->model.vocab, r->model.config.vocab_size, err);
}

static int create_model(Run *r, const char *resume, Error *err) {
    if (resume) {
        if (sat_model_load(&r->model, resume, err) != 0) return -1;
        r->model_ready = 1;
        return vocab_from_words(&r->vocab, (const char *const *)r->model.vocab, r->model.config.vocab_size, err);
    }
    if (r->o->init[0]) return load_initial_model(r, err);
    if (build_vocab(r, err) != 0) return -1;
    SatConfig config = r->o->model;
    config.vocab_size = r->vocab.size;
    if (sat_model_create(&r->model, &config, (const char *const *)r->vocab.words, err) != 0) return -1;
    r->model_ready = 1;
    sat_model_init_params(&r->model, r->o->seed);
    rng_seed_stream(&r->state.rng, r->o->seed, 0xD0D0ULL);
    return 0;
}

static LoaderOptions loader_options(const Run *r, int training) {
    const TrainOptions *o = r->o;
    LoaderOptions lo = {.batch_images = o->batch, .captions_per_image = o->captions_per_image,
                        .max_words = o->max_words, .image_size = r->model.config.image_size,
                        .flip = o->flip, .crop_min_area = o->crop_min_area,
                        .color_jitter = o->color_jitter, .seed = o->seed, .shuffle = training};
    if (training) lo.shard_index = r->replicas->rank, lo.shard_count = r->replicas->size;
    memcpy(lo.mean, r->model.config.image_mean, sizeof lo.mean);
    memcpy(lo.std, r->model.config.image_std, sizeof lo.std);
    return lo;
}


static int setup(Run *r, const char *resume, Error *err) {
    const TrainOptions *o = r->o;
    /* What the options alone rule out under MPI, before minutes of reading and checking data. */
    if (r->replicas->size > 1 && o->scst_samples > 0)
        return error_set(err, "self-critical training (--scst-samples) runs in one process: start it without mpirun");
    if (r->replicas->size > o->batch)
        return error_set(err, "--batch %d is smaller than the %d processes: each needs at least one image of every batch",
                         o->batch, r->replicas->size);
    if (o->replicas > 1 && r->replicas->size > 1)
        return error_set(err, "--replicas %d under mpirun: use threads or processes, not both (one process per "
                              "node with --replicas, or one rank per core without it)", o->replicas);
    if (o->replicas > 1 && o->scst_samples > 0)
        return error_set(err, "self-critical training (--scst-samples) runs on one replica: leave out --replicas");
    if (r->rank0 && o->scst_samples > 0 && o->scst_mode_penalty > 0.0f && o->scst_xe_weight <= 0.0f)
        fprintf(stderr, "caption train: warning: --scst-mode-penalty without --scst-xe-weight: nothing holds the "
                        "model to the references while the penalty lowers the likelihood of its greedy captions, "
                        "which can flatten its word distributions until the captions fall apart (a Transformer run "
                        "collapsed in its seventh epoch: assets/MODEL.md, \"Eighth round\"); keep the references in "
                        "the pass, e.g. --scst-xe-weight 0.1\n");
    if (load_data(r, err) != 0) return -1;
    out_path(r, r->path[0], sizeof r->path[0], "checkpoint.safetensors");
    out_path(r, r->path[1], sizeof r->path[1], "best.safetensors");
    if (create_model(r, resume, err) != 0) return -1;
    r->options_json = train_options_to_json(o);
    if (!r->options_json) return error_set(err, "out of memory");
    int scst_rows = o->scst_samples + (o->scst_xe_weight > 0.0f ? o->captions_per_image : 0) +
                    (o->scst_mode_penalty > 0.0f ? 1 : 0);
    int rows = o->batch * (scst_rows > o->captions_per_image ? scst_rows : o->captions_per_image);
    if (sat_trainer_init(&r->trainer, &r->model, o->batch, rows, o->max_words + 1, err) != 0) return -1;
    r->trainer_ready = 1;
    r->trainer.frozen_encoder = o->freeze_encoder;
    if (r->replicas->size > 1) r->trainer.encoder.replicas = &r->replicas->sum;
    if (o->replicas > 1 &&
        sat_replica_pool_create(&r->pool, &r->trainer, o->replicas, o->batch, o->captions_per_image, o->max_words + 1,
                                err) != 0)
        return -1;
    if (o->ema > 0.0f && sat_trainer_enable_ema(&r->trainer, err) != 0) return -1;
    if (resume && checkpoint_restore(resume, &r->trainer, &r->state, err) != 0) return -1;
    if (o->scst_samples > 0 &&
        scst_create(&r->scst, &r->model, &r->train, &r->vocab, o->batch,
                    &(ScstOptions){.samples = o->scst_samples, .max_words = o->max_words,
                                   .xe_weight = o->scst_xe_weight, .captions_per_image = o->captions_per_image,
                                   .contrast = o->scst_contrast, .duplicate_penalty = o->scst_duplicate_penalty,
                                   .mode_penalty = o->scst_mode_penalty, .repeat_penalty = o->scst_repeat_penalty},
                    err) != 0)
        return -1;
    LoaderOptions train_lo = loader_options(r, 1), dev_lo = loader_options(r, 0);
    if (loader_create(&r->train_loader, &r->train, &r->vocab, &train_lo, err) != 0) return -1;
    if (sat_model_prepare_inference(&r->model, err) != 0) return -1;
    if (!r->rank0) return 0; /* only rank 0 evaluates: no dev batches or captioner elsewhere */
    if (loader_create(&r->dev_loader, &r->dev, &r->vocab, &dev_lo, err) != 0) return -1;
    return captioner_create(&r->captioner, &r->model, o->eval_beam, o->max_words + 10, err);
}

static void teardown(Run *r) {
    scst_free(r->scst);
    sat_replica_pool_free(r->pool);
    captioner_free(r->captioner);
    loader_free(r->train_loader);
    loader_free(r->dev_loader);
    if (r->trainer_ready) sat_trainer_free(&r->trainer);
    if (r->model_ready) sat_model_free(&r->model);
    vocab_free(&r->vocab);
    dataset_free(&r->train);
    dataset_free(&r->dev);
    train_state_free(&r->state);
    free(r->options_json);
}

static float learning_rate(const TrainOptions *o, long step, long total_steps) {
    if (o->warmup_steps > 0 && step < o->warmup_steps) return o->lr * (float)(step + 1) / (float)o->warmup_steps;
    if (strcmp(o->schedule, "constant") == 0 || total_steps <= o->warmup_steps) return o->lr;
    double progress = (double)(step - o->warmup_steps) / (double)(total_steps - o->warmup_steps);
    if (progress > 1.0) progress = 1.0;
    return o->min_lr + (o->lr - o->min_lr) * 0.5f * (float)(1.0 + cos(M_PI * progress));
}

/* Every rank calls this at the same step: the replicas' weights are compared
 * (they must be bit-identical: a difference is a bug, not noise), then rank 0
 * writes the checkpoint. */
static int save_checkpoint(Run *r, Error *err) {
    r->state.seconds = trained_seconds(r);
    r->start_time = now_seconds();
    const SatModel *m = &r->model;
    if (!replicas_agree(r->replicas, m->params, m->table.total * sizeof(float)))
        return error_set(err, "the %d processes' weights differ at step %ld: a bug in data-parallel training; "
                              "the last checkpoint %s is intact", r->replicas->size, r->trainer.step, r->path[0]);
    return r->rank0 ? checkpoint_save(r->path[0], &r->trainer, &r->state, r->options_json, err) : 0;
}

/* Dev loss over all dev captions and scores of the captions the model writes. */
static int evaluate(Run *r, EpochRecord *record, Error *err) {
    const TrainOptions *o = r->o;
    if (sat_model_prepare_inference(&r->model, err) != 0) return -1;
    MetricsScorer *scorer = metrics_scorer_new(err);
    if (!scorer) return -1;
    DecodeOptions decode = {o->eval_beam, o->max_words + 10, o->eval_length_penalty};
    size_t pixels = (size_t)3 * r->model.config.image_size * r->model.config.image_size;
    int limit = o->eval_images > 0 && o->eval_images < r->dev.count ? o->eval_images : r->dev.count;
    double loss_sum = 0.0;
    long tokens = 0;
    int captioned = 0, status = 0;
    loader_seek(r->dev_loader, 0, 0);
    const TrainBatch *b;
    while (status == 0 && (status = loader_next(r->dev_loader, &b, err)) == 0 && b) {
        DecoderBatch db = {.captions = b->captions, .row_image = b->row_image, .rows = b->rows, .steps = b->steps};
        SatLoss loss = sat_evaluate_loss(&r->trainer, b->images, b->image_count, &db);
        loss_sum += (double)loss.cross_entropy * loss.tokens;
        tokens += loss.tokens;
        for (int i = 0; i < b->image_count && captioned < limit && status == 0; i++) {
            Caption caption;
            char text[4096];
            if ((status = captioner_run(r->captioner, b->images + i * pixels, &decode, &caption, err)) != 0) break;
            const DatasetImage *image = &r->dev.images[b->image_index[i]];
            caption_text(&r->model, &caption, text, sizeof text);
            caption_free(&caption);
            status = metrics_scorer_add(scorer, text, (const char *const *)image->captions, image->caption_count, err);
            captioned++;
        }
    }
    if (status == 0) status = metrics_scorer_compute(scorer, &record->scores, NULL, err);
    record->dev_loss = tokens ? loss_sum / tokens : 0.0;
    record->captioned = captioned;
    record->distinct = (int)metrics_scorer_distinct_hypotheses(scorer);
    metrics_scorer_free(scorer);
    return status;
}

static int write_epochs_csv(const Run *r, Error *err) {
    char path[1200];
    out_path(r, path, sizeof path, "epochs.csv");
    AtomicFile out;
    if (atomic_file_open(&out, path, err) != 0) return -1;
    FILE *f = out.file;
    fprintf(f, "epoch,step,train_loss,dev_loss,BLEU-1,BLEU-2,BLEU-3,BLEU-4,ROUGE-L,CIDEr-D,distinct,captioned,lr,minutes,"
               "train_reward\n");
    for (int i = 0; i < r->state.history_count; i++) {
        const EpochRecord *e = &r->state.history[i];
        fprintf(f, "%d,%ld,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%d,%d,%.3g,%.2f,%.6f\n", e->epoch, e->step,
                e->train_loss, e->dev_loss, e->scores.bleu[0], e->scores.bleu[1], e->scores.bleu[2], e->scores.bleu[3],
                e->scores.rouge_l, e->scores.cider_d, e->distinct, e->captioned, e->lr, e->minutes, e->train_reward);
    }
    int status = atomic_file_commit(&out, err);
    atomic_file_close(&out);
    return status;
}

static int draw_curve(const Run *r, Error *err) {
    int n = r->state.history_count;
    if (n == 0) return 0;
    float *x = malloc(sizeof(float) * 4 * n);
    if (!x) return error_set(err, "out of memory");
    float *train = x + n, *dev = x + 2 * n, *cider = x + 3 * n;
    for (int i = 0; i < n; i++) {
        x[i] = (float)r->state.history[i].epoch;
        /* A self-critical run's loss is advantage-weighted: its reward says more. */
        train[i] = (float)(r->scst ? r->state.history[i].train_reward : r->state.history[i].train_loss);
        dev[i] = (float)r->state.history[i].dev_loss;
        cider[i] = (float)r->state.history[i].scores.cider_d;
    }
    PlotSeries series[3] = {{r->scst ? "training reward (CIDEr-D of the samples)" : "training loss (label-smoothed)", x,
                             train, n, {31, 119, 180}, r->scst != NULL},
                            {"dev loss", x, dev, n, {255, 127, 14}, 0},
                            {"dev CIDEr-D", x, cider, n, {44, 160, 44}, 1}};
    PlotOptions po = {"Learning curve", "epoch", "cross-entropy", "CIDEr-D", 900, 540};
    char font_path[1024], path[1200];
    Font *font = NULL;
    Image image = {0};
    int status = font_default_path(font_path, sizeof font_path) ? font_load(&font, font_path, err)
                                                                  : error_set(err, "no font found for the learning curve");
    if (status == 0) status = plot_render(&image, series, 3, &po, font, err);
    out_path(r, path, sizeof path, "curve.png");
    if (status == 0) status = image_write_png(&image, path, err);
    image_free(&image);
    font_free(font);
    free(x);
    return status;
}

/* Scores the model as it is now, logs the epoch, and saves it when it is the best so far. */
static int evaluate_and_keep_best(Run *r, EpochRecord *record, Error *err) {
    if (evaluate(r, record, err) != 0) return -1;
    record->minutes = trained_seconds(r) / 60.0;
    if (train_state_append(&r->state, record) != 0) return error_set(err, "out of memory");
    fprintf(stderr,
            "caption train: epoch %d  train loss %.4f  dev loss %.4f  BLEU-4 %.4f  CIDEr-D %.4f  distinct %d/%d  (%.1f min)\n",
            record->epoch, record->train_loss, record->dev_loss, record->scores.bleu[3], record->scores.cider_d,
            record->distinct, record->captioned, record->minutes);
    if (record->scores.cider_d > r->state.best_cider || r->state.best_epoch == 0) {
        r->state.best_cider = record->scores.cider_d;
        r->state.best_epoch = record->epoch;
        r->state.bad_epochs = 0;
        if (sat_model_save(&r->model, r->path[1], 0, err) != 0) return -1;
    } else {
        r->state.bad_epochs++;
    }
    if (r->o->keep_epochs) {
        char name[64], path[1200];
        snprintf(name, sizeof name, "epoch-%d.safetensors", record->epoch);
        out_path(r, path, sizeof path, name);
        if (sat_model_save(&r->model, path, 0, err) != 0) return -1;
    }
    return 0;
}

/* Rank 0's evaluation, logs and early-stopping verdict. */
static int evaluate_epoch(Run *r, float lr, int *stop, Error *err) {
    EpochRecord record = {0};
    record.epoch = (int)r->state.epoch + 1;
    record.step = r->trainer.step;
    record.train_loss = r->state.epoch_loss_count ? r->state.epoch_loss_sum / r->state.epoch_loss_count : 0.0;
    record.train_reward = r->state.epoch_loss_count ? r->state.epoch_reward_sum / r->state.epoch_loss_count : 0.0;
    record.lr = lr;
    progress_finish(&r->progress);
    fprintf(stderr, "caption train: epoch %d: evaluating on %s\n", record.epoch, r->o->dev_split);
    /* With --ema the averaged weights are what is evaluated and kept as best. */
    if (r->trainer.ema) sat_ema_swap(&r->trainer);
    int status = evaluate_and_keep_best(r, &record, err);
    if (r->trainer.ema) sat_ema_swap(&r->trainer);
    if (status != 0) return -1;
    if (write_epochs_csv(r, err) != 0) return -1;
    Error plot_err;
    if (draw_curve(r, &plot_err) != 0) fprintf(stderr, "caption train: learning curve not drawn: %s\n", plot_err.message);
    if (r->o->patience > 0 && r->state.bad_epochs >= r->o->patience) {
        fprintf(stderr, "caption train: no better dev CIDEr-D for %d epochs: stopping early\n", r->state.bad_epochs);
        *stop = 1;
    }
    return 0;
}

static void report_allreduce(const Run *r) {
    const Replicas *p = r->replicas;
    if (p->size <= 1 || !r->rank0 || p->allreduce_calls == 0) return;
    /* The mean includes waiting for the slowest rank; the fastest is the transfer. */
    fprintf(stderr,
            "caption train: %d processes; gradient allreduce %.1f MB per step, %.1f ms on average, %.1f ms at the "
            "fastest (%ld steps)\n",
            p->size, p->allreduce_bytes / p->allreduce_calls / 1e6, 1e3 * p->allreduce_seconds / p->allreduce_calls,
            1e3 * p->allreduce_fastest, p->allreduce_calls);
}

/* Every rank: the epoch's evaluation (rank 0's, whose verdict the others
 * wait for: go on, stop early, or fail), then the checkpoint. */
static int end_of_epoch(Run *r, float lr, int *stop, Error *err) {
    enum { GO_ON, STOP_EARLY, FAILED };
    int verdict = GO_ON;
    if (r->rank0) verdict = evaluate_epoch(r, lr, stop, err) != 0 ? FAILED : *stop ? STOP_EARLY : GO_ON;
    verdict = replicas_broadcast_int(r->replicas, verdict);
    if (verdict == FAILED)
        return r->rank0 ? -1 : error_set(err, "rank 0 failed at the end of epoch %ld (its message says why)",
                                         r->state.epoch + 1);
    *stop = verdict == STOP_EARLY;
    report_allreduce(r);
    r->state.epoch++;
    r->state.batch = 0;
    r->state.epoch_loss_sum = 0.0;
    r->state.epoch_reward_sum = 0.0;
    r->state.epoch_loss_count = 0;
    return save_checkpoint(r, err);
}

static FILE *open_steps_log(const Run *r, long keep_through_step, Error *err) {
    char path[1200];
    out_path(r, path, sizeof path, "steps.csv");
    /* On resume, drop rows logged after the checkpoint: they will be logged again. */
    FILE *old = keep_through_step > 0 ? fopen(path, "r") : NULL;
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        if (old) fclose(old);
        error_set(err, "%s: %s", tmp, strerror(errno));
        return NULL;
    }
    fprintf(f, "step,epoch,batch,loss,cross_entropy,penalty,aux,grad_norm,lr,images_per_s,reward\n");
    char line[512];
    while (old && fgets(line, sizeof line, old)) {
        /* Whole rows only: after a kill the last row can be torn (stdio writes
         * in blocks), and its first digits ("1" of "17,...") would pass for an
         * early step and run into the next row written. */
        char *end;
        long step = strtol(line, &end, 10);
        int whole = end != line && *end == ',' && strchr(line, '\n');
        if (whole && line[0] >= '0' && line[0] <= '9' && step <= keep_through_step) fputs(line, f);
    }
    if (old) fclose(old);
    fflush(f);
    if (rename(tmp, path) != 0) {
        fclose(f);
        error_set(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    return f;
}

typedef enum { LOOP_DONE, LOOP_STOPPED, LOOP_INTERRUPTED, LOOP_ERROR } LoopResult;

static int out_of_time(const Run *r) {
    return r->o->time_limit_minutes > 0 && trained_seconds(r) >= r->o->time_limit_minutes * 60.0;
}

/* The tokens the batch's cross-entropy averages over: columns 1..steps of each row. */
static long batch_targets(const TrainBatch *b) {
    long count = 0;
    for (int row = 0; row < b->rows; row++)
        count += cross_entropy_count_valid(b->captions + (size_t)row * (b->steps + 1) + 1, b->steps, TOKEN_PAD);
    return count;
}

/* Data-parallel training, before a step: the global batch's counts, which
 * normalise each replica's loss (DecoderBatch), and whether any rank was
 * interrupted or ran out of time, so that all stop at the same step. */
static LoopResult agree_on_step(Run *r, const TrainBatch *b, DecoderBatch *db, volatile sig_atomic_t *stop) {
    double counts[5] = {(double)batch_targets(b), b->rows, b->image_count, *stop ? 1 : 0, out_of_time(r)};
    replicas_sum_doubles(r->replicas, counts, 5);
    db->total_tokens = (int)counts[0], db->total_rows = (int)counts[1], db->total_images = (int)counts[2];
    return counts[3] > 0 ? LOOP_INTERRUPTED : counts[4] > 0 ? LOOP_STOPPED : LOOP_DONE;
}

/* The global batch's mean losses from each replica's means over its share. */
static SatLoss global_loss(Run *r, SatLoss local, const TrainBatch *b, const DecoderBatch *db) {
    double sums[3] = {(double)local.cross_entropy * local.tokens, (double)local.penalty * b->rows,
                      (double)local.aux * b->image_count};
    replicas_sum_doubles(r->replicas, sums, 3);
    return sat_loss_from_sums(sums, db->total_tokens, db->total_rows, db->total_images);
}

/* One replica of N: forward and backward on its share, then the gradients
 * summed over all. Dropout draws from a stream of (seed, step, rank), so a
 * resume with the same N repeats it exactly without saving N streams. */
static SatLoss replica_step(Run *r, const TrainBatch *b, const DecoderBatch *db) {
    Rng rng;
    rng_seed_stream(&rng, r->o->seed ^ ((unsigned long long)r->trainer.step * 0x9E3779B97F4A7C15ULL),
                    0xD15700ULL + (unsigned long long)r->replicas->rank);
    SatLoss local = sat_forward_backward(&r->trainer, b->images, b->image_count, db, &rng);
    replicas_sum_floats(r->replicas, r->trainer.grads, r->model.table.total);
    return global_loss(r, local, b, db);
}

static LoopResult train_epoch(Run *r, FILE *steps_log, long total_steps, float *lr, volatile sig_atomic_t *stop,
                              Error *err) {
    const TrainOptions *o = r->o;
    int batches = loader_batches_per_epoch(r->train_loader), replicated = r->replicas->size > 1;
    loader_seek(r->train_loader, r->state.epoch, r->state.batch);
    const TrainBatch *b;
    int status;
    while ((status = loader_next(r->train_loader, &b, err)) == 0 && b) {
        double t0 = now_seconds();
        *lr = learning_rate(o, r->trainer.step, total_steps);
        DecoderBatch db = {.captions = b->captions, .row_image = b->row_image, .rows = b->rows, .steps = b->steps,
                           .label_smoothing = o->label_smoothing, .training = 1};
        LoopResult agreed = replicated ? agree_on_step(r, b, &db, stop) : LOOP_DONE;
        if (agreed != LOOP_DONE) return agreed;
        double reward = 0.0;
        SatLoss loss;
        if (r->pool) {
            uint64_t dropout_seed = (uint64_t)rng_next_u32(&r->state.rng) << 32 | rng_next_u32(&r->state.rng);
            if (sat_replica_pool_forward_backward(r->pool, b->images, b->image_count, &db, dropout_seed, &loss, err) != 0)
                return LOOP_ERROR;
        } else {
            loss = replicated ? replica_step(r, b, &db)
                   : r->scst  ? scst_forward_backward(r->scst, &r->trainer, b, &r->state.rng, &reward)
                              : sat_forward_backward(&r->trainer, b->images, b->image_count, &db, &r->state.rng);
        }
        if (!isfinite(loss.loss)) {
            error_set(err, "the loss became %s at step %ld (learning rate %.3g); the last good checkpoint is %s: "
                           "resume from it with a lower --lr",
                      isnan(loss.loss) ? "NaN" : "infinite", r->trainer.step + 1, *lr, r->path[0]);
            return LOOP_ERROR;
        }
        float norm = sat_optimizer_step(&r->trainer, *lr, o->weight_decay, o->clip);
        if (r->trainer.ema) sat_ema_update(&r->trainer, o->ema);
        r->state.batch++;
        r->state.epoch_loss_sum += loss.cross_entropy;
        r->state.epoch_reward_sum += reward;
        r->state.epoch_loss_count++;
        double rate = (replicated ? db.total_images : b->image_count) / (now_seconds() - t0);
        if (steps_log)
            fprintf(steps_log, "%ld,%ld,%d,%.6f,%.6f,%.6f,%.6f,%.4f,%.4g,%.2f,%.6f\n", r->trainer.step,
                    r->state.epoch + 1, r->state.batch, loss.loss, loss.cross_entropy, loss.penalty, loss.aux, norm,
                    *lr, rate, reward);
        if (r->rank0)
            progress_update(&r->progress, r->state.epoch + 1, o->epochs, r->state.batch, batches,
                            r->scst ? reward : loss.cross_entropy, rate);
        if (r->trainer.step % o->checkpoint_every == 0) {
            if (steps_log) fflush(steps_log);
            if (save_checkpoint(r, err) != 0) return LOOP_ERROR;
        }
        if (!replicated && *stop) return LOOP_INTERRUPTED;
        if (!replicated && out_of_time(r)) return LOOP_STOPPED;
        if (o->stop_at_step > 0 && r->trainer.step >= o->stop_at_step) return LOOP_STOPPED;
    }
    return status == 0 ? LOOP_DONE : LOOP_ERROR;
}

static int train_loop(Run *r, volatile sig_atomic_t *stop, Error *err) {
    const TrainOptions *o = r->o;
    long total_steps = (long)o->epochs * loader_batches_per_epoch(r->train_loader);
    FILE *steps_log = r->rank0 ? open_steps_log(r, r->trainer.step, err) : NULL;
    if (r->rank0 && !steps_log) return 1;
    progress_init(&r->progress, stderr);
    r->progress.items_per_unit = o->batch; /* the bar counts batches, the rate images */
    if (r->scst) r->progress.loss_name = "reward";
    int result = 0;
    float lr = learning_rate(o, r->trainer.step, total_steps);
    while (r->state.epoch < o->epochs) {
        LoopResult loop = train_epoch(r, steps_log, total_steps, &lr, stop, err);
        if (steps_log) fflush(steps_log);
        if (loop == LOOP_ERROR) {
            result = 1;
            break;
        }
        if (loop == LOOP_INTERRUPTED || loop == LOOP_STOPPED) {
            progress_finish(&r->progress);
            if (save_checkpoint(r, err) != 0) {
                result = 1;
                break;
            }
            report_allreduce(r);
            if (r->rank0)
                fprintf(stderr, "caption train: %s at step %ld; checkpoint written to %s (continue with --resume %s)\n",
                        loop == LOOP_INTERRUPTED ? "interrupted" : "stopped (time or step limit)", r->trainer.step,
                        r->path[0], r->path[0]);
            result = loop == LOOP_INTERRUPTED ? 130 : 0;
            break;
        }
        int early = 0;
        if (end_of_epoch(r, lr, &early, err) != 0) {
            result = 1;
            break;
        }
        if (early) break;
    }
    if (steps_log) fclose(steps_log);
    return result;
}

static int finish(Run *r, Error *err) {
    char model_path[1200];
    out_path(r, model_path, sizeof model_path, "model.safetensors");
    SatModel best;
    if (sat_model_load(&best, r->path[1], err) != 0) return -1;
    int status = sat_model_save(&best, model_path, 0, err);
    sat_model_free(&best);
    if (status == 0)
        fprintf(stderr, "caption train: done in %.1f minutes; best dev CIDEr-D %.4f at epoch %d, saved as %s\n",
                trained_seconds(r) / 60.0, r->state.best_cider, r->state.best_epoch, model_path);
    return status;
}

int train_run_replicated(const TrainOptions *o, const char *resume, volatile sig_atomic_t *stop, Replicas *replicas) {
    Run r = {0};
    r.options = *o;
    r.o = &r.options;
    r.replicas = replicas;
    r.rank0 = replicas->rank == 0;
    r.start_time = now_seconds();
    Error err;
    int result = 1;
    if (setup(&r, resume, &err) == 0) {
        if (r.rank0)
            fprintf(stderr, "caption train: %d training images, %d dev images, vocabulary %d, %zu parameters, grid %dx%d\n",
                    r.train.count, r.dev.count, r.vocab.size, r.model.table.total, r.model.grid_h, r.model.grid_w);
        char kernel_note[512];
        if (r.rank0 && cpu_slower_blas_kernel_note(kernel_note, sizeof kernel_note))
            fprintf(stderr, "caption train: note: %s\n", kernel_note);
        if (r.rank0 && replicas->size > 1)
            fprintf(stderr, "caption train: %d processes (MPI), each with its share of every batch of %d images\n",
                    replicas->size, o->batch);
        result = train_loop(&r, stop, &err);
        if (result == 0 && r.rank0 && r.state.best_epoch > 0 && finish(&r, &err) != 0) result = 1;
    }
    if (result == 1) {
        if (replicas->size > 1) fprintf(stderr, "caption train: rank %d of %d: %s\n", replicas->rank, replicas->size, err.message);
        else fprintf(stderr, "caption train: %s\n", err.message);
    }
    teardown(&r);
    return result;
}

int train_run(const TrainOptions *o, const char *resume, volatile sig_atomic_t *stop) {
    Replicas one = {.rank = 0, .size = 1};
    return train_run_replicated(o, resume, stop, &one);
}
