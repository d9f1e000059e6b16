#ifndef APP_REPLICAS_H
#define APP_REPLICAS_H

#include <stddef.h>

#include "error.h"
#include "replica.h"

/* Data-parallel training over MPI: `mpirun -np N caption train ...` (or srun
 * under Slurm) runs N processes, each with a replica of the model and a 1/N
 * share of every global batch; gradients are summed with MPI_Allreduce, and
 * rank 0 evaluates, logs and writes the run's files. A process that no MPI
 * launcher started, or a build without MPI (-Dmpi=disabled), is one replica:
 * rank 0 of 1, and every call below does nothing. */
typedef struct {
    int rank, size;
    int mpi_started;    /* MPI_Init ran: MPI_Finalize or MPI_Abort at the end */
    ReplicaSum sum;     /* batch norm's statistics over all replicas (size > 1) */
    double allreduce_seconds; /* gradient sums so far: time, bytes, calls, and the */
    double allreduce_fastest; /* fastest: the transfer alone, without waiting for a slower rank */
    double allreduce_bytes;
    long allreduce_calls;
} Replicas;

/* Starts MPI when an MPI launcher started this process. Fails (with what to
 * do) when one did but this build has no MPI. */
int replicas_start(Replicas *replicas, int *argc, char ***argv, Error *err);
/* The end of a run that succeeded on every rank: MPI_Finalize. */
void replicas_finish(Replicas *replicas);
/* A rank failed: ends every rank's process with this exit code (MPI_Abort),
 * so no rank waits forever for one that will not come. */
void replicas_abort(Replicas *replicas, int code);

/* In place, the same result on every rank: */
void replicas_sum_floats(Replicas *replicas, float *values, size_t count); /* gradients (timed) */
void replicas_sum_doubles(Replicas *replicas, double *values, int count);
/* Rank 0's value on every rank; the others wait without spinning a core. */
int replicas_broadcast_int(Replicas *replicas, int value);
/* Whether every rank holds the same bytes (a hash compared across ranks). */
int replicas_agree(Replicas *replicas, const void *data, size_t size);
/* Every rank reaches this point before any goes on (without spinning). */
void replicas_barrier(Replicas *replicas);

#endif
