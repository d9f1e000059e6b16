/* The learning test: a tiny Show, Attend and Tell model, trained from
 * scratch on a stream of freshly generated "shapes" scenes (app/shapes.h),
 * must caption held-out scenes exactly, and, when it emits an object's noun,
 * must be looking at that object.
 *
 * Everything is seeded and OpenBLAS runs on one thread, so the run is
 * deterministic. It takes well under two minutes on one core.
 *
 * Usage: test_learning [CAPTION_EXE [MODEL.safetensors]]
 *   With the caption executable, `caption eval` on the held-out scenes
 *   (written as a shapes dataset) must measure the same attention on the
 *   named objects as this test does; with a path, the trained model is also
 *   saved there (float32).
 *
 * Environment (tools/seed-sweep sets the first two; see tools/SEEDS.md):
 *   CAPTION_TEST_SEED=S     seeds S + 1000 (training scenes), S + 777000
 *                           (held-out scenes), S + 41 (initial weights) and
 *                           S + 6 (dropout); default 1, the seeds the test
 *                           always used
 *   CAPTION_TEST_CONTROL=1  wrong pairs: each training image is given the
 *                           caption of the next scene, which it says nothing
 *                           about; the model can learn only the captions'
 *                           grammar, and every learning check must fail
 *   CAPTION_TEST_DECODER=transformer  the same with a small Transformer
 *                           (no grid encoder layers, 1 decoder layer of one
 *                           head, width 64, lr warm-up, 5000 steps, the
 *                           excess attention penalty at lambda 0.005), to
 *                           the same bars; its attention is the last layer's
 *                           cross-attention averaged over its heads (here the
 *                           one head). The suite's learning_transformer;
 *                           tools/SEEDS.md has its sweep and the
 *                           configurations that failed on the way.
 *   CAPTION_TEST_ENCODER_LAYERS=N, CAPTION_TEST_DROPOUT=P, CAPTION_TEST_STEPS=N,
 *   CAPTION_TEST_WIDTH=N, CAPTION_TEST_LR=X, CAPTION_TEST_HEADS=N,
 *   CAPTION_TEST_DECODER_LAYERS=N, CAPTION_TEST_FF=N, CAPTION_TEST_CNN=SPEC,
 *   CAPTION_TEST_LAMBDA=X, CAPTION_TEST_PENALTY=excess
 *                           grid encoder layers, dropout of either, optimiser
 *                           steps, the word embedding's width (the
 *                           Transformer's width), the peak learning rate (the
 *                           final one a twentieth of it), and the Transformer's
 *                           heads, decoder layers and feed-forward width,
 *                           the CNN (an --encoder spec), and the attention
 *                           penalty's weight and form (exploration)
 *   CAPTION_TEST_DECODER=grid-encoder  the LSTM behind a grid encoder of one
 *                           self-attention layer (2 heads, feed-forward 64),
 *                           as issue 13's candidates: does its map still land
 *                           on the named shape once the cells see each other?
 * Each learning check prints "stat NAME VALUE OP BAR", the line
 * tools/seed-sweep collects; the bars come from the distributions over seeds
 * and OpenBLAS kernels recorded beside them. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decode.h"
#include "grounding.h"
#include "image.h"
#include "model.h"
#include "shapes.h"
#include "test_util.h"
#include "trainer.h"
#include "vocab.h"

static int passed = 0, failed = 0;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (cond) {                                                                      \
            passed++;                                                                    \
        } else {                                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);     \
            failed++;                                                                    \
        }                                                                                \
    } while (0)

/* Everything the run depends on. */
typedef struct {
    ShapesOptions shapes;      /* the scenes (canvas_size is the generator's) */
    int input_size;            /* model input side: scenes are resized to it */
    const char *encoder_spec;
    int embed_dim, hidden_dim, attention_dim;
    float dropout, doubly_stochastic;
    int penalty_excess_only;
    int steps, batch;          /* optimiser steps, scenes per step */
    float lr, lr_final;        /* cosine decay from lr to lr_final */
    float clip, weight_decay;
    int vocab_scenes;          /* training scenes whose captions make the vocabulary */
    int eval_count;            /* held-out scenes captioned */
    uint64_t train_seed, eval_seed, init_seed, dropout_seed;
    int wrong_pairs;           /* the control: image i trained with scene i + 1's caption */
    int transformer;           /* CAPTION_TEST_DECODER=transformer: the Transformer decoder */
    int heads, encoder_layers, decoder_layers, warmup; /* the Transformer's; warmup: linear lr warm-up steps */
    int zero_encoder_branches; /* exploration: the grid encoder's residual branches start at zero */
} Setup;

/* An exploration knob: the variable's value when it is a positive integer, else fallback. */
static int positive_env(const char *name, int fallback) {
    const char *text = getenv(name);
    return text && atoi(text) > 0 ? atoi(text) : fallback;
}

/* Exploration (CAPTION_TEST_ZERO_ENCODER_BRANCHES=1): the output projections
 * of the grid encoder's residual branches start at zero, so each cell starts
 * as its own features (tools/SEEDS.md: it does not keep the maps on the
 * objects). */
static void zero_encoder_branches(SatModel *model) {
    size_t width = (size_t)model->config.embed_dim, ff = (size_t)model->config.ff_dim;
    for (int l = 0; l < model->config.encoder_layers; l++) {
        TransformerLayer *layer = &model->p.transformer.encoder[l];
        memset(layer->self_out_weight, 0, width * width * sizeof(float));
        memset(layer->self_out_bias, 0, width * sizeof(float));
        memset(layer->ff2_weight, 0, width * ff * sizeof(float));
        memset(layer->ff2_bias, 0, width * sizeof(float));
    }
}

static Setup default_setup(void) {
    const char *seed_text = getenv("CAPTION_TEST_SEED"), *control = getenv("CAPTION_TEST_CONTROL");
    uint64_t seed = seed_text && *seed_text ? strtoull(seed_text, NULL, 10) : 1;
    Setup s = {0};
    shapes_options_default(&s.shapes);
    s.shapes.canvas_size = 96;
    s.shapes.grid = 3;
    s.shapes.min_objects = 1;
    s.shapes.max_objects = 3;
    s.input_size = 48;
    s.encoder_spec = "8p,16p,32p"; /* 48 -> 24 -> 12 -> 6: a 6x6 grid, 2x2 cells per scene cell */
    s.embed_dim = 32;
    s.hidden_dim = 64;
    s.attention_dim = 32;
    s.dropout = 0.0f;
    /* The doubly stochastic penalty pushes every cell, background included,
     * towards a total attention of 1 over the caption, which spreads the
     * attention: with lambda 0.01 the mean noun-step mass falls from about
     * 0.8 to 0.43, with 0.1 to 0.26 (exact match stays ~99%). These captions
     * mention each object once, so the penalty is off. */
    s.doubly_stochastic = 0.0f;
    s.steps = 1500;
    s.batch = 32;
    s.lr = 5e-3f;
    s.lr_final = 2.5e-4f;
    s.clip = 5.0f;
    s.weight_decay = 0.0f;
    s.vocab_scenes = 500;
    s.eval_count = 200;
    s.train_seed = 1000 + seed;
    s.eval_seed = 777000 + seed;
    s.init_seed = 41 + seed;
    s.dropout_seed = 6 + seed;
    s.wrong_pairs = control && atoi(control) == 1;
    const char *decoder = getenv("CAPTION_TEST_DECODER");
    if (decoder && strcmp(decoder, "transformer") == 0) {
        /* One head: with two, one of them learns another role (the
         * position in the caption, say) and the head average carries half
         * the mass (0.48-0.55 on seeds 2 and 4, 0.90-0.93 with one head).
         * One decoder layer: with two, the first layer's cross-attention
         * does the looking and the last one's map, the one shown, is
         * elsewhere on 3 seeds in 4 (mass 0.04-0.34). No grid encoder
         * layer, though one fixes the exact captions (the captions name the
         * objects in reading order and relate pairs, and a one-layer
         * decoder's query knows the words so far but not where their objects
         * were, as its self-attention runs before its cross-attention: 1.0
         * exact on 13 of 13 runs with the layer, seeds 12 and 14 included):
         * its map then leaves the objects on some seeds (mass 0.004 on
         * Haswell seed 9; tools/SEEDS.md). Without it some runs stall (4 in
         * 40 under 0.90 exact at 3000 steps, 1 in 16 at 5000), naming an
         * object twice; the attention penalty on the mass beyond 1 charges
         * exactly that, and at lambda 0.005 with 5000 steps ends the stalls
         * and keeps the maps on the objects (lambda 0.02-0.05 ends them too
         * but pushes the noun maps onto the object's neighbouring cells:
         * mass 0.46 on seed 2). Feed-forward 256: with 128 and 2000 steps,
         * 1 seed in 7 captions under 90% exactly (0.885). */
        s.transformer = 1;
        s.heads = 1;
        s.encoder_layers = 0;
        s.decoder_layers = 1;
        s.embed_dim = 64;
        s.hidden_dim = 256; /* its feed-forward width */
        s.steps = 5000;
        s.doubly_stochastic = 0.005f;
        s.penalty_excess_only = 1;
        s.lr = 2e-3f;
        s.lr_final = 1e-4f;
        s.warmup = 100;
    }
    if (decoder && strcmp(decoder, "grid-encoder") == 0) s.encoder_layers = 1, s.heads = 2;
    const char *encoder_layers = getenv("CAPTION_TEST_ENCODER_LAYERS"), *dropout = getenv("CAPTION_TEST_DROPOUT");
    const char *lr = getenv("CAPTION_TEST_LR");
    if (encoder_layers && *encoder_layers) s.encoder_layers = atoi(encoder_layers);
    if (dropout && *dropout) s.dropout = (float)atof(dropout);
    s.steps = positive_env("CAPTION_TEST_STEPS", s.steps);
    s.embed_dim = positive_env("CAPTION_TEST_WIDTH", s.embed_dim);
    if (lr && atof(lr) > 0.0) s.lr = (float)atof(lr), s.lr_final = s.lr / 20.0f;
    const char *cnn = getenv("CAPTION_TEST_CNN");
    if (cnn && *cnn) s.encoder_spec = cnn;
    s.zero_encoder_branches = positive_env("CAPTION_TEST_ZERO_ENCODER_BRANCHES", 0) && s.transformer;
    if (s.transformer) {
        s.heads = positive_env("CAPTION_TEST_HEADS", s.heads);
        s.decoder_layers = positive_env("CAPTION_TEST_DECODER_LAYERS", s.decoder_layers);
        s.hidden_dim = positive_env("CAPTION_TEST_FF", s.hidden_dim);
    }
    const char *lambda = getenv("CAPTION_TEST_LAMBDA"), *penalty = getenv("CAPTION_TEST_PENALTY");
    if (lambda && *lambda) s.doubly_stochastic = (float)atof(lambda);
    if (penalty && *penalty) s.penalty_excess_only = strcmp(penalty, "excess") == 0;
    return s;
}

/* The vocabulary helper the training pipeline shares (app/vocab.h). */
static void test_vocab(void) {
    Error err = {{0}};
    const char *captions[] = {"A red  Circle", "a red square\n", "\ta blue circle", "<UNK> zebra", NULL};
    Vocab v;
    CHECK(vocab_build(&v, captions, 5, 2, &err) == 0);
    /* a: 3, circle: 2, red: 2 are kept (ties in byte order); the rest are rare. */
    CHECK(v.size == VOCAB_SPECIAL_COUNT + 3);
    CHECK(v.size == 7 && strcmp(v.words[TOKEN_PAD], "<pad>") == 0 && strcmp(v.words[TOKEN_START], "<start>") == 0 &&
          strcmp(v.words[TOKEN_END], "<end>") == 0 && strcmp(v.words[TOKEN_UNK], "<unk>") == 0 &&
          strcmp(v.words[4], "a") == 0 && strcmp(v.words[5], "circle") == 0 && strcmp(v.words[6], "red") == 0);
    CHECK(vocab_lookup(&v, "RED") == 6 && vocab_lookup(&v, "square") == TOKEN_UNK &&
          vocab_lookup(&v, "<End>") == TOKEN_END && vocab_lookup(&v, "") == TOKEN_UNK);
    CHECK(vocab_lookup_n(&v, "reddish", 3) == 6);
    CHECK(vocab_word(&v, 5) && strcmp(vocab_word(&v, 5), "circle") == 0 && vocab_word(&v, 7) == NULL &&
          vocab_word(&v, -1) == NULL);
    int ids[8] = {0};
    CHECK(vocab_count_words("  A red\tzebra \n") == 3 && vocab_count_words(" \n") == 0);
    CHECK(vocab_encode(&v, "  A red\tzebra \n", ids, 8) == 5);
    CHECK(ids[0] == TOKEN_START && ids[1] == 4 && ids[2] == 6 && ids[3] == TOKEN_UNK && ids[4] == TOKEN_END);
    int cut[4] = {-1, -1, -1, -1};
    CHECK(vocab_encode(&v, "a red circle", cut, 4) == 5);
    CHECK(cut[0] == TOKEN_START && cut[1] == 4 && cut[2] == 6 && cut[3] == TOKEN_END);
    int none[1] = {-1};
    CHECK(vocab_encode(&v, "a", none, 1) == 3 && none[0] == -1);
    CHECK(vocab_encode(&v, "", ids, 8) == 2 && ids[0] == TOKEN_START && ids[1] == TOKEN_END);

    /* Round trip through a word list (what a weights file stores). */
    Vocab copy;
    CHECK(vocab_from_words(&copy, (const char *const *)v.words, v.size, &err) == 0);
    CHECK(copy.size == v.size && vocab_lookup(&copy, "Circle") == 5);
    vocab_free(&copy);
    vocab_free(&copy); /* idempotent */
    const char *no_specials[] = {"a", "b", "c", "d", "e"};
    CHECK(vocab_from_words(&copy, no_specials, 5, &err) == -1 && strstr(err.message, "<pad>") && copy.words == NULL);
    const char *twice[] = {"<pad>", "<start>", "<end>", "<unk>", "Red", "red"};
    CHECK(vocab_from_words(&copy, twice, 6, &err) == -1 && strstr(err.message, "both"));
    vocab_free(&v);

    /* min_count 1 keeps everything; many words exercise the map's growth. */
    CHECK(vocab_build(&v, captions, 4, 1, &err) == 0 && v.size == VOCAB_SPECIAL_COUNT + 6);
    vocab_free(&v);
    enum { MANY = 3000 };
    char(*texts)[32] = malloc(MANY * sizeof *texts);
    const char **many = malloc(MANY * sizeof *many);
    if (!texts || !many) {
        CHECK(!"out of memory");
    } else {
        for (int i = 0; i < MANY; i++) {
            snprintf(texts[i], sizeof texts[i], "w%d W%d", i, i / 2);
            many[i] = texts[i];
        }
        CHECK(vocab_build(&v, many, MANY, 1, &err) == 0 && v.size == VOCAB_SPECIAL_COUNT + MANY);
        int all_found = 1;
        for (int i = 0; i < MANY; i++) {
            size_t n = strcspn(texts[i], " ");
            int id = vocab_lookup_n(&v, texts[i], n);
            all_found &= id >= VOCAB_SPECIAL_COUNT && strlen(v.words[id]) == n && strncmp(v.words[id], texts[i], n) == 0;
        }
        CHECK(all_found);
        /* w0 .. w1499 occur three times, the rest once: the frequent come first. */
        CHECK(v.size > VOCAB_SPECIAL_COUNT && strcmp(v.words[VOCAB_SPECIAL_COUNT], "w0") == 0);
        vocab_free(&v);
    }
    free(texts);
    free(many);
}

/* One line per learning check, for tools/seed-sweep: passes when value OP bar. */
static int stat_check(const char *name, double value, char op, double bar) {
    printf("stat %s %.6g %c %.6g\n", name, value, op, bar);
    return op == '<' ? value < bar : value > bar;
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Scene `index` of `seed`, resized and normalised into tensor [3, S, S]. */
static int scene_tensor(ShapesScene *scene, float *tensor, const Setup *s, const SatConfig *config, uint64_t seed,
                        int index, Error *err) {
    if (shapes_scene_generate(scene, seed, index, &s->shapes, err)) return -1;
    Image small = {0};
    if (image_resize(&small, &scene->image, s->input_size, s->input_size, err)) {
        shapes_scene_free(scene);
        return -1;
    }
    image_to_tensor(tensor, &small, config->image_mean, config->image_std);
    image_free(&small);
    return 0;
}

/* The longest caption of the grammar: "a c n , a c n and a c n" = 11 words. */
enum { MAX_WORDS = 16, MAX_IDS = MAX_WORDS + 2 };
enum { MIN_OBJECTS = 100 }; /* objects an attention check needs to mean something */

typedef struct {
    float *images;  /* [batch, 3, S, S] */
    int *captions;  /* [batch, MAX_IDS] */
    int *row_image; /* [batch] */
} Batch;

/* Fills a training batch from scenes first .. first + batch - 1; returns the
 * decoder steps (longest caption's ids - 1), or -1. */
static int make_batch(Batch *b, const Setup *s, const SatConfig *config, const Vocab *vocab, int first,
                      Error *err) {
    size_t image_floats = (size_t)3 * s->input_size * s->input_size;
    int longest = 0;
    for (int i = 0; i < s->batch; i++) {
        ShapesScene scene;
        if (scene_tensor(&scene, b->images + i * image_floats, s, config, s->train_seed, first + i, err)) return -1;
        if (s->wrong_pairs) {
            shapes_scene_free(&scene);
            if (shapes_scene_generate(&scene, s->train_seed, first + i + 1, &s->shapes, err)) return -1;
        }
        int ids[MAX_IDS];
        int n = vocab_encode(vocab, scene.caption, ids, MAX_IDS);
        shapes_scene_free(&scene);
        if (n > MAX_IDS) {
            error_set(err, "a caption of %d ids does not fit %d", n, MAX_IDS);
            return -1;
        }
        for (int k = 0; k < MAX_IDS; k++) b->captions[i * MAX_IDS + k] = k < n ? ids[k] : TOKEN_PAD;
        b->row_image[i] = i;
        if (n > longest) longest = n;
    }
    return longest - 1;
}

/* The captions as rows of `steps + 1` ids (DecoderBatch's layout). */
static void pack_captions(int *packed, const int *captions, int rows, int steps) {
    for (int r = 0; r < rows; r++) memcpy(packed + r * (steps + 1), captions + r * MAX_IDS, sizeof(int) * (size_t)(steps + 1));
}

static int build_vocab(Vocab *vocab, const Setup *s, Error *err) {
    char(*texts)[sizeof ((ShapesScene *)0)->caption] = malloc((size_t)s->vocab_scenes * sizeof *texts);
    const char **captions = malloc((size_t)s->vocab_scenes * sizeof *captions);
    int status = texts && captions ? 0 : error_set(err, "out of memory");
    for (int i = 0; status == 0 && i < s->vocab_scenes; i++) {
        ShapesScene scene;
        status = shapes_scene_generate(&scene, s->train_seed, i, &s->shapes, err);
        if (status == 0) {
            memcpy(texts[i], scene.caption, sizeof texts[i]);
            captions[i] = texts[i];
            shapes_scene_free(&scene);
        }
    }
    if (status == 0) status = vocab_build(vocab, captions, s->vocab_scenes, 1, err);
    free(texts);
    free(captions);
    return status;
}

static float lr_at(const Setup *s, int step) {
    if (step < s->warmup) return s->lr * (float)(step + 1) / (float)s->warmup;
    float progress = (float)step / (float)(s->steps > 1 ? s->steps - 1 : 1);
    return s->lr_final + 0.5f * (s->lr - s->lr_final) * (1.0f + cosf(3.14159265f * progress));
}

/* Trains; returns the mean loss of the last 50 steps, or a negative value. */
static float train(SatModel *model, const Setup *s, const Vocab *vocab, Error *err) {
    SatTrainer trainer;
    if (sat_trainer_init(&trainer, model, s->batch, s->batch, MAX_IDS - 1, err)) return -1.0f;
    Batch b = {0};
    size_t image_floats = (size_t)3 * s->input_size * s->input_size;
    b.images = malloc((size_t)s->batch * image_floats * sizeof(float));
    b.captions = malloc((size_t)s->batch * MAX_IDS * sizeof(int));
    b.row_image = malloc((size_t)s->batch * sizeof(int));
    int *packed = malloc((size_t)s->batch * MAX_IDS * sizeof(int));
    float result = -1.0f;
    if (!b.images || !b.captions || !b.row_image || !packed) {
        error_set(err, "out of memory for the training batch");
        goto done;
    }
    Rng rng;
    rng_seed(&rng, s->dropout_seed);
    double tail_loss = 0.0;
    int tail = 0;
    for (int step = 0; step < s->steps; step++) {
        int steps = make_batch(&b, s, &model->config, vocab, step * s->batch, err);
        if (steps < 0) goto done;
        pack_captions(packed, b.captions, s->batch, steps);
        DecoderBatch batch = {.captions = packed, .row_image = b.row_image, .rows = s->batch, .steps = steps,
                              .label_smoothing = 0.0f, .training = 1};
        SatLoss loss = sat_forward_backward(&trainer, b.images, s->batch, &batch, &rng);
        float norm = sat_optimizer_step(&trainer, lr_at(s, step), s->weight_decay, s->clip);
        if (step % 100 == 0 || step == s->steps - 1)
            printf("  step %4d  loss %.4f  (ce %.4f  penalty %.4f)  grad norm %.2f  lr %.5f\n", step,
                   (double)loss.loss, (double)loss.cross_entropy, (double)loss.penalty, (double)norm,
                   (double)lr_at(s, step));
        if (step >= s->steps - 50) {
            tail_loss += loss.cross_entropy;
            tail++;
        }
    }
    result = (float)(tail_loss / (tail ? tail : 1));
done:
    free(b.images);
    free(b.captions);
    free(b.row_image);
    free(packed);
    sat_trainer_free(&trainer);
    return result;
}

typedef struct {
    int scenes, exact;
    Grounding attention; /* over the exactly captioned scenes (app/eval/grounding.h) */
} EvalResult;

static int evaluate(const SatModel *model, const Setup *s, int beam, EvalResult *r, Error *err) {
    memset(r, 0, sizeof *r);
    grounding_init(&r->attention);
    Captioner *cap;
    if (captioner_create(&cap, model, beam, MAX_WORDS, err)) return -1;
    float *tensor = malloc(sizeof(float) * 3 * (size_t)s->input_size * (size_t)s->input_size);
    int status = tensor ? 0 : error_set(err, "out of memory");
    DecodeOptions options = {.beam_width = beam, .max_length = MAX_WORDS, .length_penalty = 0.0f};
    int shown = 0;
    for (int i = 0; status == 0 && i < s->eval_count; i++) {
        ShapesScene scene;
        if ((status = scene_tensor(&scene, tensor, s, &model->config, s->eval_seed, i, err))) break;
        Caption caption;
        status = captioner_run(cap, tensor, &options, &caption, err);
        if (status == 0) {
            char text[256];
            caption_text(model, &caption, text, sizeof text);
            r->scenes++;
            if (strcmp(text, scene.caption) == 0 && caption.finished) {
                r->exact++;
                if (grounding_add(&r->attention, scene.objects, scene.object_count, scene.image.width, caption.alpha,
                                  caption.beta, caption.length, model->grid_h, model->grid_w))
                    status = error_set(err, "out of memory");
            } else if (shown++ < 5) {
                printf("  beam %d miss: \"%s\" vs \"%s\"\n", beam, text, scene.caption);
            }
            caption_free(&caption);
        }
        shapes_scene_free(&scene);
    }
    free(tensor);
    captioner_free(cap);
    return status;
}

/* The number after "key": in a JSON text, or -1. */
static double json_number(const char *json, const char *key) {
    char quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\":", key);
    const char *at = strstr(json, quoted);
    return at ? strtod(at + strlen(quoted), NULL) : -1.0;
}

/* `caption eval --model` on the held-out scenes, written as a shapes dataset
 * (PNG images, objects.tsv), measures the attention this test measured with
 * greedy decoding: the dataset's object table, its noun positions (which do
 * not count the "," this model's vocabulary keeps) and the report agree. */
static int check_eval_command(const char *caption_exe, const SatModel *model, const Setup *s,
                              const Grounding *expected) {
    char root[] = "/tmp/caption-test-learning-XXXXXX", path[200], data[200], command[800];
    if (!mkdtemp(root)) return -1;
    snprintf(path, sizeof path, "%s/model.safetensors", root);
    snprintf(data, sizeof data, "%s/shapes", root);
    Error err;
    int status = sat_model_save(model, path, 0, &err) || shapes_write_dataset(data, 0, s->eval_count, s->eval_seed,
                                                                              &s->shapes, &err);
    char *json = NULL;
    if (status == 0) {
        snprintf(command, sizeof command, "'%s' eval --model '%s' --data '%s' --beam 1 --json 2>/dev/null > '%s/eval.json'",
                 caption_exe, path, data, root);
        snprintf(path, sizeof path, "%s/eval.json", root);
        status = system(command) != 0 || !(json = read_whole_file(path, NULL));
    } else {
        fprintf(stderr, "%s\n", err.message);
    }
    if (json) {
        double objects = json_number(json, "attention_objects"), named = json_number(json, "attention_named"),
               other = json_number(json, "attention_other");
        printf("caption eval on the held-out scenes: %g objects, mass on the named object %.6f, on the others %.6f\n",
               objects, named, other);
        status = objects != expected->objects || fabs(named - grounding_named_mean(expected)) > 1e-5 ||
                 fabs(other - grounding_other_mean(expected)) > 1e-5;
    }
    free(json);
    snprintf(command, sizeof command, "rm -rf '%s'", root);
    if (system(command) != 0) fprintf(stderr, "could not remove %s\n", root);
    return status;
}

/* The saved file, loaded back, captions the first scenes word for word alike. */
static int check_reload(const SatModel *model, const char *path, const Setup *s, Error *err) {
    SatModel loaded;
    if (sat_model_load(&loaded, path, err)) return -1;
    Captioner *a = NULL, *b = NULL;
    float *tensor = malloc(sizeof(float) * 3 * (size_t)s->input_size * (size_t)s->input_size);
    int status = tensor ? 0 : error_set(err, "out of memory");
    if (status == 0) status = captioner_create(&a, model, 1, MAX_WORDS, err);
    if (status == 0) status = captioner_create(&b, &loaded, 1, MAX_WORDS, err);
    DecodeOptions options = {.beam_width = 1, .max_length = MAX_WORDS, .length_penalty = 0.0f};
    int same = 1;
    for (int i = 0; status == 0 && i < 20; i++) {
        ShapesScene scene;
        if ((status = scene_tensor(&scene, tensor, s, &model->config, s->eval_seed, i, err))) break;
        shapes_scene_free(&scene);
        Caption ca = {0}, cb = {0};
        status = captioner_run(a, tensor, &options, &ca, err);
        if (status == 0) status = captioner_run(b, tensor, &options, &cb, err);
        if (status == 0) {
            char ta[256], tb[256];
            same &= strcmp(caption_text(model, &ca, ta, sizeof ta), caption_text(&loaded, &cb, tb, sizeof tb)) == 0;
        }
        caption_free(&ca);
        caption_free(&cb);
    }
    if (status == 0) CHECK(same);
    captioner_free(a);
    captioner_free(b);
    free(tensor);
    sat_model_free(&loaded);
    return status;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    openblas_set_num_threads(1);
    const Setup s = default_setup();
    Error err = {{0}};
    Vocab vocab = {0};
    SatModel model;
    memset(&model, 0, sizeof model);
    int model_ready = 0;
    double start = now_seconds();

    test_vocab();
    printf("vocabulary helper: %d checks, %d failed\n", passed + failed, failed);

    if (build_vocab(&vocab, &s, &err)) goto fail;
    printf("vocabulary: %d words\n", vocab.size);
    /* a , and above left of + 4 colours + 3 shapes */
    CHECK(vocab.size == VOCAB_SPECIAL_COUNT + 13);

    SatConfig config;
    sat_config_defaults(&config);
    config.image_size = s.input_size;
    snprintf(config.encoder_spec, sizeof config.encoder_spec, "%s", s.encoder_spec);
    config.vocab_size = vocab.size;
    config.embed_dim = s.embed_dim;
    config.hidden_dim = s.hidden_dim;
    config.attention_dim = s.attention_dim;
    config.use_attention = 1;
    config.score = ATTENTION_ADDITIVE;
    config.dropout = s.dropout;
    config.doubly_stochastic = s.doubly_stochastic;
    config.penalty_excess_only = s.penalty_excess_only;
    if (s.transformer) {
        sat_decoder_parse("transformer", &config);
        config.heads = s.heads, config.encoder_layers = s.encoder_layers, config.decoder_layers = s.decoder_layers;
        config.ff_dim = s.hidden_dim;
    } else if (s.encoder_layers > 0) {
        config.encoder_layers = s.encoder_layers, config.heads = s.heads, config.ff_dim = 64;
    }
    if (sat_model_create(&model, &config, (const char *const *)vocab.words, &err)) goto fail;
    model_ready = 1;
    sat_model_init_params(&model, s.init_seed);
    if (s.zero_encoder_branches) zero_encoder_branches(&model);
    printf("model: %dx%d input, encoder \"%s\" -> %dx%d grid of %d features, embed %d hidden %d attention %d, "
           "%zu parameters\n",
           s.input_size, s.input_size, s.encoder_spec, model.grid_h, model.grid_w, model.features, s.embed_dim,
           s.hidden_dim, s.attention_dim, model.table.total);
    printf("data: shapes grid %d, %d-%d objects, canvas %d; %d steps x %d fresh scenes, Adam lr %g -> %g (cosine), "
           "clip %g, lambda %g (%s)\n",
           s.shapes.grid, s.shapes.min_objects, s.shapes.max_objects, s.shapes.canvas_size, s.steps, s.batch,
           (double)s.lr, (double)s.lr_final, (double)s.clip, (double)s.doubly_stochastic,
           s.penalty_excess_only ? "excess" : "doubly stochastic");
    printf("seeds: training scenes %llu, held-out scenes %llu, weights %llu, dropout %llu%s\n",
           (unsigned long long)s.train_seed, (unsigned long long)s.eval_seed, (unsigned long long)s.init_seed,
           (unsigned long long)s.dropout_seed,
           s.wrong_pairs ? "; CONTROL: each image trained with the next scene's caption, the learning checks must fail"
                         : "");

    double train_start = now_seconds();
    float final_loss = train(&model, &s, &vocab, &err);
    double train_time = now_seconds() - train_start;
    if (final_loss < 0.0f) goto fail;
    printf("trained: %d steps in %.1f s, final training loss (cross-entropy, mean of last 50 steps) %.4f\n", s.steps,
           train_time, (double)final_loss);
    /* Over 20 seeds x Haswell and Sandybridge (tools/SEEDS.md): 0.0060 +- 0.0028,
     * max 0.0146; control (wrong pairs; 20 seeds on Haswell): 0.772 +- 0.001,
     * min 0.769. */
    CHECK(stat_check("learning.final_loss", final_loss, '<', 0.1));

    if (sat_model_prepare_inference(&model, &err)) goto fail;
    if (argc > 2) {
        if (sat_model_save(&model, argv[2], 0, &err) || check_reload(&model, argv[2], &s, &err)) goto fail;
        printf("saved the model to %s (reloaded: same captions)\n", argv[2]);
    }

    EvalResult greedy, beam3;
    if (evaluate(&model, &s, 1, &greedy, &err) || evaluate(&model, &s, 3, &beam3, &err)) goto fail;
    double greedy_rate = (double)greedy.exact / greedy.scenes, beam_rate = (double)beam3.exact / beam3.scenes;
    const Grounding *attention = &greedy.attention;
    /* Measured on fewer than MIN_OBJECTS objects (the control captions 0-9 of
     * its 200 scenes exactly) the attention means nothing, and counts as 0. */
    int measured = attention->objects >= MIN_OBJECTS;
    double mean_noun = measured ? grounding_named_mean(attention) : 0.0;
    double strong = measured ? grounding_named_share(attention) : 0.0;
    double mean_other = grounding_other_mean(attention), other_strong = grounding_other_share(attention);
    printf("exact match on %d held-out scenes: greedy %.1f%% (%d), beam 3 %.1f%% (%d)\n", greedy.scenes,
           100.0 * greedy_rate, greedy.exact, 100.0 * beam_rate, beam3.exact);
    printf("attention on the object at its noun step (%d objects, greedy): mean mass %.3f, min %.3f, "
           "%.1f%% of objects >= 0.5\n",
           attention->objects, mean_noun, attention->min_named_mass, 100.0 * strong);
    printf("for information, at the colour word's step: mean mass %.3f\n", grounding_color_mean(attention));
    printf("control: at the noun step on the scene's other objects (%d objects of scenes of several): mean mass "
           "%.3f, %.1f%% of objects >= 0.5\n", attention->other_objects, mean_other, 100.0 * other_strong);
    printf("stat learning.other_objects_mass %.6g\nstat learning.other_objects_strong %.6g\n", mean_other,
           other_strong);
    CHECK(greedy.scenes >= 100);
    CHECK(attention->objects > 0);
    printf("stat learning.attention_objects %d\n", attention->objects);
    /* Greedy 0.989 +- 0.008, min 0.97; beam 3 0.990 +- 0.008, min 0.975 (20
     * seeds x 2 kernels); control: greedy 0.024 +- 0.011, max 0.045. */
    CHECK(stat_check("learning.exact_greedy", greedy_rate, '>', 0.90));
    CHECK(stat_check("learning.exact_beam3", beam_rate, '>', 0.90));
    /* Over 20 seeds x Haswell and Sandybridge (about 400 objects each): mean
     * mass on the named object 0.790 +- 0.034, min 0.688; the share of objects
     * with half their noun's map or more 0.916 +- 0.051, min 0.715 (seed 2 on
     * Haswell, whose model attends less sharply everywhere: the bar of 0.80
     * the test had until issue 12 failed seed 2 on both kernels). Two
     * controls: the same maps on the scene's *other* objects (mass 0.236 +-
     * 0.036, max 0.368; share 0.090 +- 0.060, max 0.335), and the wrong-pairs
     * run, whose few exact captions left 1 seed in 20 above both bars before
     * the MIN_OBJECTS rule (0 after it). The bars sit between the largest
     * control and the smallest seen: 8.5 and 6.3 sd below the means. */
    CHECK(stat_check("learning.noun_mass", mean_noun, '>', 0.5));
    CHECK(stat_check("learning.noun_strong", strong, '>', 0.60));
    if (argc > 1) CHECK(check_eval_command(argv[1], &model, &s, attention) == 0);
    printf("wall time %.1f s\n", now_seconds() - start);
    goto done;

fail:
    fprintf(stderr, "error: %s\n", err.message);
    failed++;
done:
    if (model_ready) sat_model_free(&model);
    vocab_free(&vocab);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
