/* Caption metrics against the scores coco-caption gives the fixtures in
 * tests/data/metrics, hand-computed cases, the caption-file readers and the
 * `caption eval` report. */

#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agreement.h"
#include "caption_sets.h"
#include "cmd_eval.h"
#include "metrics.h"

typedef struct {
    int failures;
    char temp_dir[64];
} Context;

static void fail(Context *context, const char *file, int line, const char *format, ...) {
    va_list args;
    va_start(args, format);
    fprintf(stderr, "%s:%d: FAIL: ", file, line);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    context->failures++;
}

#define CHECK(condition, ...) \
    do { \
        if (!(condition)) fail(context, __FILE__, __LINE__, __VA_ARGS__); \
    } while (0)

#define CHECK_NEAR(actual, expected, tolerance, what) \
    do { \
        double a_ = (actual), e_ = (expected); \
        if (!(fabs(a_ - e_) <= (tolerance))) \
            fail(context, __FILE__, __LINE__, "%s: got %.17g, expected %.17g", what, a_, e_); \
    } while (0)

static const double TOLERANCE = 1e-6;
static const char *const NAMES[] = {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr-D"};

static void values_of(const MetricScores *scores, double values[6]) {
    for (int k = 0; k < 4; k++) values[k] = scores->bleu[k];
    values[4] = scores->rouge_l;
    values[5] = scores->cider_d;
}

/* Scores images given as {hypothesis, references..., NULL} lists. */
static int score_images(Context *context, const char *const *const *images, size_t count,
                        MetricScores *corpus, MetricScores *per_image) {
    Error err;
    MetricsScorer *scorer = metrics_scorer_new(&err);
    if (!scorer) return -1;
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        size_t references = 0;
        while (images[i][1 + references]) references++;
        rc = metrics_scorer_add(scorer, images[i][0], images[i] + 1, references, &err);
    }
    if (rc == 0) rc = metrics_scorer_compute(scorer, corpus, per_image, &err);
    if (rc < 0) fail(context, __FILE__, __LINE__, "scoring failed: %s", err.message);
    metrics_scorer_free(scorer);
    return rc;
}

static char *path_in(const Context *context, const char *name, char *buffer, size_t size) {
    snprintf(buffer, size, "%s/%s", context->temp_dir, name);
    return buffer;
}

static char *write_temp(Context *context, const char *name, const char *content, char *buffer,
                        size_t size) {
    path_in(context, name, buffer, size);
    FILE *file = fopen(buffer, "w");
    if (!file) {
        fail(context, __FILE__, __LINE__, "cannot write %s", buffer);
        return buffer;
    }
    fputs(content, file);
    fclose(file);
    return buffer;
}

static char *read_text(const char *path) {
    FILE *file = fopen(path, "rb");
    if (!file) return NULL;
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    if (text && fread(text, 1, (size_t)size, file) != (size_t)size) {
        free(text);
        text = NULL;
    }
    if (text) text[size] = '\0';
    fclose(file);
    return text;
}

/* ------------------------------------------------------------------------ */

static void test_fixture(Context *context, const char *data_dir, const char *name) {
    char refs_path[512], hyps_path[512], expected_path[512];
    snprintf(refs_path, sizeof refs_path, "%s/data/metrics/%s/refs.txt", data_dir, name);
    snprintf(hyps_path, sizeof hyps_path, "%s/data/metrics/%s/hyps.txt", data_dir, name);
    snprintf(expected_path, sizeof expected_path, "%s/data/metrics/%s/expected.json", data_dir, name);
    Error err;
    CaptionSet refs, hyps;
    caption_set_init(&refs);
    caption_set_init(&hyps);
    char *expected_text = read_text(expected_path);
    cJSON *expected = expected_text ? cJSON_Parse(expected_text) : NULL;
    CHECK(expected != NULL, "cannot read %s", expected_path);
    EvalResult result;
    if (expected && caption_sets_read_refs(refs_path, &refs, &err) == 0 &&
        caption_sets_read_hyps(hyps_path, &refs, &hyps, &err) == 0 &&
        eval_score(&refs, &hyps, false, &result, &err) == 0) {
        double values[6];
        values_of(&result.corpus, values);
        printf("%-10s images %4zu  max abs error:", name, result.pairing.count);
        for (int m = 0; m < 6; m++) {
            const cJSON *item = cJSON_GetObjectItemCaseSensitive(expected, NAMES[m]);
            CHECK(cJSON_IsNumber(item), "%s: no %s", expected_path, NAMES[m]);
            if (!cJSON_IsNumber(item)) continue;
            printf(" %s %.1e", NAMES[m], fabs(values[m] - item->valuedouble));
            char what[64];
            snprintf(what, sizeof what, "%s %s", name, NAMES[m]);
            CHECK_NEAR(values[m], item->valuedouble, TOLERANCE, what);
        }
        printf("\n");
        const cJSON *images = cJSON_GetObjectItemCaseSensitive(expected, "images");
        CHECK(cJSON_IsNumber(images) && (size_t)images->valuedouble == result.pairing.count,
              "%s: image count %zu", name, result.pairing.count);
        eval_result_free(&result);
    } else if (expected) {
        fail(context, __FILE__, __LINE__, "%s: %s", name, err.message);
    }
    cJSON_Delete(expected);
    free(expected_text);
    caption_set_free(&refs);
    caption_set_free(&hyps);
}

static void test_tokenizer(Context *context) {
    static const char *const cases[][2] = {
        {"A Dog's ball.", "a dog 's ball"},
        {"Three pre-teen girls", "three pre teen girls"},
        {"A person riding transit ( catching ? ) a paper bag .",
         "a person riding transit catching a paper bag"},
        {"a sign that says , \" The Rescue . \"", "a sign that says the rescue"},
        {"Michael Jackson 's ' Thriller ' video .", "michael jackson 's thriller video"},
        {"I don't know, it's 3.5 feet", "i do n't know it 's 3.5 feet"},
        {"the dogs' toys; 1,000 people!", "the dogs toys 1,000 people"},
        {"We can't -- cannot -- stop", "we ca n't can not stop"},
        {"  \tA  BIG\tdog \r\n", "a big dog"},
        {"", ""},
        {"... ?! --", ""},
        {"CAF\xC3\x89 au lait", "caf\xC3\xA9 au lait"},
        {"O\xE2\x80\x99Malley\xE2\x80\x99s \xE2\x80\x9C" "dog\xE2\x80\x9D", "o'malley 's dog"},
    };
    Error err;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *tokens = metrics_tokenize(cases[i][0], &err);
        CHECK(tokens && strcmp(tokens, cases[i][1]) == 0, "tokenize(\"%s\") = \"%s\", expected \"%s\"",
              cases[i][0], tokens ? tokens : "(null)", cases[i][1]);
        free(tokens);
    }
}

static void test_perfect_match(Context *context) {
    /* Two images whose captions share no n-gram: every n-gram has document
     * frequency 1, so each hypothesis vector equals its reference vector and
     * CIDEr-D is 10 * mean over n of cos = 10. BLEU is 1 up to coco's
     * smoothing constants. */
    const char *const a[] = {"A dog runs on the grass .", "a dog runs on the grass", NULL};
    const char *const b[] = {"Two cats sleep inside warm houses", "two cats sleep inside warm houses",
                             NULL};
    const char *const *images[] = {a, b};
    MetricScores corpus, per_image[2];
    if (score_images(context, images, 2, &corpus, per_image) < 0) return;
    for (int k = 0; k < 4; k++) CHECK_NEAR(corpus.bleu[k], 1.0, 1e-8, "perfect BLEU");
    CHECK(corpus.rouge_l == 1.0, "perfect ROUGE-L %.17g", corpus.rouge_l);
    CHECK_NEAR(corpus.cider_d, 10.0, 1e-12, "perfect CIDEr-D");
    for (int k = 0; k < 4; k++) CHECK_NEAR(per_image[1].bleu[k], 1.0, 1e-8, "perfect sentence BLEU");
}

static void test_empty_hypothesis(Context *context) {
    const char *const a[] = {"", "a dog runs", "the dog sleeps here", NULL};
    const char *const b[] = {"...", "two cats", NULL};
    const char *const *images[] = {a, b};
    MetricScores corpus, per_image[2];
    if (score_images(context, images, 2, &corpus, per_image) < 0) return;
    for (int k = 0; k < 4; k++) CHECK(corpus.bleu[k] == 0.0, "empty BLEU-%d %.17g", k + 1, corpus.bleu[k]);
    CHECK(corpus.rouge_l == 0.0, "empty ROUGE-L %.17g", corpus.rouge_l);
    CHECK(corpus.cider_d == 0.0, "empty CIDEr-D %.17g", corpus.cider_d);
}

static void test_one_word_hypothesis(Context *context) {
    /* Image A: "dog" against "a dog runs" / "the dog sleeps here".
     * Image B: "a cat" against "a cat". */
    const char *const a[] = {"dog", "a dog runs", "the dog sleeps here", NULL};
    const char *const b[] = {"a cat", "a cat", NULL};
    const char *const *images[] = {a, b};
    MetricScores corpus, per_image[2];
    if (score_images(context, images, 2, &corpus, per_image) < 0) return;

    /* BLEU of A: closest reference length 3 (|3-1| < |4-1|), one matched
     * unigram, no bigram to guess: p1 = 1, p2..p4 = 1e-15 / 1e-9 = 1e-6. */
    double brevity = exp(1 - 3.0 / 1.0);
    CHECK_NEAR(per_image[0].bleu[0], brevity, 1e-9, "one-word BLEU-1");
    CHECK_NEAR(per_image[0].bleu[1], sqrt(1e-6) * brevity, 1e-12, "one-word BLEU-2");
    CHECK_NEAR(per_image[0].bleu[2], cbrt(1e-12) * brevity, 1e-12, "one-word BLEU-3");
    CHECK_NEAR(per_image[0].bleu[3], pow(1e-18, 0.25) * brevity, 1e-12, "one-word BLEU-4");

    /* ROUGE-L of A: precision max 1/1, recall max 1/3, beta 1.2. */
    double p = 1.0, r = 1.0 / 3.0, b2 = 1.44;
    CHECK_NEAR(per_image[0].rouge_l, (1 + b2) * p * r / (r + b2 * p), 1e-12, "one-word ROUGE-L");

    /* CIDEr-D with 2 images: weight of an n-gram = tf * (log 2 - log df);
     * "a" occurs in both images (df 2, weight 0), every other n-gram has
     * weight log 2. A's hypothesis has only a unigram, so only n = 1 counts:
     * against "a dog runs" cos = 1/sqrt(2), bigram lengths 0 vs 2;
     * against "the dog sleeps here" cos = 1/2, bigram lengths 0 vs 3. */
    double cider_a = 10.0 / 4 / 2 *
                     (exp(-4.0 / 72) / sqrt(2.0) + 0.5 * exp(-9.0 / 72));
    CHECK_NEAR(per_image[0].cider_d, cider_a, 1e-12, "one-word CIDEr-D");
    /* B matches exactly: cos = 1 for n = 1, 2 and no 3-, 4-grams: 10 * 2/4. */
    CHECK_NEAR(per_image[1].cider_d, 5.0, 1e-12, "exact two-word CIDEr-D");
    CHECK_NEAR(corpus.cider_d, (cider_a + 5.0) / 2, 1e-12, "corpus CIDEr-D is the mean");
}

static void test_brevity_penalty(Context *context) {
    /* "a dog": closest reference is "a dog runs" (3), ratio 2/3. */
    const char *const a[] = {"a dog", "a dog runs fast", "a dog runs", NULL};
    const char *const *images[] = {a};
    MetricScores corpus;
    if (score_images(context, images, 1, &corpus, NULL) < 0) return;
    double brevity = exp(1 - 3.0 / 2.0);
    CHECK_NEAR(corpus.bleu[0], brevity, 1e-9, "short BLEU-1");
    CHECK_NEAR(corpus.bleu[1], brevity, 1e-9, "short BLEU-2");
    CHECK_NEAR(corpus.bleu[2], cbrt(1e-6) * brevity, 1e-9, "short BLEU-3");

    /* "a dog runs" is as close to "a dog" (2) as to "a dog runs fast" (4):
     * coco takes the shorter, so there is no brevity penalty. */
    const char *const tie[] = {"a dog runs", "a dog", "a dog runs fast", NULL};
    const char *const *tie_images[] = {tie};
    if (score_images(context, tie_images, 1, &corpus, NULL) < 0) return;
    CHECK_NEAR(corpus.bleu[0], 1.0, 1e-9, "closest-length tie goes to the shorter");

    /* Counts are clipped by the reference count: "the" matches once. */
    const char *const clip[] = {"the the the the", "the cat", NULL};
    const char *const *clip_images[] = {clip};
    if (score_images(context, clip_images, 1, &corpus, NULL) < 0) return;
    CHECK_NEAR(corpus.bleu[0], 0.25, 1e-9, "clipped BLEU-1");
}

static void test_corpus_bleu(Context *context) {
    /* Corpus BLEU sums the counts over images; it is not the mean of the
     * sentence scores (which would be about 0.5 here). */
    const char *const a[] = {"a b c d", "a b c d", NULL};
    const char *const b[] = {"x y", "z w", NULL};
    const char *const *images[] = {a, b};
    MetricScores corpus, per_image[2];
    if (score_images(context, images, 2, &corpus, per_image) < 0) return;
    CHECK_NEAR(corpus.bleu[0], 4.0 / 6.0, 1e-9, "corpus BLEU-1");
    CHECK_NEAR(per_image[0].bleu[0], 1.0, 1e-9, "sentence BLEU-1 of the match");
    CHECK_NEAR(per_image[1].bleu[0], 1e-15 / (2 + 1e-9), 1e-15, "sentence BLEU-1 of the miss");
}

/* Subject-verb agreement: the errors a captioner makes are found, plain
 * sentences of either number agree, and what the rules cannot place (a
 * second clause, a collective, "there is") is not judged. */
static void test_agreement(Context *context) {
    static const struct {
        const char *caption;
        Agreement expected;
    } cases[] = {
        {"a man and a woman in a black shirt is smiling", AGREEMENT_PLURAL_IS},
        {"a man and a woman are smiling", AGREEMENT_AGREES},
        {"two dogs is running in the grass", AGREEMENT_PLURAL_IS},
        {"the two dogs are running", AGREEMENT_AGREES},
        {"the little kids is jumping off a ledge", AGREEMENT_PLURAL_IS},
        {"children are playing in the water", AGREEMENT_AGREES},
        {"a brown and black dog are fighting on snow", AGREEMENT_SINGULAR_ARE},
        {"a black and white dog is running", AGREEMENT_AGREES},
        {"a man in a red shirt is climbing a rock", AGREEMENT_AGREES},
        {"a woman with four children are eating ice cream", AGREEMENT_SINGULAR_ARE},
        {"the dog is wet", AGREEMENT_AGREES},
        {"a group of people are standing in the street", AGREEMENT_UNJUDGED},
        {"a couple are holding hands", AGREEMENT_UNJUDGED},
        {"there are two dogs in the snow", AGREEMENT_UNJUDGED},
        {"two women outside and one is smoking", AGREEMENT_UNJUDGED},
        {"three girls walking one is checking her phone", AGREEMENT_UNJUDGED},
        {"a man and woman are walking", AGREEMENT_UNJUDGED},
        {"the four wheel drive car is driving through a river", AGREEMENT_UNJUDGED},
        {"a dog runs through the grass", AGREEMENT_UNJUDGED},
        {"", AGREEMENT_UNJUDGED},
        {"is", AGREEMENT_UNJUDGED},
    };
    AgreementCounts counts = {0};
    int judged = 0, errors = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Agreement got = agreement_check(cases[i].caption);
        CHECK(got == cases[i].expected, "agreement of \"%s\": %d, expected %d", cases[i].caption, got,
              cases[i].expected);
        agreement_count(&counts, cases[i].caption);
        judged += cases[i].expected != AGREEMENT_UNJUDGED;
        errors += cases[i].expected == AGREEMENT_PLURAL_IS || cases[i].expected == AGREEMENT_SINGULAR_ARE;
    }
    CHECK(counts.captions == (int)(sizeof cases / sizeof cases[0]) && counts.judged == judged &&
              counts.errors == errors, "agreement counts %d %d %d", counts.captions, counts.judged, counts.errors);
    /* A word longer than the rules keep, and more words than they read, are handled. */
    char long_caption[600] = "a";
    for (int i = 0; i < 100; i++) strcat(long_caption, " dog");
    strcat(long_caption, " is");
    CHECK(agreement_check(long_caption) == AGREEMENT_UNJUDGED, "the verb after the words read is not judged");
    CHECK(agreement_check("the dooooooooooooooooooooooooooooooooooooooooooooooooooog are running") ==
              AGREEMENT_SINGULAR_ARE, "a word longer than the rules keep is cut, not overrun");
}

static void test_distinct(Context *context) {
    Error err;
    MetricsScorer *scorer = metrics_scorer_new(&err);
    const char *const refs[] = {"a dog"};
    metrics_scorer_add(scorer, "A dog.", refs, 1, &err);
    metrics_scorer_add(scorer, "a DOG", refs, 1, &err);
    metrics_scorer_add(scorer, "a cat", refs, 1, &err);
    CHECK(metrics_scorer_image_count(scorer) == 3, "image count");
    CHECK(metrics_scorer_distinct_hypotheses(scorer) == 2, "distinct hypotheses %zu",
          metrics_scorer_distinct_hypotheses(scorer));
    size_t first = 99;
    CHECK(metrics_scorer_most_frequent(scorer, &first) == 2 && first == 0, "most frequent: \"a dog\", twice");
    /* A later hypothesis that overtakes it, across the set's growth (256 slots). */
    for (int i = 0; i < 300; i++) {
        char hypothesis[32];
        snprintf(hypothesis, sizeof hypothesis, "caption %d", i);
        metrics_scorer_add(scorer, i % 100 == 7 ? "a cat" : hypothesis, refs, 1, &err);
    }
    CHECK(metrics_scorer_most_frequent(scorer, &first) == 4 && first == 2, "most frequent: \"a cat\", 4 times");
    CHECK(metrics_scorer_distinct_hypotheses(scorer) == 299, "distinct hypotheses %zu",
          metrics_scorer_distinct_hypotheses(scorer));
    MetricScores corpus;
    metrics_scorer_free(scorer);
    scorer = metrics_scorer_new(&err);
    CHECK(metrics_scorer_compute(scorer, &corpus, NULL, &err) < 0, "scoring nothing must fail");
    CHECK(metrics_scorer_add(scorer, "a", refs, 0, &err) < 0, "an image needs references");
    metrics_scorer_free(scorer);
}

/* ------------------------------------------------------------------------ */
/* Readers                                                                  */
/* ------------------------------------------------------------------------ */

static void expect_error(Context *context, int rc, const Error *err, const char *needle,
                         const char *what) {
    CHECK(rc < 0, "%s: expected an error", what);
    if (rc < 0)
        CHECK(strstr(err->message, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", what,
              err->message, needle);
}

static void test_flickr_reader(Context *context) {
    char path[256];
    Error err;
    CaptionSet refs;
    caption_set_init(&refs);
    write_temp(context, "tokens.txt",
               "b.jpg#0\tA dog .\r\n"
               "\n"
               "b.jpg#1\tA brown dog .\r\n"
               "   \n"
               "a.jpg#0\tA cat .\n"
               "b.jpg#2\tThe dog runs .",
               path, sizeof path);
    int rc = caption_sets_read_refs(path, &refs, &err);
    CHECK(rc == 0, "read tokens: %s", err.message);
    if (rc == 0) {
        CHECK(refs.format == CAPTION_FORMAT_FLICKR_TOKENS, "format");
        CHECK(refs.image_count == 2, "image count %zu", refs.image_count);
        CHECK(strcmp(refs.images[0].image, "b.jpg") == 0 && refs.images[0].caption_count == 3,
              "first image in file order with 3 captions");
        CHECK(strcmp(refs.images[0].captions[1], "A brown dog .") == 0, "caption kept verbatim");
        CHECK(strcmp(refs.images[1].image, "a.jpg") == 0 && refs.images[1].where == 5,
              "second image at line 5");
        CHECK(caption_set_find(&refs, "a.jpg") == &refs.images[1], "find");
        CHECK(caption_set_find(&refs, "c.jpg") == NULL, "find unknown");
        CHECK(caption_set_caption_count(&refs) == 4, "caption count");
    }
    caption_set_free(&refs);

    caption_set_init(&refs);
    write_temp(context, "bad.txt", "a.jpg#0\tA cat .\n\na.jpg#1 A cat without tab\n", path,
               sizeof path);
    char needle[600];
    snprintf(needle, sizeof needle, "%s:3:", path);
    expect_error(context, caption_sets_read_flickr_tokens(path, &refs, &err), &err, needle,
                 "malformed token line");
    caption_set_free(&refs);

    caption_set_init(&refs);
    path_in(context, "missing.txt", path, sizeof path);
    expect_error(context, caption_sets_read_refs(path, &refs, &err), &err, "missing.txt",
                 "missing file");
    caption_set_free(&refs);
}

static void test_coco_readers(Context *context) {
    char refs_path[256], hyps_path[256];
    Error err;
    CaptionSet refs, hyps;
    caption_set_init(&refs);
    caption_set_init(&hyps);
    write_temp(context, "coco.json",
               "{\"images\": [{\"id\": 42, \"file_name\": \"COCO_val2014_000000000042.jpg\"},\n"
               "              {\"id\": 7, \"file_name\": \"val/seven.jpg\"}],\n"
               " \"annotations\": [{\"image_id\": 7, \"caption\": \"A red bus.\"},\n"
               "                 {\"image_id\": 42, \"caption\": \"A cat on a mat.\"},\n"
               "                 {\"image_id\": 7, \"caption\": \"A bus on a road.\"}]}\n",
               refs_path, sizeof refs_path);
    write_temp(context, "results.json",
               "[{\"image_id\": 7, \"caption\": \"a red bus\"},\n"
               " {\"image_id\": 42, \"caption\": \"a cat\"}]\n",
               hyps_path, sizeof hyps_path);
    int rc = caption_sets_read_refs(refs_path, &refs, &err);
    CHECK(rc == 0, "COCO refs: %s", err.message);
    if (rc == 0) rc = caption_sets_read_hyps(hyps_path, &refs, &hyps, &err);
    CHECK(rc == 0, "COCO results: %s", err.message);
    if (rc == 0) {
        CHECK(refs.format == CAPTION_FORMAT_COCO && hyps.format == CAPTION_FORMAT_COCO_RESULTS,
              "formats");
        const ImageCaptions *seven = caption_set_find(&refs, "seven.jpg");
        CHECK(seven && seven->caption_count == 2 && seven->coco_id == 7, "COCO image 7");
        const ImageCaptions *hyp = caption_set_find(&hyps, "seven.jpg");
        CHECK(hyp && strcmp(hyp->captions[0], "a red bus") == 0, "image_id 7 mapped to its file");
        CaptionPairing pairing;
        rc = caption_sets_pair(&refs, &hyps, false, &pairing, &err);
        CHECK(rc == 0 && pairing.count == 2, "pairing COCO: %s", err.message);
        if (rc == 0) caption_pairing_free(&pairing);
    }
    caption_set_free(&hyps);

    /* An unknown image id is reported when pairing. */
    caption_set_init(&hyps);
    write_temp(context, "results2.json",
               "[{\"image_id\": 7, \"caption\": \"a red bus\"},\n"
               " {\"image_id\": 42, \"caption\": \"a cat\"},\n"
               " {\"image_id\": 99, \"caption\": \"a ghost\"}]\n",
               hyps_path, sizeof hyps_path);
    rc = caption_sets_read_hyps(hyps_path, &refs, &hyps, &err);
    CHECK(rc == 0, "results with unknown id: %s", err.message);
    if (rc == 0) {
        CaptionPairing pairing;
        expect_error(context, caption_sets_pair(&refs, &hyps, false, &pairing, &err), &err,
                     "image_id 99", "unknown COCO id");
        rc = caption_sets_pair(&refs, &hyps, true, &pairing, &err);
        CHECK(rc == 0 && pairing.count == 2 && pairing.hyps_without_refs == 1,
              "intersection skips the unknown id");
        if (rc == 0) caption_pairing_free(&pairing);
    }
    caption_set_free(&hyps);

    caption_set_init(&hyps);
    write_temp(context, "results3.json", "[{\"image_id\": 7, \"caption\": 3}]", hyps_path,
               sizeof hyps_path);
    expect_error(context, caption_sets_read_hyps(hyps_path, &refs, &hyps, &err), &err,
                 "[0] needs", "bad result entry");
    caption_set_free(&hyps);
    caption_set_free(&refs);

    caption_set_init(&refs);
    write_temp(context, "broken.json", "{\"images\": [\n{\"id\": 1,,}\n]}", refs_path,
               sizeof refs_path);
    expect_error(context, caption_sets_read_refs(refs_path, &refs, &err), &err, "broken.json:2",
                 "invalid JSON names its line");
    caption_set_free(&refs);
}

static void test_karpathy_and_json_lines(Context *context) {
    char refs_path[256], hyps_path[256];
    Error err;
    CaptionSet refs, hyps;
    caption_set_init(&refs);
    caption_set_init(&hyps);
    write_temp(context, "karpathy.json",
               "{\"images\": [\n"
               " {\"filename\": \"1000_a.jpg\", \"split\": \"train\", \"sentences\": [\n"
               "   {\"raw\": \"A dog.\", \"tokens\": [\"a\", \"dog\"]}]},\n"
               " {\"filename\": \"2000_b.jpg\", \"split\": \"test\", \"sentences\": [\n"
               "   {\"tokens\": [\"a\", \"black\", \"cat\"]},\n"
               "   {\"raw\": \"A cat.\"}]}],\n"
               " \"dataset\": \"flickr8k\"}\n",
               refs_path, sizeof refs_path);
    write_temp(context, "hyps.jsonl",
               "{\"path\": \"/data/Flicker8k_Dataset/2000_b.jpg\", \"caption\": \"a cat\", \"score\": -1.5}\n"
               "\n"
               "{\"path\": \"images/1000_a.jpg\", \"caption\": \"a dog\"}\n",
               hyps_path, sizeof hyps_path);
    int rc = caption_sets_read_refs(refs_path, &refs, &err);
    CHECK(rc == 0, "Karpathy refs: %s", err.message);
    if (rc == 0) rc = caption_sets_read_hyps(hyps_path, &refs, &hyps, &err);
    CHECK(rc == 0, "JSON Lines hyps: %s", err.message);
    if (rc == 0) {
        CHECK(refs.format == CAPTION_FORMAT_KARPATHY && hyps.format == CAPTION_FORMAT_JSON_LINES,
              "formats");
        const ImageCaptions *b = caption_set_find(&refs, "2000_b.jpg");
        CHECK(b && b->caption_count == 2 && strcmp(b->captions[0], "a black cat") == 0 &&
                  strcmp(b->split, "test") == 0,
              "Karpathy tokens joined when raw is absent");
        CHECK(caption_set_find(&hyps, "2000_b.jpg") && hyps.images[1].where == 3,
              "JSON Lines matched by base name, line numbers kept");
        rc = caption_set_keep_split(&refs, "test", &err);
        CHECK(rc == 0 && refs.image_count == 1 && caption_set_find(&refs, "2000_b.jpg"),
              "keep split: %s", err.message);
        CaptionPairing pairing;
        expect_error(context, caption_sets_pair(&refs, &hyps, false, &pairing, &err), &err,
                     "1000_a.jpg", "hypothesis for an image outside the split");
        expect_error(context, caption_set_keep_split(&refs, "val", &err), &err, "split 'val'",
                     "empty split");
    }
    caption_set_free(&refs);
    caption_set_free(&hyps);

    /* COCO results against non-COCO references: ids from file-name digits,
     * or file names given as strings. */
    caption_set_init(&refs);
    caption_set_init(&hyps);
    write_temp(context, "flickr.txt",
               "1000_a.jpg#0\tA dog .\n2000_b.jpg#0\tA cat .\n", refs_path, sizeof refs_path);
    write_temp(context, "results4.json",
               "[{\"image_id\": 1000, \"caption\": \"a dog\"},"
               " {\"image_id\": \"2000_b.jpg\", \"caption\": \"a cat\"}]",
               hyps_path, sizeof hyps_path);
    rc = caption_sets_read_refs(refs_path, &refs, &err);
    if (rc == 0) rc = caption_sets_read_hyps(hyps_path, &refs, &hyps, &err);
    CHECK(rc == 0, "COCO results against Flickr refs: %s", err.message);
    if (rc == 0) {
        CHECK(caption_set_find(&hyps, "1000_a.jpg") && caption_set_find(&hyps, "2000_b.jpg"),
              "ids matched through file names");
    }
    caption_set_free(&hyps);

    /* TSV hypotheses: duplicates are errors, empty hypotheses allowed. */
    caption_set_init(&hyps);
    write_temp(context, "dup.tsv", "1000_a.jpg\ta dog\n2000_b.jpg\t\n1000_a.jpg\ta cat\n",
               hyps_path, sizeof hyps_path);
    char needle[600];
    snprintf(needle, sizeof needle, "%s:3: second hypothesis for image 1000_a.jpg", hyps_path);
    expect_error(context, caption_sets_read_hyps(hyps_path, &refs, &hyps, &err), &err, needle,
                 "duplicate hypothesis");
    caption_set_free(&hyps);

    caption_set_init(&hyps);
    write_temp(context, "partial.tsv", "dir/2000_b.jpg\t\n", hyps_path, sizeof hyps_path);
    rc = caption_sets_read_hyps(hyps_path, &refs, &hyps, &err);
    CHECK(rc == 0 && hyps.images[0].captions[0][0] == '\0', "empty hypothesis allowed: %s",
          err.message);
    if (rc == 0) {
        CaptionPairing pairing;
        snprintf(needle, sizeof needle, "%s:1: image 1000_a.jpg has references but no hypothesis",
                 refs_path);
        expect_error(context, caption_sets_pair(&refs, &hyps, false, &pairing, &err), &err,
                     needle, "missing hypothesis");
        rc = caption_sets_pair(&refs, &hyps, true, &pairing, &err);
        CHECK(rc == 0 && pairing.count == 1 && pairing.refs_without_hypothesis == 1 &&
                  pairing.refs_index[0] == 1,
              "intersection pairs the rest");
        if (rc == 0) caption_pairing_free(&pairing);
    }
    caption_set_free(&hyps);

    caption_set_init(&hyps);
    write_temp(context, "bad.jsonl", "{\"path\": \"a.jpg\", \"caption\": \"x\"}\n{\"path\": 3}\n",
               hyps_path, sizeof hyps_path);
    snprintf(needle, sizeof needle, "%s:2:", hyps_path);
    expect_error(context, caption_sets_read_hyps(hyps_path, &refs, &hyps, &err), &err, needle,
                 "malformed JSON line");
    caption_set_free(&hyps);
    caption_set_free(&refs);
}

/* ------------------------------------------------------------------------ */
/* Report                                                                   */
/* ------------------------------------------------------------------------ */

static void test_report(Context *context, const char *data_dir) {
    char refs_path[512], hyps_path[512], out_path[256], per_image_path[256];
    snprintf(refs_path, sizeof refs_path, "%s/data/metrics/small/refs.txt", data_dir);
    snprintf(hyps_path, sizeof hyps_path, "%s/data/metrics/small/hyps.txt", data_dir);
    path_in(context, "report.json", out_path, sizeof out_path);
    path_in(context, "per_image.tsv", per_image_path, sizeof per_image_path);
    Error err;
    CaptionSet refs, hyps;
    caption_set_init(&refs);
    caption_set_init(&hyps);
    int rc = caption_sets_read_refs(refs_path, &refs, &err);
    if (rc == 0) rc = caption_sets_read_hyps(hyps_path, &refs, &hyps, &err);
    FILE *out = fopen(out_path, "w");
    EvalOptions options = {.json = true, .per_image_path = per_image_path, .notes = NULL};
    if (rc == 0 && out) rc = eval_score_and_report(&refs, &hyps, &options, out, &err);
    if (out) fclose(out);
    CHECK(rc == 0 && out, "report: %s", err.message);
    char *text = read_text(out_path);
    cJSON *json = text ? cJSON_Parse(text) : NULL;
    CHECK(json != NULL, "--json output is one JSON object: %s", text ? text : "(none)");
    if (json) {
        static const char *const keys[] = {"BLEU-1",   "BLEU-2",  "BLEU-3", "BLEU-4",
                                           "ROUGE-L",  "CIDEr-D", "images", "distinct",
                                           "most_frequent_images", "most_frequent_caption", "agreement_judged",
                                           "agreement_errors", "agreement_references_judged",
                                           "agreement_references_errors"};
        int index = 0;
        const cJSON *item;
        cJSON_ArrayForEach(item, json) {
            CHECK(index < 14 && strcmp(item->string, keys[index]) == 0 &&
                      (index == 9 ? cJSON_IsString(item) : cJSON_IsNumber(item)),
                  "JSON key %d is %s", index, item->string);
            index++;
        }
        CHECK(index == 14, "JSON has %d keys, expected 14", index);
        const cJSON *images = cJSON_GetObjectItemCaseSensitive(json, "images");
        CHECK(cJSON_IsNumber(images) && images->valuedouble == 20, "JSON images");
        CHECK_NEAR(cJSON_GetObjectItemCaseSensitive(json, "BLEU-4")->valuedouble,
                   0.13954194810806683, 1e-12, "JSON BLEU-4 printed at full precision");
    }
    cJSON_Delete(json);
    free(text);

    text = read_text(per_image_path);
    CHECK(text != NULL, "per-image file written");
    if (text) {
        const char *header =
            "image\tBLEU-1\tBLEU-2\tBLEU-3\tBLEU-4\tROUGE-L\tCIDEr-D\thypothesis\n";
        CHECK(strncmp(text, header, strlen(header)) == 0, "per-image header");
        size_t lines = 0;
        for (const char *p = text; *p; p++) lines += *p == '\n';
        CHECK(lines == 21, "per-image file has %zu lines, expected 21", lines);
        CHECK(strstr(text, "3198962089_e647d1b0cd.jpg\t") == text + strlen(header),
              "per-image rows in reference order");
    }
    free(text);

    /* Table output names every metric and the image count. */
    out = fopen(out_path, "w");
    options = (EvalOptions){.json = false};
    if (rc == 0 && out) rc = eval_score_and_report(&refs, &hyps, &options, out, &err);
    if (out) fclose(out);
    text = read_text(out_path);
    CHECK(text && strstr(text, "BLEU-1") && strstr(text, "CIDEr-D") &&
              strstr(text, "distinct hypotheses") && strstr(text, "images") && strstr(text, "most frequent"),
          "table output: %s", text ? text : "(none)");
    free(text);
    caption_set_free(&refs);
    caption_set_free(&hyps);
}

static void test_command_line(Context *context, const char *data_dir) {
    char refs_path[512], hyps_path[512], missing[256];
    snprintf(refs_path, sizeof refs_path, "%s/data/metrics/small/refs.txt", data_dir);
    snprintf(hyps_path, sizeof hyps_path, "%s/data/metrics/small/hyps.txt", data_dir);
    path_in(context, "nothing-here.txt", missing, sizeof missing);
    char *no_args[] = {"eval", NULL};
    CHECK(cmd_eval(1, no_args) == 2, "no arguments is a usage error");
    char *unknown[] = {"eval", "--refs", refs_path, "--hyps", hyps_path, "--bogus", NULL};
    CHECK(cmd_eval(6, unknown) == 2, "unknown option is a usage error");
    char *no_value[] = {"eval", "--refs", NULL};
    CHECK(cmd_eval(2, no_value) == 2, "option without value is a usage error");
    char *help[] = {"eval", "--help", NULL};
    CHECK(cmd_eval(2, help) == 0, "--help succeeds");
    char *bad_file[] = {"eval", "--refs", missing, "--hyps", hyps_path, NULL};
    CHECK(cmd_eval(5, bad_file) == 1, "missing file is a data error");
    char *ok[] = {"eval", "--refs=", NULL};
    CHECK(cmd_eval(2, ok) == 2, "empty value is a usage error");
    char *good[] = {"eval", "--json", "--refs", refs_path, "--hyps", hyps_path, NULL};
    CHECK(cmd_eval(6, good) == 0, "scoring the fixture succeeds");
    fflush(stdout);
}

int main(void) {
    Context context_storage = {0};
    Context *context = &context_storage;
    const char *data_dir = getenv("CAPTION_TEST_DATA");
    if (!data_dir) data_dir = "tests";
    snprintf(context->temp_dir, sizeof context->temp_dir, "/tmp/test_metrics_XXXXXX");
    if (!mkdtemp(context->temp_dir)) {
        perror("mkdtemp");
        return 1;
    }

    test_fixture(context, data_dir, "small");
    test_fixture(context, data_dir, "dev-sample");
    test_tokenizer(context);
    test_perfect_match(context);
    test_empty_hypothesis(context);
    test_one_word_hypothesis(context);
    test_brevity_penalty(context);
    test_corpus_bleu(context);
    test_distinct(context);
    test_agreement(context);
    test_flickr_reader(context);
    test_coco_readers(context);
    test_karpathy_and_json_lines(context);
    test_report(context, data_dir);
    test_command_line(context, data_dir);

    static const char *const temp_files[] = {
        "tokens.txt", "bad.txt", "coco.json", "results.json", "results2.json", "results3.json",
        "broken.json", "karpathy.json", "hyps.jsonl", "flickr.txt", "results4.json", "dup.tsv",
        "partial.tsv", "bad.jsonl", "report.json", "per_image.tsv",
    };
    for (size_t i = 0; i < sizeof temp_files / sizeof *temp_files; i++) {
        char path[256];
        unlink(path_in(context, temp_files[i], path, sizeof path));
    }
    rmdir(context->temp_dir);

    if (context->failures) {
        fprintf(stderr, "test_metrics: %d failure(s)\n", context->failures);
        return 1;
    }
    printf("test_metrics: all passed\n");
    return 0;
}
