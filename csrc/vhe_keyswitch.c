/* Tensor products and key switching of the vhe scheme. See vhe.h for the contracts. */
#include <stdlib.h>
#include "vhe_internal.h"

int vhe_tensor(const int64_t *a, int64_t ra, int64_t ma, const int64_t *b, int64_t rb, int64_t m,
               int64_t k, int64_t rows, int64_t div, int64_t limit, int64_t *out) {
    if (m < 1 || k < 0 || k > 64 || rows < 0 || div < 1 || !(ma == 1 || ma == m) ||
        !(ra == 1 || ra == rows) || !(rb == 1 || rb == rows))
        return HE_ERR_ARGUMENT;
    int64_t na = ma + k, nb = m + k, blk = (1 + k) * (1 + k), unused = 0;
    int64_t left[65], right[65];
    for (int64_t r = 0; r < rows; r++) {
        const int64_t *x = a + (ra == 1 ? 0 : r) * na, *y = b + (rb == 1 ? 0 : r) * nb;
        int64_t *o = out + r * m * blk;
        for (int64_t j = 0; j < k; j++) { left[1 + j] = x[ma + j]; right[1 + j] = y[m + j]; }
        for (int64_t i = 0; i < m; i++) {
            left[0] = x[ma == 1 ? 0 : i];
            right[0] = y[i];
            for (int64_t p = 0; p <= k; p++)
                for (int64_t q = 0; q <= k; q++) {
                    i128 v = vhe_round_div((i128)left[p] * right[q], div);
                    if (vhe_store(v, limit, o + i * blk + p * (1 + k) + q, &unused)) return HE_ERR_OVERFLOW;
                }
        }
    }
    return HE_OK;
}

int vhe_keyswitch(const int64_t *c, int64_t rows, int64_t n, const int64_t *mt, int64_t out_len,
                  int64_t digit_bits, int64_t ell, int64_t head, int64_t limit, int64_t *out,
                  int64_t *stats) {
    if (rows < 0 || n < 1 || out_len < 1 || digit_bits < 2 || digit_bits > 20 || ell < 1 || head < 0 ||
        head > out_len)
        return HE_ERR_ARGUMENT;
    i128 *acc = malloc((size_t)out_len * sizeof(i128));
    if (!acc) return HE_ERR_NOMEM;
    const int64_t half = (int64_t)1 << (digit_bits - 1), mask = ((int64_t)1 << digit_bits) - 1;
    int64_t mh = 0, mtl = 0;
    int status = HE_OK;
    for (int64_t r = 0; r < rows && status == HE_OK; r++) {
        for (int64_t o = 0; o < out_len; o++) acc[o] = 0;
        const int64_t *x = c + r * n;
        for (int64_t j = 0; j < n && status == HE_OK; j++) {
            i128 rest = x[j];
            const int64_t *col = mt + j * ell * out_len;
            for (int64_t d = 0; d < ell; d++, col += out_len) {
                /* signed digit in [-half, half): (rest + half) mod 2^b - half */
                int64_t digit = (int64_t)(((rest + half) & mask)) - half;
                rest = (rest - digit) >> digit_bits;  /* exact: rest - digit is a multiple of 2^b */
                if (!digit) continue;
                for (int64_t o = 0; o < out_len; o++) acc[o] += (i128)col[o] * digit;
            }
            if (rest != 0) status = HE_ERR_RANGE;
        }
        for (int64_t o = 0; o < out_len && status == HE_OK; o++)
            if (vhe_store(acc[o], limit, out + r * out_len + o, o < head ? &mh : &mtl)) status = HE_ERR_OVERFLOW;
    }
    free(acc);
    stats[0] = mh; stats[1] = mtl;
    return status;
}
