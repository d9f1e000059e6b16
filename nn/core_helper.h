#ifndef NN_CORE_HELPER_H
#define NN_CORE_HELPER_H

#include "error.h"

/* A second thread that owns the machine's second core while one image is
 * captioned: each split call hands it one part of a product (half of a
 * convolution's columns, half of a layer's output features) while the
 * caller computes the other part. Between calls it spins briefly, then
 * sleeps.
 *
 * It replaces OpenBLAS's own threads rather than adding to them: the user of
 * a helper runs OpenBLAS on one thread (decode.h, captioner_use_second_thread).
 * With both, three busy threads (caller, helper, and OpenBLAS's worker, which
 * keeps yielding for ~0.1 s after each threaded call) shared two cores, and
 * beam-3 latency jumped between 8 and 24 ms from one run to the next
 * depending on where the scheduler put them. For a process that captions one
 * image at a time: workers that already run one per core would only fight
 * over the cores. */
typedef struct CoreHelper CoreHelper;

int core_helper_create(CoreHelper **helper, Error *err);
void core_helper_free(CoreHelper *helper);

/* What the user of a helper calls once: OpenBLAS on one thread for the
 * process, and its idle workers stopped. Those keep calling sched_yield for
 * ~0.1 s after the library starts and after each threaded call (OpenBLAS's
 * THREAD_TIMEOUT), taking turns on the cores the helper and the caller need;
 * OpenBLAS starts them again if it is later given more threads. */
void core_helper_claim_blas(void);

/* part 0 runs on the caller, part 1 on the helper. */
typedef void (*CoreTask)(void *context, int part);

/* Runs task(context, 1) on the helper while the caller runs task(context, 0),
 * and returns when both are done. helper NULL: both parts on the caller. */
void core_helper_split(CoreHelper *helper, CoreTask task, void *context);

#endif
