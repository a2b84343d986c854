/* Element-wise and row kernels of the vhe scheme: add, scale, recombine, lincomb,
 * gather-sum, scatter-add and decryption. See vhe.h for the contracts. */
#include <stdlib.h>
#include "vhe_internal.h"

static int bad_rows(int64_t r, int64_t rows) { return !(r == rows || r == 1); }

int vhe_add(const int64_t *a, int64_t ra, const int64_t *b, int64_t rb, int64_t rows, int64_t n,
            int64_t head, int64_t sign, int64_t limit, int64_t *out, int64_t *stats) {
    if (rows < 0 || n < 1 || head < 0 || head > n || bad_rows(ra, rows) || bad_rows(rb, rows)) return HE_ERR_ARGUMENT;
    int64_t mh = 0, mt = 0;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t *x = a + (ra == 1 ? 0 : r) * n, *y = b + (rb == 1 ? 0 : r) * n;
        int64_t *o = out + r * n;
        for (int64_t j = 0; j < n; j++) {
            i128 v = (i128)x[j] + (i128)sign * y[j];
            if (vhe_store(v, limit, o + j, j < head ? &mh : &mt)) return HE_ERR_OVERFLOW;
        }
    }
    stats[0] = mh; stats[1] = mt;
    return HE_OK;
}

int vhe_scale(const int64_t *a, int64_t ra, const int64_t *p, int64_t rp, int64_t rows, int64_t n,
              int64_t head, int64_t div, int64_t limit, int64_t *out, int64_t *stats) {
    if (rows < 0 || n < 1 || div < 1 || head < 0 || head > n || bad_rows(ra, rows) || bad_rows(rp, rows))
        return HE_ERR_ARGUMENT;
    int64_t mh = 0, mt = 0;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t *x = a + (ra == 1 ? 0 : r) * n;
        i128 f = p[rp == 1 ? 0 : r];
        int64_t *o = out + r * n;
        for (int64_t j = 0; j < n; j++) {
            if (vhe_store(vhe_round_div(f * x[j], div), limit, o + j, j < head ? &mh : &mt)) return HE_ERR_OVERFLOW;
        }
    }
    stats[0] = mh; stats[1] = mt;
    return HE_OK;
}

int vhe_combine(const int64_t *hi, const int64_t *lo, int64_t rows, int64_t n, int64_t head,
                int64_t shift, int64_t div, int64_t limit, int64_t *out, int64_t *stats) {
    if (rows < 0 || n < 1 || div < 1 || shift < 0 || shift > 62 || head < 0 || head > n) return HE_ERR_ARGUMENT;
    int64_t mh = 0, mt = 0;
    for (int64_t r = 0; r < rows * n; r++) {
        /* |hi| <= 2^63 and shift <= 62 keep the product well inside 127 bits */
        i128 v = (i128)hi[r] * ((i128)1 << shift) + lo[r];
        if (vhe_store(vhe_round_div(v, div), limit, out + r, (r % n) < head ? &mh : &mt)) return HE_ERR_OVERFLOW;
    }
    stats[0] = mh; stats[1] = mt;
    return HE_OK;
}

int vhe_lincomb(const int64_t *w, int64_t nq, const int64_t *a, int64_t rows, int64_t n,
                int64_t head, int64_t div, int64_t limit, int64_t *out, int64_t *stats) {
    if (nq < 0 || rows < 0 || n < 1 || div < 1 || head < 0 || head > n) return HE_ERR_ARGUMENT;
    i128 *acc = malloc((size_t)n * sizeof(i128));
    if (!acc) return HE_ERR_NOMEM;
    int64_t mh = 0, mt = 0, status = HE_OK;
    for (int64_t q = 0; q < nq && status == HE_OK; q++) {
        for (int64_t j = 0; j < n; j++) acc[j] = 0;
        /* |w| < 2^63, |a| < 2^63: each term < 2^126; callers keep rows * |w| * |a| < 2^126 */
        for (int64_t r = 0; r < rows; r++) {
            int64_t f = w[q * rows + r];
            if (!f) continue;
            const int64_t *x = a + r * n;
            for (int64_t j = 0; j < n; j++) acc[j] += (i128)f * x[j];
        }
        for (int64_t j = 0; j < n; j++)
            if (vhe_store(vhe_round_div(acc[j], div), limit, out + q * n + j, j < head ? &mh : &mt)) {
                status = HE_ERR_OVERFLOW;
                break;
            }
    }
    free(acc);
    stats[0] = mh; stats[1] = mt;
    return (int)status;
}

int vhe_gather_sum(const int64_t *a, int64_t rows, int64_t n, const int64_t *idx, int64_t nidx,
                   int64_t head, int64_t limit, int64_t *out, int64_t *stats) {
    if (rows < 0 || n < 1 || nidx < 0 || head < 0 || head > n) return HE_ERR_ARGUMENT;
    i128 small[64];  /* the common tiny case avoids the allocator */
    i128 *acc = n <= 64 ? small : malloc((size_t)n * sizeof(i128));
    if (!acc) return HE_ERR_NOMEM;
    for (int64_t j = 0; j < n; j++) acc[j] = 0;
    int64_t count = idx ? nidx : rows, mh = 0, mt = 0;
    int status = HE_OK;
    for (int64_t t = 0; t < count && status == HE_OK; t++) {
        int64_t r = idx ? idx[t] : t;
        if (r < 0 || r >= rows) { status = HE_ERR_RANGE; break; }
        const int64_t *x = a + r * n;
        for (int64_t j = 0; j < n; j++) acc[j] += x[j];  /* < 2^63 terms of < 2^63: fits */
    }
    for (int64_t j = 0; j < n && status == HE_OK; j++)
        if (vhe_store(acc[j], limit, out + j, j < head ? &mh : &mt)) status = HE_ERR_OVERFLOW;
    if (acc != small) free(acc);
    stats[0] = mh; stats[1] = mt;
    return status;
}

int vhe_scatter_add(int64_t *a, int64_t rows, int64_t n, const int64_t *idx, int64_t nidx,
                    const int64_t *b, int64_t rb, int64_t head, int64_t limit, int64_t *stats) {
    if (rows < 0 || n < 1 || nidx < 0 || head < 0 || head > n || !(rb == 1 || rb == nidx)) return HE_ERR_ARGUMENT;
    for (int64_t t = 0; t < nidx; t++)
        if (idx[t] < 0 || idx[t] >= rows) return HE_ERR_RANGE;
    int64_t mh = 0, mt = 0, done = 0, status = HE_OK;
    for (; done < nidx; done++) {
        int64_t *x = a + idx[done] * n;
        const int64_t *y = b + (rb == 1 ? 0 : done) * n;
        int64_t j = 0;
        for (; j < n; j++) {
            i128 v = (i128)x[j] + y[j];
            i128 av = v < 0 ? -v : v;
            if (av > (i128)limit) break;
            x[j] = (int64_t)v;
        }
        if (j < n) {  /* undo the partial row, then every full row before it */
            for (int64_t u = 0; u < j; u++) x[u] -= y[u];
            status = HE_ERR_OVERFLOW;
            break;
        }
    }
    if (status != HE_OK) {
        for (int64_t t = done - 1; t >= 0; t--) {
            int64_t *x = a + idx[t] * n;
            const int64_t *y = b + (rb == 1 ? 0 : t) * n;
            for (int64_t j = 0; j < n; j++) x[j] -= y[j];
        }
        return (int)status;
    }
    /* magnitudes of the rows touched, and the largest multiplicity of an index */
    int64_t mult = 0;
    int32_t *count = calloc((size_t)(rows > 0 ? rows : 1), sizeof(int32_t));
    if (!count) return HE_ERR_NOMEM;
    for (int64_t t = 0; t < nidx; t++) {
        int64_t r = idx[t];
        if (++count[r] > mult) mult = count[r];
        if (count[r] > 1) continue;
        const int64_t *x = a + r * n;
        for (int64_t j = 0; j < n; j++) {
            int64_t v = x[j] < 0 ? -x[j] : x[j];
            if (j < head) { if (v > mh) mh = v; } else if (v > mt) mt = v;
        }
    }
    free(count);
    stats[0] = mh; stats[1] = mt; stats[2] = mult;
    return HE_OK;
}

int vhe_encrypt(const int64_t *x, int64_t rows, int64_t m, int64_t k, const int64_t *t, int64_t w,
                int64_t noise, int64_t *data) {
    if (rows < 0 || m < 1 || k < 0 || w < 1 || noise < 0) return HE_ERR_ARGUMENT;
    int64_t n = m + k, span = 2 * noise + 1;
    for (int64_t r = 0; r < rows; r++) {
        int64_t *row = data + r * n;
        for (int64_t i = 0; i < m; i++) {
            int64_t e = row[i] % span;
            if (e < 0) e += span;  /* floor modulo, as numpy's % */
            i128 s = (i128)w * x[r * m + i] + (e - noise);
            for (int64_t j = 0; j < k; j++) s -= (i128)t[i * k + j] * row[m + j];
            if (s > INT64_MAX || s < -INT64_MAX) return HE_ERR_OVERFLOW;
            row[i] = (int64_t)s;
        }
    }
    return HE_OK;
}

int vhe_decrypt(const int64_t *c, int64_t rows, int64_t m, int64_t k, const int64_t *t, int64_t w,
                int64_t *x) {
    if (rows < 0 || m < 1 || k < 0 || w < 1) return HE_ERR_ARGUMENT;
    int64_t n = m + k;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t *row = c + r * n;
        for (int64_t i = 0; i < m; i++) {
            i128 s = row[i];
            for (int64_t j = 0; j < k; j++) s += (i128)t[i * k + j] * row[m + j];
            i128 q = vhe_round_div(s, w);
            if (q > INT64_MAX || q < -INT64_MAX) return HE_ERR_OVERFLOW;
            x[r * m + i] = (int64_t)q;
        }
    }
    return HE_OK;
}
