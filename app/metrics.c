#include "metrics.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collections.h"

/* ------------------------------------------------------------------------ */
/* Growable arrays                                                          */
/* ------------------------------------------------------------------------ */



/* Finalizer of splitmix64: spreads the bits of integer keys over the table. */
static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* ------------------------------------------------------------------------ */
/* Tokenisation                                                             */
/* ------------------------------------------------------------------------ */

/* coco-caption lower-cases captions, tokenises them with the PTB tokenizer
 * and drops punctuation tokens. The reference scores in tests/data/metrics
 * pin down the rule we reproduce: every punctuation character separates
 * words and is dropped -- hyphens included ("pre-teen" -> "pre" "teen"),
 * brackets and quotes too -- while apostrophes stay part of words and PTB's
 * clitic split applies ("dog's" -> "dog" "'s", "don't" -> "do" "n't").
 * Decimal points and thousands separators inside numbers ("3.5", "1,000")
 * are kept, as PTB keeps them. */

typedef int (*TokenSink)(void *context, const char *token, size_t length);

typedef struct {
    TokenSink sink;
    void *context;
} Emitter;

static int emit_token(const Emitter *emitter, const char *token, size_t length) {
    if (length == 0) return 0;
    return emitter->sink(emitter->context, token, length);
}

static bool equals(const char *word, size_t length, const char *text) {
    return strlen(text) == length && memcmp(word, text, length) == 0;
}

static bool ends_with(const char *word, size_t length, const char *suffix) {
    size_t n = strlen(suffix);
    return length >= n && memcmp(word + length - n, suffix, n) == 0;
}

static const char *const CLITICS[] = {"n't", "'s", "'m", "'d", "'re", "'ve", "'ll"};

static bool is_clitic(const char *word, size_t length) {
    for (size_t i = 0; i < sizeof CLITICS / sizeof *CLITICS; i++)
        if (equals(word, length, CLITICS[i])) return true;
    return false;
}

/* One word (letters, digits, apostrophes): quotes around it are dropped and
 * PTB's clitics split off. */
static int emit_word(const Emitter *emitter, const char *word, size_t length) {
    if (is_clitic(word, length)) return emit_token(emitter, word, length); /* "dog 's" */
    while (length > 0 && word[0] == '\'') word++, length--;      /* 'quoted */
    while (length > 0 && word[length - 1] == '\'') length--;     /* quoted', dogs' */
    static const char *const split_words[][2] = {
        {"cannot", "can"}, {"gonna", "gon"}, {"gotta", "got"}, {"wanna", "wan"},
    };
    for (size_t i = 0; i < sizeof split_words / sizeof *split_words; i++) {
        if (equals(word, length, split_words[i][0])) {
            size_t head = strlen(split_words[i][1]);
            if (emit_token(emitter, word, head) < 0) return -1;
            return emit_token(emitter, word + head, length - head);
        }
    }
    for (size_t i = 0; i < sizeof CLITICS / sizeof *CLITICS; i++) {
        size_t n = strlen(CLITICS[i]);
        if (length > n && ends_with(word, length, CLITICS[i])) {
            if (emit_token(emitter, word, length - n) < 0) return -1;
            return emit_token(emitter, word + length - n, n);
        }
    }
    return emit_token(emitter, word, length);
}

typedef struct {
    char *data;
    size_t capacity;
} Scratch;

/* Lower-cases (ASCII, and Latin-1 letters as Java's toLowerCase does) and
 * maps typographic apostrophes to ASCII ones and other typographic
 * punctuation and spaces to plain separators. */
static int normalise_caption(const char *caption, Scratch *scratch, size_t *out_length) {
    size_t length = strlen(caption);
    if (ARRAY_RESERVE(scratch->data, scratch->capacity, length + 1) < 0) return -1;
    char *out = scratch->data;
    size_t o = 0;
    const unsigned char *in = (const unsigned char *)caption;
    for (size_t i = 0; i < length;) {
        unsigned char c = in[i];
        if (c < 0x80) {
            out[o++] = (char)tolower(c);
            i++;
        } else if (c == 0xC3 && i + 1 < length && in[i + 1] >= 0x80 && in[i + 1] <= 0x9E &&
                   in[i + 1] != 0x97) {
            out[o++] = (char)c; /* U+00C0..U+00DE -> U+00E0..U+00FE */
            out[o++] = (char)(in[i + 1] + 0x20);
            i += 2;
        } else if (c == 0xC2 && i + 1 < length && in[i + 1] == 0xA0) {
            out[o++] = ' '; /* no-break space */
            i += 2;
        } else if (c == 0xE2 && i + 2 < length && in[i + 1] == 0x80 && in[i + 2] >= 0x90 &&
                   in[i + 2] <= 0xA6) {
            /* U+2010..U+2026: dashes, quotes, bullets, ellipsis */
            out[o++] = in[i + 2] == 0x98 || in[i + 2] == 0x99 ? '\'' : ' ';
            i += 3;
        } else {
            out[o++] = (char)c;
            i++;
        }
    }
    out[o] = '\0';
    *out_length = o;
    return 0;
}

/* Letters, digits, underscore, apostrophe and any non-ASCII byte (UTF-8
 * letters) make up words; everything else separates them. */
bool metrics_is_word_byte(unsigned char c) {
    return c >= 0x80 || isalnum(c) || c == '_' || c == '\'';
}

/* Returns -1 on out of memory or when the sink fails. */
static int tokenize(const char *caption, Scratch *scratch, const Emitter *emitter) {
    size_t length;
    if (normalise_caption(caption, scratch, &length) < 0) return -1;
    const unsigned char *s = (const unsigned char *)scratch->data;
    size_t i = 0;
    while (i < length) {
        while (i < length && !metrics_is_word_byte(s[i])) i++;
        size_t start = i;
        while (i < length) {
            bool inside_number = (s[i] == '.' || s[i] == ',') && i > start &&
                                 isdigit(s[i - 1]) && i + 1 < length && isdigit(s[i + 1]);
            if (!metrics_is_word_byte(s[i]) && !inside_number) break;
            i++;
        }
        if (i > start && emit_word(emitter, (const char *)s + start, i - start) < 0) return -1;
    }
    return 0;
}

typedef struct {
    char *text;
    size_t length, capacity;
} JoinedTokens;

static int append_joined(void *context, const char *token, size_t length) {
    JoinedTokens *joined = context;
    if (ARRAY_RESERVE(joined->text, joined->capacity, joined->length + length + 2) < 0) return -1;
    if (joined->length > 0) joined->text[joined->length++] = ' ';
    memcpy(joined->text + joined->length, token, length);
    joined->length += length;
    joined->text[joined->length] = '\0';
    return 0;
}

char *metrics_tokenize(const char *caption, Error *err) {
    JoinedTokens joined = {0};
    Scratch scratch = {0};
    Emitter emitter = {append_joined, &joined};
    int rc = tokenize(caption, &scratch, &emitter);
    free(scratch.data);
    if (rc == 0 && !joined.text) {
        joined.text = calloc(1, 1);
        if (!joined.text) rc = -1;
    }
    if (rc < 0) {
        free(joined.text);
        error_set(err, "out of memory while tokenising a caption");
        return NULL;
    }
    return joined.text;
}

/* ------------------------------------------------------------------------ */
/* Token vocabulary: interns token strings to ids 1, 2, ...                  */
/* ------------------------------------------------------------------------ */

typedef struct {
    char *chars; /* every token, NUL-terminated, back to back */
    size_t chars_length, chars_capacity;
    size_t *offsets; /* offsets[id] into chars; offsets[0] unused */
    size_t count, offsets_capacity; /* count includes the unused id 0 */
    uint32_t *slots; /* open addressing; 0 = empty, else the id */
    size_t slot_capacity; /* power of two */
} Vocabulary;

static void vocabulary_free(Vocabulary *vocabulary) {
    free(vocabulary->chars);
    free(vocabulary->offsets);
    free(vocabulary->slots);
}

static int vocabulary_rehash(Vocabulary *vocabulary, size_t slot_capacity) {
    uint32_t *slots = calloc(slot_capacity, sizeof *slots);
    if (!slots) return -1;
    for (size_t id = 1; id < vocabulary->count; id++) {
        const char *token = vocabulary->chars + vocabulary->offsets[id];
        size_t slot = hash_bytes(token, strlen(token)) & (slot_capacity - 1);
        while (slots[slot]) slot = (slot + 1) & (slot_capacity - 1);
        slots[slot] = (uint32_t)id;
    }
    free(vocabulary->slots);
    vocabulary->slots = slots;
    vocabulary->slot_capacity = slot_capacity;
    return 0;
}

/* Returns the id of the token (adding it if new), or 0 when out of memory. */
static uint32_t vocabulary_intern(Vocabulary *vocabulary, const char *token, size_t length) {
    if (vocabulary->count == 0) vocabulary->count = 1; /* reserve id 0 */
    if (2 * (vocabulary->count + 1) > vocabulary->slot_capacity) {
        size_t capacity = vocabulary->slot_capacity ? 2 * vocabulary->slot_capacity : 1024;
        if (vocabulary_rehash(vocabulary, capacity) < 0) return 0;
    }
    size_t mask = vocabulary->slot_capacity - 1;
    size_t slot = hash_bytes(token, length) & mask;
    while (vocabulary->slots[slot]) {
        uint32_t id = vocabulary->slots[slot];
        const char *known = vocabulary->chars + vocabulary->offsets[id];
        if (strncmp(known, token, length) == 0 && known[length] == '\0') return id;
        slot = (slot + 1) & mask;
    }
    if (vocabulary->count >= UINT32_MAX) return 0;
    if (ARRAY_RESERVE(vocabulary->chars, vocabulary->chars_capacity,
                vocabulary->chars_length + length + 1) < 0 ||
        ARRAY_RESERVE(vocabulary->offsets, vocabulary->offsets_capacity, vocabulary->count + 1) < 0)
        return 0;
    uint32_t id = (uint32_t)vocabulary->count++;
    vocabulary->offsets[id] = vocabulary->chars_length;
    memcpy(vocabulary->chars + vocabulary->chars_length, token, length);
    vocabulary->chars_length += length;
    vocabulary->chars[vocabulary->chars_length++] = '\0';
    vocabulary->slots[slot] = id;
    return id;
}

/* ------------------------------------------------------------------------ */
/* Scorer                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct {
    size_t start, length; /* into token_ids */
} Sentence;

typedef struct {
    size_t hypothesis;      /* sentence index */
    size_t first_reference; /* sentence index; references are consecutive */
    size_t reference_count;
} ImageEntry;

struct MetricsScorer {
    Vocabulary vocabulary;
    uint32_t *token_ids;
    size_t token_count, token_capacity;
    Sentence *sentences;
    size_t sentence_count, sentence_capacity;
    ImageEntry *images;
    size_t image_count, image_capacity;
    Scratch scratch;
    /* Set of distinct hypotheses: slots hold hypothesis sentence index + 1. */
    size_t *distinct_slots;
    size_t *distinct_uses; /* per slot: images given that hypothesis */
    size_t distinct_capacity, distinct_count;
    size_t top_uses, top_slot; /* the most frequent hypothesis: its images, its slot */
};

MetricsScorer *metrics_scorer_new(Error *err) {
    MetricsScorer *scorer = calloc(1, sizeof *scorer);
    if (!scorer) error_set(err, "out of memory creating the metrics scorer");
    return scorer;
}

void metrics_scorer_free(MetricsScorer *scorer) {
    if (!scorer) return;
    vocabulary_free(&scorer->vocabulary);
    free(scorer->token_ids);
    free(scorer->sentences);
    free(scorer->images);
    free(scorer->scratch.data);
    free(scorer->distinct_slots);
    free(scorer->distinct_uses);
    free(scorer);
}

size_t metrics_scorer_image_count(const MetricsScorer *scorer) { return scorer->image_count; }

size_t metrics_scorer_distinct_hypotheses(const MetricsScorer *scorer) {
    return scorer->distinct_count;
}


static int push_token(void *context, const char *token, size_t length) {
    MetricsScorer *scorer = context;
    uint32_t id = vocabulary_intern(&scorer->vocabulary, token, length);
    if (id == 0) return -1;
    if (ARRAY_RESERVE(scorer->token_ids, scorer->token_capacity, scorer->token_count + 1) < 0) return -1;
    scorer->token_ids[scorer->token_count++] = id;
    return 0;
}

/* Tokenises and stores one sentence; returns -1 when out of memory. */
static int add_sentence(MetricsScorer *scorer, const char *caption) {
    if (ARRAY_RESERVE(scorer->sentences, scorer->sentence_capacity, scorer->sentence_count + 1) < 0)
        return -1;
    size_t start = scorer->token_count;
    Emitter emitter = {push_token, scorer};
    if (tokenize(caption, &scorer->scratch, &emitter) < 0) {
        scorer->token_count = start;
        return -1;
    }
    scorer->sentences[scorer->sentence_count++] = (Sentence){start, scorer->token_count - start};
    return 0;
}

static uint64_t hash_sentence(const MetricsScorer *scorer, size_t sentence) {
    const Sentence *s = &scorer->sentences[sentence];
    uint64_t hash = mix64(s->length);
    for (size_t i = 0; i < s->length; i++)
        hash = mix64(hash ^ scorer->token_ids[s->start + i]);
    return hash;
}

static bool same_sentence(const MetricsScorer *scorer, size_t a, size_t b) {
    const Sentence *x = &scorer->sentences[a], *y = &scorer->sentences[b];
    return x->length == y->length &&
           memcmp(scorer->token_ids + x->start, scorer->token_ids + y->start,
                  x->length * sizeof *scorer->token_ids) == 0;
}

/* The slot holding this hypothesis in the distinct set, or the empty slot
 * where it belongs. */
static size_t distinct_slot(const MetricsScorer *scorer, const size_t *slots, size_t capacity,
                            size_t sentence) {
    size_t mask = capacity - 1;
    size_t slot = hash_sentence(scorer, sentence) & mask;
    while (slots[slot] && !same_sentence(scorer, slots[slot] - 1, sentence))
        slot = (slot + 1) & mask;
    return slot;
}

/* Counts hypothesis `sentence` in the set. */
static int distinct_insert(MetricsScorer *scorer, size_t sentence) {
    if (2 * (scorer->distinct_count + 1) > scorer->distinct_capacity) {
        size_t capacity = scorer->distinct_capacity ? 2 * scorer->distinct_capacity : 256;
        size_t *slots = calloc(capacity, sizeof *slots), *uses = calloc(capacity, sizeof *uses);
        if (!slots || !uses) {
            free(slots);
            free(uses);
            return -1;
        }
        size_t top_slot = 0;
        for (size_t i = 0; i < scorer->distinct_capacity; i++) {
            size_t kept = scorer->distinct_slots[i];
            if (!kept) continue;
            size_t slot = distinct_slot(scorer, slots, capacity, kept - 1);
            slots[slot] = kept;
            uses[slot] = scorer->distinct_uses[i];
            if (i == scorer->top_slot) top_slot = slot;
        }
        free(scorer->distinct_slots);
        free(scorer->distinct_uses);
        scorer->distinct_slots = slots;
        scorer->distinct_uses = uses;
        scorer->distinct_capacity = capacity;
        scorer->top_slot = top_slot;
    }
    size_t slot = distinct_slot(scorer, scorer->distinct_slots, scorer->distinct_capacity, sentence);
    if (!scorer->distinct_slots[slot]) {
        scorer->distinct_slots[slot] = sentence + 1;
        scorer->distinct_count++;
    }
    if (++scorer->distinct_uses[slot] > scorer->top_uses) {
        scorer->top_uses = scorer->distinct_uses[slot];
        scorer->top_slot = slot;
    }
    return 0;
}

size_t metrics_scorer_most_frequent(const MetricsScorer *scorer, size_t *first_image) {
    if (first_image) {
        *first_image = 0;
        size_t sentence = scorer->top_uses ? scorer->distinct_slots[scorer->top_slot] - 1 : 0;
        for (size_t i = 0; i < scorer->image_count; i++)
            if (same_sentence(scorer, scorer->images[i].hypothesis, sentence)) {
                *first_image = i;
                break;
            }
    }
    return scorer->top_uses;
}

int metrics_scorer_add(MetricsScorer *scorer, const char *hypothesis,
                       const char *const *references, size_t reference_count, Error *err) {
    if (!hypothesis || reference_count == 0 || !references)
        return error_set(err, "metrics: image %zu needs a hypothesis and at least one reference",
                         scorer->image_count + 1);
    for (size_t i = 0; i < reference_count; i++)
        if (!references[i])
            return error_set(err, "metrics: image %zu: reference %zu is missing",
                             scorer->image_count + 1, i + 1);
    if (ARRAY_RESERVE(scorer->images, scorer->image_capacity, scorer->image_count + 1) < 0)
        return error_set(err, "out of memory adding image %zu to the metrics scorer",
                         scorer->image_count + 1);
    size_t saved_sentences = scorer->sentence_count, saved_tokens = scorer->token_count;
    ImageEntry entry = {scorer->sentence_count, scorer->sentence_count + 1, reference_count};
    int rc = add_sentence(scorer, hypothesis);
    for (size_t i = 0; rc == 0 && i < reference_count; i++) rc = add_sentence(scorer, references[i]);
    if (rc == 0) rc = distinct_insert(scorer, entry.hypothesis);
    if (rc < 0) {
        scorer->sentence_count = saved_sentences;
        scorer->token_count = saved_tokens;
        return error_set(err, "out of memory adding image %zu to the metrics scorer",
                         scorer->image_count + 1);
    }
    scorer->images[scorer->image_count++] = entry;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* N-gram counting                                                          */
/* ------------------------------------------------------------------------ */

/* An n-gram of up to 4 token ids; unused positions are 0 (no token has id 0). */
typedef struct {
    uint32_t words[METRICS_BLEU_ORDER];
} NgramKey;

typedef struct {
    NgramKey key;
    int order_index; /* n - 1 */
} Ngram;

typedef struct {
    Ngram *ngrams; /* by id */
    size_t count, capacity;
    uint32_t *slots; /* open addressing; 0 = empty, else id + 1 */
    size_t slot_capacity; /* power of two */
} NgramTable;

static uint64_t hash_ngram(const NgramKey *key) {
    uint64_t hash = 0;
    for (int i = 0; i < METRICS_BLEU_ORDER; i++) hash = mix64(hash ^ key->words[i]) + (uint64_t)i;
    return hash;
}

static size_t ngram_slot(const NgramTable *table, const uint32_t *slots, size_t capacity,
                         const NgramKey *key) {
    size_t mask = capacity - 1;
    size_t slot = hash_ngram(key) & mask;
    while (slots[slot] && memcmp(&table->ngrams[slots[slot] - 1].key, key, sizeof *key) != 0)
        slot = (slot + 1) & mask;
    return slot;
}

/* Returns the n-gram's id, adding it if new, or -1 when out of memory. */
static int64_t ngram_table_intern(NgramTable *table, const NgramKey *key, int order) {
    if (2 * (table->count + 1) > table->slot_capacity) {
        size_t capacity = table->slot_capacity ? 2 * table->slot_capacity : 4096;
        uint32_t *slots = calloc(capacity, sizeof *slots);
        if (!slots) return -1;
        for (size_t id = 0; id < table->count; id++)
            slots[ngram_slot(table, slots, capacity, &table->ngrams[id].key)] = (uint32_t)(id + 1);
        free(table->slots);
        table->slots = slots;
        table->slot_capacity = capacity;
    }
    size_t slot = ngram_slot(table, table->slots, table->slot_capacity, key);
    if (table->slots[slot]) return table->slots[slot] - 1;
    if (table->count >= UINT32_MAX - 1) return -1;
    if (ARRAY_RESERVE(table->ngrams, table->capacity, table->count + 1) < 0) return -1;
    table->ngrams[table->count] = (Ngram){*key, order - 1};
    table->slots[slot] = (uint32_t)(table->count + 1);
    return (int64_t)table->count++;
}

typedef struct {
    uint32_t ngram; /* id in the NgramTable */
    uint32_t count; /* occurrences in the sentence */
} NgramEntry;

/* The n-gram counts of every sentence, each sentence's entries in the order
 * coco-caption's precook() first meets them (all unigrams left to right,
 * then bigrams, ...), so sums run in the same order as the Python dicts. */
typedef struct {
    NgramTable table;
    NgramEntry *entries;
    size_t entry_total, entry_capacity;
    size_t *sentence_entries; /* sentence s owns [sentence_entries[s], sentence_entries[s+1]) */
} NgramCounts;

static void ngram_counts_free(NgramCounts *counts) {
    free(counts->table.ngrams);
    free(counts->table.slots);
    free(counts->entries);
    free(counts->sentence_entries);
}

static int order_of(const NgramCounts *counts, const NgramEntry *entry) {
    return counts->table.ngrams[entry->ngram].order_index;
}

/* Appends the n-gram counts of one sentence. position: scratch indexed by
 * n-gram id (grown here, zero outside this function) holding the entry's
 * index in this sentence + 1. */
static int count_sentence_ngrams(NgramCounts *counts, const uint32_t *words, size_t length,
                                 uint32_t **position, size_t *position_capacity) {
    size_t first = counts->entry_total;
    int rc = 0;
    for (int n = 1; n <= METRICS_BLEU_ORDER && rc == 0; n++) {
        for (size_t i = 0; i + (size_t)n <= length; i++) {
            NgramKey key = {{0}};
            memcpy(key.words, words + i, (size_t)n * sizeof *words);
            int64_t id = ngram_table_intern(&counts->table, &key, n);
            if (id < 0) {
                rc = -1;
                break;
            }
            if ((size_t)id >= *position_capacity) {
                size_t old = *position_capacity;
                if (ARRAY_RESERVE(*position, *position_capacity, (size_t)id + 1) < 0) {
                    rc = -1;
                    break;
                }
                memset(*position + old, 0, (*position_capacity - old) * sizeof **position);
            }
            uint32_t *seen = &(*position)[id];
            if (*seen) {
                counts->entries[first + *seen - 1].count++;
                continue;
            }
            if (ARRAY_RESERVE(counts->entries, counts->entry_capacity, counts->entry_total + 1) < 0) {
                rc = -1;
                break;
            }
            counts->entries[counts->entry_total++] = (NgramEntry){(uint32_t)id, 1};
            *seen = (uint32_t)(counts->entry_total - first);
        }
    }
    for (size_t e = first; e < counts->entry_total; e++) (*position)[counts->entries[e].ngram] = 0;
    return rc;
}

static int build_ngram_counts(const MetricsScorer *scorer, NgramCounts *counts) {
    memset(counts, 0, sizeof *counts);
    counts->sentence_entries = malloc((scorer->sentence_count + 1) * sizeof(size_t));
    if (!counts->sentence_entries) return -1;
    uint32_t *position = NULL;
    size_t position_capacity = 0;
    int rc = 0;
    for (size_t s = 0; s < scorer->sentence_count && rc == 0; s++) {
        counts->sentence_entries[s] = counts->entry_total;
        rc = count_sentence_ngrams(counts, scorer->token_ids + scorer->sentences[s].start,
                                   scorer->sentences[s].length, &position, &position_capacity);
    }
    counts->sentence_entries[scorer->sentence_count] = counts->entry_total;
    free(position);
    if (rc < 0) ngram_counts_free(counts);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* BLEU (coco-caption bleu_scorer.py, compute_score(option="closest"))     */
/* ------------------------------------------------------------------------ */

static const double BLEU_TINY = 1e-15; /* added to matches */
static const double BLEU_SMALL = 1e-9; /* added to guesses and to the reference length */

typedef struct {
    double test_length, reference_length;
    double guess[METRICS_BLEU_ORDER], correct[METRICS_BLEU_ORDER];
} BleuTotals;

/* Length of the reference closest to the hypothesis; ties go to the shorter,
 * as min((abs(l - testlen), l)) does. */
static size_t closest_reference_length(const MetricsScorer *scorer, const ImageEntry *image,
                                       size_t test_length) {
    size_t best = 0, best_distance = SIZE_MAX;
    for (size_t r = 0; r < image->reference_count; r++) {
        size_t length = scorer->sentences[image->first_reference + r].length;
        size_t distance = length > test_length ? length - test_length : test_length - length;
        if (distance < best_distance || (distance == best_distance && length < best)) {
            best = length;
            best_distance = distance;
        }
    }
    return best;
}

static void bleu_from_counts(const double correct[], const double guess[], double test_length,
                             double reference_length, double bleu[]) {
    double product = 1.0;
    for (int k = 0; k < METRICS_BLEU_ORDER; k++) {
        product *= (correct[k] + BLEU_TINY) / (guess[k] + BLEU_SMALL);
        bleu[k] = pow(product, 1.0 / (k + 1));
    }
    double ratio = (test_length + BLEU_TINY) / (reference_length + BLEU_SMALL);
    if (ratio < 1) {
        for (int k = 0; k < METRICS_BLEU_ORDER; k++) bleu[k] *= exp(1 - 1 / ratio);
    }
}

/* max_reference_count: scratch indexed by n-gram id, all zero on entry and exit. */
static void bleu_image(const MetricsScorer *scorer, const NgramCounts *counts,
                       const ImageEntry *image, uint32_t *max_reference_count,
                       BleuTotals *totals, double per_image[]) {
    for (size_t r = 0; r < image->reference_count; r++) {
        size_t s = image->first_reference + r;
        for (size_t e = counts->sentence_entries[s]; e < counts->sentence_entries[s + 1]; e++) {
            uint32_t id = counts->entries[e].ngram;
            if (max_reference_count[id] < counts->entries[e].count)
                max_reference_count[id] = counts->entries[e].count;
        }
    }
    size_t h = image->hypothesis;
    size_t test_length = scorer->sentences[h].length;
    double correct[METRICS_BLEU_ORDER] = {0}, guess[METRICS_BLEU_ORDER];
    for (int k = 0; k < METRICS_BLEU_ORDER; k++)
        guess[k] = test_length > (size_t)k ? (double)(test_length - (size_t)k) : 0.0;
    for (size_t e = counts->sentence_entries[h]; e < counts->sentence_entries[h + 1]; e++) {
        uint32_t id = counts->entries[e].ngram;
        uint32_t clipped = counts->entries[e].count < max_reference_count[id]
                               ? counts->entries[e].count
                               : max_reference_count[id];
        correct[order_of(counts, &counts->entries[e])] += clipped;
    }
    for (size_t r = 0; r < image->reference_count; r++) {
        size_t s = image->first_reference + r;
        for (size_t e = counts->sentence_entries[s]; e < counts->sentence_entries[s + 1]; e++)
            max_reference_count[counts->entries[e].ngram] = 0;
    }
    size_t reference_length = closest_reference_length(scorer, image, test_length);
    totals->test_length += (double)test_length;
    totals->reference_length += (double)reference_length;
    for (int k = 0; k < METRICS_BLEU_ORDER; k++) {
        totals->guess[k] += guess[k];
        totals->correct[k] += correct[k];
    }
    bleu_from_counts(correct, guess, (double)test_length, (double)reference_length, per_image);
}

/* ------------------------------------------------------------------------ */
/* ROUGE-L (coco-caption rouge.py)                                          */
/* ------------------------------------------------------------------------ */

static const double ROUGE_BETA = 1.2;

/* rouge.py splits on " ", so an empty caption is one empty token: it has
 * length 1 and matches only another empty caption. */
static size_t lcs_length(const uint32_t *a, size_t a_length, const uint32_t *b, size_t b_length,
                         size_t *row) {
    static const uint32_t empty_token = 0;
    if (a_length == 0) a = &empty_token, a_length = 1;
    if (b_length == 0) b = &empty_token, b_length = 1;
    memset(row, 0, (b_length + 1) * sizeof *row);
    for (size_t i = 1; i <= a_length; i++) {
        size_t diagonal = 0; /* row[j - 1] of the previous row */
        for (size_t j = 1; j <= b_length; j++) {
            size_t above = row[j];
            if (a[i - 1] == b[j - 1])
                row[j] = diagonal + 1;
            else if (row[j - 1] > row[j])
                row[j] = row[j - 1];
            diagonal = above;
        }
    }
    return row[b_length];
}

static double rouge_image(const MetricsScorer *scorer, const ImageEntry *image, size_t *row) {
    const Sentence *hypothesis = &scorer->sentences[image->hypothesis];
    const uint32_t *h = scorer->token_ids + hypothesis->start;
    double h_length = hypothesis->length ? (double)hypothesis->length : 1.0;
    double precision_max = 0, recall_max = 0;
    for (size_t r = 0; r < image->reference_count; r++) {
        const Sentence *reference = &scorer->sentences[image->first_reference + r];
        double r_length = reference->length ? (double)reference->length : 1.0;
        double lcs = (double)lcs_length(scorer->token_ids + reference->start, reference->length,
                                        h, hypothesis->length, row);
        double precision = lcs / h_length, recall = lcs / r_length;
        if (precision > precision_max) precision_max = precision;
        if (recall > recall_max) recall_max = recall;
    }
    if (precision_max == 0 || recall_max == 0) return 0.0;
    double beta_squared = ROUGE_BETA * ROUGE_BETA;
    return ((1 + beta_squared) * precision_max * recall_max) /
           (recall_max + beta_squared * precision_max);
}

/* ------------------------------------------------------------------------ */
/* CIDEr-D (coco-caption cider_scorer.py)                                   */
/* ------------------------------------------------------------------------ */

static const double CIDER_SIGMA = 6.0;

typedef struct {
    double norm[METRICS_BLEU_ORDER];
    double length; /* cider_scorer counts bigrams here (its `n == 1`) */
} CiderVector;

/* weights[e] = tf * (log(images) - log(max(1, df))) for the sentence's entries. */
static void cider_vector(const NgramCounts *counts, size_t sentence, const double *log_df,
                         double reference_log_length, double *weights, CiderVector *vector) {
    memset(vector, 0, sizeof *vector);
    size_t first = counts->sentence_entries[sentence];
    for (size_t e = first; e < counts->sentence_entries[sentence + 1]; e++) {
        uint32_t id = counts->entries[e].ngram;
        int order = order_of(counts, &counts->entries[e]);
        double weight = (double)counts->entries[e].count * (reference_log_length - log_df[id]);
        weights[e - first] = weight;
        vector->norm[order] += weight * weight;
        if (order == 1) vector->length += counts->entries[e].count;
    }
    for (int n = 0; n < METRICS_BLEU_ORDER; n++) vector->norm[n] = sqrt(vector->norm[n]);
}

/* numpy's pairwise summation (what np.mean uses), so means match to the bit. */
static double pairwise_sum(const double *values, size_t n) {
    if (n < 8) {
        double sum = 0.0;
        for (size_t i = 0; i < n; i++) sum += values[i];
        return sum;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++) r[j] = values[j];
        size_t i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += values[i + (size_t)j];
        double sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) sum += values[i];
        return sum;
    }
    size_t half = n / 2;
    half -= half % 8;
    return pairwise_sum(values, half) + pairwise_sum(values + half, n - half);
}

typedef struct {
    double *log_df;           /* by n-gram id */
    double *reference_weight; /* by n-gram id; scratch, zero outside cider_image */
    double *hypothesis_weights;
    double *weights; /* one sentence's weights */
    double reference_log_length;
} CiderState;

static double cider_image(const NgramCounts *counts, const ImageEntry *image, CiderState *state) {
    size_t h = image->hypothesis;
    size_t h_first = counts->sentence_entries[h], h_end = counts->sentence_entries[h + 1];
    CiderVector hypothesis;
    cider_vector(counts, h, state->log_df, state->reference_log_length,
                 state->hypothesis_weights, &hypothesis);
    double score[METRICS_BLEU_ORDER] = {0};
    for (size_t r = 0; r < image->reference_count; r++) {
        size_t s = image->first_reference + r;
        size_t r_first = counts->sentence_entries[s], r_end = counts->sentence_entries[s + 1];
        CiderVector reference;
        cider_vector(counts, s, state->log_df, state->reference_log_length, state->weights,
                     &reference);
        for (size_t e = r_first; e < r_end; e++)
            state->reference_weight[counts->entries[e].ngram] = state->weights[e - r_first];

        double value[METRICS_BLEU_ORDER] = {0};
        for (size_t e = h_first; e < h_end; e++) {
            uint32_t id = counts->entries[e].ngram;
            double hyp_weight = state->hypothesis_weights[e - h_first];
            double ref_weight = state->reference_weight[id];
            /* CIDEr-D's clipping: min(hyp, ref) * ref */
            value[order_of(counts, &counts->entries[e])] += (hyp_weight < ref_weight ? hyp_weight : ref_weight) *
                                               ref_weight;
        }
        double delta = hypothesis.length - reference.length;
        double penalty = pow(M_E, -(delta * delta) / (2 * CIDER_SIGMA * CIDER_SIGMA));
        for (int n = 0; n < METRICS_BLEU_ORDER; n++) {
            if (hypothesis.norm[n] != 0 && reference.norm[n] != 0)
                value[n] /= hypothesis.norm[n] * reference.norm[n];
            value[n] *= penalty;
            score[n] += value[n];
        }
        for (size_t e = r_first; e < r_end; e++) state->reference_weight[counts->entries[e].ngram] = 0;
    }
    double mean = pairwise_sum(score, METRICS_BLEU_ORDER) / METRICS_BLEU_ORDER;
    mean /= (double)image->reference_count;
    return mean * 10.0;
}

/* Document frequency: in how many images' reference sets each n-gram occurs. */
static int cider_prepare(const MetricsScorer *scorer, const NgramCounts *counts, CiderState *state) {
    size_t ngrams = counts->table.count ? counts->table.count : 1;
    size_t longest = 1;
    for (size_t s = 0; s < scorer->sentence_count; s++) {
        size_t entries = counts->sentence_entries[s + 1] - counts->sentence_entries[s];
        if (entries > longest) longest = entries;
    }
    uint32_t *document_frequency = calloc(ngrams, sizeof *document_frequency);
    uint32_t *last_image = malloc(ngrams * sizeof *last_image);
    state->log_df = malloc(ngrams * sizeof *state->log_df);
    state->reference_weight = calloc(ngrams, sizeof *state->reference_weight);
    state->hypothesis_weights = malloc(longest * sizeof *state->hypothesis_weights);
    state->weights = malloc(longest * sizeof *state->weights);
    int rc = -1;
    if (document_frequency && last_image && state->log_df && state->reference_weight &&
        state->hypothesis_weights && state->weights) {
        memset(last_image, 0xff, ngrams * sizeof *last_image);
        for (size_t i = 0; i < scorer->image_count; i++) {
            const ImageEntry *image = &scorer->images[i];
            for (size_t r = 0; r < image->reference_count; r++) {
                size_t s = image->first_reference + r;
                for (size_t e = counts->sentence_entries[s]; e < counts->sentence_entries[s + 1];
                     e++) {
                    uint32_t id = counts->entries[e].ngram;
                    if (last_image[id] != (uint32_t)i) {
                        last_image[id] = (uint32_t)i;
                        document_frequency[id]++;
                    }
                }
            }
        }
        for (size_t id = 0; id < ngrams; id++)
            state->log_df[id] = log(fmax(1.0, (double)document_frequency[id]));
        state->reference_log_length = log((double)scorer->image_count);
        rc = 0;
    }
    free(document_frequency);
    free(last_image);
    return rc;
}

static void cider_state_free(CiderState *state) {
    free(state->log_df);
    free(state->reference_weight);
    free(state->hypothesis_weights);
    free(state->weights);
}

/* ------------------------------------------------------------------------ */
/* All metrics                                                              */
/* ------------------------------------------------------------------------ */

int metrics_scorer_compute(const MetricsScorer *scorer, MetricScores *corpus,
                           MetricScores *per_image, Error *err) {
    if (scorer->image_count == 0) return error_set(err, "metrics: no images to score");
    if (scorer->image_count >= UINT32_MAX)
        return error_set(err, "metrics: too many images (%zu)", scorer->image_count);

    NgramCounts counts;
    if (build_ngram_counts(scorer, &counts) < 0)
        return error_set(err, "out of memory counting n-grams of %zu captions",
                         scorer->sentence_count);

    size_t longest = 1;
    for (size_t s = 0; s < scorer->sentence_count; s++)
        if (scorer->sentences[s].length + 1 > longest) longest = scorer->sentences[s].length + 1;
    size_t ngrams = counts.table.count ? counts.table.count : 1;
    uint32_t *max_reference_count = calloc(ngrams, sizeof *max_reference_count);
    size_t *lcs_row = malloc((longest + 1) * sizeof *lcs_row);
    double *rouge = malloc(scorer->image_count * sizeof *rouge);
    double *cider = malloc(scorer->image_count * sizeof *cider);
    CiderState cider_state = {0};
    int rc = 0;
    if (!max_reference_count || !lcs_row || !rouge || !cider ||
        cider_prepare(scorer, &counts, &cider_state) < 0) {
        rc = error_set(err, "out of memory scoring %zu images", scorer->image_count);
    } else {
        BleuTotals totals = {0};
        for (size_t i = 0; i < scorer->image_count; i++) {
            const ImageEntry *image = &scorer->images[i];
            double sentence_bleu[METRICS_BLEU_ORDER];
            bleu_image(scorer, &counts, image, max_reference_count, &totals, sentence_bleu);
            rouge[i] = rouge_image(scorer, image, lcs_row);
            cider[i] = cider_image(&counts, image, &cider_state);
            if (per_image) {
                memcpy(per_image[i].bleu, sentence_bleu, sizeof sentence_bleu);
                per_image[i].rouge_l = rouge[i];
                per_image[i].cider_d = cider[i];
            }
        }
        bleu_from_counts(totals.correct, totals.guess, totals.test_length,
                         totals.reference_length, corpus->bleu);
        corpus->rouge_l = pairwise_sum(rouge, scorer->image_count) / (double)scorer->image_count;
        corpus->cider_d = pairwise_sum(cider, scorer->image_count) / (double)scorer->image_count;
    }
    cider_state_free(&cider_state);
    free(max_reference_count);
    free(lcs_row);
    free(rouge);
    free(cider);
    ngram_counts_free(&counts);
    return rc;
}
