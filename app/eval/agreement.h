#ifndef APP_AGREEMENT_H
#define APP_AGREEMENT_H

/* Subject-verb agreement of a caption's first "is" or "are", the error a
 * captioner trained on CIDEr-D makes and no metric sees ("a man and a woman
 * in a black shirt is smiling"). A small rule set for the plain sentences
 * of caption data, not a parser: the subject is the words before the first
 * preposition, participle or relative word ahead of the verb; it is plural
 * when two noun phrases are joined by "and" ("a man and a woman"), when it
 * starts with a number or quantifier ("two dogs", "several people") or when
 * its last word is a plural noun ("the dogs", "children"); singular when it
 * starts with "a", "an" or "one", or a definite word before a singular
 * noun. Existential "there is", collectives ("a group of people are",
 * where either verb is used) and subjects the rules cannot place are not
 * judged. Captions must be tokenised (lower case, space-separated). */
typedef enum {
    AGREEMENT_UNJUDGED,     /* no "is"/"are", or a subject the rules do not place */
    AGREEMENT_AGREES,
    AGREEMENT_PLURAL_IS,    /* "two dogs is running" */
    AGREEMENT_SINGULAR_ARE  /* "a dog are running" */
} Agreement;

Agreement agreement_check(const char *caption);

/* Counts over a set of captions. */
typedef struct {
    int captions, judged, errors;
} AgreementCounts;

void agreement_count(AgreementCounts *counts, const char *caption);

#endif
