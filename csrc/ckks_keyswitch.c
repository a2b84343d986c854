/* Fast base conversion and hybrid (dnum-digit, special-prime) key switching.
 *
 * Key switching of d under key k = (b_j, a_j)_j over the basis Q_l * P:
 *   1. d to coefficient form; split its limbs into digits of alpha primes;
 *   2. mod-up each digit to the whole basis by fast base conversion, back to NTT form;
 *   3. accumulate sum_j digit_j * (b_j, a_j) in 128-bit lanes (reduced once);
 *   4. mod-down by P: subtract the base-converted P part and multiply by P^-1.
 */
#include <stdlib.h>
#include <string.h>
#include "ckks.h"

/* y_i[k] = x_i[k] * inv_hat_i mod q_i, for the nfrom limbs of x. */
static void scale_by_inv_hat(const ckks_modulus *from, size_t nfrom, size_t n, const uint64_t *x,
                             const uint64_t *inv_hat, uint64_t *y) {
    for (size_t i = 0; i < nfrom; i++) {
        const uint64_t q = from[i].q, w = inv_hat[i], ws = ckks_shoup(w, q);
        const uint64_t *src = x + i * n;
        uint64_t *dst = y + i * n;
        for (size_t k = 0; k < n; k++) {
            uint64_t r = ckks_mul_shoup_lazy(src[k], w, ws, q);
            dst[k] = r >= q ? r - q : r;
        }
    }
}

/* out[k] = sum_i y_i[k] * hat[i * stride] mod mt (each product < 2^122, so up to 64 terms fit). */
static void conv_limb(const uint64_t *y, size_t nfrom, size_t n, const uint64_t *hat, size_t stride,
                      const ckks_modulus *mt, ckks_u128 *tmp, uint64_t *out) {
    memset(tmp, 0, n * sizeof(ckks_u128));
    for (size_t i = 0; i < nfrom; i++) {
        const uint64_t h = hat[i * stride];
        const uint64_t *src = y + i * n;
        for (size_t k = 0; k < n; k++) tmp[k] += (ckks_u128)src[k] * h;
    }
    for (size_t k = 0; k < n; k++) out[k] = ckks_reduce128(tmp[k], mt);
}

static int hats_in_range(const ckks_modulus *from, size_t nfrom, const ckks_modulus *to, size_t nto,
                         const uint64_t *inv_hat, const uint64_t *hat) {
    for (size_t i = 0; i < nfrom; i++) {
        if (inv_hat[i] >= from[i].q) return 0;
        for (size_t t = 0; t < nto; t++)
            if (hat[i * nto + t] >= to[t].q) return 0;
    }
    return 1;
}

int ckks_base_conv(const ckks_modulus *from, size_t nfrom, const ckks_modulus *to, size_t nto, size_t n,
                   const uint64_t *x, const uint64_t *inv_hat, const uint64_t *hat_mod, uint64_t *out) {
    if (!from || !to || !x || !inv_hat || !hat_mod || !out || n == 0 || nfrom == 0 || nfrom > 64)
        return HE_ERR_ARGUMENT;
    if (!hats_in_range(from, nfrom, to, nto, inv_hat, hat_mod)) return HE_ERR_RANGE;
    uint64_t *y = malloc(nfrom * n * sizeof(uint64_t));
    ckks_u128 *tmp = malloc(n * sizeof(ckks_u128));
    if (!y || !tmp) {
        free(y);
        free(tmp);
        return HE_ERR_NOMEM;
    }
    scale_by_inv_hat(from, nfrom, n, x, inv_hat, y);
    for (size_t t = 0; t < nto; t++) conv_limb(y, nfrom, n, hat_mod + t, nto, to + t, tmp, out + t * n);
    free(y);
    free(tmp);
    return HE_OK;
}

/* Step 4 for one part: red (ntot limbs, NTT form, reduced) -> out (nq limbs). */
static void mod_down(const ckks_modulus *m, size_t nq, size_t np, size_t n, uint64_t *red,
                     const uint64_t *conv_down, uint64_t *y, ckks_u128 *tmp, uint64_t *conv, uint64_t *out) {
    const uint64_t *inv_hat = conv_down, *hat = conv_down + np, *pinv = conv_down + np + np * nq;
    ckks_intt(m + nq, np, n, red + nq * n);
    scale_by_inv_hat(m + nq, np, n, red + nq * n, inv_hat, y);
    for (size_t t = 0; t < nq; t++) {
        const uint64_t q = m[t].q, w = pinv[t], ws = ckks_shoup(w, q);
        conv_limb(y, np, n, hat + t, nq, m + t, tmp, conv);
        ckks_ntt(m + t, 1, n, conv);
        const uint64_t *c = red + t * n;
        uint64_t *o = out + t * n;
        for (size_t k = 0; k < n; k++) {
            uint64_t r = ckks_mul_shoup_lazy(c[k] + q - conv[k], w, ws, q);
            o[k] = r >= q ? r - q : r;
        }
    }
}

static int keyswitch_args_ok(const ckks_modulus *m, size_t nq, size_t np, size_t n, const uint64_t *d,
                             const uint64_t *key, size_t dnum, size_t ltot, size_t alpha,
                             const uint64_t *conv_up, const uint64_t *conv_down, const uint64_t *out) {
    if (!m || !d || !key || !conv_up || !conv_down || !out || n == 0) return 0;
    if (nq == 0 || np == 0 || alpha == 0 || np > 64 || alpha > 64) return 0;
    size_t beta = (nq + alpha - 1) / alpha;
    return beta <= dnum && beta <= 32 && nq + np <= ltot;
}

int ckks_keyswitch(const ckks_modulus *m, size_t nq, size_t np, size_t n, const uint64_t *d,
                   const uint64_t *key, size_t dnum, size_t ltot, size_t alpha,
                   const uint64_t *conv_up, const uint64_t *conv_down, uint64_t *out) {
    if (!keyswitch_args_ok(m, nq, np, n, d, key, dnum, ltot, alpha, conv_up, conv_down, out))
        return HE_ERR_ARGUMENT;
    const size_t ntot = nq + np, beta = (nq + alpha - 1) / alpha;
    uint64_t *dc = malloc(nq * n * sizeof(uint64_t));
    uint64_t *ext = malloc(ntot * n * sizeof(uint64_t));
    uint64_t *y = malloc((alpha > np ? alpha : np) * n * sizeof(uint64_t));
    ckks_u128 *acc = calloc(2 * ntot * n, sizeof(ckks_u128));
    ckks_u128 *tmp = malloc(n * sizeof(ckks_u128));
    int status = HE_OK;
    if (!dc || !ext || !y || !acc || !tmp) {
        status = HE_ERR_NOMEM;
        goto done;
    }
    memcpy(dc, d, nq * n * sizeof(uint64_t));
    ckks_intt(m, nq, n, dc);
    const uint64_t *cu = conv_up;
    for (size_t j = 0; j < beta; j++) {
        const size_t lo = j * alpha, dj = (nq - lo < alpha) ? nq - lo : alpha;
        const uint64_t *inv_hat = cu, *hat = cu + dj;
        cu += dj + dj * ntot;
        scale_by_inv_hat(m + lo, dj, n, dc + lo * n, inv_hat, y);
        for (size_t t = 0; t < ntot; t++) {
            uint64_t *e = ext + t * n;
            if (t >= lo && t < lo + dj) {
                memcpy(e, d + t * n, n * sizeof(uint64_t));  /* own limbs: already in NTT form */
            } else {
                conv_limb(y, dj, n, hat + t, ntot, m + t, tmp, e);
                ckks_ntt(m + t, 1, n, e);
            }
        }
        const uint64_t *kb = key + j * 2 * ltot * n, *ka = kb + ltot * n;
        for (size_t t = 0; t < ntot; t++) {
            const size_t kl = t < nq ? t : ltot - np + (t - nq);
            const uint64_t *e = ext + t * n, *b = kb + kl * n, *a = ka + kl * n;
            ckks_u128 *a0 = acc + t * n, *a1 = acc + (ntot + t) * n;
            for (size_t k = 0; k < n; k++) {
                a0[k] += (ckks_u128)e[k] * b[k];
                a1[k] += (ckks_u128)e[k] * a[k];
            }
        }
    }
    for (size_t part = 0; part < 2; part++) {
        const ckks_u128 *src = acc + part * ntot * n;
        for (size_t t = 0; t < ntot; t++)
            for (size_t k = 0; k < n; k++) ext[t * n + k] = ckks_reduce128(src[t * n + k], m + t);
        mod_down(m, nq, np, n, ext, conv_down, y, tmp, dc, out + part * nq * n);
    }
done:
    free(dc);
    free(ext);
    free(y);
    free(acc);
    free(tmp);
    return status;
}
