#include "replica_pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core_helper.h"
#include "cross_entropy.h"

enum { MAX_REPLICAS = 64 };

typedef struct Replica Replica;

/* What one replica works on in a step: its images and its rows of the batch. */
struct Replica {
    SatReplicaPool *pool;
    int index;
    SatTrainer own;      /* replicas 1..N-1; replica 0 works in pool->main */
    SatTrainer *trainer;
    ReplicaSum sum;      /* batch norm's statistics over the active replicas */
    int *captions, *row_image;
    float *row_weight;
    int row_capacity;
    DecoderBatch batch;
    const float *images;
    int image_count;
    SatLoss loss;
    pthread_t thread;
};

struct SatReplicaPool {
    SatTrainer *main;
    int count, active;   /* replicas, and those with images this step */
    int image_capacity, step_capacity;
    Replica replicas[MAX_REPLICAS];
    double *slots[MAX_REPLICAS]; /* each replica's values in a sum */
    pthread_barrier_t barriers[MAX_REPLICAS + 1]; /* barriers[a]: a participants */
    pthread_mutex_t lock;
    pthread_cond_t start;
    long generation;     /* steps dispatched */
    int quit;
    uint64_t dropout_seed;
    int threads_started;
};

/* values[0..count) becomes their sum over the active replicas, added in
 * replica order on every replica, so all hold the same bits. In chunks, so
 * that no memory is needed: a replica overwrites a chunk of its values only
 * after every replica has read that chunk. */
static void replica_sum(void *context, double *values, int count) {
    enum { CHUNK = 64 };
    Replica *r = context;
    SatReplicaPool *p = r->pool;
    pthread_barrier_t *barrier = &p->barriers[p->active];
    p->slots[r->index] = values;
    pthread_barrier_wait(barrier);
    for (int first = 0; first < count; first += CHUNK) {
        int n = count - first < CHUNK ? count - first : CHUNK;
        double totals[CHUNK];
        for (int i = 0; i < n; i++) {
            double total = 0.0;
            for (int k = 0; k < p->active; k++) total += p->slots[k][first + i];
            totals[i] = total;
        }
        pthread_barrier_wait(barrier);
        memcpy(values + first, totals, sizeof(double) * (size_t)n);
    }
}

/* Replica k's share: images [n k / A, n (k+1) / A) and their rows, in order. */
static int take_share(Replica *r, const float *images, int image_count, const DecoderBatch *batch,
                      size_t image_floats, Error *err) {
    int A = r->pool->active, first = (int)((long)image_count * r->index / A);
    int last = (int)((long)image_count * (r->index + 1) / A), columns = batch->steps + 1, rows = 0;
    if (batch->steps > r->pool->step_capacity)
        return error_set(err, "replica pool: %d steps, more than the %d it was made for", batch->steps,
                         r->pool->step_capacity);
    for (int row = 0; row < batch->rows; row++) {
        int image = batch->row_image[row];
        if (image < first || image >= last) continue;
        if (rows == r->row_capacity)
            return error_set(err, "replica pool: replica %d's %d images have more than %d caption rows", r->index,
                             last - first, r->row_capacity);
        memcpy(r->captions + (size_t)rows * columns, batch->captions + (size_t)row * columns,
               sizeof(int) * (size_t)columns);
        r->row_image[rows] = image - first;
        if (batch->row_weight) r->row_weight[rows] = batch->row_weight[row];
        rows++;
    }
    r->images = images + (size_t)first * image_floats;
    r->image_count = last - first;
    r->batch = *batch;
    r->batch.captions = r->captions, r->batch.row_image = r->row_image, r->batch.rows = rows;
    r->batch.row_weight = batch->row_weight ? r->row_weight : NULL;
    return 0;
}

/* A replica's step: forward and backward on its share, then its part of
 * the gradient sum (main->grads += the others', split by position). */
static void run_replica(Replica *r) {
    SatReplicaPool *p = r->pool;
    Rng rng;
    rng_seed_stream(&rng, p->dropout_seed, 0x5EB1CA00ULL + (uint64_t)r->index);
    r->trainer->encoder.replicas = &r->sum;
    r->loss = sat_forward_backward(r->trainer, r->images, r->image_count, &r->batch, &rng);
    pthread_barrier_t *barrier = &p->barriers[p->active];
    pthread_barrier_wait(barrier);
    size_t total = p->main->model->table.total;
    size_t begin = total * (size_t)r->index / (size_t)p->active, end = total * (size_t)(r->index + 1) / (size_t)p->active;
    float *sum = p->main->grads;
    for (int k = 1; k < p->active; k++) {
        const float *add = p->replicas[k].trainer->grads;
        for (size_t i = begin; i < end; i++) sum[i] += add[i];
    }
    pthread_barrier_wait(barrier);
}

static void *replica_thread(void *context) {
    Replica *r = context;
    SatReplicaPool *p = r->pool;
    long seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (p->generation == seen && !p->quit) pthread_cond_wait(&p->start, &p->lock);
        int quit = p->quit, active = p->active;
        seen = p->generation;
        pthread_mutex_unlock(&p->lock);
        if (quit) return NULL;
        if (r->index < active) run_replica(r);
    }
}

static int alloc_share(Replica *r, int rows, int steps) {
    r->row_capacity = rows;
    r->captions = malloc(sizeof(int) * (size_t)rows * (size_t)(steps + 1));
    r->row_image = malloc(sizeof(int) * (size_t)rows);
    r->row_weight = malloc(sizeof(float) * (size_t)rows);
    return r->captions && r->row_image && r->row_weight ? 0 : -1;
}

int sat_replica_pool_create(SatReplicaPool **out, SatTrainer *main, int replicas, int image_capacity,
                            int rows_per_image, int step_capacity, Error *err) {
    *out = NULL;
    if (replicas < 2 || replicas > MAX_REPLICAS)
        return error_set(err, "%d replicas: use 2 to %d threads for data-parallel training", replicas, MAX_REPLICAS);
    SatReplicaPool *p = calloc(1, sizeof *p);
    if (!p) return error_set(err, "out of memory for %d replicas", replicas);
    p->main = main, p->count = replicas, p->image_capacity = image_capacity, p->step_capacity = step_capacity;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->start, NULL);
    for (int a = 1; a <= replicas; a++) pthread_barrier_init(&p->barriers[a], NULL, (unsigned)a);
    int share_images = (image_capacity + replicas - 1) / replicas, status = 0;
    for (int k = 0; k < replicas && status == 0; k++) {
        Replica *r = &p->replicas[k];
        r->pool = p, r->index = k;
        r->sum = (ReplicaSum){replica_sum, r};
        r->trainer = k == 0 ? main : &r->own;
        if (alloc_share(r, (k == 0 ? image_capacity : share_images) * rows_per_image, step_capacity) != 0)
            status = error_set(err, "out of memory for the replicas' batches");
        else if (k > 0 && sat_trainer_init(&r->own, main->model, share_images, share_images * rows_per_image,
                                           step_capacity, err) != 0)
            status = -1;
        if (k > 0 && status == 0) r->own.frozen_encoder = main->frozen_encoder, r->own.follower = 1;
    }
    for (int k = 1; k < replicas && status == 0; k++) {
        if (pthread_create(&p->replicas[k].thread, NULL, replica_thread, &p->replicas[k]) != 0)
            status = error_set(err, "could not start replica thread %d of %d", k, replicas);
        else
            p->threads_started = k;
    }
    if (status != 0) {
        sat_replica_pool_free(p);
        return -1;
    }
    core_helper_claim_blas();
    *out = p;
    return 0;
}

void sat_replica_pool_free(SatReplicaPool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->quit = 1;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->lock);
    for (int k = 1; k <= p->threads_started; k++) pthread_join(p->replicas[k].thread, NULL);
    for (int k = 0; k < p->count; k++) {
        Replica *r = &p->replicas[k];
        if (k > 0) sat_trainer_free(&r->own);
        free(r->captions);
        free(r->row_image);
        free(r->row_weight);
    }
    p->main->encoder.replicas = NULL;
    for (int a = 1; a <= p->count; a++) pthread_barrier_destroy(&p->barriers[a]);
    pthread_cond_destroy(&p->start);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* The whole batch's mean losses from each replica's means over its share. */
static SatLoss whole_loss(const SatReplicaPool *p, const DecoderBatch *whole) {
    double sums[3] = {0};
    for (int k = 0; k < p->active; k++) {
        const Replica *r = &p->replicas[k];
        sums[0] += (double)r->loss.cross_entropy * r->loss.tokens;
        sums[1] += (double)r->loss.penalty * r->batch.rows;
        sums[2] += (double)r->loss.aux * r->image_count;
    }
    return sat_loss_from_sums(sums, whole->total_tokens, whole->total_rows, whole->total_images);
}

int sat_replica_pool_forward_backward(SatReplicaPool *p, const float *images, int image_count,
                                      const DecoderBatch *batch, uint64_t dropout_seed, SatLoss *loss, Error *err) {
    const SatModel *m = p->main->model;
    DecoderBatch whole = *batch;
    if (whole.total_tokens == 0) { /* the loss terms' normalisers: this whole batch's counts */
        int columns = batch->steps + 1;
        for (int row = 0; row < batch->rows; row++)
            whole.total_tokens += cross_entropy_count_valid(batch->captions + (size_t)row * columns + 1,
                                                            batch->steps, TOKEN_PAD);
        whole.total_rows = batch->rows, whole.total_images = image_count;
    }
    if (image_count < 1 || image_count > p->image_capacity)
        return error_set(err, "replica pool: %d images, use 1 to %d", image_count, p->image_capacity);
    p->active = image_count < p->count ? image_count : p->count;
    size_t image_floats = (size_t)3 * m->config.image_size * m->config.image_size;
    for (int k = 0; k < p->active; k++)
        if (take_share(&p->replicas[k], images, image_count, &whole, image_floats, err) != 0) return -1;
    p->dropout_seed = dropout_seed;
    pthread_mutex_lock(&p->lock);
    p->generation++;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->lock);
    run_replica(&p->replicas[0]);
    p->main->encoder.replicas = NULL;
    *loss = whole_loss(p, &whole);
    return 0;
}
