/* Fuzz target: the hypotheses reader of `caption eval` (image<TAB>caption
 * lines, JSON Lines, COCO results with numeric ids mapped through the
 * references), then pairing with the references and scoring (the metrics'
 * tokeniser sees every hypothesis). The first byte of the input picks the
 * references: none, COCO ids, or ids from the digits of file names; the rest
 * is the file. */
#include <string.h>

#include "caption_sets.h"
#include "fuzz.h"
#include "metrics.h"

static void make_refs(CaptionSet *refs, int kind) {
    static const char *const names[] = {"COCO_val2014_000000391895.jpg", "1000268201_693b08cb0e.jpg", "42.png",
                                        "a.jpg"};
    Error err;
    caption_set_init(refs);
    if (kind == 0) return;
    for (long long i = 0; i < 4; i++) {
        caption_set_add(refs, names[i], "a dog runs on the grass", (size_t)i + 1, &err);
        caption_set_add(refs, names[i], "A Dog's (well-groomed) ball.", (size_t)i + 1, &err);
        if (kind == 1) refs->images[i].coco_id = 391895 + i;
    }
    refs->format = kind == 1 ? CAPTION_FORMAT_COCO : CAPTION_FORMAT_FLICKR_TOKENS;
}

static void score(const CaptionSet *refs, const CaptionSet *hyps, int intersection) {
    CaptionPairing pairing;
    Error err;
    if (caption_sets_pair(refs, hyps, intersection, &pairing, &err) != 0) return;
    MetricsScorer *scorer = metrics_scorer_new(&err);
    for (size_t i = 0; scorer && i < pairing.count; i++) {
        const ImageCaptions *ref = &refs->images[pairing.refs_index[i]];
        const ImageCaptions *hyp = &hyps->images[pairing.hyps_index[i]];
        FUZZ_ASSERT(strcmp(ref->image, hyp->image) == 0);
        metrics_scorer_add(scorer, hyp->captions[0], (const char *const *)ref->captions, ref->caption_count, &err);
    }
    MetricScores corpus;
    if (scorer && metrics_scorer_image_count(scorer) > 0) metrics_scorer_compute(scorer, &corpus, NULL, &err);
    metrics_scorer_free(scorer);
    caption_pairing_free(&pairing);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    CaptionSet refs, hyps;
    Error err;
    make_refs(&refs, data[0] % 3);
    caption_set_init(&hyps);
    int status = caption_sets_read_hyps_memory((const char *)data + 1, size - 1, "fuzz-input",
                                               refs.image_count ? &refs : NULL, &hyps, &err);
    if (status == 0) {
        for (size_t i = 0; i < hyps.image_count; i++) FUZZ_ASSERT(hyps.images[i].caption_count == 1);
        if (refs.image_count) score(&refs, &hyps, data[0] & 4);
    }
    caption_set_free(&hyps);
    caption_set_free(&refs);
    return 0;
}
