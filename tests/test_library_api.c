/* libcaption's API (app/caption.h) on tiny models of every decoder: the
 * model names resolved as `caption --model` resolves them, each failure's
 * code and message, alpha and beta present or absent as the header says,
 * padded rows, files and buffers giving the same bits, a handle growing its
 * buffers for a wider beam, results outliving their model, and two handles
 * used from two threads at once. The installed library itself (shared and
 * static, through pkg-config) is tests/test_library.sh's. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caption.h"
#include "check.h"
#include "image.h"
#include "model.h"

static const char *const VOCAB[] = {"<pad>", "<start>", "<end>", "<unk>", "dog", "runs", "on", "grass"};
static const char *const DECODERS[] = {"attention", "adaptive", "bottleneck", "transformer"};

/* A small random model with the given decoder, written to dir/DECODER.safetensors. */
static int save_model(const char *dir, const char *decoder, char *path, size_t size) {
    SatConfig c;
    sat_config_defaults(&c);
    c.image_size = 16;
    snprintf(c.encoder_spec, sizeof c.encoder_spec, "4,6p,8p");
    c.vocab_size = 8;
    c.embed_dim = 6;
    c.hidden_dim = 7;
    c.attention_dim = 5;
    if (sat_decoder_parse(decoder, &c) != 0) return -1;
    if (c.transformer)
        c.embed_dim = 8, c.heads = 2, c.ff_dim = 12, c.encoder_layers = 1, c.decoder_layers = 2, c.tied = 0;
    SatModel m;
    Error err;
    if (sat_model_create(&m, &c, VOCAB, &err) != 0) return fprintf(stderr, "%s\n", err.message), -1;
    sat_model_init_params(&m, 11);
    float *bias = c.transformer ? m.p.transformer.out_bias : m.p.out_bias;
    bias[TOKEN_END] -= 2.0f; /* captions of some words: there are maps to check */
    snprintf(path, size, "%s/%s.safetensors", dir, decoder);
    int status = sat_model_save(&m, path, 0, &err);
    if (status != 0) fprintf(stderr, "%s\n", err.message);
    sat_model_free(&m);
    return status;
}

/* A 37 x 23 RGB gradient: odd sizes, so that a row is no multiple of anything. */
enum { W = 37, H = 23 };
static void make_pixels(uint8_t *rgb) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = rgb + (y * W + x) * 3;
            p[0] = (uint8_t)(x * 7), p[1] = (uint8_t)(y * 11), p[2] = (uint8_t)((x * y) & 0xff);
        }
}

/* Same words, logprob and maps, bit for bit. */
static int same_result(const caption_result *a, const caption_result *b) {
    int n = caption_result_length(a), grid_h, grid_w;
    if (n != caption_result_length(b) || strcmp(caption_result_text(a), caption_result_text(b)) != 0 ||
        caption_result_logprob(a) != caption_result_logprob(b) ||
        caption_result_finished(a) != caption_result_finished(b))
        return 0;
    int has_alpha = caption_result_grid(a, &grid_h, &grid_w);
    for (int i = 0; i < n; i++) {
        if (caption_result_word_logprob(a, i) != caption_result_word_logprob(b, i)) return 0;
        if (has_alpha && memcmp(caption_result_alpha(a, i), caption_result_alpha(b, i),
                                sizeof(float) * (size_t)(grid_h * grid_w)) != 0)
            return 0;
    }
    const float *beta_a = caption_result_beta(a), *beta_b = caption_result_beta(b);
    return !beta_a == !beta_b && (!beta_a || memcmp(beta_a, beta_b, sizeof(float) * (size_t)n) == 0);
}

static void test_version_and_status(CheckCounts *c) {
    CHECK(c, strcmp(caption_version(), CAPTION_VERSION_STRING) == 0);
    for (int s = CAPTION_OK; s <= CAPTION_ERROR_MEMORY + 1; s++)
        CHECK(c, caption_status_string((caption_status)s) && *caption_status_string((caption_status)s));
    caption_options o;
    caption_options_init(&o);
    CHECK(c, o.beam == 3 && o.max_length == 30 && o.length_penalty == 0.0f && o.max_pixels == 0);
}

static void test_open_errors(CheckCounts *c, const char *model_path) {
    caption_model *m = (caption_model *)&m; /* must come back NULL */
    caption_error err;
    caption_options o = CAPTION_OPTIONS_INIT;
    o.beam = 0;
    CHECK(c, caption_model_open(&m, model_path, &o, 0, &err) == CAPTION_ERROR_ARGUMENT && !m);
    CHECK(c, err.code == CAPTION_ERROR_ARGUMENT);
    CHECK_MESSAGE(c, err, "beam 0 is out of range (1 to 64)");
    o = (caption_options)CAPTION_OPTIONS_INIT;
    o.length_penalty = NAN;
    CHECK(c, caption_model_open(&m, model_path, &o, 0, &err) == CAPTION_ERROR_ARGUMENT);
    CHECK_MESSAGE(c, err, "length_penalty");
    CHECK(c, caption_model_open(&m, model_path, NULL, 0x10, &err) == CAPTION_ERROR_ARGUMENT);
    CHECK_MESSAGE(c, err, "unknown flags");
    CHECK(c, caption_model_open(NULL, model_path, NULL, 0, &err) == CAPTION_ERROR_ARGUMENT);
    CHECK(c, caption_model_open(&m, "/nonexistent/dir/m.safetensors", NULL, 0, &err) == CAPTION_ERROR_MODEL && !m);
    CHECK_MESSAGE(c, err, "/nonexistent/dir/m.safetensors");
    CHECK(c, caption_model_open(&m, "no-such-model", NULL, 0, &err) == CAPTION_ERROR_MODEL_NOT_FOUND && !m);
    CHECK_MESSAGE(c, err, "no-such-model: no such file, and no bundled model of that name");
    /* err may be NULL: the code alone. */
    CHECK(c, caption_model_open(&m, "no-such-model", NULL, 0, NULL) == CAPTION_ERROR_MODEL_NOT_FOUND);
    caption_model_close(NULL);
    caption_result_free(NULL);
}

/* NULL and "default" mean the default model, which $CAPTION_MODEL names first. */
static void test_default_model(CheckCounts *c, const char *model_path) {
    char *saved = getenv("CAPTION_MODEL") ? strdup(getenv("CAPTION_MODEL")) : NULL;
    setenv("CAPTION_MODEL", model_path, 1);
    const char *names[] = {NULL, "default"};
    for (int i = 0; i < 2; i++) {
        caption_model *m = NULL;
        caption_error err;
        CHECK(c, caption_model_open(&m, names[i], NULL, 0, &err) == CAPTION_OK);
        CHECK(c, m && strcmp(caption_model_path(m), model_path) == 0);
        caption_model_close(m);
    }
    if (saved) setenv("CAPTION_MODEL", saved, 1);
    else unsetenv("CAPTION_MODEL");
    free(saved);
}

/* What a result holds for each decoder: alpha maps summing to 1 unless the
 * decoder has none, beta only for the gate and the sentinel, probabilities
 * that are the logprobs' exponentials, and the text the words joined. */
static void test_result_fields(CheckCounts *c, const char *decoder, const char *model_path, const uint8_t *rgb) {
    caption_model *m = NULL;
    caption_result *r = NULL;
    caption_error err;
    if (caption_model_open(&m, model_path, NULL, 0, &err) != CAPTION_OK ||
        caption_model_caption_rgb(m, rgb, W, H, 0, NULL, &r, &err) != CAPTION_OK) {
        fprintf(stderr, "%s: %s\n", decoder, err.message);
        CHECK(c, !"the model opens and captions");
        caption_model_close(m);
        return;
    }
    CHECK(c, strcmp(caption_model_decoder(m), decoder) == 0);
    int model_h, model_w, grid_h = -1, grid_w = -1;
    caption_model_grid(m, &model_h, &model_w);
    int has_alpha = caption_result_grid(r, &grid_h, &grid_w);
    CHECK(c, grid_h == model_h && grid_w == model_w && grid_h > 0 && grid_w > 0);
    int attends = strcmp(decoder, "bottleneck") != 0, gated = attends && strcmp(decoder, "transformer") != 0;
    CHECK(c, has_alpha == attends);
    CHECK(c, !caption_result_beta(r) == !gated);
    int n = caption_result_length(r);
    CHECK(c, n >= 1 && n <= 30);
    char joined[1024] = "";
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        const char *word = caption_result_word(r, i);
        CHECK(c, word && strncmp(word, "<", 1) != 0);
        snprintf(joined + strlen(joined), sizeof joined - strlen(joined), "%s%s", i ? " " : "", word ? word : "");
        float logprob = caption_result_word_logprob(r, i);
        sum += logprob;
        CHECK(c, logprob <= 0.0f && fabsf(caption_result_word_probability(r, i) - expf(logprob)) < 1e-6f);
        const float *alpha = caption_result_alpha(r, i);
        CHECK(c, !alpha == !attends);
        double total = 0.0;
        for (int cell = 0; alpha && cell < grid_h * grid_w; cell++) total += alpha[cell];
        CHECK(c, !alpha || fabs(total - 1.0) < 1e-4);
        const float *beta = caption_result_beta(r);
        CHECK(c, !beta || (beta[i] >= 0.0f && beta[i] <= 1.0f));
    }
    CHECK(c, strcmp(joined, caption_result_text(r)) == 0);
    /* The caption's logprob adds <end>'s to the words' when it finished. */
    float logprob = caption_result_logprob(r);
    CHECK(c, caption_result_finished(r) ? logprob < sum : fabsf(logprob - sum) < 1e-4f);
    CHECK(c, !caption_result_word(r, n) && !caption_result_word(r, -1) && !caption_result_alpha(r, n) &&
                 caption_result_word_logprob(r, n) == 0.0f);
    /* The result is the caller's: it outlives the model. */
    caption_model_close(m);
    CHECK(c, strcmp(joined, caption_result_text(r)) == 0);
    caption_result_free(r);
}

/* Padded rows, an image file and the decoded copy of it give the same bits. */
static void test_buffers_and_files(CheckCounts *c, const char *dir, const char *model_path, const uint8_t *rgb) {
    caption_model *m = NULL;
    caption_error err;
    CHECK(c, caption_model_open(&m, model_path, NULL, 0, &err) == CAPTION_OK);
    if (!m) return;
    caption_result *packed = NULL, *padded = NULL, *from_file = NULL, *from_loaded = NULL;
    size_t stride = W * 3 + 5;
    uint8_t *rows = calloc(stride * H, 1);
    for (int y = 0; rows && y < H; y++) memcpy(rows + y * stride, rgb + y * W * 3, W * 3);
    CHECK(c, caption_model_caption_rgb(m, rgb, W, H, W * 3, NULL, &packed, &err) == CAPTION_OK);
    CHECK(c, rows && caption_model_caption_rgb(m, rows, W, H, stride, NULL, &padded, &err) == CAPTION_OK);
    CHECK(c, packed && padded && same_result(packed, padded));

    char png[600];
    snprintf(png, sizeof png, "%s/picture.png", dir);
    Image picture = {.width = W, .height = H, .channels = 3, .pixels = (unsigned char *)(uintptr_t)rgb};
    Error image_err;
    CHECK(c, image_write_png(&picture, png, &image_err) == 0);
    uint8_t *loaded = NULL;
    int width = 0, height = 0;
    CHECK(c, caption_image_load(png, 0, &loaded, &width, &height, &err) == CAPTION_OK);
    CHECK(c, loaded && width == W && height == H && memcmp(loaded, rgb, W * H * 3) == 0);
    CHECK(c, caption_model_caption_file(m, png, NULL, &from_file, &err) == CAPTION_OK);
    CHECK(c, loaded && caption_model_caption_rgb(m, loaded, width, height, 0, NULL, &from_loaded, &err) == CAPTION_OK);
    CHECK(c, from_file && from_loaded && packed && same_result(from_file, from_loaded) &&
                 same_result(from_file, packed));

    caption_result_free(packed);
    caption_result_free(padded);
    caption_result_free(from_file);
    caption_result_free(from_loaded);
    caption_image_free(loaded);
    free(rows);
    caption_model_close(m);
}

/* Opened for beam 1 and 2 words, a handle asked for beam 4 and 12 words
 * grows its buffers, and captions as a handle opened for those. */
static void test_capacity(CheckCounts *c, const char *model_path, const uint8_t *rgb) {
    caption_options small = {.beam = 1, .max_length = 2}, wide = {.beam = 4, .max_length = 12, .length_penalty = 0.5f};
    caption_model *grown = NULL, *fresh = NULL;
    caption_result *a = NULL, *b = NULL, *short_one = NULL;
    caption_error err;
    CHECK(c, caption_model_open(&grown, model_path, &small, 0, &err) == CAPTION_OK);
    CHECK(c, caption_model_open(&fresh, model_path, &wide, 0, &err) == CAPTION_OK);
    CHECK(c, caption_model_caption_rgb(grown, rgb, W, H, 0, &wide, &a, &err) == CAPTION_OK);
    CHECK(c, caption_model_caption_rgb(fresh, rgb, W, H, 0, NULL, &b, &err) == CAPTION_OK);
    CHECK(c, a && b && same_result(a, b));
    /* NULL options: those given at open, still. */
    CHECK(c, caption_model_caption_rgb(grown, rgb, W, H, 0, NULL, &short_one, &err) == CAPTION_OK);
    CHECK(c, short_one && caption_result_length(short_one) <= 2);
    caption_result_free(a);
    caption_result_free(b);
    caption_result_free(short_one);
    caption_model_close(grown);
    caption_model_close(fresh);
}

static void test_caption_errors(CheckCounts *c, const char *dir, const char *model_path, const uint8_t *rgb) {
    caption_model *m = NULL;
    caption_result *r = (caption_result *)&r; /* must come back NULL */
    caption_error err;
    CHECK(c, caption_model_open(&m, model_path, NULL, 0, &err) == CAPTION_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/missing.png", dir);
    CHECK(c, caption_model_caption_file(m, path, NULL, &r, &err) == CAPTION_ERROR_IMAGE && !r);
    CHECK_MESSAGE(c, err, path);
    snprintf(path, sizeof path, "%s/picture.png", dir); /* test_buffers_and_files wrote it */
    caption_options tiny = CAPTION_OPTIONS_INIT;
    tiny.max_pixels = 100;
    CHECK(c, caption_model_caption_file(m, path, &tiny, &r, &err) == CAPTION_ERROR_IMAGE);
    CHECK_MESSAGE(c, err, path);
    snprintf(path, sizeof path, "%s/garbage.png", dir);
    FILE *f = fopen(path, "w");
    if (f) fputs("not a picture", f), fclose(f);
    CHECK(c, caption_model_caption_file(m, path, NULL, &r, &err) == CAPTION_ERROR_IMAGE);
    CHECK_MESSAGE(c, err, path);
    uint8_t *pixels = (uint8_t *)&pixels;
    int width = 1, height = 1;
    CHECK(c, caption_image_load(path, 0, &pixels, &width, &height, &err) == CAPTION_ERROR_IMAGE && !pixels &&
                 width == 0 && height == 0);
    CHECK(c, caption_image_load(path, -1, &pixels, &width, &height, &err) == CAPTION_ERROR_ARGUMENT);

    CHECK(c, caption_model_caption_rgb(m, rgb, W, H, W * 3 - 1, NULL, &r, &err) == CAPTION_ERROR_ARGUMENT && !r);
    CHECK_MESSAGE(c, err, "stride");
    CHECK(c, caption_model_caption_rgb(m, rgb, 0, H, 0, NULL, &r, &err) == CAPTION_ERROR_ARGUMENT);
    CHECK_MESSAGE(c, err, "image size 0x23");
    CHECK(c, caption_model_caption_rgb(m, NULL, W, H, 0, NULL, &r, &err) == CAPTION_ERROR_ARGUMENT);
    CHECK(c, caption_model_caption_rgb(NULL, rgb, W, H, 0, NULL, &r, &err) == CAPTION_ERROR_ARGUMENT && !r);
    CHECK(c, caption_model_caption_rgb(m, rgb, W, H, 0, NULL, NULL, &err) == CAPTION_ERROR_ARGUMENT);
    caption_options bad = CAPTION_OPTIONS_INIT;
    bad.max_length = CAPTION_MAX_LENGTH + 1;
    CHECK(c, caption_model_caption_rgb(m, rgb, W, H, 0, &bad, &r, &err) == CAPTION_ERROR_ARGUMENT);
    CHECK_MESSAGE(c, err, "max_length 1001 is out of range (1 to 1000)");
    /* The handle still works after all that. */
    CHECK(c, caption_model_caption_rgb(m, rgb, W, H, 0, NULL, &r, &err) == CAPTION_OK && r);
    caption_result_free(r);
    caption_model_close(m);
}

/* One handle per thread, two threads at once: each gets what one handle
 * alone gets (the header's rule, and what `caption batch` relies on). */
typedef struct {
    const char *model_path;
    const uint8_t *rgb;
    unsigned flags;
    caption_result *results[8];
    int failed;
} Worker;

static void *work(void *arg) {
    Worker *w = arg;
    caption_model *m = NULL;
    w->failed = caption_model_open(&m, w->model_path, NULL, w->flags, NULL) != CAPTION_OK;
    for (int i = 0; !w->failed && i < 8; i++)
        w->failed = caption_model_caption_rgb(m, w->rgb, W, H, 0, NULL, &w->results[i], NULL) != CAPTION_OK;
    caption_model_close(m);
    return NULL;
}

static void test_threads(CheckCounts *c, const char *model_path, const uint8_t *rgb) {
    Worker reference = {.model_path = model_path, .rgb = rgb}, workers[2];
    work(&reference);
    CHECK(c, !reference.failed);
    pthread_t threads[2];
    for (int t = 0; t < 2; t++) {
        /* The second with the helper thread: the same bits either way. */
        workers[t] = (Worker){.model_path = model_path, .rgb = rgb, .flags = t ? CAPTION_OPEN_HELPER_THREAD : 0};
        CHECK(c, pthread_create(&threads[t], NULL, work, &workers[t]) == 0);
    }
    for (int t = 0; t < 2; t++) pthread_join(threads[t], NULL);
    for (int t = 0; t < 2; t++) {
        CHECK(c, !workers[t].failed);
        for (int i = 0; i < 8; i++) {
            const caption_result *got = workers[t].results[i], *want = reference.results[i];
            CHECK(c, got && want && same_result(got, want));
            caption_result_free(workers[t].results[i]);
        }
    }
    for (int i = 0; i < 8; i++) caption_result_free(reference.results[i]);
}

int main(void) {
    CheckCounts counts = {0};
    char dir[] = "/tmp/test_library_api.XXXXXX";
    if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    uint8_t rgb[W * H * 3];
    make_pixels(rgb);
    char paths[4][600];
    for (int d = 0; d < 4; d++)
        if (save_model(dir, DECODERS[d], paths[d], sizeof paths[d]) != 0) return fprintf(stderr, "no model\n"), 1;

    test_version_and_status(&counts);
    test_open_errors(&counts, paths[0]);
    test_default_model(&counts, paths[0]);
    for (int d = 0; d < 4; d++) test_result_fields(&counts, DECODERS[d], paths[d], rgb);
    test_buffers_and_files(&counts, dir, paths[0], rgb);
    test_capacity(&counts, paths[0], rgb);
    test_caption_errors(&counts, dir, paths[0], rgb);
    test_threads(&counts, paths[1], rgb);

    const char *files[] = {"attention.safetensors", "adaptive.safetensors", "bottleneck.safetensors",
                           "transformer.safetensors", "picture.png", "garbage.png"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    return check_summary(&counts);
}
