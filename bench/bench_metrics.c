/* Times the caption metrics on a synthetic evaluation the size of a large
 * one: 5000 hypotheses against 25000 references (5 per image), captions of
 * 8 to 16 words drawn from a Zipf-like 3000-word vocabulary so that common
 * words and n-grams repeat as in real captions. The target is well under a
 * second for tokenising and scoring everything. */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"

enum { IMAGES = 5000, REFERENCES_PER_IMAGE = 5, VOCABULARY = 3000, MAX_CAPTION = 256 };

static uint64_t next_random(uint64_t *state) { /* xorshift64* */
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

/* Word rank with probability roughly proportional to 1 / (rank + 1). */
static unsigned zipf_word(uint64_t *state) {
    double u = (double)(next_random(state) >> 11) / 9007199254740992.0;
    double rank = (double)VOCABULARY;
    unsigned word = (unsigned)(exp(u * log(rank + 1.0)) - 1.0);
    return word < VOCABULARY ? word : VOCABULARY - 1;
}

static void make_caption(uint64_t *state, char *caption) {
    int words = 8 + (int)(next_random(state) % 9);
    size_t used = 0;
    for (int w = 0; w < words; w++) {
        used += (size_t)snprintf(caption + used, MAX_CAPTION - used, "%sWord%u", w ? " " : "",
                                 zipf_word(state));
    }
    snprintf(caption + used, MAX_CAPTION - used, " .");
}

static double seconds_since(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + 1e-9 * (double)(now.tv_nsec - start->tv_nsec);
}

int main(void) {
    char (*captions)[MAX_CAPTION] = malloc(sizeof *captions * IMAGES * (REFERENCES_PER_IMAGE + 1));
    if (!captions) {
        fprintf(stderr, "bench_metrics: out of memory\n");
        return 1;
    }
    uint64_t state = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < (size_t)IMAGES * (REFERENCES_PER_IMAGE + 1); i++)
        make_caption(&state, captions[i]);

    Error err;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    MetricsScorer *scorer = metrics_scorer_new(&err);
    int rc = scorer ? 0 : -1;
    for (size_t i = 0; i < IMAGES && rc == 0; i++) {
        const char *references[REFERENCES_PER_IMAGE];
        for (size_t r = 0; r < REFERENCES_PER_IMAGE; r++)
            references[r] = captions[i * (REFERENCES_PER_IMAGE + 1) + 1 + r];
        rc = metrics_scorer_add(scorer, captions[i * (REFERENCES_PER_IMAGE + 1)], references,
                                REFERENCES_PER_IMAGE, &err);
    }
    double add_seconds = seconds_since(&start);
    MetricScores corpus;
    MetricScores *per_image = malloc(sizeof *per_image * IMAGES);
    if (rc == 0 && !per_image) rc = error_set(&err, "out of memory");
    if (rc == 0) rc = metrics_scorer_compute(scorer, &corpus, per_image, &err);
    double total_seconds = seconds_since(&start);
    metrics_scorer_free(scorer);
    free(per_image);
    free(captions);
    if (rc < 0) {
        fprintf(stderr, "bench_metrics: %s\n", err.message);
        return 1;
    }
    printf("bench_metrics: %d hypotheses, %d references: tokenise %.3f s, score %.3f s, "
           "total %.3f s (%s 1 s target)\n",
           IMAGES, IMAGES * REFERENCES_PER_IMAGE, add_seconds, total_seconds - add_seconds,
           total_seconds, total_seconds < 1.0 ? "within" : "OVER");
    printf("  BLEU-4 %.4f  ROUGE-L %.4f  CIDEr-D %.4f\n", corpus.bleu[3], corpus.rouge_l,
           corpus.cider_d);
    return 0;
}
