/* Tensor products and key switching of the vhe scheme. See vhe.h for the contracts. */
#include <stdlib.h>
#include "vhe_internal.h"

static int tensor_args_bad(int64_t ra, int64_t ma, int64_t rb, int64_t m, int64_t k, int64_t rows, int64_t div) {
    return m < 1 || k < 0 || k > 64 || rows < 0 || div < 1 || !(ma == 1 || ma == m) ||
           !(ra == 1 || ra == rows) || !(rb == 1 || rb == rows);
}

/* One output row of the compact tensor (m * (1+k)^2 entries); nonzero on overflow. */
static int tensor_row(const int64_t *x, int64_t ma, const int64_t *y, int64_t m, int64_t k, int64_t div,
                      int64_t limit, int64_t *o) {
    int64_t left[65], right[65], unused = 0, blk = (1 + k) * (1 + k);
    for (int64_t j = 0; j < k; j++) { left[1 + j] = x[ma + j]; right[1 + j] = y[m + j]; }
    for (int64_t i = 0; i < m; i++) {
        left[0] = x[ma == 1 ? 0 : i];
        right[0] = y[i];
        for (int64_t p = 0; p <= k; p++)
            for (int64_t q = 0; q <= k; q++) {
                i128 v = vhe_round_div((i128)left[p] * right[q], div);
                if (vhe_store(v, limit, o + i * blk + p * (1 + k) + q, &unused)) return 1;
            }
    }
    return 0;
}

int vhe_tensor(const int64_t *a, int64_t ra, int64_t ma, const int64_t *b, int64_t rb, int64_t m,
               int64_t k, int64_t rows, int64_t div, int64_t limit, int64_t *out) {
    if (tensor_args_bad(ra, ma, rb, m, k, rows, div)) return HE_ERR_ARGUMENT;
    int64_t na = ma + k, nb = m + k, blk = (1 + k) * (1 + k);
    for (int64_t r = 0; r < rows; r++) {
        const int64_t *x = a + (ra == 1 ? 0 : r) * na, *y = b + (rb == 1 ? 0 : r) * nb;
        if (tensor_row(x, ma, y, m, k, div, limit, out + r * m * blk)) return HE_ERR_OVERFLOW;
    }
    return HE_OK;
}

/* acc (out_len entries, zeroed here) = M * digits(x) for one row x of n entries; *l1 receives
 * the sum of |digit| over the row. HE_ERR_RANGE if an entry needs more than ell digits. */
static int switch_row(const int64_t *x, int64_t n, const int64_t *mt, int64_t out_len, int64_t digit_bits,
                      int64_t ell, i128 *acc, int64_t *l1) {
    const int64_t half = (int64_t)1 << (digit_bits - 1), mask = ((int64_t)1 << digit_bits) - 1;
    int64_t sum = 0;
    for (int64_t o = 0; o < out_len; o++) acc[o] = 0;
    for (int64_t j = 0; j < n; j++) {
        i128 rest = x[j];
        const int64_t *col = mt + j * ell * out_len;
        for (int64_t d = 0; d < ell && rest != 0; d++, col += out_len) {
            /* signed digit in [-half, half): (rest + half) mod 2^b - half */
            int64_t digit = (int64_t)(((rest + half) & mask)) - half;
            rest = (rest - digit) >> digit_bits;  /* exact: rest - digit is a multiple of 2^b */
            if (!digit) continue;
            sum += digit < 0 ? -digit : digit;
            for (int64_t o = 0; o < out_len; o++) acc[o] += (i128)col[o] * digit;
        }
        if (rest != 0) return HE_ERR_RANGE;
    }
    *l1 = sum;
    return HE_OK;
}

/* Store one switched row, tracking head / key-column maxima; nonzero on overflow. */
static int store_row(const i128 *acc, int64_t out_len, int64_t head, int64_t limit, int64_t *out, int64_t *mh,
                     int64_t *mt) {
    for (int64_t o = 0; o < out_len; o++)
        if (vhe_store(acc[o], limit, out + o, o < head ? mh : mt)) return 1;
    return 0;
}

static int switch_args_bad(int64_t n, int64_t out_len, int64_t digit_bits, int64_t ell, int64_t head) {
    return n < 1 || out_len < 1 || digit_bits < 2 || digit_bits > 20 || ell < 1 || head < 0 || head > out_len;
}

int vhe_keyswitch(const int64_t *c, int64_t rows, int64_t n, const int64_t *mt, int64_t out_len,
                  int64_t digit_bits, int64_t ell, int64_t head, int64_t limit, int64_t *out,
                  int64_t *stats) {
    if (rows < 0 || switch_args_bad(n, out_len, digit_bits, ell, head)) return HE_ERR_ARGUMENT;
    i128 *acc = malloc((size_t)out_len * sizeof(i128));
    if (!acc) return HE_ERR_NOMEM;
    int64_t mh = 0, mtl = 0, l1max = 0, l1 = 0;
    int status = HE_OK;
    for (int64_t r = 0; r < rows && status == HE_OK; r++) {
        status = switch_row(c + r * n, n, mt, out_len, digit_bits, ell, acc, &l1);
        if (status == HE_OK && store_row(acc, out_len, head, limit, out + r * out_len, &mh, &mtl))
            status = HE_ERR_OVERFLOW;
        if (l1 > l1max) l1max = l1;
    }
    free(acc);
    stats[0] = mh; stats[1] = mtl; stats[2] = l1max;
    return status;
}

int vhe_mul(const int64_t *a, int64_t ra, int64_t ma, const int64_t *b, int64_t rb, int64_t m, int64_t k,
            int64_t rows, int64_t div, const int64_t *mt, int64_t out_len, int64_t digit_bits, int64_t ell,
            int64_t head, int64_t limit, int64_t *out, int64_t *stats) {
    if (tensor_args_bad(ra, ma, rb, m, k, rows, div) || switch_args_bad(m, out_len, digit_bits, ell, head))
        return HE_ERR_ARGUMENT;
    int64_t na = ma + k, nb = m + k, tlen = m * (1 + k) * (1 + k);
    /* one allocation: the tensor row, then the accumulator (i128-aligned: tlen int64 first, padded) */
    size_t tbytes = ((size_t)tlen * sizeof(int64_t) + sizeof(i128) - 1) / sizeof(i128) * sizeof(i128);
    unsigned char *scratch = malloc(tbytes + (size_t)out_len * sizeof(i128));
    if (!scratch) return HE_ERR_NOMEM;
    int64_t *t = (int64_t *)scratch;
    i128 *acc = (i128 *)(scratch + tbytes);
    int64_t mh = 0, mtl = 0, l1max = 0, l1 = 0;
    int status = HE_OK;
    for (int64_t r = 0; r < rows && status == HE_OK; r++) {
        const int64_t *x = a + (ra == 1 ? 0 : r) * na, *y = b + (rb == 1 ? 0 : r) * nb;
        if (tensor_row(x, ma, y, m, k, div, limit, t)) { status = HE_ERR_OVERFLOW; break; }
        status = switch_row(t, tlen, mt, out_len, digit_bits, ell, acc, &l1);
        if (status == HE_OK && store_row(acc, out_len, head, limit, out + r * out_len, &mh, &mtl))
            status = HE_ERR_OVERFLOW;
        if (l1 > l1max) l1max = l1;
    }
    free(scratch);
    stats[0] = mh; stats[1] = mtl; stats[2] = l1max;
    return status;
}
