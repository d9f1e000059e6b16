#ifndef NN_REPLICA_POOL_H
#define NN_REPLICA_POOL_H

#include <stdint.h>

#include "trainer.h"

/* Data-parallel training on the threads of one process: each batch is split
 * by image into N shares, and each share's forward and backward runs on its
 * own thread with its own activations and gradients, while the model's
 * weights are shared. It is the MPI replicas' scheme (app/train/replicas.h)
 * without the processes: batch norm's statistics are the whole batch's
 * (nn/replica.h, summed through a barrier), each loss term is normalised by
 * the whole batch's count, and the gradients are summed into the main
 * trainer's, whose optimiser step follows as for one thread. Every sum runs
 * in replica order, so the result does not depend on thread timing.
 *
 * Why: a training step is many small operations besides the large products
 * (softmax, layer norm, GELU, dropout, the LSTM's gates, im2col), which
 * OpenBLAS's threads leave on one core; N replicas keep N cores busy through
 * all of them. Each replica runs OpenBLAS on its own thread
 * (core_helper_claim_blas). */
typedef struct SatReplicaPool SatReplicaPool;

/* N replicas (2 to 64) for batches of up to image_capacity images with up
 * to rows_per_image caption rows each and step_capacity steps; replica 0 is
 * `main` (sized for the whole batch), the others get trainers of their own,
 * sized for their share, and a thread each. */
int sat_replica_pool_create(SatReplicaPool **pool, SatTrainer *main, int replicas, int image_capacity,
                            int rows_per_image, int step_capacity, Error *err);
void sat_replica_pool_free(SatReplicaPool *pool);

/* sat_forward_backward over the replicas: main->grads receives the whole
 * batch's gradient, and *loss is the whole batch's. Each image may have at
 * most rows_per_image caption rows, in any order. Replica k's dropout draws
 * from stream k of dropout_seed. Fails (nothing computed) on a batch larger
 * than the pool was made for. */
int sat_replica_pool_forward_backward(SatReplicaPool *pool, const float *images, int image_count,
                                      const DecoderBatch *batch, uint64_t dropout_seed, SatLoss *loss, Error *err);

#endif
