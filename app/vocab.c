#include "vocab.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static const char *const special_words[VOCAB_SPECIAL_COUNT] = {"<pad>", "<start>", "<end>", "<unk>"};

_Static_assert(TOKEN_PAD == 0 && TOKEN_START == 1 && TOKEN_END == 2 && TOKEN_UNK == 3,
               "vocab.c lists the special tokens in the order of nn/model.h");

/* ---- tokenisation ---- */

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static unsigned char ascii_lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c; }

/* Finds the next word at or after *cursor: sets *start and *length and
 * advances *cursor past it; returns 0 at the end of the text. */
static int next_word(const char **cursor, const char **start, size_t *length) {
    const unsigned char *p = (const unsigned char *)*cursor;
    while (*p && is_space(*p)) p++;
    if (!*p) {
        *cursor = (const char *)p;
        return 0;
    }
    const unsigned char *begin = p;
    while (*p && !is_space(*p)) p++;
    *start = (const char *)begin;
    *length = (size_t)(p - begin);
    *cursor = (const char *)p;
    return 1;
}

int vocab_count_words(const char *caption) {
    const char *start;
    size_t length;
    int count = 0;
    while (next_word(&caption, &start, &length)) count++;
    return count;
}

static uint64_t hash_word(const char *word, size_t length) {
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    for (size_t i = 0; i < length; i++) {
        h ^= ascii_lower((unsigned char)word[i]);
        h *= 1099511628211ULL;
    }
    return h;
}

/* stored is lowercase and terminated; word is `length` bytes of any case. */
static int same_word(const char *stored, const char *word, size_t length) {
    for (size_t i = 0; i < length; i++)
        if (stored[i] == '\0' || (unsigned char)stored[i] != ascii_lower((unsigned char)word[i])) return 0;
    return stored[length] == '\0';
}

static char *lowercase_copy(const char *word, size_t length) {
    char *copy = malloc(length + 1);
    if (!copy) return NULL;
    for (size_t i = 0; i < length; i++) copy[i] = (char)ascii_lower((unsigned char)word[i]);
    copy[length] = '\0';
    return copy;
}

static int special_id(const char *word, size_t length) {
    for (int i = 0; i < VOCAB_SPECIAL_COUNT; i++)
        if (same_word(special_words[i], word, length)) return i;
    return -1;
}

/* ---- an open-addressing map from words to entry indices ---- */

/* Returns the slot holding the word, or the empty slot where it would go. */
static size_t find_slot(const int *slots, size_t slot_count, char *const *words, const char *word, size_t length) {
    size_t mask = slot_count - 1, i = (size_t)hash_word(word, length) & mask;
    while (slots[i] >= 0 && !same_word(words[slots[i]], word, length)) i = (i + 1) & mask;
    return i;
}

/* Rebuilds the slots for `count` words with room for at least `capacity`. */
static int rebuild_slots(int **slots, size_t *slot_count, char *const *words, int count, size_t capacity) {
    size_t n = 16;
    while (n < 2 * capacity) n *= 2;
    int *fresh = malloc(n * sizeof *fresh);
    if (!fresh) return -1;
    for (size_t i = 0; i < n; i++) fresh[i] = -1;
    for (int id = 0; id < count; id++) {
        size_t length = strlen(words[id]);
        fresh[find_slot(fresh, n, words, words[id], length)] = id;
    }
    free(*slots);
    *slots = fresh;
    *slot_count = n;
    return 0;
}

/* Word counts while building. */
typedef struct {
    char **words;
    long *counts;
    int count, capacity;
    int *slots;
    size_t slot_count;
} Counter;

static void counter_free(Counter *c) {
    for (int i = 0; i < c->count; i++) free(c->words[i]);
    free(c->words);
    free(c->counts);
    free(c->slots);
    memset(c, 0, sizeof *c);
}

static int counter_add(Counter *c, const char *word, size_t length) {
    if (c->slot_count == 0 || 2 * (size_t)(c->count + 1) > c->slot_count) {
        if (rebuild_slots(&c->slots, &c->slot_count, c->words, c->count, 2 * (size_t)c->count + 16)) return -1;
    }
    size_t slot = find_slot(c->slots, c->slot_count, c->words, word, length);
    if (c->slots[slot] >= 0) {
        c->counts[c->slots[slot]]++;
        return 0;
    }
    if (c->count == c->capacity) {
        int capacity = c->capacity ? 2 * c->capacity : 64;
        char **words = realloc(c->words, (size_t)capacity * sizeof *words);
        if (!words) return -1;
        c->words = words;
        long *counts = realloc(c->counts, (size_t)capacity * sizeof *counts);
        if (!counts) return -1;
        c->counts = counts;
        c->capacity = capacity;
    }
    char *copy = lowercase_copy(word, length);
    if (!copy) return -1;
    c->words[c->count] = copy;
    c->counts[c->count] = 1;
    c->slots[slot] = c->count++;
    return 0;
}

/* ---- the vocabulary ---- */

void vocab_free(Vocab *v) {
    if (!v) return;
    if (v->words)
        for (int i = 0; i < v->size; i++) free(v->words[i]);
    free(v->words);
    free(v->slots);
    memset(v, 0, sizeof *v);
}

/* Most frequent first, ties in byte order. */
typedef struct {
    const char *word;
    long count;
    int index;
} Ranked;

static int by_rank(const void *a, const void *b) {
    const Ranked *p = a, *q = b;
    if (p->count != q->count) return p->count > q->count ? -1 : 1;
    return strcmp(p->word, q->word);
}

int vocab_build(Vocab *v, const char *const *captions, int count, int min_count, Error *err) {
    memset(v, 0, sizeof *v);
    if (count < 0) return error_set(err, "vocabulary: %d captions is not a valid count", count);
    if (min_count < 1) min_count = 1;
    Counter counter = {0};
    for (int i = 0; i < count; i++) {
        if (!captions[i]) continue;
        const char *cursor = captions[i], *start;
        size_t length;
        while (next_word(&cursor, &start, &length)) {
            if (special_id(start, length) >= 0) continue;
            if (counter_add(&counter, start, length)) {
                counter_free(&counter);
                return error_set(err, "out of memory counting the words of %d captions", count);
            }
        }
    }
    int kept = 0;
    Ranked *ranked = malloc(((size_t)counter.count + 1) * sizeof *ranked);
    v->words = malloc(((size_t)counter.count + VOCAB_SPECIAL_COUNT) * sizeof *v->words);
    if (!ranked || !v->words) goto out_of_memory;
    for (int i = 0; i < counter.count; i++)
        if (counter.counts[i] >= min_count) ranked[kept++] = (Ranked){counter.words[i], counter.counts[i], i};
    qsort(ranked, (size_t)kept, sizeof *ranked, by_rank);
    for (int i = 0; i < VOCAB_SPECIAL_COUNT; i++) {
        v->words[v->size] = lowercase_copy(special_words[i], strlen(special_words[i]));
        if (!v->words[v->size]) goto out_of_memory;
        v->size++;
    }
    for (int i = 0; i < kept; i++) {
        /* Hand the counter's copy over instead of copying again. */
        v->words[v->size++] = counter.words[ranked[i].index];
        counter.words[ranked[i].index] = NULL;
    }
    if (rebuild_slots(&v->slots, &v->slot_count, v->words, v->size, (size_t)v->size)) goto out_of_memory;
    free(ranked);
    counter_free(&counter);
    return 0;

out_of_memory:
    free(ranked);
    counter_free(&counter);
    vocab_free(v);
    return error_set(err, "out of memory building a vocabulary of %d captions", count);
}

int vocab_from_words(Vocab *v, const char *const *words, int count, Error *err) {
    memset(v, 0, sizeof *v);
    if (count < VOCAB_SPECIAL_COUNT)
        return error_set(err, "vocabulary of %d words: it must begin with the %d special tokens", count,
                         VOCAB_SPECIAL_COUNT);
    v->words = calloc((size_t)count, sizeof *v->words);
    if (!v->words) return error_set(err, "out of memory for a vocabulary of %d words", count);
    for (int i = 0; i < count; i++) {
        const char *w = words[i];
        size_t length = w ? strlen(w) : 0;
        if (length == 0) {
            vocab_free(v);
            return error_set(err, "vocabulary word %d is empty", i);
        }
        for (size_t k = 0; k < length; k++)
            if (is_space((unsigned char)w[k])) {
                vocab_free(v);
                return error_set(err, "vocabulary word %d (\"%s\") contains whitespace", i, w);
            }
        if (i < VOCAB_SPECIAL_COUNT ? !same_word(special_words[i], w, length) : special_id(w, length) >= 0) {
            vocab_free(v);
            return error_set(err, "vocabulary word %d is \"%s\"; the first %d words must be %s %s %s %s, in that order",
                             i, w, VOCAB_SPECIAL_COUNT, special_words[0], special_words[1], special_words[2],
                             special_words[3]);
        }
        v->words[i] = lowercase_copy(w, length);
        if (!v->words[i]) {
            vocab_free(v);
            return error_set(err, "out of memory for a vocabulary of %d words", count);
        }
        v->size = i + 1;
    }
    if (rebuild_slots(&v->slots, &v->slot_count, v->words, 0, (size_t)count)) {
        vocab_free(v);
        return error_set(err, "out of memory for a vocabulary of %d words", count);
    }
    for (int id = 0; id < count; id++) {
        size_t slot = find_slot(v->slots, v->slot_count, v->words, v->words[id], strlen(v->words[id]));
        if (v->slots[slot] >= 0) {
            error_set(err, "vocabulary words %d and %d are both \"%s\" (case-insensitively)", v->slots[slot], id,
                      v->words[id]);
            vocab_free(v);
            return -1;
        }
        v->slots[slot] = id;
    }
    return 0;
}

int vocab_lookup_n(const Vocab *v, const char *word, size_t length) {
    if (!v->slots || v->slot_count == 0) return TOKEN_UNK;
    int id = v->slots[find_slot(v->slots, v->slot_count, v->words, word, length)];
    return id >= 0 ? id : TOKEN_UNK;
}

int vocab_lookup(const Vocab *v, const char *word) { return vocab_lookup_n(v, word, strlen(word)); }

const char *vocab_word(const Vocab *v, int id) { return id >= 0 && id < v->size ? v->words[id] : NULL; }

int vocab_encode(const Vocab *v, const char *caption, int *ids, int capacity) {
    int words = vocab_count_words(caption), total = words + 2;
    if (capacity < 2) return total;
    int room = capacity - 2 < words ? capacity - 2 : words, written = 0;
    ids[written++] = TOKEN_START;
    const char *start;
    size_t length;
    while (written - 1 < room && next_word(&caption, &start, &length)) ids[written++] = vocab_lookup_n(v, start, length);
    ids[written] = TOKEN_END;
    return total;
}
