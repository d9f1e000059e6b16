#ifndef APP_VOCAB_H
#define APP_VOCAB_H

#include <stddef.h>

#include "error.h"

/* A captioning vocabulary: word <-> token id.
 *
 * Ids 0..3 are always the special tokens of nn/model.h, in this order:
 *   <pad> = TOKEN_PAD (0), <start> = TOKEN_START (1), <end> = TOKEN_END (2),
 *   <unk> = TOKEN_UNK (3).
 * The corpus words follow from id 4 on, most frequent first (ties in byte
 * order), so the same captions always give the same ids.
 *
 * Tokenisation: the text is split on whitespace (space, tab, newline, CR,
 * vertical tab, form feed) and every word is lowercased (ASCII letters only;
 * other bytes, UTF-8 included, are kept as they are, so the result does not
 * depend on the C locale). Punctuation is not split off: "dog." and "dog"
 * are different words, and a lone "," is a word. Lookups are case
 * insensitive in the same way.
 *
 * Word -> id lookup is an open-addressing hash map (FNV-1a, linear probing,
 * load at most 1/2), so encoding costs O(caption length). */
typedef struct {
    int size;        /* words, the four specials included */
    char **words;    /* [size]: lowercase words, owned; words[id] */
    int *slots;      /* [slot_count]: an id, or -1 for an empty slot */
    size_t slot_count; /* a power of two */
} Vocab;

#define VOCAB_SPECIAL_COUNT 4

/* Builds the vocabulary of `count` captions: a word is kept when it occurs
 * at least min_count times (min_count < 1 counts as 1); rarer words encode as
 * <unk>. Words spelled like a special token ("<pad>", "<start>", "<end>",
 * "<unk>", any case) are not counted: they map to that special id. On
 * failure (out of memory) *vocab is left zeroed. */
int vocab_build(Vocab *vocab, const char *const *captions, int count, int min_count, Error *err);

/* A vocabulary from an existing word list, e.g. a loaded model's (id i =
 * words[i]). The list must begin with the four special tokens in order and
 * hold no word twice (case-insensitively) and no empty word or word with
 * whitespace; err says which entry is wrong otherwise. Words are copied
 * (lowercased). */
int vocab_from_words(Vocab *vocab, const char *const *words, int count, Error *err);

/* Frees everything; safe on a zeroed Vocab and idempotent. */
void vocab_free(Vocab *vocab);

/* The id of one word (case-insensitive), or TOKEN_UNK when it is not in the
 * vocabulary. `length` bytes of `word` are used (no terminator needed). */
int vocab_lookup_n(const Vocab *vocab, const char *word, size_t length);
int vocab_lookup(const Vocab *vocab, const char *word);

/* The word of an id, or NULL when the id is out of range. */
const char *vocab_word(const Vocab *vocab, int id);

/* Number of words in a caption under the tokenisation above. */
int vocab_count_words(const char *caption);

/* Encodes a caption as <start> w1 .. wn <end> (unknown words as <unk>) into
 * ids, writing at most `capacity` ids. Returns n + 2, the length of the whole
 * encoding, like snprintf; when that exceeds capacity the caption is
 * truncated: the first capacity - 2 words are written and the last id
 * written is still <end>, so what was written is a valid shorter caption.
 * A capacity below 2 writes nothing. */
int vocab_encode(const Vocab *vocab, const char *caption, int *ids, int capacity);

#endif
