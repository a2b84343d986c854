/* The worker pool shared by the kernels of one native module (not part of the cffi
 * interface; he_set_threads / he_get_threads in he_core.h are its public face).
 *
 * A job is `count` independent items; he_run hands them out one at a time (an atomic
 * counter, so a core slowed by another process takes fewer) to up to `parts` threads,
 * the caller being part 0. Every item must write only its own outputs (and the scratch
 * of its part), so results cannot depend on which thread ran what: identical for any
 * thread count. A call from inside a job, or while another thread's job holds the pool,
 * runs its items serially on the calling thread instead of waiting or oversubscribing.
 */
#ifndef HE_POOL_H
#define HE_POOL_H
#include <stddef.h>

typedef void (*he_task)(void *ctx, size_t item, size_t part);

/* The parts a job of count items may use: min(thread setting, count, cap), at least 1.
 * cap is how many per-part scratch slices the caller has (SIZE_MAX for none needed). */
size_t he_parts(size_t count, size_t cap);

/* Like he_parts, but 1 when the job's total work (in words touched) is too small to
 * pay for waking the workers (a few microseconds each). */
size_t he_parts_for(size_t count, size_t words, size_t cap);

/* Run task(ctx, i, part) once for every i < count, part < parts. Returns when all are done. */
void he_run(size_t count, size_t parts, he_task task, void *ctx);

#endif
