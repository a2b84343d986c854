/* Native kernels of the vhe scheme (Zhou-Wornell integer-vector HE, no modulus).
 *
 * Ciphertexts are batches of int64 rows of length n = m + k (m message slots, k key
 * columns). Every kernel accumulates in __int128 and refuses (HE_ERR_OVERFLOW) any
 * result whose magnitude exceeds the caller's `limit`, so nothing ever wraps. On an
 * error the output buffer holds unspecified values, except for vhe_scatter_add, which
 * restores its in-place target.
 *
 * "Rounded division" by div >= 1 means floor((x + floor(div / 2)) / div): the nearest
 * integer, ties rounded up. div = 1 leaves x unchanged.
 *
 * stats[0] / stats[1] receive the largest |entry| of the head columns (0 .. head-1) and
 * of the key columns (head .. n-1) of the rows written.
 *
 * Row broadcasting: an operand with 1 row is reused for every output row.
 */
#ifndef VHE_H
#define VHE_H
#include <stdint.h>
#include "he_status.h"

/* CDEF-BEGIN (declarations handed to cffi) */

/* out = a + sign * b, rows of a/b are ra/rb (each == rows or 1). */
int vhe_add(const int64_t *a, int64_t ra, const int64_t *b, int64_t rb, int64_t rows, int64_t n,
            int64_t head, int64_t sign, int64_t limit, int64_t *out, int64_t *stats);

/* out[r] = round(a[r] * p[r] / div); p has rp (rows or 1) entries. */
int vhe_scale(const int64_t *a, int64_t ra, const int64_t *p, int64_t rp, int64_t rows, int64_t n,
              int64_t head, int64_t div, int64_t limit, int64_t *out, int64_t *stats);

/* out[r] = round((hi[r] * 2^shift + lo[r]) / div): recombines a split key switch. */
int vhe_combine(const int64_t *hi, const int64_t *lo, int64_t rows, int64_t n, int64_t head,
                int64_t shift, int64_t div, int64_t limit, int64_t *out, int64_t *stats);

/* out[q] = round(sum_r w[q, r] * a[r] / div) for q < nq. */
int vhe_lincomb(const int64_t *w, int64_t nq, const int64_t *a, int64_t rows, int64_t n,
                int64_t head, int64_t div, int64_t limit, int64_t *out, int64_t *stats);

/* out (one row) = sum of a[idx[j]] for j < nidx, or of every row when idx is NULL. */
int vhe_gather_sum(const int64_t *a, int64_t rows, int64_t n, const int64_t *idx, int64_t nidx,
                   int64_t head, int64_t limit, int64_t *out, int64_t *stats);

/* In place: a[idx[j]] += b[j] (or b[0] when rb == 1). On overflow a is restored.
 * stats[2] receives the largest number of times one row index occurs. */
int vhe_scatter_add(int64_t *a, int64_t rows, int64_t n, const int64_t *idx, int64_t nidx,
                    const int64_t *b, int64_t rb, int64_t head, int64_t limit, int64_t *stats);

/* Compact tensor product. a: ra rows of length ma + k (ma == 1: a scalar ciphertext,
 * or ma == m), b: rb rows of length m + k. For each output row and slot i the (1+k)^2
 * products L[p] * R[q] with L = (a[i or 0], a[ma..]) and R = (b[i], b[m..]) are divided
 * by div with rounding and written at out[row, i*(1+k)^2 + p*(1+k) + q]. */
int vhe_tensor(const int64_t *a, int64_t ra, int64_t ma, const int64_t *b, int64_t rb, int64_t m,
               int64_t k, int64_t rows, int64_t div, int64_t limit, int64_t *out);

/* Key switch: out[r] = M * digits(c[r]), with M given transposed (mt: n*ell rows of
 * out_len entries, row j*ell + d belongs to digit d of entry j). Digits are signed,
 * base 2^digit_bits, in [-2^(digit_bits-1), 2^(digit_bits-1)). HE_ERR_RANGE if an entry
 * of c needs more than ell digits. stats[2] receives the largest sum of |digit| over one
 * input row (the key switch adds at most e_bound times that much noise to the row). */
int vhe_keyswitch(const int64_t *c, int64_t rows, int64_t n, const int64_t *mt, int64_t out_len,
                  int64_t digit_bits, int64_t ell, int64_t head, int64_t limit, int64_t *out,
                  int64_t *stats);

/* A ciphertext product in one call: the compact tensor of vhe_tensor (its tlen = m (1+k)^2
 * entries per row, each checked against limit) key-switched as by vhe_keyswitch with a key
 * of tlen * ell rows. stats as for vhe_keyswitch. */
int vhe_mul(const int64_t *a, int64_t ra, int64_t ma, const int64_t *b, int64_t rb, int64_t m, int64_t k,
            int64_t rows, int64_t div, const int64_t *mt, int64_t out_len, int64_t digit_bits, int64_t ell,
            int64_t head, int64_t limit, int64_t *out, int64_t *stats);

/* Secret-key encryption in place. On entry data (rows x (m+k)) holds uniform draws: its key
 * columns are kept as the ciphertext's key columns and its head entries u become the noise
 * (u mod (2 noise + 1)) - noise (floor modulo). On return
 * data[r, i] = w x[r, i] + noise_ri - sum_j t[i, j] data[r, m + j]. HE_ERR_OVERFLOW if an entry
 * would not fit in int64. */
int vhe_encrypt(const int64_t *x, int64_t rows, int64_t m, int64_t k, const int64_t *t, int64_t w,
                int64_t noise, int64_t *data);

/* Decryption: x[r, i] = round((c[r, i] + sum_j t[i, j] * c[r, m + j]) / w). */
int vhe_decrypt(const int64_t *c, int64_t rows, int64_t m, int64_t k, const int64_t *t, int64_t w,
                int64_t *x);

/* CDEF-END */
#endif
