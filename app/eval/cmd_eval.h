#ifndef APP_CMD_EVAL_H
#define APP_CMD_EVAL_H

/* `caption eval`: scores hypothesis captions against references with the
 * COCO caption metrics (see metrics.h) and reports them. */

#include <stdbool.h>
#include <stdio.h>

#include "caption_sets.h"
#include "agreement.h"
#include "error.h"
#include "grounding.h"
#include "metrics.h"

typedef struct {
    bool json;                  /* one JSON object instead of the table */
    bool intersection;          /* score only images in both sets */
    const char *per_image_path; /* write per-image TSV here, or NULL */
    FILE *notes;                /* side remarks (skipped images; under --json the
                                   distinct-hypothesis count), or NULL for none */
    const Grounding *grounding; /* attention on named objects, reported when
                                   not NULL (a shapes dataset captioned by --model) */
} EvalOptions;

typedef struct {
    CaptionPairing pairing;   /* which reference and hypothesis images were scored */
    MetricScores corpus;      /* the numbers coco-caption reports */
    MetricScores *per_image;  /* pairing.count entries, in pairing order */
    size_t distinct_hypotheses;
    size_t most_frequent_images; /* images given the most frequent hypothesis */
    size_t most_frequent_pair;   /* the pairing index of the first of them */
    AgreementCounts agreement;   /* subject-verb agreement of the hypotheses */
    AgreementCounts reference_agreement; /* the same of the references: the rules' own noise */
} EvalResult;

/* Pairs the sets (see caption_sets_pair) and scores them. */
int eval_score(const CaptionSet *refs, const CaptionSet *hyps, bool intersection,
               EvalResult *result, Error *err);
void eval_result_free(EvalResult *result);

/* Writes the report of a scored result to out (table or JSON) and the
 * per-image file if asked. */
int eval_report(const EvalResult *result, const CaptionSet *refs, const CaptionSet *hyps,
                const EvalOptions *options, FILE *out, Error *err);

/* eval_score then eval_report: what `caption eval` does once the caption
 * sets are loaded, whichever way they were produced. */
int eval_score_and_report(const CaptionSet *refs, const CaptionSet *hyps,
                          const EvalOptions *options, FILE *out, Error *err);

/* The subcommand. argv[0] is the subcommand name ("eval"), options follow.
 * Returns 0 on success, 1 on a data error, 2 on a usage error; errors are
 * one line on stderr starting with "caption eval: ". */
int cmd_eval(int argc, char **argv);

#endif
