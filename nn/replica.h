#ifndef NN_REPLICA_H
#define NN_REPLICA_H

/* Data-parallel training runs one copy of the model per process (a replica),
 * each on its share of the global batch. The few layers whose forward or
 * backward needs statistics of the whole batch (batch norm) reach the other
 * replicas through this, so nn/ needs no communication library: sum replaces
 * values[0..count) on every replica by their sum over all replicas. */
typedef struct {
    void (*sum)(void *context, double *values, int count);
    void *context;
} ReplicaSum;

/* This replica's part of a global normaliser: local / total, or 1 when total
 * is 0 (single-process training: the batch is the whole batch). */
static inline float replica_share(long local, long total) {
    return total > 0 ? (float)((double)local / (double)total) : 1.0f;
}

#endif
