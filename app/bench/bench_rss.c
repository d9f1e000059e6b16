/* Peak memory of captioning one image and of one training step, each in a
 * forked child so neither sees the other's (or the benchmark's) allocations.
 * The child reads its own high-water mark (VmHWM) and sends it back on a pipe. */
#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_measure.h"
#include "pipeline.h"

typedef struct {
    double mib;       /* < 0: failed, see message */
    char message[1024];
} ChildReport;

typedef int (*ChildJob)(const BenchSetup *setup, Error *err);

double bench_peak_rss_mib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kib = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    if (kib < 0) {
        struct rusage usage;
        getrusage(RUSAGE_SELF, &usage);
        kib = usage.ru_maxrss; /* kilobytes on Linux */
    }
    return kib / 1024.0;
}

static int caption_one(const BenchSetup *s, Error *err) {
    CaptionPipeline p;
    if (pipeline_open(&p, s->model_path, 3, s->max_length, err) != 0) return -1;
    p.decode = (DecodeOptions){.beam_width = 3, .max_length = s->max_length};
    Caption caption;
    int status = pipeline_caption_file(&p, s->picture, &caption, NULL, err);
    if (status == 0) caption_free(&caption);
    pipeline_close(&p);
    return status;
}

static int train_one(const BenchSetup *s, Error *err) {
    CaptionPipeline loaded; /* an ensemble's training figures are its first model's */
    if (pipeline_load(&loaded, s->model_path, err) != 0) return -1;
    BenchTrainData d;
    SatTrainer t;
    int status = bench_train_data_make(&d, &loaded.model, s, err);
    if (status == 0) status = sat_trainer_init(&t, &loaded.model, d.image_count, d.batch.rows, d.batch.steps, err);
    if (status == 0) {
        Rng rng;
        rng_seed(&rng, 7);
        bench_train_step(&t, NULL, &d, &rng);
        sat_trainer_free(&t);
    }
    bench_train_data_free(&d);
    pipeline_close(&loaded);
    return status;
}

/* Runs job in a child; the peak is read before the child frees anything. */
static void child_main(int fd, ChildJob job, const BenchSetup *s) {
    ChildReport report = {.mib = -1.0};
    Error err;
    openblas_set_num_threads(s->threads);
    if (job(s, &err) == 0) report.mib = bench_peak_rss_mib();
    else snprintf(report.message, sizeof report.message, "%s", err.message);
    ssize_t written = write(fd, &report, sizeof report);
    _exit(written == (ssize_t)sizeof report ? 0 : 1);
}

static int measure_child(ChildJob job, const BenchSetup *s, double *mib, Error *err) {
    int fds[2];
    if (pipe(fds) != 0) return error_set(err, "pipe: %s", strerror(errno));
    fflush(NULL); /* or the child's exit could repeat buffered output */
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]), close(fds[1]);
        return error_set(err, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(fds[0]);
        child_main(fds[1], job, s);
    }
    close(fds[1]);
    ChildReport report = {.mib = -1.0, .message = "the measuring child process died"};
    ssize_t got = read(fds[0], &report, sizeof report);
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    if (got != (ssize_t)sizeof report || report.mib < 0) return error_set(err, "peak RSS: %s", report.message);
    *mib = report.mib;
    return 0;
}

int bench_peak_rss(BenchResults *r, const BenchSetup *s, Error *err) {
    if (measure_child(caption_one, s, &r->v[BENCH_RSS_CAPTION_MB], err) != 0) return -1;
    return measure_child(train_one, s, &r->v[BENCH_RSS_TRAIN_MB], err);
}
