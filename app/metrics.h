#ifndef APP_METRICS_H
#define APP_METRICS_H

/* Caption metrics that reproduce the COCO caption evaluation (coco-caption /
 * pycocoevalcap) number for number: corpus BLEU-1..4 (bleu_scorer.py,
 * option "closest"), ROUGE-L (rouge.py) and CIDEr-D (cider_scorer.py, the
 * scorer coco-caption reports as "CIDEr").
 *
 * Captions are given as raw text and tokenised before scoring: lower-cased,
 * every punctuation character (hyphens, brackets and quotes included) taken
 * as a separator and dropped, apostrophes kept with PTB's clitic split
 * ("dog's" -> "dog" "'s"), numbers such as "3.5" kept whole. This is the
 * tokenisation the reference scores in tests/data/metrics were made with.
 *
 * Usage: create a scorer, add one hypothesis with its references per image,
 * compute. The scorer interns tokens and n-grams to integer ids, so scoring
 * 5000 images against 25000 references takes a few tens of milliseconds. */

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define METRICS_BLEU_ORDER 4

typedef struct {
    double bleu[METRICS_BLEU_ORDER]; /* BLEU-1 .. BLEU-4 */
    double rouge_l;
    double cider_d;
} MetricScores;

typedef struct MetricsScorer MetricsScorer;

/* Returns NULL (and sets err) when out of memory. */
MetricsScorer *metrics_scorer_new(Error *err);
void metrics_scorer_free(MetricsScorer *scorer);

/* Adds one image: its hypothesis and its references (at least one), all raw
 * text. The strings are tokenised and copied; the caller keeps ownership. */
int metrics_scorer_add(MetricsScorer *scorer, const char *hypothesis,
                       const char *const *references, size_t reference_count,
                       Error *err);

size_t metrics_scorer_image_count(const MetricsScorer *scorer);

/* Number of distinct hypotheses after tokenisation (a diversity measure:
 * a model that says the same thing for every image scores 1). */
size_t metrics_scorer_distinct_hypotheses(const MetricsScorer *scorer);

/* How many images share the most frequent hypothesis (after tokenisation),
 * and (first_image, may be NULL) the first image, in the order added, that
 * has it; 0 before any image. The earliest-reached maximum wins ties. */
size_t metrics_scorer_most_frequent(const MetricsScorer *scorer, size_t *first_image);

/* Scores every image added so far. corpus receives the numbers coco-caption
 * reports (corpus BLEU, mean ROUGE-L, mean CIDEr-D). per_image, when not
 * NULL, must hold metrics_scorer_image_count() entries and receives the
 * per-image scores coco-caption computes alongside (sentence BLEU as in
 * bleu_scorer's bleu_list, ROUGE-L, CIDEr-D), in the order images were added.
 * CIDEr-D's document frequencies come from the references of exactly the
 * images added, as in coco-caption, so scores depend on the whole set.
 * Fails when no image was added. */
int metrics_scorer_compute(const MetricsScorer *scorer, MetricScores *corpus,
                           MetricScores *per_image, Error *err);

/* Whether a byte belongs to a word when captions are tokenised: letters,
 * digits, underscore, apostrophe and any non-ASCII byte (UTF-8 letters);
 * every other byte separates words and is dropped. */
bool metrics_is_word_byte(unsigned char c);

/* Tokenises one caption as the scorer does and returns the tokens joined by
 * single spaces (malloc'd; the caller frees it), or NULL when out of memory.
 * "A Dog's (well-groomed) ball." gives "a dog 's well groomed ball". */
char *metrics_tokenize(const char *caption, Error *err);

#endif
