#include "bench_torch.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#ifndef CAPTION_SOURCE_ASSETS
#define CAPTION_SOURCE_ASSETS "assets"
#endif

/* The script's exit status when `import torch` fails. */
enum { NO_TORCH_STATUS = 3, ARG_COUNT = 32 };

const char *bench_torch_default_script(char *buffer, size_t size) {
    int n = snprintf(buffer, size, "%s/../bench/torch_bench.py", CAPTION_SOURCE_ASSETS);
    return n > 0 && (size_t)n < size ? buffer : NULL;
}

/* Reads all of fd into a NUL-terminated string; NULL when out of memory. */
static char *read_all(int fd) {
    size_t used = 0, capacity = 4096;
    char *text = malloc(capacity);
    ssize_t got;
    while (text && (got = read(fd, text + used, capacity - used - 1)) > 0) {
        used += (size_t)got;
        if (capacity - used < 2) {
            char *bigger = realloc(text, capacity * 2);
            if (!bigger) free(text);
            text = bigger;
            capacity *= 2;
        }
    }
    if (text) text[used] = '\0';
    return text;
}

/* Runs argv with stdout captured (stderr passes through); returns the exit status or -1. */
static int run_captured(char *const *argv, char **output, Error *err) {
    int fds[2];
    if (pipe(fds) != 0) return error_set(err, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]), close(fds[1]);
        return error_set(err, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]), close(fds[1]);
        execv(argv[0], argv);
        fprintf(stderr, "caption bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    *output = read_all(fds[0]);
    close(fds[0]);
    int status;
    if (waitpid(pid, &status, 0) < 0 || !*output) {
        free(*output);
        return error_set(err, "running %s failed", argv[0]);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static const struct {
    const char *key;
    BenchValue value;
} MERGED[] = {
    {"cnn_ms", BENCH_TORCH_CNN_MS},
    {"caption_ms_beam3", BENCH_TORCH_CAPTION_MS_BEAM3},
    {"caption_words_beam3", BENCH_TORCH_CAPTION_WORDS_BEAM3},
    {"train_img_per_s", BENCH_TORCH_TRAIN_IMG_PER_S},
    {"threads", BENCH_TORCH_THREADS},
};

static int merge(BenchResults *r, const char *output, Error *err) {
    cJSON *root = cJSON_Parse(output);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return error_set(err, "torch_bench.py printed no JSON object");
    }
    for (size_t i = 0; i < sizeof MERGED / sizeof MERGED[0]; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, MERGED[i].key);
        if (cJSON_IsNumber(item)) r->v[MERGED[i].value] = item->valuedouble;
    }
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(root, "torch_version");
    snprintf(r->torch, sizeof r->torch, "torch %s (float32)", cJSON_IsString(version) ? version->valuestring : "?");
    cJSON_Delete(root);
    return 0;
}

/* The script's command line; numbers are written into numbers[]. */
static void build_argv(char **argv, char numbers[][24], const BenchSetup *s, const char *python, const char *script,
                       const char *tensor_path) {
    const struct {
        const char *flag;
        int value;
    } ints[] = {{"--threads", s->threads},       {"--train-batch", s->train_batch},
                {"--captions-per-image", s->captions_per_image}, {"--words", s->words},
                {"--max-length", s->max_length}, {"--cnn-repeats", s->cnn_repeats},
                {"--caption-repeats", s->caption_repeats}, {"--train-steps", s->train_steps}};
    int n = 0;
    argv[n++] = (char *)python;
    argv[n++] = (char *)script;
    argv[n++] = "--model";
    argv[n++] = (char *)s->model_path;
    argv[n++] = "--image";
    argv[n++] = (char *)tensor_path;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        snprintf(numbers[i], sizeof numbers[i], "%d", ints[i].value);
        argv[n++] = (char *)ints[i].flag;
        argv[n++] = numbers[i];
    }
    argv[n] = NULL;
}

int bench_torch(BenchResults *r, const BenchSetup *s, const char *python, const char *script, const char *tensor_path,
                Error *err) {
    if (access(script, R_OK) != 0) {
        snprintf(r->torch, sizeof r->torch, "not measured: %s not found", script);
        return 1;
    }
    char *argv[ARG_COUNT], numbers[8][24], *output = NULL;
    build_argv(argv, numbers, s, python, script, tensor_path);
    int status = run_captured(argv, &output, err);
    if (status < 0) return -1;
    if (status == NO_TORCH_STATUS || status == 127) {
        snprintf(r->torch, sizeof r->torch, "not measured: %s cannot import torch", python);
        free(output);
        return 1;
    }
    int merged = status == 0 ? merge(r, output, err)
                             : error_set(err, "%s %s failed (exit status %d)", python, script, status);
    free(output);
    return merged;
}
