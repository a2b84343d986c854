/* Element-wise and row kernels of the vhe scheme: add, scale, recombine, lincomb,
 * gather-sum, scatter-add, encryption and decryption. See he_core.h for the contracts.
 * All but scatter-add (rows may repeat) split their rows over threads (vhe_rows_run). */
#include "vhe_internal.h"

/* A row job without scratch, reporting the head / key-column maxima. */
static int run_rows(int (*fn)(const void *, size_t, int64_t *, int64_t *), const void *ctx, size_t rows,
                    size_t words, int64_t *stats, int nstats) {
    const struct vhe_row_task task = {fn, ctx, NULL, 0, 0, nstats};
    return vhe_rows_run(&task, rows, words, stats);
}

/* The operands of the simple row kernels (each uses the fields it needs). */
struct rows_args {
    const int64_t *a, *b, *p;
    size_t ra, rb, n, m, k, head, nrows;
    int64_t sign, div, limit, w, noise;
    int shift;
    int64_t *out;
    const int64_t *idx;
};

static void put_stats(int64_t *stats, int64_t mh, int64_t mt) {
    stats[0] = mh;
    stats[1] = mt;
}

static int add_row(const void *ctx, size_t r, int64_t *scratch, int64_t *st) {
    const struct rows_args *g = ctx;
    const size_t n = g->n;
    const int64_t *x = g->a + (g->ra == 1 ? 0 : r) * n, *y = g->b + (g->rb == 1 ? 0 : r) * n;
    int64_t *o = g->out + r * n;
    for (size_t j = 0; j < n; j++) {
        i128 v = (i128)x[j] + (i128)g->sign * y[j];
        if (vhe_store(v, g->limit, o + j, j < g->head ? &st[0] : &st[1])) return HE_ERR_OVERFLOW;
    }
    return HE_OK;
}

int vhe_add(const int64_t *a, size_t ra, const int64_t *b, size_t rb, size_t rows, size_t n,
            size_t head, int64_t sign, int64_t limit, int64_t *out, int64_t *stats) {
    if (!a || !b || !out || !stats) return HE_ERR_NULL;
    if (!vhe_shape_ok(rows, n) || head > n || !vhe_rows_ok(ra, rows) || !vhe_rows_ok(rb, rows) ||
        (sign != 1 && sign != -1))
        return HE_ERR_ARGUMENT;
    const struct rows_args g = {.a = a, .b = b, .ra = ra, .rb = rb, .n = n, .head = head, .sign = sign,
                                .limit = limit, .out = out};
    return run_rows(add_row, &g, rows, rows * n, stats, 2);
}

static int scale_row(const void *ctx, size_t r, int64_t *scratch, int64_t *st) {
    const struct rows_args *g = ctx;
    const size_t n = g->n;
    const int64_t *x = g->a + (g->ra == 1 ? 0 : r) * n;
    const i128 f = g->p[g->rb == 1 ? 0 : r];
    int64_t *o = g->out + r * n;
    for (size_t j = 0; j < n; j++)
        if (vhe_store(vhe_round_div(f * x[j], g->div), g->limit, o + j, j < g->head ? &st[0] : &st[1]))
            return HE_ERR_OVERFLOW;
    return HE_OK;
}

int vhe_scale(const int64_t *a, size_t ra, const int64_t *p, size_t rp, size_t rows, size_t n,
              size_t head, int64_t div, int64_t limit, int64_t *out, int64_t *stats) {
    if (!a || !p || !out || !stats) return HE_ERR_NULL;
    if (!vhe_shape_ok(rows, n) || div < 1 || head > n || !vhe_rows_ok(ra, rows) || !vhe_rows_ok(rp, rows))
        return HE_ERR_ARGUMENT;
    const struct rows_args g = {.a = a, .p = p, .ra = ra, .rb = rp, .n = n, .head = head, .div = div,
                                .limit = limit, .out = out};
    return run_rows(scale_row, &g, rows, 4 * rows * n, stats, 2);
}

static int combine_row(const void *ctx, size_t r, int64_t *scratch, int64_t *st) {
    const struct rows_args *g = ctx;
    const size_t n = g->n;
    const int64_t *hi = g->a + r * n, *lo = g->b + r * n;
    int64_t *o = g->out + r * n;
    for (size_t j = 0; j < n; j++) {
        /* |hi| <= 2^63 and shift <= 62 keep the product well inside 127 bits */
        i128 v = (i128)hi[j] * ((i128)1 << g->shift) + lo[j];
        if (vhe_store(vhe_round_div(v, g->div), g->limit, o + j, j < g->head ? &st[0] : &st[1]))
            return HE_ERR_OVERFLOW;
    }
    return HE_OK;
}

int vhe_combine(const int64_t *hi, const int64_t *lo, size_t rows, size_t n, size_t head,
                int shift, int64_t div, int64_t limit, int64_t *out, int64_t *stats) {
    if (!hi || !lo || !out || !stats) return HE_ERR_NULL;
    if (!vhe_shape_ok(rows, n) || div < 1 || shift < 0 || shift > 62 || head > n) return HE_ERR_ARGUMENT;
    const struct rows_args g = {.a = hi, .b = lo, .n = n, .head = head, .shift = shift, .div = div,
                                .limit = limit, .out = out};
    return run_rows(combine_row, &g, rows, 4 * rows * n, stats, 2);
}

/* sum_r |w[r]| < 2^64: then every partial sum of w[r] * x[r] (|x| <= 2^63) stays below
 * 2^127 - 2^63 in magnitude, and adding div / 2 when rounding cannot wrap either. */
static int weights_fit(const int64_t *w, size_t rows) {
    unsigned __int128 l1 = 0;  /* rows < 2^61 terms below 2^64: no wrap */
    for (size_t r = 0; r < rows; r++) l1 += w[r] < 0 ? (uint64_t)0 - (uint64_t)w[r] : (uint64_t)w[r];
    return l1 >> 64 == 0;
}

/* Output row q of the linear combination (a's rows are g->nrows). Each term is below 2^126
 * in magnitude; weight rows that could take a sum past 128 bits are summed with overflow
 * checks (HE_ERR_OVERFLOW if a partial sum would wrap, or the sum exceeds 2^126: no int64
 * result can then be within limit, whatever div). */
static int lincomb_row(const void *ctx, size_t q, int64_t *scratch, int64_t *st) {
    const struct rows_args *g = ctx;
    const size_t n = g->n, rows = g->nrows;
    const int64_t *w = g->b + q * rows;
    const int fast = weights_fit(w, rows);
    const i128 big = (i128)1 << 126;
    i128 acc[VHE_BLOCK];
    for (size_t j0 = 0; j0 < n; j0 += VHE_BLOCK) {
        const size_t len = n - j0 < VHE_BLOCK ? n - j0 : VHE_BLOCK;
        for (size_t j = 0; j < len; j++) acc[j] = 0;
        for (size_t r = 0; r < rows; r++) {
            const int64_t f = w[r];
            if (!f) continue;
            const int64_t *x = g->a + r * n + j0;
            if (fast) {
                for (size_t j = 0; j < len; j++) acc[j] += (i128)f * x[j];
            } else {
                for (size_t j = 0; j < len; j++)
                    if (__builtin_add_overflow(acc[j], (i128)f * x[j], &acc[j])) return HE_ERR_OVERFLOW;
            }
        }
        int64_t *o = g->out + q * n + j0;
        for (size_t j = 0; j < len; j++) {
            if (!fast && (acc[j] > big || acc[j] < -big)) return HE_ERR_OVERFLOW;
            if (vhe_store(vhe_round_div(acc[j], g->div), g->limit, o + j, j0 + j < g->head ? &st[0] : &st[1]))
                return HE_ERR_OVERFLOW;
        }
    }
    return HE_OK;
}

int vhe_lincomb(const int64_t *w, size_t nq, const int64_t *a, size_t rows, size_t n,
                size_t head, int64_t div, int64_t limit, int64_t *out, int64_t *stats) {
    if (!w || !a || !out || !stats) return HE_ERR_NULL;
    if (!vhe_shape_ok(rows, n) || !vhe_shape_ok(nq, n) || (rows && !vhe_shape_ok(nq, rows)) || div < 1 || head > n)
        return HE_ERR_ARGUMENT;
    const struct rows_args g = {.a = a, .b = w, .nrows = rows, .n = n, .head = head, .div = div,
                                .limit = limit, .out = out};
    return run_rows(lincomb_row, &g, nq, 2 * nq * (rows + 1) * n, stats, 2);
}

/* Column block c of the gather-sum (g->nrows rows summed, or those of g->idx). */
static int gather_block(const void *ctx, size_t c, int64_t *scratch, int64_t *st) {
    const struct rows_args *g = ctx;
    const size_t n = g->n, j0 = c * VHE_BLOCK, len = n - j0 < VHE_BLOCK ? n - j0 : VHE_BLOCK;
    i128 acc[VHE_BLOCK];
    for (size_t j = 0; j < len; j++) acc[j] = 0;
    for (size_t t = 0; t < g->nrows; t++) {
        const int64_t *x = g->a + (g->idx ? (size_t)g->idx[t] : t) * n + j0;
        for (size_t j = 0; j < len; j++) acc[j] += x[j];  /* < 2^63 terms of < 2^63: fits */
    }
    for (size_t j = 0; j < len; j++)
        if (vhe_store(acc[j], g->limit, g->out + j0 + j, j0 + j < g->head ? &st[0] : &st[1])) return HE_ERR_OVERFLOW;
    return HE_OK;
}

int vhe_gather_sum(const int64_t *a, size_t rows, size_t n, const int64_t *idx, size_t nidx,
                   size_t head, int64_t limit, int64_t *out, int64_t *stats) {
    if (!a || !out || !stats) return HE_ERR_NULL;  /* idx may be NULL: every row */
    if (!vhe_shape_ok(rows, n) || head > n) return HE_ERR_ARGUMENT;
    const size_t count = idx ? nidx : rows;
    if (idx)
        for (size_t t = 0; t < nidx; t++)
            if (idx[t] < 0 || (uint64_t)idx[t] >= rows) return HE_ERR_RANGE;
    const struct rows_args g = {.a = a, .idx = idx, .nrows = count, .n = n, .head = head, .limit = limit,
                                .out = out};
    const size_t blocks = n / VHE_BLOCK + (n % VHE_BLOCK != 0);
    return run_rows(gather_block, &g, blocks, 2 * count * n, stats, 2);
}

size_t vhe_scatter_add_scratch(size_t rows) {
    return rows ? rows : 1;  /* one counter per row (never an empty buffer) */
}

int vhe_scatter_add(int64_t *a, size_t rows, size_t n, const int64_t *idx, size_t nidx,
                    const int64_t *b, size_t rb, size_t head, int64_t limit, int64_t *stats,
                    int64_t *scratch, size_t scratch_words) {
    if (!a || !idx || !b || !stats || !scratch) return HE_ERR_NULL;
    if (!vhe_shape_ok(rows, n) || head > n || !(rb == 1 || rb == nidx)) return HE_ERR_ARGUMENT;
    if (!vhe_scratch_ok(scratch, scratch_words, vhe_scatter_add_scratch(rows))) return HE_ERR_SCRATCH;
    for (size_t t = 0; t < nidx; t++)
        if (idx[t] < 0 || (uint64_t)idx[t] >= rows) return HE_ERR_RANGE;
    size_t done = 0;
    int status = HE_OK;
    for (; done < nidx; done++) {
        int64_t *x = a + (size_t)idx[done] * n;
        const int64_t *y = b + (rb == 1 ? 0 : done) * n;
        size_t j = 0;
        for (; j < n; j++) {
            i128 v = (i128)x[j] + y[j];
            i128 av = v < 0 ? -v : v;
            if (av > (i128)limit) break;
            x[j] = (int64_t)v;
        }
        if (j < n) {  /* undo the partial row, then every full row before it */
            for (size_t u = 0; u < j; u++) x[u] -= y[u];
            status = HE_ERR_OVERFLOW;
            break;
        }
    }
    if (status != HE_OK) {
        for (size_t t = done; t-- > 0;) {
            int64_t *x = a + (size_t)idx[t] * n;
            const int64_t *y = b + (rb == 1 ? 0 : t) * n;
            for (size_t j = 0; j < n; j++) x[j] -= y[j];
        }
        return status;
    }
    /* magnitudes of the rows touched, and the largest multiplicity of an index */
    int64_t mh = 0, mt = 0, mult = 0, *count = scratch;
    for (size_t r = 0; r < rows; r++) count[r] = 0;
    for (size_t t = 0; t < nidx; t++) {
        const size_t r = (size_t)idx[t];
        if (++count[r] > mult) mult = count[r];
        if (count[r] > 1) continue;
        const int64_t *x = a + r * n;
        for (size_t j = 0; j < n; j++) {
            int64_t v = x[j] < 0 ? -x[j] : x[j];
            if (j < head) { if (v > mh) mh = v; } else if (v > mt) mt = v;
        }
    }
    put_stats(stats, mh, mt);
    stats[2] = mult;
    return HE_OK;
}

/* Shared checks of encryption and decryption. */
static int keyed_args(size_t rows, size_t m, size_t k, int64_t w) {
    if (m < 1 || w < 1 || !vhe_shape_ok(rows, m + k) || !vhe_shape_ok(m, k ? k : 1)) return HE_ERR_ARGUMENT;
    return k > VHE_MAX_K ? HE_ERR_RANGE : HE_OK;
}

static int encrypt_row(const void *ctx, size_t r, int64_t *scratch, int64_t *st) {
    const struct rows_args *g = ctx;
    const size_t m = g->m, k = g->k;
    const int64_t *t = g->b, w = g->w, noise = g->noise;
    const int64_t span = 2 * noise + 1;  /* <= 2^63 - 1 by the bound on noise */
    int64_t *row = g->out + r * (m + k);
    for (size_t i = 0; i < m; i++) {
        int64_t e = row[i] % span;
        if (e < 0) e += span;  /* floor modulo, as numpy's % */
        i128 s = (i128)w * g->a[r * m + i] + (e - noise);  /* |w x| <= 2^126, |e - noise| < 2^62 */
        /* Up to VHE_MAX_K products of up to 2^126 each: checked, never wrapped. */
        for (size_t j = 0; j < k; j++)
            if (__builtin_sub_overflow(s, (i128)t[i * k + j] * row[m + j], &s)) return HE_ERR_OVERFLOW;
        if (s > INT64_MAX || s < -INT64_MAX) return HE_ERR_OVERFLOW;
        row[i] = (int64_t)s;
    }
    return HE_OK;
}

int vhe_encrypt(const int64_t *x, size_t rows, size_t m, size_t k, const int64_t *t, int64_t w,
                int64_t noise, int64_t *data) {
    if (!x || !t || !data) return HE_ERR_NULL;
    int status = keyed_args(rows, m, k, w);
    if (status) return status;
    if (noise < 0 || noise > VHE_MAX_NOISE) return HE_ERR_RANGE;
    const struct rows_args g = {.a = x, .b = t, .m = m, .k = k, .w = w, .noise = noise, .out = data};
    return run_rows(encrypt_row, &g, rows, 2 * rows * m * (k + 1), NULL, 0);
}

static int decrypt_row(const void *ctx, size_t r, int64_t *scratch, int64_t *st) {
    const struct rows_args *g = ctx;
    const size_t m = g->m, k = g->k;
    const int64_t *t = g->b, *row = g->a + r * (m + k);
    for (size_t i = 0; i < m; i++) {
        i128 s = row[i];
        for (size_t j = 0; j < k; j++)
            if (__builtin_add_overflow(s, (i128)t[i * k + j] * row[m + j], &s)) return HE_ERR_OVERFLOW;
        /* w < 2^63, so |s| > 2^126 cannot round into int64 (and s + w/2 cannot wrap below it) */
        if (s > ((i128)1 << 126) || s < -((i128)1 << 126)) return HE_ERR_OVERFLOW;
        i128 q = vhe_round_div(s, g->w);
        if (q > INT64_MAX || q < -INT64_MAX) return HE_ERR_OVERFLOW;
        g->out[r * m + i] = (int64_t)q;
    }
    return HE_OK;
}

int vhe_decrypt(const int64_t *c, size_t rows, size_t m, size_t k, const int64_t *t, int64_t w,
                int64_t *x) {
    if (!c || !t || !x) return HE_ERR_NULL;
    int status = keyed_args(rows, m, k, w);
    if (status) return status;
    const struct rows_args g = {.a = c, .b = t, .m = m, .k = k, .w = w, .out = x};
    return run_rows(decrypt_row, &g, rows, 2 * rows * m * (k + 1), NULL, 0);
}
