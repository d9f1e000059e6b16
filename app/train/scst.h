#ifndef APP_SCST_H
#define APP_SCST_H

#include "dataset.h"
#include "error.h"
#include "loader.h"
#include "trainer.h"
#include "vocab.h"

/* Self-critical sequence training (Rennie et al. 2017), with the baseline of
 * "A Better Variant of Self-Critical Sequence Training" (Luo 2020): for each
 * image of a batch, K captions are sampled from the model; each is rewarded
 * with its CIDEr-D against the image's references (document frequencies of
 * the whole training split); and the log-likelihood of each sample is
 * weighted by its reward minus the mean reward of the image's other K - 1
 * samples. The gradient is REINFORCE's, with a baseline that costs no extra
 * decoding and does not depend on the sample it is subtracted from. */
typedef struct Scst Scst;

/* train: the training split the loader's image_index refers to. With
 * xe_weight > 0 the batch's reference captions (up to captions_per_image per
 * image) are trained on in the same pass, each token weighted xe_weight
 * where a sample's tokens are weighted by its advantage: the loss is
 *   (sum over sampled tokens of -advantage log p
 *    + xe_weight * sum over reference tokens of -log p) / all tokens,
 * the mixed objective that keeps the model near the references' wording
 * (Paulus et al. 2018) against the formulaic captions CIDEr-D alone
 * rewards. With contrast > 0 a sample's reward is contrastive: its CIDEr-D
 * minus contrast times its mean CIDEr-D against the references of the
 * batch's other images, so a caption that would fit any of them earns less
 * (the discriminability idea of Luo et al. 2018 and Dai and Lin 2017,
 * measured with the reward's own CIDEr-D). With duplicate_penalty > 0 a
 * sample's reward also loses duplicate_penalty times the share of the batch's
 * other images that drew the very same caption (scst_shared_caption_fraction):
 * CIDEr-D pays a safe caption on every image it half fits ("a black and white
 * dog is running through the grass"), and that caption given to many images is
 * what this penalty makes cost. The samples rarely repeat a whole caption even
 * when beam search gives one to many images: that bias lives in each image's
 * mode, not in its samples. With mode_penalty > 0 each image is also decoded
 * greedily (no dropout, the most probable word at each step), and a greedy
 * caption that m of the batch's other n - 1 images also got joins the pass
 * as a row weighted -mode_penalty * m / (n - 1): its cross-entropy enters with a
 * negative weight, so the step lowers its likelihood -- for that image, and
 * through the shared weights for the others -- until it stops being their
 * common mode (unlikelihood training, Welleck et al. 2020, aimed at the
 * caption the model gives by default). With repeat_penalty > 0 a sample's
 * reward also loses repeat_penalty times its share of word trigrams that
 * repeat an earlier trigram of the same caption (scst_repeated_trigram_fraction):
 * CIDEr-D clips a repeated n-gram's count, so saying a thing twice ("on a dirt
 * bike on a dirt bike", "a man in a blue shirt and a woman in a blue shirt")
 * earns nothing, but neither does it cost until this penalty makes it. */
typedef struct {
    int samples;            /* K captions sampled per image (at least 2) */
    int max_words;          /* a sample is cut after this many words */
    float xe_weight;        /* the references' weight in the pass; 0 = none */
    int captions_per_image; /* references per image the loader gives */
    float contrast;         /* the contrastive reward's weight (cider_reward_contrastive: against the
                               batch's other images' references); 0 = plain CIDEr-D */
    float duplicate_penalty; /* the weight of a caption's share among the batch's other images' samples; 0 = none */
    float mode_penalty;      /* the weight that unlearns a greedy caption the batch's other images share; 0 = none */
    float repeat_penalty;    /* the weight of a sample's share of repeated trigrams; 0 = none */
} ScstOptions;

int scst_create(Scst **scst, const SatModel *model, const Dataset *train, const Vocab *vocab, int batch_images,
                const ScstOptions *options, Error *err);
void scst_free(Scst *scst);

/* For each of `rows` sampled captions (`samples` consecutive rows per image,
 * each row <start> then up to max_words words, then <end> or <pad>, `columns`
 * ints wide, as decoder_sample writes them): the share of the batch's other
 * images that drew the very same words in at least one of their samples --
 * 0 for a caption no other image drew, 1 for one every other image drew (0
 * when the batch has one image). */
void scst_shared_caption_fraction(const int *sampled, int rows, int samples, int columns, int max_words,
                                  float *fraction);

/* The share of the `count` words' trigrams (count - 2 of them) that repeat an
 * earlier trigram of the same words: 0 for a caption that never says three
 * words twice (and for one of fewer than 4 words), 2/6 for "on a dirt bike on
 * a dirt bike". */
float scst_repeated_trigram_fraction(const int *words, int count);

/* Forward and backward on the images of batch (its reference captions are
 * used only with xe_weight > 0): fills the trainer's gradients. The CNN runs in training mode;
 * sampling and the decoder's loss run without dropout, so the loss is taken
 * under the distribution the captions were drawn from. *mean_reward receives
 * the mean CIDEr-D of the samples (against their own images' references). */
SatLoss scst_forward_backward(Scst *scst, SatTrainer *trainer, const TrainBatch *batch, Rng *rng,
                              double *mean_reward);

/* With mode_penalty > 0: the share of the last pass's `images` images whose
 * greedy caption another image of the batch also got (0 otherwise). */
float scst_shared_mode_fraction(const Scst *scst, int images);

#endif
