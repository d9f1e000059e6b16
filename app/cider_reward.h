#ifndef APP_CIDER_REWARD_H
#define APP_CIDER_REWARD_H

/* A per-caption CIDEr-D reward on token ids, for self-critical sequence
 * training (SCST).
 *
 * The numbers are coco-caption's CIDEr-D (cider_scorer.py, CiderD) exactly as
 * app/metrics.c computes them, with the document frequencies taken over the
 * references of every image of a whole corpus (the training split), the
 * "corpus df" of self-critical training: n = 1..4, tf-idf weights
 * tf * (log(images) - log(max(1, df))), CIDEr-D's clipped similarity
 * min(hyp, ref) * ref divided by the two vector norms, the Gaussian length
 * penalty (sigma 6; lengths counted as cider_scorer counts them, i.e. the
 * number of bigrams), averaged over n and over the image's references, times
 * 10.
 *
 * Everything that depends only on the references (n-gram ids, df, each
 * reference's norms and length) is computed once by cider_reward_create, so
 * scoring one hypothesis costs its own n-grams plus hash and binary-search
 * lookups. */

#include "dataset.h"
#include "error.h"
#include "vocab.h"

typedef struct CiderReward CiderReward;

/* References: every caption of every image of `dataset`, split on whitespace
 * and mapped to ids with `vocab` (case-insensitively, as vocab_lookup_n). A
 * word the vocabulary lacks -- and a word spelled like a special token such
 * as "<unk>" -- gets a fresh id of its own (>= vocab->size, one per distinct
 * word), so it never matches anything a model emits: a model's <unk>
 * (TOKEN_UNK = 3) is in no reference.
 * Document frequencies are counted over all images' references; log(images)
 * counts the images that have at least one caption (an image without
 * captions adds nothing to the corpus and scores 0). Neither `dataset` nor
 * `vocab` is referenced after this returns. Fails (err set, *reward NULL)
 * when the dataset has no caption at all, or when out of memory. */
int cider_reward_create(CiderReward **reward, const Dataset *dataset, const Vocab *vocab, Error *err);

/* Frees everything; NULL is fine. */
void cider_reward_free(CiderReward *reward);

/* CIDEr-D of one hypothesis (token ids, words only: no <start>/<end>/<pad>)
 * against the references of dataset image `image` (its index in
 * dataset->images). An empty hypothesis scores 0. Read-only on the scorer:
 * safe to call from several threads at once. Tokens must be vocabulary ids,
 * 0 <= id < vocab->size (a special token other than <unk> counts as a word
 * that matches nothing). Returns NAN for arguments out of range (image
 * outside the dataset, negative length, NULL tokens with a positive length,
 * a token outside the vocabulary) and, for a hypothesis longer than 33
 * tokens or an image with more than 16 references (whose scratch memory is
 * malloc'd), when out of memory. */
double cider_reward_score(const CiderReward *reward, int image, const int *tokens, int length);

/* The contrastive reward: the hypothesis's CIDEr-D against its own image's
 * references minus `weight` times its mean CIDEr-D against the references of
 * `other_count` other images (`others`: dataset indices). A caption that
 * would fit any image ("a dog is running through the grass") scores well
 * against other images' references too, and keeps less of its reward than
 * one that fits its image alone. weight 0 (or no others) is
 * cider_reward_score. NAN as cider_reward_score, or for an index out of
 * range among the others. */
double cider_reward_contrastive(const CiderReward *reward, int image, const int *others, int other_count,
                                float weight, const int *tokens, int length);

#endif
