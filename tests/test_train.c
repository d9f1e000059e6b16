/* caption train on generated shapes data: it converges, writes its files,
 * resumes exactly (the losses after a stop and --resume equal those of the
 * uninterrupted run), and a checkpoint write that fails leaves the previous
 * file intact.
 *
 * Environment (tools/seed-sweep sets both; see tools/SEEDS.md):
 *   CAPTION_TEST_SEED=S     training seed S, shapes data seed S + 4
 *                           (default 1: the seeds 1 and 5 the test always used)
 *   CAPTION_TEST_CONTROL=1  no-learning control: learning rate 0 in the runs
 *                           whose learning is measured (the self-critical run
 *                           still starts from a trained model); the checks that
 *                           assert learning must then fail, the others pass.
 * Each check of a statistical property prints "stat NAME VALUE OP BAR", the
 * line tools/seed-sweep collects; its bar comes from the distribution over
 * seeds and OpenBLAS kernels recorded in the comment beside it. */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "dataset.h"
#include "loader.h"
#include "model.h"
#include "safetensors.h"
#include "scst.h"
#include "shapes.h"
#include "test_util.h"
#include "train.h"

/* The seed and the control switch the environment chose, and the data. */
typedef struct {
    unsigned long long seed;
    int control;
    const char *data;
} Setup;

static Setup setup_from_environment(const char *data) {
    const char *seed = getenv("CAPTION_TEST_SEED"), *control = getenv("CAPTION_TEST_CONTROL");
    Setup s = {.seed = seed && *seed ? strtoull(seed, NULL, 10) : 1, .control = control && atoi(control) == 1,
               .data = data};
    return s;
}

/* One line per statistical check, for tools/seed-sweep: passes when value OP bar. */
static int stat_check(const char *name, double value, char op, double bar) {
    printf("stat %s %.6g %c %.6g\n", name, value, op, bar);
    return op == '<' ? value < bar : value > bar;
}

typedef struct {
    double loss[256];
    int count;
} StepLosses;

/* One column of steps.csv, one value per step: column 3 is the loss
 * (step,epoch,batch,loss,...), -1 the last one (the reward). */
static int read_steps_column(const char *run, int column, StepLosses *out) {
    char path[600], line[512];
    snprintf(path, sizeof path, "%s/steps.csv", run);
    FILE *f = fopen(path, "r");
    out->count = 0;
    if (!f) return -1;
    while (fgets(line, sizeof line, f) && out->count < 256) {
        if (line[0] < '0' || line[0] > '9') continue;
        const char *field = line;
        for (int i = 0; i < column && field; i++) field = strchr(field, ',') ? strchr(field, ',') + 1 : NULL;
        if (column < 0) field = strrchr(line, ',') ? strrchr(line, ',') + 1 : NULL;
        if (field) out->loss[out->count++] = strtod(field, NULL);
    }
    fclose(f);
    return 0;
}

static int read_losses(const char *run, StepLosses *out) { return read_steps_column(run, 3, out); }
static int read_rewards(const char *run, StepLosses *out) { return read_steps_column(run, -1, out); }

static int file_exists(const char *dir, const char *name) {
    char path[600];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0 && st.st_size > 0;
}

enum { STEPS_PER_EPOCH = 6 /* 96 images / 16 per batch */ };

/* Sets each (name, value) of settings; 1 when every one was taken. */
static int set_options(TrainOptions *o, const char *(*settings)[2], size_t count) {
    Error err;
    int all = 1;
    for (size_t i = 0; i < count; i++)
        if (train_options_set(o, settings[i][0], settings[i][1], &err) != 1) {
            fprintf(stderr, "option %s: %s\n", settings[i][0], err.message);
            all = 0;
        }
    return all;
}
#define SET_OPTIONS(o, settings) set_options((o), (settings), sizeof(settings) / sizeof((settings)[0]))

static void small_options(TrainOptions *o, const Setup *setup, const char *out) {
    train_options_defaults(o);
    o->seed = setup->seed;
    const char *settings[][2] = {
        {"data", setup->data}, {"out", out}, {"image-size", "32"}, {"encoder", "8,16p,16p"}, {"embed", "16"},
        {"hidden", "32"}, {"attention-dim", "16"}, {"batch", "16"}, {"epochs", "4"}, {"min-count", "1"},
        {"checkpoint-every", "4"}, {"warmup-steps", "2"}, {"lr", "0.01"}, {"eval-beam", "1"}, {"threads", "1"},
        {"dropout", "0.2"}, {"patience", "0"},
    };
    SET_OPTIONS(o, settings);
}

/* The control's learning rate: 0 from the first step to the last. */
static void control_options(TrainOptions *o, const Setup *setup) {
    Error err;
    if (setup->control &&
        (train_options_set(o, "lr", "0", &err) != 1 || train_options_set(o, "min-lr", "0", &err) != 1))
        fprintf(stderr, "control options: %s\n", err.message);
}

static void test_converges_and_writes(CheckCounts *c, const Setup *setup, const char *run, StepLosses *losses) {
    TrainOptions o;
    small_options(&o, setup, run);
    control_options(&o, setup);
    Error err;
    CHECK(c, train_options_set(&o, "keep-epochs", "1", &err) == 1);
    volatile sig_atomic_t stop = 0;
    CHECK(c, train_run(&o, NULL, &stop) == 0);
    const char *files[] = {"model.safetensors", "best.safetensors", "checkpoint.safetensors", "epochs.csv",
                           "steps.csv", "curve.png", "epoch-1.safetensors", "epoch-4.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) CHECK(c, file_exists(run, files[i]));
    CHECK(c, !file_exists(run, "epoch-5.safetensors"));
    /* --keep-epochs: the best model is one of the epochs' files, byte for byte. */
    int best_is_an_epoch = 0;
    char best[600], epoch[600];
    snprintf(best, sizeof best, "%s/best.safetensors", run);
    for (int e = 1; e <= 4; e++) {
        snprintf(epoch, sizeof epoch, "%s/epoch-%d.safetensors", run, e);
        best_is_an_epoch |= files_equal(best, epoch);
    }
    CHECK(c, best_is_an_epoch);
    CHECK(c, read_losses(run, losses) == 0);
    CHECK(c, losses->count == 4 * STEPS_PER_EPOCH);
    if (losses->count >= 6) {
        double first = (losses->loss[0] + losses->loss[1]) / 2;
        double last = (losses->loss[losses->count - 1] + losses->loss[losses->count - 2]) / 2;
        printf("training loss: first steps %.4f, last steps %.4f\n", first, last);
        /* last / first: 0.628 +- 0.024, max 0.679, over 20 seeds, the same on
         * the Haswell, Sandybridge, SkylakeX and Cooperlake kernels (3 epochs,
         * the test until issue 12: 0.680 +- 0.022, max 0.721); control (lr 0):
         * 0.998 +- 0.013, min 0.977. */
        CHECK(c, stat_check("train.loss_ratio", last / first, '<', 0.75));
    }
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", run);
    SatModel model;
    CHECK(c, sat_model_load(&model, path, &err) == 0);
    sat_model_free(&model);
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", run);
    CHECK(c, sat_model_load(&model, path, &err) == 0); /* a checkpoint is also a model */
    sat_model_free(&model);
}

/* Runs o into `run` to step 7 (mid-epoch, between checkpoints), resumes it
 * from its checkpoint to the end, and compares its losses with reference's
 * (the uninterrupted run's); `what` names the run in the line printed. */
static int resume_matches(CheckCounts *c, TrainOptions *o, const char *run, const StepLosses *reference,
                          const char *what) {
    Error err;
    volatile sig_atomic_t stop = 0;
    char checkpoint[600];
    snprintf(o->out, sizeof o->out, "%s", run);
    train_options_set(o, "stop-at-step", "7", &err);
    CHECK(c, train_run(o, NULL, &stop) == 0);
    snprintf(checkpoint, sizeof checkpoint, "%s/checkpoint.safetensors", run);
    train_options_set(o, "stop-at-step", "0", &err);
    CHECK(c, train_run(o, checkpoint, &stop) == 0);
    StepLosses resumed;
    int same = read_losses(run, &resumed) == 0 && resumed.count == reference->count;
    for (int i = 0; same && i < resumed.count; i++) same = resumed.loss[i] == reference->loss[i];
    printf("%s resumed: %d steps, losses %s the uninterrupted run's\n", what, resumed.count,
           same ? "equal" : "DIFFER FROM");
    return same;
}

static void test_resume_is_exact(CheckCounts *c, const Setup *setup, const char *run, const StepLosses *reference) {
    TrainOptions o;
    small_options(&o, setup, run);
    control_options(&o, setup);
    CHECK(c, resume_matches(c, &o, run, reference, "cross-entropy run"));
}

static int count_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    int count = 0;
    struct dirent *entry;
    while (d && (entry = readdir(d)) != NULL) count += strstr(entry->d_name, ".tmp") != NULL;
    if (d) closedir(d);
    return count;
}

/* A write that fails part-way (the file size limit stands in for a full disk)
 * is reported and leaves the previous file as it was. */
static void test_failed_write_keeps_previous(CheckCounts *c, const char *run) {
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", run);
    size_t before_size = 0, after_size = 0;
    char *before = read_whole_file(path, &before_size);
    CHECK(c, before != NULL);
    pid_t child = fork();
    if (child == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit limit = {4096, 4096};
        setrlimit(RLIMIT_FSIZE, &limit);
        SatModel model;
        Error err;
        if (sat_model_load(&model, path, &err) != 0) _exit(3);
        int status = sat_model_save(&model, path, 0, &err);
        if (status == 0) _exit(0);
        fprintf(stderr, "expected failure: %s\n", err.message);
        _exit(strstr(err.message, "previous file") ? 1 : 4);
    }
    CHECK(c, wait_exit_code(child) == 1);
    char *after = read_whole_file(path, &after_size);
    CHECK(c, after != NULL);
    CHECK(c, before_size == after_size && before && after && memcmp(before, after, before_size) == 0);
    CHECK(c, count_temporaries(run) == 0);
    free(before);
    free(after);
}

/* `caption eval --model` on the trained model reproduces the dev CIDEr-D the
 * training loop measured for its best epoch: one captioning path. */
static void test_eval_matches_training(CheckCounts *c, const char *caption_exe, const char *data, const char *run) {
    char command[1200], line[512], path[600];
    snprintf(path, sizeof path, "%s/epochs.csv", run);
    FILE *f = fopen(path, "r");
    double best = -1.0;
    while (f && fgets(line, sizeof line, f)) {
        if (line[0] < '0' || line[0] > '9') continue;
        char *field = line;
        for (int i = 0; i < 9 && field; i++) field = strchr(field, ',') ? strchr(field, ',') + 1 : NULL;
        if (field && strtod(field, NULL) > best) best = strtod(field, NULL);
    }
    if (f) fclose(f);
    snprintf(command, sizeof command, "'%s' eval --model '%s/model.safetensors' --data '%s' --split dev --beam 1 --json 2>/dev/null",
             caption_exe, run, data);
    FILE *p = popen(command, "r");
    double cider = -2.0;
    while (p && fgets(line, sizeof line, p)) {
        char *at = strstr(line, "\"CIDEr-D\":");
        if (at) cider = strtod(at + strlen("\"CIDEr-D\":"), NULL);
    }
    CHECK(c, p && pclose(p) == 0);
    printf("dev CIDEr-D: training loop %.6f, caption eval %.6f\n", best, cider);
    CHECK(c, best >= 0.0 && fabs(cider - best) < 1e-6 /* epochs.csv keeps 6 decimals */);
}

/* Whether /proc/cpuinfo's flags hold every AVX-512 extension OpenBLAS's
 * SkylakeX kernels use: read independently of the code under test. */
static int cpuinfo_has_avx512_kernels(void) {
    char *info = read_whole_file("/proc/cpuinfo", NULL);
    const char *flags = info ? strstr(info, "\nflags") : NULL;
    const char *end = flags ? strchr(flags + 1, '\n') : NULL;
    static const char *const needed[] = {" avx512f", " avx512cd", " avx512bw", " avx512dq", " avx512vl"};
    int all = flags && end;
    for (size_t i = 0; all && i < sizeof needed / sizeof needed[0]; i++) {
        char *at = strstr(flags, needed[i]);
        all = at && at < end && (at[strlen(needed[i])] == ' ' || at[strlen(needed[i])] == '\n');
    }
    free(info);
    return all;
}

/* Whether `caption train`, with OPENBLAS_CORETYPE=kernel, prints the note
 * that an AVX-512 CPU is running slower kernels. */
static int train_prints_kernel_note(const char *caption_exe, const char *data, const char *root, const char *kernel) {
    char command[1200], line[1024];
    snprintf(command, sizeof command,
             "OPENBLAS_CORETYPE=%s '%s' train --data '%s' --epochs 1 --stop-at-step 1 --eval-images 4 "
             "--out '%s/kernel-note-%s' 2>&1",
             kernel, caption_exe, data, root, kernel);
    FILE *p = popen(command, "r");
    int noted = 0;
    while (p && fgets(line, sizeof line, p))
        noted |= strstr(line, "note: OpenBLAS runs its") != NULL;
    if (p) pclose(p);
    return noted;
}

/* The note is printed exactly when the CPU could run the AVX-512 kernels
 * and OPENBLAS_CORETYPE holds OpenBLAS to older ones. */
static void test_slower_kernel_note(CheckCounts *c, const char *caption_exe, const char *data, const char *root) {
    int avx512 = cpuinfo_has_avx512_kernels();
    printf("CPU %s the AVX-512 extensions of OpenBLAS's SkylakeX kernels\n", avx512 ? "has" : "lacks");
    CHECK(c, train_prints_kernel_note(caption_exe, data, root, "Haswell") == avx512);
    CHECK(c, !train_prints_kernel_note(caption_exe, data, root, "SkylakeX"));
}

/* Compares the "optimizer.ema.*" tensors of two checkpoints byte for byte and
 * measures how far the averages are from the raw weights they were kept for. */
static int ema_tensors(const char *path_a, const char *path_b, int *compared, double *from_raw) {
    SafetensorsFile a, b;
    Error err;
    if (safetensors_open(&a, path_a, &err) != 0) return -1;
    if (safetensors_open(&b, path_b, &err) != 0) {
        safetensors_close(&a);
        return -1;
    }
    int same = 1;
    *compared = 0;
    *from_raw = 0.0;
    for (int i = 0; i < a.count; i++) {
        const SafetensorsEntry *ea = &a.entries[i];
        if (strncmp(ea->name, "optimizer.ema.", 14) != 0) continue;
        const SafetensorsEntry *eb = safetensors_find(&b, ea->name), *raw = safetensors_find(&a, ea->name + 14);
        size_t bytes = ea->end - ea->begin;
        same &= eb && eb->end - eb->begin == bytes &&
                memcmp(a.bytes + a.data_start + ea->begin, b.bytes + b.data_start + eb->begin, bytes) == 0;
        const float *average = (const float *)(a.bytes + a.data_start + ea->begin);
        for (size_t k = 0; raw && k < ea->numel; k++) {
            float weight;
            memcpy(&weight, a.bytes + a.data_start + raw->begin + k * sizeof(float), sizeof weight);
            *from_raw = fmax(*from_raw, fabs((double)weight - average[k]));
        }
        (*compared)++;
    }
    safetensors_close(&a);
    safetensors_close(&b);
    return same ? 0 : 1;
}

/* --ema: the average resumes exactly too (its tensors after stop + resume
 * equal those of the uninterrupted run), differs from the raw weights, and
 * is what was evaluated and saved (caption eval on the saved model gives the
 * training loop's best CIDEr-D). */
static void test_ema(CheckCounts *c, const char *caption_exe, const Setup *setup, const char *root) {
    char whole[300], resumed[300], path_whole[400], path_resumed[400];
    snprintf(whole, sizeof whole, "%s/ema-whole", root);
    snprintf(resumed, sizeof resumed, "%s/ema-resumed", root);
    TrainOptions o;
    Error err;
    volatile sig_atomic_t stop = 0;
    small_options(&o, setup, whole);
    control_options(&o, setup);
    train_options_set(&o, "ema", "0.9", &err);
    CHECK(c, train_run(&o, NULL, &stop) == 0);
    small_options(&o, setup, resumed);
    control_options(&o, setup);
    train_options_set(&o, "ema", "0.9", &err);
    train_options_set(&o, "stop-at-step", "7", &err);
    CHECK(c, train_run(&o, NULL, &stop) == 0);
    snprintf(path_resumed, sizeof path_resumed, "%s/checkpoint.safetensors", resumed);
    train_options_set(&o, "stop-at-step", "0", &err);
    CHECK(c, train_run(&o, path_resumed, &stop) == 0);
    snprintf(path_whole, sizeof path_whole, "%s/checkpoint.safetensors", whole);
    int compared = 0;
    double from_raw = 0.0;
    int status = ema_tensors(path_whole, path_resumed, &compared, &from_raw);
    printf("ema: %d averaged tensors, resumed %s the uninterrupted run's; max |average - weight| %.3g\n", compared,
           status == 0 ? "equal to" : "DIFFERENT FROM", from_raw);
    CHECK(c, status == 0 && compared > 10);
    /* 2.05e-3 +- 2e-5, min 2.00e-3, over 20 seeds x the 4 kernels; control
     * (lr 0: the weights never move): 0 every time. */
    CHECK(c, stat_check("train.ema_from_raw", from_raw, '>', 1e-4));
    if (caption_exe) test_eval_matches_training(c, caption_exe, setup->data, whole);
}

static double mean_of(const double *x, int n) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += x[i];
    return n > 0 ? sum / n : 0.0;
}

/* Self-critical training from a cross-entropy model (--init): the reward of
 * the sampled captions rises, and a stop and --resume gives the same losses.
 * The gain is measured with 16 samples per image over 8 epochs. With 4 and
 * 4 (the test until issue 12) it was 0.13 +- 0.045 over 20 seeds and the
 * no-learning control reached +0.07, so the bar of 0.1 failed 3-5 seeds in
 * 20 on every OpenBLAS kernel. With 8 and 8 (from today's 4-epoch model),
 * over 20 seeds x Haswell, Sandybridge, SkylakeX, Cooperlake the gain was
 * 0.56 +- 0.22 but min 0.21 (seed 11 on Cooperlake; the same seed gives
 * 0.29-0.46 on the other kernels: learning from samples is chaotic), and the
 * control's sampling noise 0.010 +- 0.037, max 0.084. 16 samples halve the
 * variance of each epoch's mean reward and of each sample's baseline (the
 * mean of the image's other samples), which steadies the learning too. */
enum { SCST_EPOCHS = 8 };

static void test_self_critical(CheckCounts *c, const Setup *setup, const char *xe_run, const char *root) {
    char init[400], whole[300], resumed[300], epochs[16];
    snprintf(init, sizeof init, "%s/model.safetensors", xe_run);
    snprintf(whole, sizeof whole, "%s/scst-whole", root);
    snprintf(resumed, sizeof resumed, "%s/scst-resumed", root);
    snprintf(epochs, sizeof epochs, "%d", SCST_EPOCHS);
    const char *settings[][2] = {{"init", init}, {"scst-samples", "16"}, {"lr", "0.003"}, {"schedule", "constant"},
                                 {"warmup-steps", "0"}, {"epochs", epochs}, {"max-words", "8"}};
    TrainOptions o;
    Error err;
    volatile sig_atomic_t stop = 0;
    small_options(&o, setup, whole);
    CHECK(c, SET_OPTIONS(&o, settings));
    control_options(&o, setup);
    CHECK(c, train_run(&o, NULL, &stop) == 0);
    StepLosses rewards, losses;
    CHECK(c, read_rewards(whole, &rewards) == 0 && read_losses(whole, &losses) == 0);
    CHECK(c, rewards.count == SCST_EPOCHS * STEPS_PER_EPOCH);
    double first = mean_of(rewards.loss, STEPS_PER_EPOCH);
    double last = mean_of(rewards.loss + rewards.count - STEPS_PER_EPOCH, STEPS_PER_EPOCH);
    printf("self-critical: mean reward of the samples %.4f in the first epoch, %.4f in the last\n", first, last);
    /* last - first over 20 seeds x Haswell, Sandybridge, SkylakeX and
     * Cooperlake: 0.70 +- 0.26, min 0.355 (per kernel: min 0.36, 0.38, 0.38,
     * 0.35); control (lr 0; 20 seeds x Haswell, Sandybridge, Cooperlake):
     * -0.003 +- 0.022, max 0.038, 4.4 sd below the bar at least. */
    CHECK(c, stat_check("train.scst_gain", last - first, '>', 0.1));

    CHECK(c, resume_matches(c, &o, resumed, &losses, "self-critical run"));

    small_options(&o, setup, resumed);
    train_options_set(&o, "init", init, &err);
    train_options_set(&o, "scst-samples", "1", &err);
    CHECK(c, train_run(&o, NULL, &stop) == 1); /* one sample has no baseline: refused */
}

/* One self-critical pass of the model with the references at weight w and
 * the mode penalty `mode`: the loss, the gradients copied to grads, and the
 * share of images whose greedy caption another image had (may be NULL). */
static float scst_pass(SatTrainer *t, const Dataset *train, const Vocab *vocab, const TrainBatch *batch, float w,
                       float mode, float *grads, float *shared_modes) {
    Scst *scst;
    Error err;
    ScstOptions options = {.samples = 3, .max_words = 8, .xe_weight = w, .captions_per_image = 5,
                           .mode_penalty = mode};
    if (scst_create(&scst, t->model, train, vocab, batch->image_count, &options, &err) != 0) return NAN;
    Rng rng;
    rng_seed(&rng, 77); /* the same samples for every weight */
    double reward;
    SatLoss loss = scst_forward_backward(scst, t, batch, &rng, &reward);
    memcpy(grads, t->grads, t->model->table.total * sizeof(float));
    if (shared_modes) *shared_modes = scst_shared_mode_fraction(scst, batch->image_count);
    scst_free(scst);
    return loss.loss;
}

/* --scst-duplicate-penalty's measure: the share of the batch's other images
 * that drew the very same words, whatever follows them (<end>, <pad> or the
 * cut at max_words), counting an image once however many of its samples
 * drew them. */
static void test_shared_caption_fraction(CheckCounts *c) {
    enum { SAMPLES = 3, IMAGES = 3, ROWS = SAMPLES * IMAGES, MAX_WORDS = 3, COLUMNS = MAX_WORDS + 2 };
    const int S = TOKEN_START, E = TOKEN_END, P = TOKEN_PAD;
    const int sampled[ROWS][COLUMNS] = {
        {S, 7, 8, E, P}, {S, 7, 9, 9, E}, {S, 6, E, P, P},  /* image 0 */
        {S, 7, 8, E, P}, {S, 7, 8, E, P}, {S, 9, E, P, P},  /* image 1: image 0's first caption, twice */
        {S, 7, 9, 9, 5}, {S, 7, 8, P, P}, {S, 6, 6, E, P}}; /* image 2: cut at 3 words; 6 6 is not 6 */
    float fraction[ROWS];
    scst_shared_caption_fraction(&sampled[0][0], ROWS, SAMPLES, COLUMNS, MAX_WORDS, fraction);
    const float expected[ROWS] = {1.0f, 0.5f, 0.0f, 1.0f, 1.0f, 0.0f, 0.5f, 1.0f, 0.0f};
    int matches = 1;
    for (int r = 0; r < ROWS; r++) matches &= fraction[r] == expected[r];
    CHECK(c, matches);
    scst_shared_caption_fraction(&sampled[0][0], SAMPLES, SAMPLES, COLUMNS, MAX_WORDS, fraction);
    CHECK(c, fraction[0] == 0.0f && fraction[1] == 0.0f && fraction[2] == 0.0f); /* one image: nothing to share with */
}

/* --scst-repeat-penalty's measure: a caption's trigrams that repeat an
 * earlier one of the same caption, whatever lies between them; two of the
 * same word are not a trigram. */
static void test_repeated_trigram_fraction(CheckCounts *c) {
    const int dirt_bike[] = {11, 12, 13, 14, 11, 12, 13, 14}; /* on a dirt bike on a dirt bike */
    const int blue[] = {12, 15, 16, 15, 16, 15};              /* a blue and blue and blue: "blue and blue" twice */
    const int colour_copy[] = {12, 17, 18, 12, 15, 19, 16, 12, 20, 18, 12, 15, 19}; /* "in a blue shirt" twice */
    const int plain[] = {12, 17, 18, 12, 15, 19, 21, 18, 12, 15, 22};                /* "in a blue" twice */
    const int same_word[] = {15, 15, 15};
    CHECK(c, scst_repeated_trigram_fraction(dirt_bike, 8) == 2.0f / 6.0f);
    CHECK(c, scst_repeated_trigram_fraction(blue, 6) == 1.0f / 4.0f);
    CHECK(c, scst_repeated_trigram_fraction(colour_copy, 13) == 2.0f / 11.0f);
    CHECK(c, scst_repeated_trigram_fraction(plain, 11) == 1.0f / 9.0f);
    CHECK(c, scst_repeated_trigram_fraction(same_word, 3) == 0.0f);
    CHECK(c, scst_repeated_trigram_fraction(dirt_bike, 5) == 0.0f && scst_repeated_trigram_fraction(dirt_bike, 2) == 0.0f);
}

/* --scst-mode-penalty: with images 0 and 1 of the batch made the same
 * picture, their greedy captions are the same, so at least half of the
 * batch's images share their mode; those greedy rows enter the pass linearly
 * at the penalty's weight (the samples are the same at every weight) and
 * lower the loss, their cross-entropy being weighted negative. */
static void check_mode_penalty(CheckCounts *c, SatTrainer *t, const Dataset *train, const Vocab *vocab,
                               const TrainBatch *batch, float *g1, float *g2, float *g3) {
    int size = t->model->config.image_size;
    size_t pixels = (size_t)3 * size * size;
    TrainBatch twin = *batch;
    twin.images = malloc((size_t)batch->image_count * pixels * sizeof(float));
    CHECK(c, twin.images && batch->image_count >= 2);
    if (!twin.images || batch->image_count < 2) {
        free(twin.images);
        return;
    }
    memcpy(twin.images, batch->images, (size_t)batch->image_count * pixels * sizeof(float));
    memcpy(twin.images + pixels, twin.images, pixels * sizeof(float));
    float shared;
    float l1 = scst_pass(t, train, vocab, &twin, 0.0f, 1.0f, g1, &shared);
    float l2 = scst_pass(t, train, vocab, &twin, 0.0f, 2.0f, g2, NULL);
    float l3 = scst_pass(t, train, vocab, &twin, 0.0f, 3.0f, g3, NULL);
    double worst = 0.0, largest = 0.0;
    for (size_t i = 0; i < t->model->table.total; i++) {
        worst = fmax(worst, fabs((double)(g3[i] - g2[i]) - (double)(g2[i] - g1[i])));
        largest = fmax(largest, fabs((double)(g2[i] - g1[i])));
    }
    printf("self-critical + mode penalty: %.2f of the images share their greedy caption; loss %.5f / %.5f / %.5f "
           "at weights 1 / 2 / 3; gradient steps differ by %.2e of %.2e\n", shared, l1, l2, l3, worst, largest);
    CHECK(c, shared >= 0.5f);
    CHECK(c, l2 < l1 && fabs((double)(l3 - l2) - (double)(l2 - l1)) <= 1e-3 * fabs((double)(l2 - l1)));
    CHECK(c, largest > 0.0 && worst <= 1e-4 * largest);
    free(twin.images);
}

/* --scst-xe-weight: the reference captions enter the self-critical pass
 * linearly at the weight given, as plain cross-entropy. With the same
 * samples, the passes at weights 0.5 and 1.5 differ by the cross-entropy of
 * the references alone (frozen CNN, no smoothing, no dropout) times the
 * references' share r of all tokens: in the loss (which gives r) and in
 * every gradient element. */
static void test_scst_reference_mix(CheckCounts *c, const char *xe_run, const char *data) {
    char path[400];
    snprintf(path, sizeof path, "%s/model.safetensors", xe_run);
    SatModel model;
    Dataset train = {0};
    Vocab vocab = {0};
    Loader *loader = NULL;
    SatTrainer t = {0};
    Error err;
    int ready = sat_model_load(&model, path, &err) == 0;
    CHECK(c, ready && sat_model_prepare_inference(&model, &err) == 0);
    if (!ready) return;
    model.config.doubly_stochastic = 0.0f; /* the attention penalty is not the references' cross-entropy */
    CHECK(c, dataset_load(&train, data, NULL, "train", &err) == 0);
    CHECK(c, vocab_from_words(&vocab, (const char *const *)model.vocab, model.config.vocab_size, &err) == 0);
    LoaderOptions lo = {.batch_images = 4, .captions_per_image = 5, .max_words = 8,
                        .image_size = model.config.image_size, .crop_min_area = 1.0f, .seed = 3};
    memcpy(lo.mean, model.config.image_mean, sizeof lo.mean);
    memcpy(lo.std, model.config.image_std, sizeof lo.std);
    const TrainBatch *batch = NULL;
    CHECK(c, loader_create(&loader, &train, &vocab, &lo, &err) == 0);
    if (loader) loader_seek(loader, 0, 0);
    CHECK(c, loader && loader_next(loader, &batch, &err) == 0 && batch);
    CHECK(c, sat_trainer_init(&t, &model, 4, 4 * (3 + 5), 9, &err) == 0);
    t.frozen_encoder = 1;
    size_t total = model.table.total;
    float *low = malloc(total * sizeof(float)), *high = malloc(total * sizeof(float));
    float *plain = malloc(total * sizeof(float));
    if (batch && low && high && plain) {
        float loss_low = scst_pass(&t, &train, &vocab, batch, 0.5f, 0.0f, low, NULL);
        float loss_high = scst_pass(&t, &train, &vocab, batch, 1.5f, 0.0f, high, NULL);
        DecoderBatch references = {.captions = batch->captions, .row_image = batch->row_image, .rows = batch->rows,
                                   .steps = batch->steps, .label_smoothing = 0.0f, .training = 0};
        sat_encode_train(&t, batch->images, batch->image_count);
        float xe = sat_decode_backward(&t, batch->images, batch->image_count, &references, 0, NULL).cross_entropy;
        memcpy(plain, t.grads, total * sizeof(float));
        double share = (loss_high - loss_low) / xe, worst = 0.0, largest = 0.0;
        for (size_t i = 0; i < total; i++) {
            worst = fmax(worst, fabs((double)(high[i] - low[i]) - share * plain[i]));
            largest = fmax(largest, fabs(share * plain[i]));
        }
        printf("self-critical + references: loss %.5f at weight 0.5, %.5f at 1.5; references' share of the tokens "
               "%.4f; gradient difference vs share x cross-entropy gradient: worst %.2e of largest %.2e\n",
               loss_low, loss_high, share, worst, largest);
        CHECK(c, share > 0.05 && share < 0.95);
        CHECK(c, largest > 0.0 && worst <= 1e-4 * largest);
        check_mode_penalty(c, &t, &train, &vocab, batch, low, high, plain);
    }
    free(low), free(high), free(plain);
    sat_trainer_free(&t);
    loader_free(loader);
    vocab_free(&vocab);
    dataset_free(&train);
    sat_model_free(&model);
}

/* The Transformer decoder through caption train: it trains, a stop and
 * --resume gives the same losses (its every tensor and Adam moment in the
 * checkpoint), and self-critical training runs from its model with the
 * key/value cache sampling (the rewards are finite, the model file is a
 * Transformer's). */
/* small_options with `settings`, trained whole into `run`; its losses. */
static void train_with(CheckCounts *c, const Setup *setup, TrainOptions *o, const char *run,
                       const char *(*settings)[2], size_t count, StepLosses *losses) {
    volatile sig_atomic_t stop = 0;
    small_options(o, setup, run);
    CHECK(c, set_options(o, settings, count));
    CHECK(c, train_run(o, NULL, &stop) == 0);
    CHECK(c, read_losses(run, losses) == 0 && losses->count == 4 * STEPS_PER_EPOCH);
}

static void test_transformer_runs(CheckCounts *c, const Setup *setup, const char *root) {
    char whole[300], resumed[300], scst[300], init[400];
    snprintf(whole, sizeof whole, "%s/transformer-whole", root);
    snprintf(resumed, sizeof resumed, "%s/transformer-resumed", root);
    snprintf(scst, sizeof scst, "%s/transformer-scst", root);
    const char *settings[][2] = {{"decoder", "transformer"}, {"heads", "2"}, {"encoder-layers", "1"},
                                 {"decoder-layers", "2"}, {"ff-dim", "32"}, {"dropout", "0.1"}, {"lr", "0.003"},
                                 {"lambda", "0.05"}, {"penalty", "excess"}};
    TrainOptions o;
    Error err;
    volatile sig_atomic_t stop = 0;
    StepLosses losses;
    train_with(c, setup, &o, whole, settings, sizeof settings / sizeof settings[0], &losses);
    double first = mean_of(losses.loss, STEPS_PER_EPOCH);
    double last = mean_of(losses.loss + losses.count - STEPS_PER_EPOCH, STEPS_PER_EPOCH);
    printf("transformer: loss %.3f in the first epoch, %.3f in the last\n", first, last);
    /* The losses are shown, not judged: that it learns is test_learning's (issue 14). */
    CHECK(c, resume_matches(c, &o, resumed, &losses, "transformer run"));
    snprintf(init, sizeof init, "%s/model.safetensors", whole);
    SatModel model;
    int loaded = sat_model_load(&model, init, &err) == 0;
    CHECK(c, loaded && model.config.doubly_stochastic == 0.05f && model.config.penalty_excess_only);
    if (loaded) sat_model_free(&model);
    small_options(&o, setup, scst);
    const char *self_critical[][2] = {{"init", init}, {"scst-samples", "4"}, {"epochs", "1"}, {"lr", "0.0005"},
                                      {"scst-mode-penalty", "1"}, {"scst-repeat-penalty", "1"}};
    CHECK(c, SET_OPTIONS(&o, self_critical));
    CHECK(c, train_run(&o, NULL, &stop) == 0);
    StepLosses rewards;
    CHECK(c, read_rewards(scst, &rewards) == 0 && rewards.count == STEPS_PER_EPOCH);
    int finite = rewards.count > 0;
    for (int i = 0; i < rewards.count; i++) finite &= isfinite(rewards.loss[i]) && rewards.loss[i] >= 0.0;
    snprintf(init, sizeof init, "%s/model.safetensors", scst);
    loaded = sat_model_load(&model, init, &err) == 0;
    printf("transformer self-critical: %d steps, mean reward %.3f\n", rewards.count, mean_of(rewards.loss, rewards.count));
    /* --init without --lambda: the loaded decoder's default (the Transformer's 0), not the LSTMs' 0.005. */
    CHECK(c, finite && loaded && model.config.transformer && model.config.doubly_stochastic == 0.0f &&
                 !model.config.penalty_excess_only);
    if (loaded) sat_model_free(&model);
}

/* The LSTM's options of issue 13 together (a grid encoder, a tied output
 * layer, input dropout) trained on 2 replica threads: it resumes exactly. */
static void test_replica_threads_run(CheckCounts *c, const Setup *setup, const char *root) {
    char whole[300], resumed[300];
    snprintf(whole, sizeof whole, "%s/replicas-whole", root);
    snprintf(resumed, sizeof resumed, "%s/replicas-resumed", root);
    const char *settings[][2] = {{"replicas", "2"}, {"encoder-layers", "1"}, {"heads", "2"}, {"ff-dim", "32"},
                                 {"tied", "1"}, {"input-dropout", "0.2"}, {"score", "dot"}};
    TrainOptions o;
    StepLosses losses;
    train_with(c, setup, &o, whole, settings, sizeof settings / sizeof settings[0], &losses);
    printf("2 replica threads, grid encoder, tied, input dropout: loss %.3f in the first epoch, %.3f in the last\n",
           mean_of(losses.loss, STEPS_PER_EPOCH), mean_of(losses.loss + losses.count - STEPS_PER_EPOCH, STEPS_PER_EPOCH));
    CHECK(c, resume_matches(c, &o, resumed, &losses, "2-replica run"));
}

/* Bytes of the tensor `name` in two models equal? -1 when either cannot be read. */
static int same_tensor(const SatModel *a, const SatModel *b, const char *name) {
    const TensorSpec *x = tensor_table_find(&a->table, name), *y = tensor_table_find(&b->table, name);
    if (!x || !y || x->numel != y->numel) return -1;
    return memcmp(a->params + x->offset, b->params + y->offset, x->numel * sizeof(float)) == 0;
}

/* --freeze-encoder: the CNN's weights and batch-norm statistics stay those of
 * --init's model, while the decoder trains. */
static void test_frozen_encoder(CheckCounts *c, const Setup *setup, const char *xe_run, const char *root) {
    char init[400], run[300], trained[400];
    snprintf(init, sizeof init, "%s/model.safetensors", xe_run);
    snprintf(run, sizeof run, "%s/frozen", root);
    snprintf(trained, sizeof trained, "%s/checkpoint.safetensors", run);
    TrainOptions o;
    Error err;
    volatile sig_atomic_t stop = 0;
    small_options(&o, setup, run);
    const char *settings[][2] = {{"init", init}, {"scst-samples", "3"}, {"freeze-encoder", "1"}, {"epochs", "1"}};
    CHECK(c, SET_OPTIONS(&o, settings));
    CHECK(c, train_run(&o, NULL, &stop) == 0);
    SatModel before, after;
    CHECK(c, sat_model_load(&before, init, &err) == 0);
    CHECK(c, sat_model_load(&after, trained, &err) == 0);
    int conv = same_tensor(&before, &after, "encoder.conv0.weight");
    int stats = same_tensor(&before, &after, "encoder.bn1.running_mean");
    int decoder = same_tensor(&before, &after, "decoder.lstm.weight_hh");
    printf("frozen encoder: conv weights %s, batch-norm statistics %s, decoder %s\n", conv == 1 ? "kept" : "CHANGED",
           stats == 1 ? "kept" : "CHANGED", decoder == 0 ? "trained" : "NOT TRAINED");
    CHECK(c, conv == 1 && stats == 1 && decoder == 0);
    sat_model_free(&before);
    sat_model_free(&after);
}

/* The model the self-critical and frozen-encoder runs start from: run_a's,
 * or under the control (where run_a did not learn) one trained as run_a
 * would have been, so that the control measures self-critical training at
 * lr 0 from the same kind of start. */
static const char *trained_model_run(CheckCounts *c, const Setup *setup, const char *run_a, char *scratch, size_t size,
                                     const char *root) {
    if (!setup->control) return run_a;
    snprintf(scratch, size, "%s/xe", root);
    TrainOptions o;
    small_options(&o, setup, scratch);
    volatile sig_atomic_t stop = 0;
    CHECK(c, train_run(&o, NULL, &stop) == 0);
    return scratch;
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    CheckCounts c = {0};
    char root[] = "/tmp/caption-test-train-XXXXXX";
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    char data[200], run_a[200], run_b[200], xe[220], command[300];
    snprintf(data, sizeof data, "%s/shapes", root);
    snprintf(run_a, sizeof run_a, "%s/a", root);
    snprintf(run_b, sizeof run_b, "%s/b", root);
    const Setup setup = setup_from_environment(data);
    printf("seed %llu (data seed %llu)%s\n", setup.seed, setup.seed + 4,
           setup.control ? ", CONTROL: learning rate 0, the learning checks must fail" : "");
    ShapesOptions shapes;
    shapes_options_default(&shapes);
    Error err;
    CHECK(&c, shapes_write_dataset(data, 96, 16, setup.seed + 4, &shapes, &err) == 0);
    StepLosses losses = {0};
    double start = now_seconds();
    test_shared_caption_fraction(&c);
    test_repeated_trigram_fraction(&c);
    test_converges_and_writes(&c, &setup, run_a, &losses);
    test_resume_is_exact(&c, &setup, run_b, &losses);
    test_failed_write_keeps_previous(&c, run_a);
    if (argc > 1) test_eval_matches_training(&c, argv[1], data, run_a);
    if (argc > 1) test_slower_kernel_note(&c, argv[1], data, root);
    test_ema(&c, argc > 1 ? argv[1] : NULL, &setup, root);
    const char *xe_run = trained_model_run(&c, &setup, run_a, xe, sizeof xe, root);
    double scst_start = now_seconds();
    test_self_critical(&c, &setup, xe_run, root);
    double scst_seconds = now_seconds() - scst_start;
    test_frozen_encoder(&c, &setup, xe_run, root);
    test_scst_reference_mix(&c, xe_run, data);
    test_transformer_runs(&c, &setup, root);
    test_replica_threads_run(&c, &setup, root);
    printf("wall time %.1f s (self-critical %.1f s)\n", now_seconds() - start, scst_seconds);
    snprintf(command, sizeof command, "rm -rf '%s'", root);
    if (system(command) != 0) fprintf(stderr, "could not remove %s\n", root);
    return check_summary(&c);
}
