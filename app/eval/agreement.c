#include "agreement.h"

#include <stdbool.h>
#include <string.h>

enum { MAX_WORDS = 64, MAX_WORD = 32 };

static const char *const QUANTIFIERS[] = {"two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                                          "several", "many", "some", "few", "both", "these", "those", "multiple",
                                          "numerous", "lots", NULL};
static const char *const SINGULAR_STARTS[] = {"a", "an", "one", NULL};
static const char *const DEFINITE_STARTS[] = {"the", "this", "that", "his", "her", "its", NULL};
/* Nouns that take either verb ("a couple are", "a group of people are"). */
static const char *const COLLECTIVES[] = {"group", "couple", "crowd", "pair", "team", "bunch", "lot", "family",
                                          "herd", "pack", "line", "number", "variety", "band", "audience",
                                          "congregation", "convoy", "total", "gorup", "troop", "flock", "class",
                                          "squad", "crew", "row", "set", "party", "gang", NULL};
static const char *const IRREGULAR_PLURALS[] = {"men", "women", "children", "people", "teeth", "feet", "geese",
                                                "mice", "kids", "police", NULL};
/* Words ending in s that are singular nouns of caption data. */
static const char *const SINGULAR_IN_S[] = {"dress", "glass", "grass", "bus", "boss", "princess", "actress",
                                            "waitress", "canvas", "walrus", "cactus", "octopus", "chess",
                                            "fitness", "mattress", "goggles", NULL};
/* Where the subject stops: prepositions, participles, relative words. */
static const char *const SUBJECT_ENDS[] = {"in", "on", "with", "of", "at", "near", "by", "wearing", "holding",
                                           "under", "behind", "from", "for", "into", "over", "while", "who",
                                           "which", "that", "dressed", "carrying", "next", "beside", NULL};

static bool in_list(const char *word, const char *const *list) {
    for (int i = 0; list[i]; i++)
        if (strcmp(word, list[i]) == 0) return true;
    return false;
}

static bool ends_with(const char *word, const char *suffix) {
    size_t n = strlen(word), k = strlen(suffix);
    return n >= k && strcmp(word + n - k, suffix) == 0;
}

static bool plural_noun(const char *word) {
    if (in_list(word, IRREGULAR_PLURALS)) return true;
    if (in_list(word, SINGULAR_IN_S) || strlen(word) < 4) return false;
    return ends_with(word, "s") && !ends_with(word, "ss") && !ends_with(word, "us") && !ends_with(word, "is");
}

static int split_words(const char *caption, char words[][MAX_WORD]) {
    int n = 0;
    for (const char *p = caption; *p && n < MAX_WORDS;) {
        p += strspn(p, " ");
        size_t length = strcspn(p, " ");
        if (length == 0) break;
        size_t kept = length < MAX_WORD ? length : MAX_WORD - 1;
        memcpy(words[n], p, kept);
        words[n++][kept] = '\0';
        p += length;
    }
    return n;
}

static const char *const COLOURS[] = {"black", "white", "brown", "tan", "red", "blue", "green", "yellow", "orange",
                                      "pink", "purple", "gray", "grey", "dark", "light", "gold", "silver", NULL};

/* Words that start a clause of its own: a verb after them is not the subject's. */
static const char *const CLAUSE_WORDS[] = {"while", "who", "which", "that", "where", "as", "and", "one", "both",
                                           "there", "they", "he", "she", "it", "was", "were", "then", "but", "so",
                                           "others", NULL};
/* Determiners that start a second noun phrase after "and" ("a man and a woman"). */
static const char *const SECOND_PHRASE_STARTS[] = {"a", "an", "the", "his", "her", "their", "another", NULL};

enum { MAX_PHRASE = 5, MAX_MODIFIER = 8 };

static bool is_participle(const char *word) { return strlen(word) > 4 && ends_with(word, "ing"); }

/* The end of a plain noun phrase starting at `from`: the first word that
 * ends it ("and", a preposition, the verb), skipping "and" between colours
 * ("black and white"); -1 when "and" joins other words. */
static int phrase_end(char words[][MAX_WORD], int from, int verb) {
    for (int i = from + 1; i < verb; i++) {
        if (in_list(words[i], SUBJECT_ENDS)) return i;
        if (strcmp(words[i], "and") != 0) continue;
        if (in_list(words[i - 1], COLOURS) && i + 1 < verb && in_list(words[i + 1], COLOURS)) continue;
        return i;
    }
    return verb;
}

/* words[from .. to) hold neither a clause word nor (after the first) a participle. */
static bool plain_words(char words[][MAX_WORD], int from, int to) {
    for (int i = from; i < to; i++) {
        if (strcmp(words[i], "and") == 0 && i > from && i + 1 < to && in_list(words[i - 1], COLOURS) &&
            in_list(words[i + 1], COLOURS))
            continue; /* "black and white" */
        if (in_list(words[i], CLAUSE_WORDS) || (i > from && is_participle(words[i]))) return false;
    }
    return true;
}

/* The words from `from` to the verb modify the subject ("in a red shirt",
 * "wearing a hat"), and none starts a clause of its own. */
static bool plain_modifier(char words[][MAX_WORD], int from, int verb) {
    return verb - from <= MAX_MODIFIER && plain_words(words, from, verb);
}

/* 1 plural, 0 singular, -1 not placed. */
static int subject_number(char words[][MAX_WORD], int verb) {
    if (strcmp(words[0], "there") == 0 || in_list(words[0], CLAUSE_WORDS)) return -1;
    int end = phrase_end(words, 0, verb), joined = 0;
    if (end > MAX_PHRASE || !plain_words(words, 0, end)) return -1;
    if (end < verb && strcmp(words[end], "and") == 0) {
        /* "a man and a woman": a second short noun phrase, then a plain modifier. */
        if (end + 1 >= verb || !in_list(words[end + 1], SECOND_PHRASE_STARTS)) return -1;
        int second = phrase_end(words, end + 1, verb);
        if (second - end - 1 > MAX_PHRASE || (second < verb && strcmp(words[second], "and") == 0) ||
            !plain_words(words, end + 1, second))
            return -1;
        joined = 1;
        end = second;
    }
    if (!plain_modifier(words, end, verb)) return -1;
    if (joined) return 1;
    if (in_list(words[end - 1], COLLECTIVES)) return -1;
    bool counted = in_list(words[0], QUANTIFIERS) ||
                   (end > 1 && in_list(words[0], DEFINITE_STARTS) && in_list(words[1], QUANTIFIERS));
    if (plural_noun(words[end - 1])) return in_list(words[0], SINGULAR_STARTS) ? -1 : 1;
    if (counted) return -1; /* "the four wheel drive car": a number that is not the subject's */
    if (in_list(words[0], SINGULAR_STARTS) || in_list(words[0], DEFINITE_STARTS)) return 0;
    return -1;
}

Agreement agreement_check(const char *caption) {
    char words[MAX_WORDS][MAX_WORD];
    int n = split_words(caption, words), verb = -1;
    for (int i = 0; i < n && verb < 0; i++)
        if (strcmp(words[i], "is") == 0 || strcmp(words[i], "are") == 0) verb = i;
    if (verb < 1) return AGREEMENT_UNJUDGED;
    int plural = subject_number(words, verb);
    if (plural < 0) return AGREEMENT_UNJUDGED;
    bool is = strcmp(words[verb], "is") == 0;
    if (plural && is) return AGREEMENT_PLURAL_IS;
    if (!plural && !is) return AGREEMENT_SINGULAR_ARE;
    return AGREEMENT_AGREES;
}

void agreement_count(AgreementCounts *counts, const char *caption) {
    Agreement a = agreement_check(caption);
    counts->captions++;
    counts->judged += a != AGREEMENT_UNJUDGED;
    counts->errors += a == AGREEMENT_PLURAL_IS || a == AGREEMENT_SINGULAR_ARE;
}
