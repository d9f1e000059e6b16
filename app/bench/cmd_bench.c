#include "cmd_bench.h"

#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_measure.h"
#include "bench_results.h"
#include "bench_setup.h"
#include "bench_torch.h"
#include "cli.h"
#include "model_path.h"

typedef struct {
    const char *model, *chart, *markdown, *from, *python, *script;
    int json, quick, torch, random_model, threads, latency_only;
} BenchArgs;

static void print_help(FILE *out) {
    fprintf(out,
            "usage: caption bench [--model FILE|NAME | --random-model] [--json] [--threads N] [--quick] [--torch]\n"
            "                     [--latency-only]\n"
            "                     [--chart PNG] [--markdown MD]\n"
            "       caption bench --from JSON [--json] [--chart PNG] [--markdown MD]\n"
            "\n"
            "Measures the model's speed and memory: CNN forward (batch 1), caption latency of one 224x224\n"
            "picture (beam 1 and 3; resize + CNN + search, no file I/O), batch throughput including JPEG\n"
            "decode with 1 and 2 worker threads, training throughput (batch 32, 5 captions of 12 words per\n"
            "image), peak RSS of captioning one image and of a training step (each in a child process),\n"
            "and the GFLOPS of the CNN and of a training step next to OpenBLAS sgemm. Prints a table with\n"
            "each target (training >= 2x PyTorch, caption beam 3 <= 1/3 of PyTorch's latency, CNN >= 60%%\n"
            "of sgemm GFLOPS, peak RSS captioning <= 100 MiB) and whether it is met.\n"
            "\n"
            "options:\n"
            "  --model FILE|NAME   the model to measure, a file or a bundled model's name (default: the\n"
            "                      default model, else a random one), or an ensemble A,B (caption --help);\n"
            "                      an ensemble's CNN and training figures are its first model's\n"
            "  --random-model      a model with tools/flickr8k.json's architecture and random weights\n"
            "  --threads N         OpenBLAS (and PyTorch) threads for the single-stream timings\n"
            "                      (default: the number of CPUs); batch throughput always uses 1 and 2 workers\n"
            "  --quick             few repeats and a training batch of 8: a smoke test, not a measurement\n"
            "  --latency-only      only the CNN forward and the caption latency (beam 1 and 3), the same\n"
            "                      measurement as in the full run: for repeated runs (e.g. 20 in a row)\n"
            "  --torch             also time the same model in PyTorch (bench/torch_bench.py, float32)\n"
            "  --python FILE       the interpreter for --torch (default /usr/bin/python3)\n"
            "  --torch-script FILE the PyTorch script (default: bench/torch_bench.py of the source tree)\n"
            "  --json              print one JSON object (the table goes to stderr)\n"
            "  --chart PNG         write bar charts of the results\n"
            "  --markdown MD       write the tables as markdown\n"
            "  --from JSON         measure nothing: report what an earlier --json run printed\n"
            "  -h, --help          this help\n"
            "\n"
            "exit status: 0 done (whether or not targets are met), 1 a measurement failed, 2 usage error\n");
}

/* Options that take a value; returns 1 when arg is one of them. */
static int value_option(BenchArgs *a, const char *arg, const char *value, int *bad) {
    const char **slot = strcmp(arg, "--model") == 0          ? &a->model
                        : strcmp(arg, "--chart") == 0        ? &a->chart
                        : strcmp(arg, "--markdown") == 0     ? &a->markdown
                        : strcmp(arg, "--from") == 0         ? &a->from
                        : strcmp(arg, "--python") == 0       ? &a->python
                        : strcmp(arg, "--torch-script") == 0 ? &a->script
                                                             : NULL;
    if (!slot && strcmp(arg, "--threads") != 0) return 0;
    if (!value) {
        cli_usage_error("caption bench", "%s needs a value", arg);
        *bad = 1;
    } else if (slot) {
        *slot = value;
    } else if (cli_parse_int(value, 1, 256, &a->threads) != 0) {
        fprintf(stderr, "caption bench: --threads takes a whole number from 1 to 256, not '%s'\n", value);
        *bad = 1;
    }
    return 1;
}

static int parse_args(int argc, char **argv, BenchArgs *a) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    *a = (BenchArgs){.python = "/usr/bin/python3", .threads = cpus > 0 ? (int)cpus : 1};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            print_help(stdout);
            exit(0);
        } else if (strcmp(arg, "--json") == 0) a->json = 1;
        else if (strcmp(arg, "--quick") == 0) a->quick = 1;
        else if (strcmp(arg, "--latency-only") == 0) a->latency_only = 1;
        else if (strcmp(arg, "--torch") == 0) a->torch = 1;
        else if (strcmp(arg, "--random-model") == 0) a->random_model = 1;
        else if (value_option(a, arg, value, &bad)) {
            if (bad) return -1;
            i++;
        } else {
            return cli_usage_error("caption bench", "unknown option %s", arg);
        }
    }
    if (a->model && a->random_model) {
        fprintf(stderr, "caption bench: give --model or --random-model, not both\n");
        return -1;
    }
    return 0;
}

static void progress(const char *what) {
    fprintf(stderr, "caption bench: %s\n", what);
    fflush(stderr);
}

/* Everything measured, in an order that keeps them apart: the RSS children
 * fork before this process allocates anything large. */
static int measure(BenchResults *r, const BenchSetup *s, const BenchArgs *a, const char *tensor_path, Error *err) {
    if (a->latency_only) {
        snprintf(r->torch, sizeof r->torch, "not measured (--latency-only)");
        openblas_set_num_threads(s->threads);
        r->v[BENCH_THREADS] = s->threads;
        progress("CNN forward and caption latency");
        return bench_inference(r, s, tensor_path, err);
    }
    progress("peak RSS (child processes)");
    if (bench_peak_rss(r, s, err) != 0) return -1;
    openblas_set_num_threads(s->threads);
    r->v[BENCH_THREADS] = s->threads;
    progress("CNN forward and caption latency");
    if (bench_inference(r, s, tensor_path, err) != 0) return -1;
    progress("OpenBLAS sgemm");
    if (bench_sgemm(r, s, err) != 0) return -1;
    progress("training throughput");
    if (bench_train(r, s, err) != 0) return -1;
    progress("batch throughput, 1 and 2 threads");
    if (bench_batch(r, s, err) != 0) return -1;
    if (!a->torch) {
        snprintf(r->torch, sizeof r->torch, "not measured (no --torch)");
        return 0;
    }
    progress("PyTorch");
    char script[4096];
    const char *path = a->script ? a->script : bench_torch_default_script(script, sizeof script);
    int status = bench_torch(r, s, a->python, path ? path : "torch_bench.py", tensor_path, err);
    if (status == 1) fprintf(stderr, "caption bench: PyTorch %s; the torch_* keys are omitted\n", r->torch);
    return status < 0 ? -1 : 0;
}

/* The model to measure into path (without --model or a default model: a
 * random one, so the benchmark always runs); 1 on failures. */
static int choose_model(const BenchArgs *a, const char *scratch, BenchResults *r, char *path, size_t size) {
    Error err;
    int random_model = a->random_model || (!a->model && !model_path_default(path, size));
    if (random_model && !a->random_model)
        fprintf(stderr, "caption bench: no default model found; measuring a random model with the training "
                        "configuration's architecture (--random-model)\n");
    if (random_model) {
        bench_scratch_file(scratch, "model.safetensors", path, size);
        snprintf(r->model, sizeof r->model, "%s", BENCH_RANDOM_MODEL_DESCRIPTION);
        if (bench_write_random_model(path, &err) == 0) return 0;
        fprintf(stderr, "caption bench: %s\n", err.message);
        return 1;
    }
    if (a->model) {
        char named[4096];
        const char *found = cli_resolve_model(a->model, named, sizeof named, &err);
        if (!found) {
            fprintf(stderr, "caption bench: %s\n", err.message);
            return 1;
        }
        snprintf(path, size, "%s", found);
    }
    if (a->torch && model_path_is_list(path)) {
        fprintf(stderr, "caption bench: --torch times one model, and %s is an ensemble (%s); pass --model with "
                        "one of them, e.g. --model lstm or --model transformer\n",
                a->model ? a->model : "the default model", path);
        return 2;
    }
    snprintf(r->model, sizeof r->model, "%s", path);
    return 0;
}

static int report(const BenchResults *r, const BenchArgs *a) {
    Error err;
    bench_print_table(a->json ? stderr : stdout, r);
    if (a->json) {
        char *text = bench_results_to_json(r);
        if (text) printf("%s\n", text);
        free(text);
    }
    if (a->chart && bench_write_chart(r, a->chart, &err) != 0) {
        fprintf(stderr, "caption bench: %s\n", err.message);
        return 1;
    }
    if (a->markdown && bench_write_markdown(r, a->markdown, a->chart, &err) != 0) {
        fprintf(stderr, "caption bench: %s\n", err.message);
        return 1;
    }
    return 0;
}

static int report_saved(const BenchArgs *a) {
    FILE *f = fopen(a->from, "rb");
    if (!f) {
        fprintf(stderr, "caption bench: %s: %s\n", a->from, strerror(errno));
        return 1;
    }
    char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    BenchResults r;
    Error err;
    if (bench_results_from_json(&r, text, &err) != 0) {
        fprintf(stderr, "caption bench: %s: %s\n", a->from, err.message);
        return 1;
    }
    return report(&r, a);
}

static int run(const BenchArgs *a, BenchSetup *s, BenchResults *r, const char *scratch) {
    char model[4096], tensor[4096];
    int status = choose_model(a, scratch, r, model, sizeof model);
    if (status != 0) return status;
    s->model_path = model;
    Error err;
    if (bench_setup_inputs(s, &err) != 0 ||
        measure(r, s, a, bench_scratch_file(scratch, "input.f32", tensor, sizeof tensor), &err) != 0) {
        fprintf(stderr, "caption bench: %s\n", err.message);
        return 1;
    }
    return report(r, a);
}

int cmd_bench(int argc, char **argv) {
    BenchArgs a;
    if (parse_args(argc, argv, &a) != 0) return 2;
    if (a.from) return report_saved(&a);
    BenchSetup setup;
    bench_setup_defaults(&setup, a.quick, a.threads);
    BenchResults results;
    bench_results_init(&results);
    results.quick = a.quick;
    bench_describe_machine(&results);
    char scratch[4096];
    Error err;
    if (bench_scratch_create(scratch, sizeof scratch, &err) != 0) {
        fprintf(stderr, "caption bench: %s\n", err.message);
        return 1;
    }
    int status = run(&a, &setup, &results, scratch);
    bench_setup_free(&setup);
    bench_scratch_remove(scratch);
    return status;
}
