/* Row jobs of the vhe kernels: rows split over the thread pool, each part keeping its own
 * maxima and first failure, merged so that the result (outputs, stats and status) is the
 * one a serial pass would give, whatever the thread count: a failing call reports the
 * status of its lowest failing row, as the serial loop that stops there would. */
#include <stdatomic.h>
#include "vhe_internal.h"
#include "pool.h"

struct rows_job {
    const struct vhe_row_task *task;
    int64_t st[HE_MAX_THREADS][3];
    size_t fail_row[HE_MAX_THREADS];
    int fail_status[HE_MAX_THREADS];
    atomic_size_t first_fail;  /* rows above the lowest failure so far are skipped */
};

static void row_item(void *ctx, size_t r, size_t part) {
    struct rows_job *job = ctx;
    if (r > atomic_load_explicit(&job->first_fail, memory_order_relaxed)) return;
    const struct vhe_row_task *t = job->task;
    int64_t *scratch = t->scratch ? t->scratch + part * t->slice : NULL;
    int status = t->fn(t->ctx, r, scratch, job->st[part]);
    if (status == HE_OK || job->fail_row[part] <= r) return;
    job->fail_row[part] = r;
    job->fail_status[part] = status;
    size_t seen = atomic_load(&job->first_fail);
    while (r < seen && !atomic_compare_exchange_weak(&job->first_fail, &seen, r)) {
    }
}

int vhe_rows_run(const struct vhe_row_task *task, size_t rows, size_t words, int64_t *stats) {
    struct rows_job job;
    job.task = task;
    atomic_init(&job.first_fail, SIZE_MAX);
    const size_t parts = he_parts_for(rows, words, task->cap ? task->cap : SIZE_MAX);
    for (size_t p = 0; p < parts; p++) {
        job.st[p][0] = job.st[p][1] = job.st[p][2] = 0;
        job.fail_row[p] = SIZE_MAX;
        job.fail_status[p] = HE_OK;
    }
    he_run(rows, parts, row_item, &job);
    int64_t merged[3] = {0, 0, 0};
    size_t worst = SIZE_MAX;
    int status = HE_OK;
    for (size_t p = 0; p < parts; p++) {
        for (int i = 0; i < 3; i++)
            if (job.st[p][i] > merged[i]) merged[i] = job.st[p][i];
        if (job.fail_row[p] < worst) {
            worst = job.fail_row[p];
            status = job.fail_status[p];
        }
    }
    if (stats)
        for (int i = 0; i < task->nstats; i++) stats[i] = merged[i];
    return status;
}
