/* Helpers shared by the vhe kernels (not part of the cffi interface). */
#ifndef VHE_INTERNAL_H
#define VHE_INTERNAL_H
#include "he_core.h"

typedef __int128 i128;

/* Columns per block of 128-bit accumulators: the sums live on the stack (4 KiB), so no
 * kernel needs a heap or a 128-bit scratch buffer, whatever the row length. */
#define VHE_BLOCK 256

/* An operand with r rows broadcasts against rows when r == rows or r == 1. */
static inline int vhe_rows_ok(size_t r, size_t rows) { return r == rows || r == 1; }

/* rows x n int64 entries are addressable with size_t offsets (n >= 1). */
static inline int vhe_shape_ok(size_t rows, size_t n) {
    return n >= 1 && rows <= SIZE_MAX / sizeof(int64_t) / n;
}

/* A caller's scratch buffer: at least need words, aligned for int64_t. */
static inline int vhe_scratch_ok(const int64_t *scratch, size_t words, size_t need) {
    return words >= need && ((uintptr_t)scratch % _Alignof(int64_t)) == 0;
}

/* floor((x + div/2) / div) for div >= 1: nearest integer, ties up. */
static inline i128 vhe_round_div(i128 x, int64_t div) {
    if (div == 1) return x;
    i128 y = x + (i128)(div / 2);
    i128 q = y / div;
    if ((y % div != 0) && (y < 0)) q -= 1;  /* C division truncates toward zero */
    return q;
}

/* Store v into *dst if |v| <= limit, tracking the running maximum; 0 on success. */
static inline int vhe_store(i128 v, int64_t limit, int64_t *dst, int64_t *maxabs) {
    i128 a = v < 0 ? -v : v;
    if (a > (i128)limit) return 1;
    *dst = (int64_t)v;
    if ((int64_t)a > *maxabs) *maxabs = (int64_t)a;
    return 0;
}

/* A row job (csrc/vhe_rows.c): fn(ctx, r, scratch slice, st) computes row r, raising the
 * maxima st[0..2] (head, key columns, a third per kernel) and returning an HE_* status.
 * scratch + part * slice is the part's own slice; cap is how many slices there are
 * (0 when the job needs no scratch: then any number of threads may run it). */
struct vhe_row_task {
    int (*fn)(const void *ctx, size_t r, int64_t *scratch, int64_t *st);
    const void *ctx;
    int64_t *scratch;
    size_t slice, cap;
    int nstats;  /* how many of the three maxima go to the caller's stats */
};

/* Run rows 0 .. rows-1 (words: the job's total work, for the serial cut-off); stats (if
 * not NULL) receives the maxima over all rows; returns the status of the lowest failing
 * row, or HE_OK. */
int vhe_rows_run(const struct vhe_row_task *task, size_t rows, size_t words, int64_t *stats);

#endif
