#include "cider_reward.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collections.h"

/* The formulas and their order of operations are those of app/metrics.c
 * (cider_vector, cider_image, cider_prepare), so that a corpus scored by both
 * gives the same doubles; only what depends on the references alone is moved
 * to create time. */

#define CIDER_ORDER 4
static const double CIDER_SIGMA = 6.0;

/* ------------------------------------------------------------------------ */
/* Hashing                                                                  */
/* ------------------------------------------------------------------------ */

/* Finalizer of splitmix64, as metrics.c. */
static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* An n-gram: `order` token ids, the unused positions 0. The order is part of
 * the key, so any int is a valid token (no id has to be kept for "unused"). */
typedef struct {
    int32_t words[CIDER_ORDER];
    int32_t order; /* 1..4 */
} NgramKey;

_Static_assert(sizeof(NgramKey) == 5 * sizeof(int32_t), "NgramKey has no padding (compared with memcmp)");

static uint64_t hash_ngram(const NgramKey *key) {
    uint64_t hash = mix64((uint64_t)key->order);
    for (int i = 0; i < CIDER_ORDER; i++) hash = mix64(hash ^ (uint32_t)key->words[i]) + (uint64_t)i;
    return hash;
}

/* ------------------------------------------------------------------------ */
/* N-gram table: key -> id, open addressing, load at most 1/2               */
/* ------------------------------------------------------------------------ */

/* A slot holds the id + 1 (0 = empty) and the key's hash, so that probing
 * and rehashing touch the keys only on a full hash match. */
typedef struct {
    uint32_t id_plus_one;
    uint32_t hash;
} NgramSlot;

typedef struct {
    NgramKey *keys; /* by id */
    size_t count, capacity;
    NgramSlot *slots;
    size_t slot_capacity; /* power of two, at most 2^32 (the hash picks the slot) */
} NgramTable;

static uint32_t ngram_hash32(const NgramKey *key) { return (uint32_t)hash_ngram(key); }

static size_t ngram_slot(const NgramTable *table, const NgramKey *key, uint32_t hash) {
    size_t mask = table->slot_capacity - 1;
    size_t slot = hash & mask;
    for (;;) {
        const NgramSlot *s = &table->slots[slot];
        if (!s->id_plus_one ||
            (s->hash == hash && memcmp(&table->keys[s->id_plus_one - 1], key, sizeof *key) == 0))
            return slot;
        slot = (slot + 1) & mask;
    }
}

/* Makes room for `extra` more n-grams without a rehash (and allocates the
 * slots on the first call, even for none); -1 when out of memory. */
static int ngram_table_reserve(NgramTable *table, size_t extra) {
    if (table->slot_capacity && 2 * (table->count + extra) <= table->slot_capacity) return 0;
    size_t capacity = table->slot_capacity ? table->slot_capacity : 4096;
    while (2 * (table->count + extra) > capacity) capacity *= 2;
    if (capacity > ((size_t)1 << 32)) return -1;
    NgramSlot *slots = calloc(capacity, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < table->slot_capacity; i++) { /* keys are distinct: first empty slot */
        if (!table->slots[i].id_plus_one) continue;
        size_t slot = table->slots[i].hash & (capacity - 1);
        while (slots[slot].id_plus_one) slot = (slot + 1) & (capacity - 1);
        slots[slot] = table->slots[i];
    }
    free(table->slots);
    table->slots = slots;
    table->slot_capacity = capacity;
    return 0;
}

/* The n-gram's id, adding it if new (room reserved beforehand), or -1 when
 * out of memory. */
static int64_t ngram_table_intern(NgramTable *table, const NgramKey *key, uint32_t hash) {
    size_t slot = ngram_slot(table, key, hash);
    if (table->slots[slot].id_plus_one) return table->slots[slot].id_plus_one - 1;
    if (table->count >= UINT32_MAX - 1) return -1;
    if (ARRAY_RESERVE(table->keys, table->capacity, table->count + 1) < 0) return -1;
    table->keys[table->count] = *key;
    table->slots[slot] = (NgramSlot){(uint32_t)(table->count + 1), hash};
    return (int64_t)table->count++;
}

/* The n-gram's id, or -1 when the table lacks it. Read-only. */
static int64_t ngram_table_find(const NgramTable *table, const NgramKey *key, uint32_t hash) {
    size_t slot = ngram_slot(table, key, hash);
    return table->slots[slot].id_plus_one ? (int64_t)table->slots[slot].id_plus_one - 1 : -1;
}

static void ngram_table_free(NgramTable *table) {
    free(table->keys);
    free(table->slots);
}

/* ------------------------------------------------------------------------ */
/* The scorer                                                               */
/* ------------------------------------------------------------------------ */

typedef struct {
    double norm[CIDER_ORDER];
    double length; /* cider_scorer counts bigrams here (its `n == 1`) */
} ReferenceVector;

typedef struct {
    size_t first_reference; /* into references */
    size_t reference_count;
    size_t first_triple; /* into triples */
    size_t triple_count;
} ImageIndex;

/* A reference n-gram of an image, packed so that sorting the integers sorts
 * by n-gram id (then by reference): ngram id << 32 | reference << 16 | count,
 * reference being the index among the image's references. */
#define TRIPLE_NGRAM(t) ((uint32_t)((t) >> 32))
#define TRIPLE_REFERENCE(t) ((size_t)(((t) >> 16) & 0xffffu))
#define TRIPLE_COUNT(t) ((uint32_t)((t) & 0xffffu))
#define TRIPLE_LIMIT 0xffffu

struct CiderReward {
    int image_count; /* dataset->count */
    int vocab_size;  /* hypothesis tokens must lie in [0, vocab_size) */
    double reference_log_length; /* log(images with at least one reference) */
    NgramTable table; /* every reference n-gram */
    double *log_df;   /* by n-gram id: log(max(1, df)) */
    ImageIndex *images;
    ReferenceVector *references;
    uint64_t *triples; /* each image's reference n-grams, sorted */
};

void cider_reward_free(CiderReward *reward) {
    if (!reward) return;
    ngram_table_free(&reward->table);
    free(reward->log_df);
    free(reward->images);
    free(reward->references);
    free(reward->triples);
    free(reward);
}

typedef struct {
    uint32_t ngram; /* id in the table */
    uint32_t count; /* occurrences in the sentence */
} NgramEntry;

/* What create needs only while it runs. */
typedef struct {
    int *tokens;
    size_t token_capacity;
    NgramEntry *entries;
    size_t entry_total, entry_capacity;
    size_t *reference_entries; /* reference s owns [reference_entries[s], reference_entries[s + 1]) */
    uint32_t *position; /* by n-gram id: entry index in the sentence + 1; zero between sentences */
    size_t position_capacity;
    NgramKey *keys; /* one sentence's n-grams and their hashes */
    size_t key_capacity;
    uint32_t *hashes;
    size_t hash_capacity;
    Vocab corpus_words; /* every word of the references, to give the vocabulary's missing words ids */
    int *encoded;       /* one caption encoded with each vocabulary */
    size_t encoded_capacity;
} Builder;

static void builder_free(Builder *builder) {
    free(builder->tokens);
    free(builder->entries);
    free(builder->reference_entries);
    free(builder->position);
    free(builder->keys);
    free(builder->hashes);
    free(builder->encoded);
    vocab_free(&builder->corpus_words);
}

/* A caption's word ids in builder->tokens: the vocabulary's, or, for a word it
 * lacks (or spells like a special token), vocab->size + the word's id among
 * all the corpus's words, so that it matches only itself. Returns the number
 * of words, or -1 when out of memory. */
static int64_t tokenize_reference(Builder *builder, const char *caption, const Vocab *vocab) {
    size_t words = (size_t)vocab_count_words(caption), encoded = words + 2; /* <start> words <end> */
    if (ARRAY_RESERVE(builder->tokens, builder->token_capacity, words + 1) < 0 ||
        ARRAY_RESERVE(builder->encoded, builder->encoded_capacity, 2 * encoded) < 0)
        return -1;
    int *known = builder->encoded, *any = builder->encoded + encoded;
    vocab_encode(vocab, caption, known, (int)encoded);
    vocab_encode(&builder->corpus_words, caption, any, (int)encoded);
    for (size_t i = 0; i < words; i++)
        builder->tokens[i] = known[i + 1] >= VOCAB_SPECIAL_COUNT ? known[i + 1] : vocab->size + any[i + 1];
    return (int64_t)words;
}

/* Appends the n-gram counts of one sentence, its entries in the order
 * coco-caption's precook() first meets them (all unigrams left to right, then
 * bigrams, ...), as metrics.c's count_sentence_ngrams. Returns -1 when out of
 * memory. */
static int count_reference_ngrams(Builder *builder, NgramTable *table, const int *words, size_t length) {
    size_t total = 0;
    for (size_t n = 1; n <= CIDER_ORDER; n++)
        if (length >= n) total += length - n + 1;
    if (ngram_table_reserve(table, total) < 0 || ARRAY_RESERVE(builder->keys, builder->key_capacity, total) < 0 ||
        ARRAY_RESERVE(builder->hashes, builder->hash_capacity, total) < 0)
        return -1;
    /* The keys and their hashes first, and the table's slots asked for all
     * at once: the table is far larger than the caches, so this overlaps the
     * memory latency of a whole caption's lookups. */
    size_t k = 0;
    for (int n = 1; n <= CIDER_ORDER; n++) {
        for (size_t i = 0; i + (size_t)n <= length; i++, k++) {
            NgramKey *key = &builder->keys[k];
            *key = (NgramKey){{0}, n};
            for (int w = 0; w < n; w++) key->words[w] = words[i + (size_t)w];
            builder->hashes[k] = ngram_hash32(key);
#if defined(__GNUC__)
            __builtin_prefetch(&table->slots[builder->hashes[k] & (table->slot_capacity - 1)]);
#endif
        }
    }
    size_t first = builder->entry_total;
    int rc = 0;
    for (k = 0; k < total; k++) {
        int64_t id = ngram_table_intern(table, &builder->keys[k], builder->hashes[k]);
        if (id < 0) {
            rc = -1;
            break;
        }
        if ((size_t)id >= builder->position_capacity) {
            size_t old = builder->position_capacity;
            if (ARRAY_RESERVE(builder->position, builder->position_capacity, (size_t)id + 1) < 0) {
                rc = -1;
                break;
            }
            memset(builder->position + old, 0, (builder->position_capacity - old) * sizeof *builder->position);
        }
        uint32_t *seen = &builder->position[id];
        if (*seen) {
            builder->entries[first + *seen - 1].count++;
            continue;
        }
        if (ARRAY_RESERVE(builder->entries, builder->entry_capacity, builder->entry_total + 1) < 0) {
            rc = -1;
            break;
        }
        builder->entries[builder->entry_total++] = (NgramEntry){(uint32_t)id, 1};
        *seen = (uint32_t)(builder->entry_total - first);
    }
    for (size_t e = first; e < builder->entry_total; e++) builder->position[builder->entries[e].ngram] = 0;
    return rc;
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Tokenises and counts every reference; fills images[].first_reference and
 * reference_count. */
static int count_references(CiderReward *reward, Builder *builder, const Dataset *dataset,
                            const Vocab *vocab, size_t reference_total, Error *err) {
    size_t s = 0;
    for (int i = 0; i < dataset->count; i++) {
        const DatasetImage *image = &dataset->images[i];
        size_t captions = image->caption_count > 0 ? (size_t)image->caption_count : 0;
        if (captions > TRIPLE_LIMIT + (size_t)1)
            return error_set(err, "cider reward: image %d (%s) has %zu captions; at most %u are supported", i,
                             image->name ? image->name : "?", captions, TRIPLE_LIMIT + 1);
        reward->images[i].first_reference = s;
        reward->images[i].reference_count = captions;
        for (size_t c = 0; c < captions; c++, s++) {
            builder->reference_entries[s] = builder->entry_total;
            const char *caption = image->captions[c] ? image->captions[c] : "";
            int64_t length = tokenize_reference(builder, caption, vocab);
            if (length < 0 || count_reference_ngrams(builder, &reward->table, builder->tokens, (size_t)length) < 0)
                return error_set(err, "out of memory reading the n-grams of %zu reference captions", reference_total);
            for (size_t e = builder->reference_entries[s]; e < builder->entry_total; e++)
                if (builder->entries[e].count > TRIPLE_LIMIT)
                    return error_set(err, "cider reward: caption %zu of image %d (%s) repeats an n-gram over %u times",
                                     c + 1, i, image->name ? image->name : "?", TRIPLE_LIMIT);
        }
    }
    builder->reference_entries[s] = builder->entry_total;
    return 0;
}

/* Document frequency: in how many images' reference sets each n-gram occurs
 * (metrics.c's cider_prepare). */
static int compute_log_df(CiderReward *reward, const Builder *builder) {
    size_t ngrams = reward->table.count ? reward->table.count : 1;
    uint32_t *document_frequency = calloc(ngrams, sizeof *document_frequency);
    uint32_t *last_image = malloc(ngrams * sizeof *last_image);
    reward->log_df = malloc(ngrams * sizeof *reward->log_df);
    int rc = -1;
    if (document_frequency && last_image && reward->log_df) {
        memset(last_image, 0xff, ngrams * sizeof *last_image);
        for (int i = 0; i < reward->image_count; i++) {
            const ImageIndex *image = &reward->images[i];
            for (size_t r = 0; r < image->reference_count; r++) {
                size_t s = image->first_reference + r;
                for (size_t e = builder->reference_entries[s]; e < builder->reference_entries[s + 1]; e++) {
                    uint32_t id = builder->entries[e].ngram;
                    if (last_image[id] != (uint32_t)i) {
                        last_image[id] = (uint32_t)i;
                        document_frequency[id]++;
                    }
                }
            }
        }
        for (size_t id = 0; id < ngrams; id++) reward->log_df[id] = log(fmax(1.0, (double)document_frequency[id]));
        rc = 0;
    }
    free(document_frequency);
    free(last_image);
    return rc;
}

/* Each reference's norms and length (metrics.c's cider_vector), and each
 * image's sorted n-gram triples. */
static void build_vectors(CiderReward *reward, const Builder *builder, size_t reference_total) {
    for (size_t s = 0; s < reference_total; s++) {
        ReferenceVector *vector = &reward->references[s];
        memset(vector, 0, sizeof *vector);
        for (size_t e = builder->reference_entries[s]; e < builder->reference_entries[s + 1]; e++) {
            uint32_t id = builder->entries[e].ngram;
            int order = reward->table.keys[id].order - 1;
            double weight = (double)builder->entries[e].count * (reward->reference_log_length - reward->log_df[id]);
            vector->norm[order] += weight * weight;
            if (order == 1) vector->length += builder->entries[e].count;
        }
        for (int n = 0; n < CIDER_ORDER; n++) vector->norm[n] = sqrt(vector->norm[n]);
    }
    for (int i = 0; i < reward->image_count; i++) {
        ImageIndex *image = &reward->images[i];
        size_t first = builder->reference_entries[image->first_reference];
        size_t end = builder->reference_entries[image->first_reference + image->reference_count];
        image->first_triple = first;
        image->triple_count = end - first;
        for (size_t r = 0; r < image->reference_count; r++) {
            size_t s = image->first_reference + r;
            for (size_t e = builder->reference_entries[s]; e < builder->reference_entries[s + 1]; e++)
                reward->triples[e] = (uint64_t)builder->entries[e].ngram << 32 | (uint64_t)r << 16 |
                                     builder->entries[e].count;
        }
        qsort(reward->triples + first, end - first, sizeof *reward->triples, compare_u64);
    }
}

/* Every word of the references (min count 1), as the vocabulary tokenises them. */
static int build_corpus_words(Builder *builder, const Dataset *dataset, size_t reference_total, Error *err) {
    const char **captions = malloc((reference_total ? reference_total : 1) * sizeof *captions);
    if (!captions) return error_set(err, "out of memory creating the CIDEr-D reward");
    size_t n = 0;
    for (int i = 0; i < dataset->count; i++)
        for (int c = 0; c < dataset->images[i].caption_count; c++)
            captions[n++] = dataset->images[i].captions[c] ? dataset->images[i].captions[c] : "";
    int rc = vocab_build(&builder->corpus_words, captions, (int)n, 1, err);
    free(captions);
    return rc;
}

int cider_reward_create(CiderReward **out, const Dataset *dataset, const Vocab *vocab, Error *err) {
    if (!out) return error_set(err, "cider reward: no place to put the scorer");
    *out = NULL;
    if (!dataset || !vocab || !vocab->words || vocab->size < VOCAB_SPECIAL_COUNT)
        return error_set(err, "cider reward: needs a dataset and a vocabulary");
    size_t reference_total = 0;
    int images_with_references = 0;
    for (int i = 0; i < dataset->count; i++) {
        if (dataset->images[i].caption_count > 0) {
            reference_total += (size_t)dataset->images[i].caption_count;
            images_with_references++;
        }
    }
    if (images_with_references == 0)
        return error_set(err, "cider reward: %s has no reference captions to score against",
                         dataset->source ? dataset->source : "the dataset");

    CiderReward *reward = calloc(1, sizeof *reward);
    Builder builder = {0};
    if (!reward) return error_set(err, "out of memory creating the CIDEr-D reward");
    reward->image_count = dataset->count;
    reward->vocab_size = vocab->size;
    reward->reference_log_length = log((double)images_with_references);
    reward->images = calloc((size_t)dataset->count, sizeof *reward->images);
    reward->references = malloc(reference_total * sizeof *reward->references);
    builder.reference_entries = malloc((reference_total + 1) * sizeof *builder.reference_entries);
    int rc = 0;
    if (!reward->images || !reward->references || !builder.reference_entries)
        rc = error_set(err, "out of memory creating the CIDEr-D reward for %zu captions", reference_total);
    if (rc == 0) rc = build_corpus_words(&builder, dataset, reference_total, err);
    if (rc == 0) rc = count_references(reward, &builder, dataset, vocab, reference_total, err);
    if (rc == 0 && compute_log_df(reward, &builder) < 0)
        rc = error_set(err, "out of memory counting the document frequencies of %zu n-grams", reward->table.count);
    if (rc == 0) {
        reward->triples = malloc((builder.entry_total ? builder.entry_total : 1) * sizeof *reward->triples);
        if (!reward->triples)
            rc = error_set(err, "out of memory indexing %zu reference n-grams", builder.entry_total);
    }
    if (rc == 0) build_vectors(reward, &builder, reference_total);
    builder_free(&builder);
    if (rc < 0) {
        cider_reward_free(reward);
        return rc;
    }
    *out = reward;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Scoring one hypothesis                                                   */
/* ------------------------------------------------------------------------ */

typedef struct {
    NgramKey key;
    uint32_t count;
    int order_index; /* n - 1 */
    uint32_t hash;   /* ngram_hash32 */
    int64_t ngram;   /* id in the table, or -1 */
    double weight;
} HypothesisEntry;

/* Scratch on the stack for hypotheses up to this many n-grams (33 tokens),
 * and for images with up to this many references. */
#define STACK_ENTRIES 128
#define STACK_SLOTS 256
#define STACK_REFERENCES 16

/* The first triple of the image with this n-gram (or where it would be). */
static size_t lower_bound(const uint64_t *triples, size_t count, uint32_t ngram) {
    uint64_t target = (uint64_t)ngram << 32;
    size_t low = 0, high = count;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        if (triples[mid] < target)
            low = mid + 1;
        else
            high = mid;
    }
    return low;
}

double cider_reward_contrastive(const CiderReward *reward, int image, const int *others, int other_count,
                                float weight, const int *tokens, int length) {
    double own = cider_reward_score(reward, image, tokens, length);
    if (weight == 0.0f || other_count <= 0) return own;
    double sum = 0.0;
    for (int i = 0; i < other_count; i++) sum += cider_reward_score(reward, others[i], tokens, length);
    return own - weight * sum / other_count;
}

double cider_reward_score(const CiderReward *reward, int image_index, const int *tokens, int length) {
    if (!reward || image_index < 0 || image_index >= reward->image_count || length < 0 || (length > 0 && !tokens))
        return NAN;
    for (int i = 0; i < length; i++)
        if (tokens[i] < 0 || tokens[i] >= reward->vocab_size) return NAN;
    const ImageIndex *image = &reward->images[image_index];
    if (image->reference_count == 0) return 0.0;

    /* The hypothesis's n-gram counts, in precook() order; duplicates found
     * through a small open-addressing table of its own. */
    size_t total = 0;
    for (int n = 1; n <= CIDER_ORDER; n++)
        if (length >= n) total += (size_t)(length - n + 1);
    size_t slot_capacity = 2;
    while (slot_capacity < 2 * total) slot_capacity *= 2;
    HypothesisEntry stack_entries[STACK_ENTRIES];
    uint32_t stack_slots[STACK_SLOTS];
    double stack_values[STACK_REFERENCES * CIDER_ORDER];
    HypothesisEntry *entries = stack_entries;
    uint32_t *slots = stack_slots;
    double *values = stack_values;
    void *heap = NULL;
    if (total > STACK_ENTRIES || image->reference_count > STACK_REFERENCES) {
        size_t entry_bytes = total * sizeof *entries;
        size_t value_bytes = image->reference_count * CIDER_ORDER * sizeof *values;
        size_t slot_bytes = slot_capacity * sizeof *slots;
        heap = malloc(entry_bytes + value_bytes + slot_bytes);
        if (!heap) return NAN;
        entries = heap;
        values = (double *)((char *)heap + entry_bytes);
        slots = (uint32_t *)((char *)heap + entry_bytes + value_bytes);
    }
    memset(slots, 0, slot_capacity * sizeof *slots);
    memset(values, 0, image->reference_count * CIDER_ORDER * sizeof *values);

    size_t entry_count = 0, mask = slot_capacity - 1;
    for (int n = 1; n <= CIDER_ORDER; n++) {
        for (int i = 0; i + n <= length; i++) {
            NgramKey key = {{0}, n};
            for (int k = 0; k < n; k++) key.words[k] = tokens[i + k];
            uint32_t hash = ngram_hash32(&key);
            size_t slot = hash & mask;
            while (slots[slot] && memcmp(&entries[slots[slot] - 1].key, &key, sizeof key) != 0)
                slot = (slot + 1) & mask;
            if (slots[slot]) {
                entries[slots[slot] - 1].count++;
                continue;
            }
            entries[entry_count] = (HypothesisEntry){key, 1, n - 1, hash, -1, 0.0};
            slots[slot] = (uint32_t)++entry_count;
#if defined(__GNUC__)
            __builtin_prefetch(&reward->table.slots[hash & (reward->table.slot_capacity - 1)]);
#endif
        }
    }

    /* Its vector (cider_vector): an n-gram no reference has gets df 0, so
     * log(max(1, 0)) = 0. */
    double norm[CIDER_ORDER] = {0}, hypothesis_length = 0;
    double log_length = reward->reference_log_length;
    for (size_t e = 0; e < entry_count; e++) {
        HypothesisEntry *entry = &entries[e];
        entry->ngram = ngram_table_find(&reward->table, &entry->key, entry->hash);
        double log_df = entry->ngram >= 0 ? reward->log_df[entry->ngram] : 0.0;
        entry->weight = (double)entry->count * (log_length - log_df);
        norm[entry->order_index] += entry->weight * entry->weight;
        if (entry->order_index == 1) hypothesis_length += entry->count;
    }
    for (int n = 0; n < CIDER_ORDER; n++) norm[n] = sqrt(norm[n]);

    /* CIDEr-D's clipped products, per reference and order, summed in the
     * hypothesis's entry order as cider_image does. A reference without the
     * n-gram adds min(hyp, 0) * 0 = +0 there, which changes no sum. */
    const uint64_t *triples = reward->triples + image->first_triple;
    for (size_t e = 0; e < entry_count; e++) {
        const HypothesisEntry *entry = &entries[e];
        if (entry->ngram < 0) continue;
        uint32_t id = (uint32_t)entry->ngram;
        double log_df = reward->log_df[id];
        for (size_t t = lower_bound(triples, image->triple_count, id);
             t < image->triple_count && TRIPLE_NGRAM(triples[t]) == id; t++) {
            double ref_weight = (double)TRIPLE_COUNT(triples[t]) * (log_length - log_df);
            double hyp_weight = entry->weight;
            values[TRIPLE_REFERENCE(triples[t]) * CIDER_ORDER + (size_t)entry->order_index] +=
                (hyp_weight < ref_weight ? hyp_weight : ref_weight) * ref_weight;
        }
    }

    double score[CIDER_ORDER] = {0};
    for (size_t r = 0; r < image->reference_count; r++) {
        const ReferenceVector *reference = &reward->references[image->first_reference + r];
        double *value = values + r * CIDER_ORDER;
        double delta = hypothesis_length - reference->length;
        double penalty = pow(M_E, -(delta * delta) / (2 * CIDER_SIGMA * CIDER_SIGMA));
        for (int n = 0; n < CIDER_ORDER; n++) {
            if (norm[n] != 0 && reference->norm[n] != 0) value[n] /= norm[n] * reference->norm[n];
            value[n] *= penalty;
            score[n] += value[n];
        }
    }
    free(heap);
    double sum = 0.0; /* numpy's pairwise sum of 4 values is this plain loop */
    for (int n = 0; n < CIDER_ORDER; n++) sum += score[n];
    double mean = sum / CIDER_ORDER;
    mean /= (double)image->reference_count;
    return mean * 10.0;
}
