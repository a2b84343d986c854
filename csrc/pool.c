/* A small pthread pool: workers are started on first use, sleep on a condition variable
 * between jobs (no spinning: the machine may be shared) and are forgotten in a forked
 * child, which starts its own. Built without threads (HENN_NO_THREADS, or a platform
 * without POSIX threads) every job runs on the calling thread. */
#include <stdint.h>
#include "he_core.h"
#include "pool.h"

#if !defined(HENN_NO_THREADS) && defined(__unix__)
#include <unistd.h>
#endif
#if !defined(HENN_NO_THREADS) && defined(_POSIX_THREADS) && _POSIX_THREADS > 0
#define HE_POOL 1
#else
#define HE_POOL 0
#endif

/* Below this many words touched a job runs serially: waking a worker costs ~5-20 us. */
#define HE_PARALLEL_WORDS 32768

#if HE_POOL
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    size_t started;        /* workers alive, numbered 1 .. started */
    unsigned long gen;     /* bumped once per job */
    unsigned long born[HE_MAX_THREADS];  /* gen when worker i was started */
    size_t helpers;        /* workers 1 .. helpers may take part in the current job */
    size_t active;         /* workers inside the current job */
    size_t joined;         /* workers that took part in the current job */
    int closed;            /* the caller has run out of items: late workers stay out */
    he_task task;
    void *ctx;
    size_t count;
    atomic_size_t next;    /* the next item to hand out */
} P = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;  /* one job at a time */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static atomic_size_t wanted = 1;
static _Thread_local int inside;  /* this thread is running items of a job */
static atomic_size_t split_jobs;  /* jobs a worker took part in */

static void drain(size_t part) {
    for (;;) {
        size_t i = atomic_fetch_add_explicit(&P.next, 1, memory_order_relaxed);
        if (i >= P.count) return;
        P.task(P.ctx, i, part);
    }
}

static void *worker(void *arg) {
    const size_t me = (size_t)(uintptr_t)arg;
    inside = 1;
    pthread_mutex_lock(&P.lock);
    unsigned long seen = P.born[me];
    for (;;) {
        while (P.gen == seen) pthread_cond_wait(&P.wake, &P.lock);
        seen = P.gen;
        if (me > P.helpers || P.closed) continue;
        P.active++;
        P.joined++;
        pthread_mutex_unlock(&P.lock);
        drain(me);
        pthread_mutex_lock(&P.lock);
        if (--P.active == 0 && P.closed) pthread_cond_signal(&P.done);
    }
    return NULL;
}

/* Fork: hold the pool so its state is consistent, then let the child start afresh
 * (its copy has no workers; the parent's threads do not exist there). */
static void fork_prepare(void) {
    pthread_mutex_lock(&busy);
    pthread_mutex_lock(&P.lock);
}
static void fork_parent(void) {
    pthread_mutex_unlock(&P.lock);
    pthread_mutex_unlock(&busy);
}
static void fork_child(void) {
    pthread_mutex_init(&P.lock, NULL);
    pthread_cond_init(&P.wake, NULL);
    pthread_cond_init(&P.done, NULL);
    pthread_mutex_init(&busy, NULL);
    P.started = 0;
    P.helpers = P.active = 0;
    P.closed = 1;
}
static void register_fork(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

/* Start workers up to `need` (under P.lock); signals stay with Python's threads. */
static void grow(size_t need) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (P.started < need) {
        pthread_t t;
        P.born[P.started + 1] = P.gen;
        if (pthread_create(&t, &attr, worker, (void *)(uintptr_t)(P.started + 1)) != 0) break;
        P.started++;
    }
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void he_run(size_t count, size_t parts, he_task task, void *ctx) {
    if (parts > count) parts = count;
    if (parts <= 1 || inside || pthread_mutex_trylock(&busy) != 0) {
        for (size_t i = 0; i < count; i++) task(ctx, i, 0);
        return;
    }
    pthread_once(&once, register_fork);
    pthread_mutex_lock(&P.lock);
    grow(parts - 1);
    P.helpers = parts - 1 < P.started ? parts - 1 : P.started;
    P.active = P.joined = 0;
    P.closed = 0;
    P.task = task;
    P.ctx = ctx;
    P.count = count;
    atomic_store(&P.next, 0);
    P.gen++;
    pthread_cond_broadcast(&P.wake);
    pthread_mutex_unlock(&P.lock);
    inside = 1;
    drain(0);
    inside = 0;
    /* Wait only for workers that joined: one the scheduler has not run yet (the machine
     * may be busy with other processes) must not hold up a job whose items are all done. */
    pthread_mutex_lock(&P.lock);
    P.closed = 1;
    while (P.active) pthread_cond_wait(&P.done, &P.lock);
    if (P.joined) atomic_fetch_add(&split_jobs, 1);
    pthread_mutex_unlock(&P.lock);
    pthread_mutex_unlock(&busy);
}

int he_set_threads(size_t n) {
    if (n < 1 || n > HE_MAX_THREADS) return HE_ERR_ARGUMENT;
    atomic_store(&wanted, n);
    return HE_OK;
}

size_t he_get_threads(void) { return atomic_load(&wanted); }

int he_threads_built(void) { return 1; }

size_t he_split_jobs(void) { return atomic_load(&split_jobs); }

#else  /* one thread */

void he_run(size_t count, size_t parts, he_task task, void *ctx) {
    (void)parts;
    for (size_t i = 0; i < count; i++) task(ctx, i, 0);
}

int he_set_threads(size_t n) { return (n < 1 || n > HE_MAX_THREADS) ? HE_ERR_ARGUMENT : HE_OK; }

size_t he_get_threads(void) { return 1; }

int he_threads_built(void) { return 0; }

size_t he_split_jobs(void) { return 0; }

#endif

size_t he_parts(size_t count, size_t cap) {
    size_t p = he_get_threads();
    if (p > count) p = count;
    if (p > cap) p = cap;
    return p ? p : 1;
}

size_t he_parts_for(size_t count, size_t words, size_t cap) {
    return words < HE_PARALLEL_WORDS ? 1 : he_parts(count, cap);
}
