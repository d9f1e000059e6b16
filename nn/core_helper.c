#include "core_helper.h"

#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
static void spin_pause(void) { _mm_pause(); }
#else
static void spin_pause(void) {}
#endif

struct CoreHelper {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_uint posted, finished; /* job counters: the helper runs job `posted` */
    atomic_int quit;
    CoreTask task;
    void *context;
};

/* Waiting: first PAUSE_SPINS pauses (a beam step posts its next product
 * within tens of microseconds), then sched_yield, so that a waiting thread
 * that shares its core with the other one (a loaded machine: the scheduler
 * may put both on one core) gives it the core instead of spinning out its
 * time slice. The helper sleeps after HELPER_SPIN rounds in all (about a
 * quarter of a millisecond): an idle helper must not hold a core that
 * another thread or process could use. */
enum { PAUSE_SPINS = 2000, HELPER_SPIN = 2200 };

static void wait_a_little(int round) {
    if (round < PAUSE_SPINS) spin_pause();
    else sched_yield();
}

static unsigned wait_for_job(CoreHelper *h, unsigned seen) {
    for (int i = 0; i < HELPER_SPIN; i++) {
        unsigned posted = atomic_load_explicit(&h->posted, memory_order_acquire);
        if (posted != seen || atomic_load(&h->quit)) return posted;
        wait_a_little(i);
    }
    pthread_mutex_lock(&h->lock);
    while (atomic_load_explicit(&h->posted, memory_order_acquire) == seen && !atomic_load(&h->quit))
        pthread_cond_wait(&h->wake, &h->lock);
    pthread_mutex_unlock(&h->lock);
    return atomic_load_explicit(&h->posted, memory_order_acquire);
}

static void *helper_main(void *arg) {
    CoreHelper *h = arg;
    unsigned seen = 0;
    for (;;) {
        seen = wait_for_job(h, seen);
        if (atomic_load(&h->quit)) return NULL;
        h->task(h->context, 1);
        atomic_store_explicit(&h->finished, seen, memory_order_release);
    }
}

int core_helper_create(CoreHelper **out, Error *err) {
    CoreHelper *h = calloc(1, sizeof *h);
    if (!h) return error_set(err, "out of memory for the decoding thread");
    atomic_init(&h->posted, 0);
    atomic_init(&h->finished, 0);
    atomic_init(&h->quit, 0);
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    if (pthread_create(&h->thread, NULL, helper_main, h) != 0) {
        pthread_cond_destroy(&h->wake);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return error_set(err, "could not start the decoding thread");
    }
    *out = h;
    return 0;
}

void core_helper_free(CoreHelper *h) {
    if (!h) return;
    pthread_mutex_lock(&h->lock);
    atomic_store(&h->quit, 1);
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* Exported by OpenBLAS's pthreads builds (it is what OpenBLAS calls before a
 * fork); weak, so that another BLAS without it still links and runs. */
extern int blas_thread_shutdown_(void) __attribute__((weak));

void core_helper_claim_blas(void) {
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
}

void core_helper_split(CoreHelper *h, CoreTask task, void *context) {
    if (!h) {
        task(context, 0);
        task(context, 1);
        return;
    }
    h->task = task;
    h->context = context;
    pthread_mutex_lock(&h->lock);
    unsigned ticket = atomic_fetch_add_explicit(&h->posted, 1, memory_order_release) + 1;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
    task(context, 0);
    for (int i = 0; atomic_load_explicit(&h->finished, memory_order_acquire) != ticket; i += i < PAUSE_SPINS)
        wait_a_little(i);
}
