/* The SCST reward (app/cider_reward.h) against the CIDEr-D that
 * app/metrics.h computes for the same images, on a small dataset built in
 * memory: the document frequencies come from the same references, so the
 * two must agree to rounding (in fact to the bit). */

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cider_reward.h"
#include "metrics.h"
#include "model.h"

/* Made-up captions: shared words across images, words only one image uses,
 * words used once (not in the vocabulary at min count 2: "zebra", "kite",
 * "tabby", ...), a caption with a literal "<unk>", and repeated n-grams. */
static char *captions_dog[] = {
    "a brown dog runs through the green grass",
    "a dog is running in the park",
    "the brown dog plays with a red ball in the park",
    "a dog running on grass",
    "a happy brown dog runs and runs in a park",
};
static char *captions_bike[] = {
    "a man rides a bike down the street",
    "a man on a red bike",
    "a person riding a bicycle on the road",
    "a man in a helmet rides his bike down a hill",
    "the man is riding a bike",
};
static char *captions_beach[] = {
    "two children play on the beach",
    "children playing in the sand near the water",
    "two kids run on the beach with a kite",
    "a boy and a girl play in the sand",
    "children on a sandy beach by the water",
};
static char *captions_cat[] = {
    "a cat sleeps on the sofa",
    "a tabby cat lying on a couch",
    "a cat is sleeping on a red sofa",
    "the cat sleeps",
    "a small cat curled up on the sofa",
};
static char *captions_market[] = {
    "a woman buys fruit at the market",
    "a woman in a red dress at a market stall",
    "people shopping at an outdoor market",
    "a woman holding a bag of fruit",
    "a market with a woman and a man",
};
static char *captions_zebra[] = {
    "a zebra stands in the grass",
    "a zebra and a <unk> in the grass near the water",
    "a striped animal in the grass",
    "one zebra standing in green grass",
    "a zebra in the grass in the grass",
};
/* An image with more references than the scorer keeps on the stack. */
#define MANY_CAPTIONS 19
static char many_text[MANY_CAPTIONS][64];
static char *captions_many[MANY_CAPTIONS];

#define IMAGE_COUNT 7
static DatasetImage images[IMAGE_COUNT] = {
    {"dog.jpg", "dog.jpg", captions_dog, 5},
    {"bike.jpg", "bike.jpg", captions_bike, 5},
    {"beach.jpg", "beach.jpg", captions_beach, 5},
    {"cat.jpg", "cat.jpg", captions_cat, 5},
    {"market.jpg", "market.jpg", captions_market, 5},
    {"zebra.jpg", "zebra.jpg", captions_zebra, 5},
    {"many.jpg", "many.jpg", captions_many, MANY_CAPTIONS},
};
static Dataset dataset = {images, IMAGE_COUNT, "in-memory dataset"};

static void fill_many(void) {
    static const char *const subjects[] = {"a dog", "a man", "a cat", "the woman", "two children"};
    static const char *const verbs[] = {"runs", "sits", "plays", "sleeps"};
    static const char *const places[] = {"in the park", "on the sofa", "on the beach", "at the market", "in the grass"};
    for (int i = 0; i < MANY_CAPTIONS; i++) {
        snprintf(many_text[i], sizeof many_text[i], "%s %s %s", subjects[i % 5], verbs[i % 4], places[(i / 2) % 5]);
        captions_many[i] = many_text[i];
    }
}

/* Encodes space-separated words (no <start>/<end>); returns the length. */
static int encode(const Vocab *vocab, const char *text, int *ids, int capacity) {
    int n = 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ') p++;
        if (!*p) break;
        const char *start = p;
        while (*p && *p != ' ') p++;
        if (n < capacity) ids[n] = vocab_lookup_n(vocab, start, (size_t)(p - start));
        n++;
    }
    return n;
}

static int all_known(const Vocab *vocab, const char *text) {
    int ids[256];
    int n = encode(vocab, text, ids, 256);
    for (int i = 0; i < n; i++)
        if (ids[i] == TOKEN_UNK) return 0;
    return 1;
}

static int close_enough(double a, double b) { return fabs(a - b) <= 1e-9 * fmax(1.0, fabs(b)); }

/* Scores one hypothesis per image with MetricsScorer (metrics_text) and with
 * the reward (reward_text, encoded with the vocabulary) and checks they agree. */
static void compare_with_metrics(CheckCounts *counts, const CiderReward *reward, const Vocab *vocab,
                                 const char *const *metrics_text, const char *const *reward_text, const char *what,
                                 int *exact) {
    Error err;
    MetricsScorer *scorer = metrics_scorer_new(&err);
    CHECK(counts, scorer != NULL);
    if (!scorer) return;
    for (int i = 0; i < IMAGE_COUNT; i++) {
        int rc = metrics_scorer_add(scorer, metrics_text[i], (const char *const *)images[i].captions,
                                    (size_t)images[i].caption_count, &err);
        CHECK(counts, rc == 0);
    }
    MetricScores corpus, per_image[IMAGE_COUNT];
    CHECK(counts, metrics_scorer_compute(scorer, &corpus, per_image, &err) == 0);
    for (int i = 0; i < IMAGE_COUNT; i++) {
        int ids[256];
        int n = encode(vocab, reward_text[i], ids, 256);
        CHECK(counts, n <= 256);
        double got = cider_reward_score(reward, i, ids, n);
        double expected = per_image[i].cider_d;
        if (!close_enough(got, expected))
            fprintf(stderr, "%s, image %d (\"%s\"): reward %.17g, metrics %.17g\n", what, i, reward_text[i], got,
                    expected);
        CHECK(counts, close_enough(got, expected));
        if (got == expected) (*exact)++;
    }
    metrics_scorer_free(scorer);
}

typedef struct {
    const CiderReward *reward;
    const int *ids;
    int length;
    double expected;
    int mismatches;
} ThreadJob;

static void *score_many(void *argument) {
    ThreadJob *job = argument;
    for (int k = 0; k < 2000; k++)
        if (cider_reward_score(job->reward, 0, job->ids, job->length) != job->expected)
            job->mismatches++;
    return NULL;
}

int main(void) {
    CheckCounts counts = {0, 0};
    Error err;
    fill_many();

    const char *all_captions[256];
    int caption_total = 0;
    for (int i = 0; i < IMAGE_COUNT; i++)
        for (int c = 0; c < images[i].caption_count; c++) all_captions[caption_total++] = images[i].captions[c];
    Vocab vocab;
    CHECK(&counts, vocab_build(&vocab, all_captions, caption_total, 2, &err) == 0);
    /* Some words of the references are not in the vocabulary. */
    CHECK(&counts, vocab_lookup(&vocab, "zebra") != TOKEN_UNK);
    CHECK(&counts, vocab_lookup(&vocab, "kite") == TOKEN_UNK);
    CHECK(&counts, vocab_lookup(&vocab, "tabby") == TOKEN_UNK);
    CHECK(&counts, vocab_lookup(&vocab, "striped") == TOKEN_UNK);

    CiderReward *reward = NULL;
    CHECK(&counts, cider_reward_create(&reward, &dataset, &vocab, &err) == 0);
    if (!reward) {
        fprintf(stderr, "create: %s\n", err.message);
        vocab_free(&vocab);
        return check_summary(&counts);
    }

    /* 1. The same numbers as MetricsScorer, for several sets of hypotheses
     * (all words in the vocabulary). */
    static const char *const plausible[IMAGE_COUNT] = {
        "a brown dog runs in the park",
        "a man rides a red bike",
        "two children play on the beach",
        "a cat sleeps on the sofa",
        "a woman at the market",
        "a zebra in the grass",
        "a dog sits in the park",
    };
    static const char *const odd[IMAGE_COUNT] = {
        "", /* empty */
        "man", /* one word: no bigram, like the empty one in the length penalty */
        "the the the the the the", /* repeated n-grams */
        "a dog runs in the green grass", /* another image's words */
        "a woman in a red", /* a reference's prefix */
        "a zebra and a in the grass near the water", /* the reference without its unknown word */
        "a man on a red bike in the park near the water with a dog and a cat and a woman at the "
        "market and two children play on the beach in the sand and the man rides a bike in the park",
        /* 43 words, over the 33 the scorer keeps on the stack */
    };
    CHECK(&counts, vocab_count_words(odd[6]) > 33);
    static const char *const exact_copies[IMAGE_COUNT] = {
        "a dog running on grass",
        "the man is riding a bike",
        "two children play on the beach",
        "a cat sleeps on the sofa",
        "a market with a woman and a man",
        "a zebra in the grass in the grass",
        "a dog runs in the park",
    };
    const char *const *sets[] = {plausible, odd, exact_copies};
    const char *set_names[] = {"plausible", "odd", "exact copies"};
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < IMAGE_COUNT; i++) {
            if (!all_known(&vocab, sets[s][i])) fprintf(stderr, "%s %d has an unknown word\n", set_names[s], i);
            CHECK(&counts, all_known(&vocab, sets[s][i]));
        }
    int exact = 0, compared = 0;
    for (int s = 0; s < 3; s++) {
        compare_with_metrics(&counts, reward, &vocab, sets[s], sets[s], set_names[s], &exact);
        compared += IMAGE_COUNT;
    }

    /* <unk> in a hypothesis is a word no reference has, like a made-up word
     * in MetricsScorer's text: "kite" and "tabby" are in the references of
     * images 2 and 3 but not in the vocabulary, so they encode as <unk> and
     * must not match; nor must the reference's literal "<unk>" (image 5). */
    static const char *const unk_reward[IMAGE_COUNT] = {
        "a dog <unk> in the park",
        "a man rides a <unk>",
        "two children play on the beach with a kite",
        "a tabby cat sleeps on a sofa",
        "<unk>",
        "a zebra and a <unk> in the grass near the water",
        "<unk> <unk> <unk> in the park",
    };
    static const char *const unk_metrics[IMAGE_COUNT] = {
        "a dog xyzzy in the park",
        "a man rides a xyzzy",
        "two children play on the beach with a xyzzy",
        "a xyzzy cat sleeps on a sofa",
        "xyzzy",
        "a zebra and a xyzzy in the grass near the water",
        "xyzzy xyzzy xyzzy in the park",
    };
    for (int i = 0; i < IMAGE_COUNT; i++) { /* every other word is known */
        char text[256];
        snprintf(text, sizeof text, "%s", unk_metrics[i]);
        for (char *x = strstr(text, "xyzzy"); x; x = strstr(text, "xyzzy")) memcpy(x, "zebra", 5);
        CHECK(&counts, all_known(&vocab, text));
    }
    compare_with_metrics(&counts, reward, &vocab, unk_metrics, unk_reward, "<unk>", &exact);
    compared += IMAGE_COUNT;
    printf("reward == metrics to the bit for %d of %d hypotheses\n", exact, compared);

    /* 2. Orderings and special cases. */
    int ids[64], shuffled[64];
    int n = encode(&vocab, "the brown dog plays with a red ball in the park", ids, 64);
    CHECK(&counts, n == 11);
    static const int order[11] = {7, 2, 10, 0, 5, 9, 1, 4, 8, 3, 6};
    for (int i = 0; i < n; i++) shuffled[i] = ids[order[i]];
    double copy = cider_reward_score(reward, 0, ids, n), mixed = cider_reward_score(reward, 0, shuffled, n);
    CHECK(&counts, copy > mixed);
    CHECK(&counts, mixed > 0);
    CHECK(&counts, copy > cider_reward_score(reward, 1, ids, n)); /* the right image scores higher */
    for (int i = 0; i < IMAGE_COUNT; i++) CHECK(&counts, cider_reward_score(reward, i, NULL, 0) == 0.0);
    int unk = TOKEN_UNK;
    for (int i = 0; i < IMAGE_COUNT; i++) CHECK(&counts, cider_reward_score(reward, i, &unk, 1) == 0.0);
    int two_unk[2] = {TOKEN_UNK, TOKEN_UNK};
    CHECK(&counts, cider_reward_score(reward, 5, two_unk, 2) == 0.0);
    /* The reference "a zebra and a <unk> in the grass near the water" with
     * its literal "<unk>" as the model's <unk> still scores on its other
     * words (the <unk> itself matching nothing: see the "<unk>" set above). */
    int with_unk[16];
    int m = encode(&vocab, "a zebra and a <unk> in the grass near the water", with_unk, 16);
    CHECK(&counts, m == 11 && with_unk[4] == TOKEN_UNK);
    double reference_with_unk = cider_reward_score(reward, 5, with_unk, m);
    CHECK(&counts, reference_with_unk > 0);

    /* Arguments out of range. */
    CHECK(&counts, isnan(cider_reward_score(reward, -1, ids, n)));
    CHECK(&counts, isnan(cider_reward_score(reward, IMAGE_COUNT, ids, n)));
    CHECK(&counts, isnan(cider_reward_score(reward, 0, ids, -1)));
    CHECK(&counts, isnan(cider_reward_score(reward, 0, NULL, 3)));
    int beyond = vocab.size; /* the first fresh id a reference's unknown word got */
    CHECK(&counts, isnan(cider_reward_score(reward, 0, &beyond, 1)));

    /* The contrastive reward: own CIDEr-D minus weight x the mean against the
     * others; a caption that fits several images ("a man ... in the park":
     * the dog's, bike's and market's words) keeps less of it than one that
     * fits its image alone. */
    int others[4] = {1, 2, 3, 4};
    CHECK(&counts, cider_reward_contrastive(reward, 0, others, 4, 0.0f, ids, n) == copy);
    double mean_others = 0.0;
    for (int i = 0; i < 4; i++) mean_others += cider_reward_score(reward, others[i], ids, n) / 4;
    CHECK(&counts, close_enough(cider_reward_contrastive(reward, 0, others, 4, 0.5f, ids, n), copy - 0.5 * mean_others));
    int generic[16], specific[16];
    int g = encode(&vocab, "a man with a dog in the park", generic, 16);
    int k = encode(&vocab, "a brown dog runs through the green grass", specific, 16);
    double generic_kept = cider_reward_contrastive(reward, 0, others, 4, 1.0f, generic, g) /
                          cider_reward_score(reward, 0, generic, g);
    double specific_kept = cider_reward_contrastive(reward, 0, others, 4, 1.0f, specific, k) /
                           cider_reward_score(reward, 0, specific, k);
    printf("contrastive reward (weight 1): the generic caption keeps %.3f of its CIDEr-D, the specific one %.3f\n",
           generic_kept, specific_kept);
    CHECK(&counts, generic_kept < specific_kept);
    int outside[1] = {IMAGE_COUNT};
    CHECK(&counts, isnan(cider_reward_contrastive(reward, 0, outside, 1, 0.5f, ids, n)));

    /* 3. Several threads scoring at once get the same numbers. */
    ThreadJob jobs[4];
    pthread_t threads[4];
    for (int t = 0; t < 4; t++) {
        jobs[t] = (ThreadJob){reward, ids, n, copy, 0};
        CHECK(&counts, pthread_create(&threads[t], NULL, score_many, &jobs[t]) == 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        CHECK(&counts, jobs[t].mismatches == 0);
    }

    /* Errors. */
    Dataset empty = {NULL, 0, "empty.json"};
    CiderReward *none = (CiderReward *)&counts;
    CHECK(&counts, cider_reward_create(&none, &empty, &vocab, &err) == -1);
    CHECK(&counts, none == NULL);
    CHECK_MESSAGE(&counts, err, "empty.json");
    DatasetImage captionless = {"x.jpg", "x.jpg", NULL, 0};
    Dataset no_captions = {&captionless, 1, "nothing.json"};
    CHECK(&counts, cider_reward_create(&none, &no_captions, &vocab, &err) == -1);
    CHECK_MESSAGE(&counts, err, "no reference captions");
    cider_reward_free(NULL);

    /* Captions with no words at all: every n-gram table empty, scores 0. */
    char *blank[] = {"", "   "};
    DatasetImage blank_image = {"b.jpg", "b.jpg", blank, 2};
    Dataset blank_dataset = {&blank_image, 1, "blank.json"};
    CiderReward *blank_reward = NULL;
    CHECK(&counts, cider_reward_create(&blank_reward, &blank_dataset, &vocab, &err) == 0);
    if (blank_reward) {
        CHECK(&counts, cider_reward_score(blank_reward, 0, ids, n) == 0.0);
        CHECK(&counts, cider_reward_score(blank_reward, 0, NULL, 0) == 0.0);
        cider_reward_free(blank_reward);
    }

    cider_reward_free(reward);
    vocab_free(&vocab);
    return check_summary(&counts);
}
