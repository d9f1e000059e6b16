#include "replicas.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef CAPTION_WITH_MPI
#include <mpi.h>
#endif

/* Set by the launchers: Open MPI's mpirun, PMIx (Open MPI under srun) and
 * PMI-1/2 (MPICH, Slurm's own). */
static int launched_by_mpi(void) {
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (getenv(names[i])) return 1;
    return 0;
}

#ifdef CAPTION_WITH_MPI

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void sum_doubles(void *context, double *values, int count) {
    replicas_sum_doubles(context, values, count);
}

/* Waits for a nonblocking collective by testing every millisecond: a rank
 * waiting for rank 0's evaluation leaves its core to it. */
static void wait_politely(MPI_Request *request) {
    int done = 0;
    struct timespec pause = {0, 1000000};
    while (MPI_Test(request, &done, MPI_STATUS_IGNORE), !done) nanosleep(&pause, NULL);
}

int replicas_start(Replicas *r, int *argc, char ***argv, Error *err) {
    memset(r, 0, sizeof *r);
    r->size = 1;
    if (!launched_by_mpi()) return 0;
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return error_set(err, "MPI_Init failed: check the MPI installation (mpirun --version)");
    r->mpi_started = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &r->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &r->size);
    r->sum = (ReplicaSum){sum_doubles, r};
    return 0;
}

void replicas_finish(Replicas *r) {
    if (r->mpi_started) MPI_Finalize();
    r->mpi_started = 0;
}

void replicas_abort(Replicas *r, int code) {
    if (r->mpi_started && r->size > 1) MPI_Abort(MPI_COMM_WORLD, code);
    replicas_finish(r);
}

void replicas_sum_floats(Replicas *r, float *values, size_t count) {
    if (r->size <= 1) return;
    double start = now_seconds();
    for (size_t done = 0; done < count;) {
        int chunk = count - done > INT_MAX ? INT_MAX : (int)(count - done);
        MPI_Allreduce(MPI_IN_PLACE, values + done, chunk, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        done += (size_t)chunk;
    }
    double seconds = now_seconds() - start;
    r->allreduce_seconds += seconds;
    if (r->allreduce_calls == 0 || seconds < r->allreduce_fastest) r->allreduce_fastest = seconds;
    r->allreduce_bytes += (double)count * sizeof(float);
    r->allreduce_calls++;
}

void replicas_sum_doubles(Replicas *r, double *values, int count) {
    if (r->size > 1) MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

int replicas_broadcast_int(Replicas *r, int value) {
    if (r->size <= 1) return value;
    MPI_Request request;
    MPI_Ibcast(&value, 1, MPI_INT, 0, MPI_COMM_WORLD, &request);
    wait_politely(&request);
    return value;
}

void replicas_barrier(Replicas *r) {
    if (r->size <= 1) return;
    MPI_Request request;
    MPI_Ibarrier(MPI_COMM_WORLD, &request);
    wait_politely(&request);
}

int replicas_agree(Replicas *r, const void *data, size_t size) {
    if (r->size <= 1) return 1;
    uint64_t hash = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < size; i++) hash = (hash ^ ((const unsigned char *)data)[i]) * 1099511628211ULL;
    unsigned long long low = hash, high = hash;
    MPI_Allreduce(MPI_IN_PLACE, &low, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &high, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    return low == high;
}

#else /* built without MPI: one replica */

int replicas_start(Replicas *r, int *argc, char ***argv, Error *err) {
    (void)argc, (void)argv;
    memset(r, 0, sizeof *r);
    r->size = 1;
    const char *size = getenv("OMPI_COMM_WORLD_SIZE");
    if (!size) size = getenv("PMI_SIZE");
    if (launched_by_mpi() && (!size || atoi(size) > 1))
        return error_set(err, "started by an MPI launcher, but this caption was built without MPI "
                              "(-Dmpi=disabled, or no MPI found): install libopenmpi-dev and rebuild "
                              "(meson setup --reconfigure build -Dmpi=enabled), or run one process without mpirun");
    return 0;
}

void replicas_finish(Replicas *r) { (void)r; }
void replicas_abort(Replicas *r, int code) { (void)r, (void)code; }
void replicas_sum_floats(Replicas *r, float *values, size_t count) { (void)r, (void)values, (void)count; }
void replicas_sum_doubles(Replicas *r, double *values, int count) { (void)r, (void)values, (void)count; }
int replicas_broadcast_int(Replicas *r, int value) { (void)r; return value; }
void replicas_barrier(Replicas *r) { (void)r; }
int replicas_agree(Replicas *r, const void *data, size_t size) { (void)r, (void)data, (void)size; return 1; }

#endif
