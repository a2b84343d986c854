/* Fast base conversion and hybrid (dnum-digit, special-prime) key switching.
 *
 * Key switching of d under key k = (b_j, a_j)_j over the basis Q_l * P:
 *   1. d to coefficient form; split its limbs into digits of alpha primes;
 *   2. mod-up each digit to the whole basis by fast base conversion, back to NTT form;
 *   3. accumulate sum_j digit_j * (b_j, a_j) in 128-bit lanes (reduced once);
 *   4. mod-down by P: subtract the base-converted P part and multiply by P^-1.
 *
 * Scratch is the caller's and plain uint64_t; 128-bit sums live in locals (a register
 * per coefficient in the base conversion, an L1 block in the inner product).
 */
#include <string.h>
#include "ckks_internal.h"

/* y_i[k] = x_i[k] * inv_hat_i mod q_i, for the nfrom limbs of x. */
CKKS_HOT static void scale_by_inv_hat(const ckks_modulus *from, size_t nfrom, size_t n, const uint64_t *x,
                             const uint64_t *inv_hat, uint64_t *y) {
    for (size_t i = 0; i < nfrom; i++) {
        if (inv_hat[i] == 1) {
            if (y != x) memcpy(y + i * n, x + i * n, n * sizeof(uint64_t));
            continue;
        }
        const uint64_t q = from[i].q, w = inv_hat[i], ws = ckks_shoup(w, q);
        const uint64_t *src = x + i * n;
        uint64_t *dst = y + i * n;
        for (size_t k = 0; k < n; k++) {
            uint64_t r = ckks_mul_shoup_lazy(src[k], w, ws, q);
            dst[k] = r >= q ? r - q : r;
        }
    }
}

/* out[k] = sum_i y_i[k] * hat[i * stride] mod mt (each product < 2^122, so up to 64 terms fit).
 * A one-prime source (nfrom == 1, hat 1) given its prime src_q != 0 is converted centred:
 * x > src_q / 2 stands for x - src_q. Uncentred digits average src_q / 2, a constant
 * times the all-ones polynomial, whose slot values reach ~N/pi: with 21-bit scales and a
 * 40-bit q_0 digit (or the floor of a mod-down) that bias dominated the rotation error. */
CKKS_HOT static void conv_limb(const uint64_t *y, size_t nfrom, size_t n, const uint64_t *hat, size_t stride,
                               const ckks_modulus *mt, uint64_t *out, uint64_t src_q) {
    if (nfrom == 1 && hat[0] == 1) {  /* one-prime digit (the usual dnum = L + 1): plain reduction */
        const uint64_t p = mt->q;
        for (size_t k = 0; k < n; k++) {
            uint64_t r = y[k] >= p ? y[k] - p : y[k];  /* branch-free when the source prime is < 2p */
            out[k] = r < p ? r : ckks_reduce128(r, mt);  /* predictable: always or never taken per prime */
        }
        if (src_q) {
            const uint64_t half = src_q >> 1, sq = src_q % p;
            for (size_t k = 0; k < n; k++) {
                const uint64_t r = out[k];
                const uint64_t c = r >= sq ? r - sq : r + p - sq;
                out[k] = y[k] > half ? c : r;
            }
        }
        return;
    }
    uint64_t h[64];
    for (size_t i = 0; i < nfrom; i++) h[i] = hat[i * stride];
    for (size_t k = 0; k < n; k++) {  /* nfrom sequential streams; the sum stays in registers */
        ckks_u128 acc = 0;
        for (size_t i = 0; i < nfrom; i++) acc += (ckks_u128)y[i * n + k] * h[i];
        out[k] = ckks_reduce128(acc, mt);
    }
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

/* a * b words, or SIZE_MAX when that does not fit (no buffer can then be large enough). */
static size_t words_of(size_t a, size_t b) {
    return (b != 0 && a > SIZE_MAX / b) ? SIZE_MAX : a * b;
}

size_t ckks_base_conv_scratch(size_t nfrom, size_t n) {
    return words_of(nfrom, n);  /* y: x times the inverse hats */
}

int ckks_base_conv(const ckks_modulus *from, size_t nfrom, const ckks_modulus *to, size_t nto, size_t n,
                   const uint64_t *x, const uint64_t *inv_hat, const uint64_t *hat_mod, uint64_t *out,
                   uint64_t *scratch, size_t scratch_words) {
    if (!from || !to || !x || !inv_hat || !hat_mod || !out || !scratch) return HE_ERR_NULL;
    if (n == 0 || nfrom == 0 || nfrom > 64) return HE_ERR_ARGUMENT;
    if (!ckks_dims_ok(from, nfrom, n) || !ckks_dims_ok(to, nto, n)) return HE_ERR_DIMENSION;
    if (!ckks_scratch_ok(scratch, scratch_words, ckks_base_conv_scratch(nfrom, n))) return HE_ERR_SCRATCH;
    if (!hats_in_range(from, nfrom, to, nto, inv_hat, hat_mod)) return HE_ERR_RANGE;
    scale_by_inv_hat(from, nfrom, n, x, inv_hat, scratch);
    for (size_t t = 0; t < nto; t++) conv_limb(scratch, nfrom, n, hat_mod + t, nto, to + t, out + t * n, 0);
    return HE_OK;
}

/* Step 4 for one part: red (ntot limbs, NTT form, reduced) -> out (nq limbs). */
CKKS_HOT static void mod_down(const ckks_modulus *m, size_t nq, size_t np, size_t n, uint64_t *red,
                              const uint64_t *conv_down, uint64_t *y, uint64_t *conv, uint64_t *out) {
    const uint64_t *inv_hat = conv_down, *hat = conv_down + np, *pinv = conv_down + np + np * nq;
    for (size_t j = 0; j < np; j++) ckks_intt_limb(m + nq + j, n, red + (nq + j) * n);
    scale_by_inv_hat(m + nq, np, n, red + nq * n, inv_hat, y);
    for (size_t t = 0; t < nq; t++) {
        const uint64_t q = m[t].q, w = pinv[t], ws = ckks_shoup(w, q);
        conv_limb(y, np, n, hat + t, nq, m + t, conv, np == 1 ? m[nq].q : 0);  /* rounds, not floors */
        ckks_ntt_limb(m + t, n, conv);
        const uint64_t *c = red + t * n;
        uint64_t *o = out + t * n;
        for (size_t k = 0; k < n; k++) {
            uint64_t r = ckks_mul_shoup_lazy(c[k] + q - conv[k], w, ws, q);
            o[k] = r >= q ? r - q : r;
        }
    }
}

/* The size checks of the key-switching entry points (pointers are checked by each). */
static int keyswitch_sizes(const ckks_modulus *m, size_t nq, size_t np, size_t n, size_t beta, size_t dnum,
                           size_t ltot) {
    if (n == 0 || nq == 0 || np == 0 || np > 64 || nq > 4096 || beta == 0 || beta > 32 || beta > dnum ||
        nq + np > ltot)
        return HE_ERR_ARGUMENT;
    return ckks_dims_ok(m, nq + np, n) ? HE_OK : HE_ERR_DIMENSION;
}

static size_t beta_of(size_t nq, size_t alpha) {
    return alpha ? nq / alpha + (nq % alpha != 0) : 0;
}

size_t ckks_keyswitch_scratch(size_t nq, size_t np, size_t n, size_t alpha) {
    /* y (nq limbs), red (2 * ntot), the beta mod-up limbs of one target prime, and the
     * mod-down lanes (np + 1). Sizes are bounded by keyswitch_sizes, so only n can overflow. */
    if (nq > 4096 || np > 64 || alpha == 0) return SIZE_MAX;
    return words_of(n, nq + 2 * (nq + np) + beta_of(nq, alpha) + np + 1);
}

#define KS_BLOCK 256  /* coefficients per accumulation block: 2 * 256 u128 lanes stay in L1 */

/* Limb t of sum_j modup(digit_j) * key_j, for both key parts, reduced into r0 / r1.
 * The beta mod-up limbs are formed (and NTT'd) first; the dot product over digits then
 * runs block by block with its 128-bit accumulators in L1, so every input is read once. */
CKKS_HOT static void accumulate_limb(const ckks_modulus *m, size_t nq, size_t np, size_t n, size_t t,
                                     const uint64_t *d, const uint64_t *y, const uint64_t *key, size_t ltot,
                                     size_t alpha, const uint64_t *conv_up, uint64_t *ext, uint64_t *r0,
                                     uint64_t *r1) {
    const size_t ntot = nq + np, beta = (nq + alpha - 1) / alpha;
    const size_t kl = t < nq ? t : ltot - np + (t - nq);
    const uint64_t *src[32], *kb[32], *ka[32];
    const uint64_t *cu = conv_up;
    for (size_t j = 0; j < beta; j++) {
        const size_t lo = j * alpha, dj = (nq - lo < alpha) ? nq - lo : alpha;
        const uint64_t *hat = cu + dj;
        cu += dj + dj * ntot;
        if (t >= lo && t < lo + dj) {
            src[j] = d + t * n;  /* own limb: already in NTT form */
        } else {
            uint64_t *e = ext + j * n;
            conv_limb(y + lo * n, dj, n, hat + t, ntot, m + t, e, dj == 1 ? m[lo].q : 0);
            ckks_ntt_limb(m + t, n, e);
            src[j] = e;
        }
        kb[j] = key + (j * 2 * ltot + kl) * n;
        ka[j] = key + ((j * 2 + 1) * ltot + kl) * n;
    }
    ckks_u128 a0[KS_BLOCK], a1[KS_BLOCK];
    for (size_t k0 = 0; k0 < n; k0 += KS_BLOCK) {
        const size_t len = n - k0 < KS_BLOCK ? n - k0 : KS_BLOCK;
        memset(a0, 0, sizeof a0);
        memset(a1, 0, sizeof a1);
        for (size_t j = 0; j < beta; j++) {
            const uint64_t *e = src[j] + k0, *b = kb[j] + k0, *a = ka[j] + k0;
            for (size_t k = 0; k < len; k++) {
                a0[k] += (ckks_u128)e[k] * b[k];
                a1[k] += (ckks_u128)e[k] * a[k];
            }
        }
        for (size_t k = 0; k < len; k++) {
            r0[k0 + k] = ckks_reduce128(a0[k], m + t);
            r1[k0 + k] = ckks_reduce128(a1[k], m + t);
        }
    }
}

int ckks_keyswitch(const ckks_modulus *m, size_t nq, size_t np, size_t n, const uint64_t *d,
                   const uint64_t *key, size_t dnum, size_t ltot, size_t alpha,
                   const uint64_t *conv_up, const uint64_t *conv_down, uint64_t *out,
                   uint64_t *scratch, size_t scratch_words) {
    if (!m || !d || !key || !conv_up || !conv_down || !out || !scratch) return HE_ERR_NULL;
    if (alpha == 0 || alpha > 64) return HE_ERR_ARGUMENT;
    const size_t ntot = nq + np, beta = beta_of(nq, alpha);
    int status = keyswitch_sizes(m, nq, np, n, beta, dnum, ltot);
    if (status) return status;
    if (!ckks_scratch_ok(scratch, scratch_words, ckks_keyswitch_scratch(nq, np, n, alpha))) return HE_ERR_SCRATCH;
    uint64_t *y = scratch;                  /* nq limbs: d in coefficient form times inverse hats */
    uint64_t *red = y + nq * n;             /* 2 * ntot limbs: the two accumulated parts */
    uint64_t *ext = red + 2 * ntot * n;     /* beta mod-up limbs */
    uint64_t *yp = ext + beta * n;          /* np limbs for the mod-down conversion */
    uint64_t *conv = yp + np * n;           /* one limb */
    memcpy(y, d, nq * n * sizeof(uint64_t));
    for (size_t l = 0; l < nq; l++) ckks_intt_limb(m + l, n, y + l * n);
    const uint64_t *cu = conv_up;
    for (size_t j = 0; j < beta; j++) {
        const size_t lo = j * alpha, dj = (nq - lo < alpha) ? nq - lo : alpha;
        scale_by_inv_hat(m + lo, dj, n, y + lo * n, cu, y + lo * n);
        cu += dj + dj * ntot;
    }
    for (size_t t = 0; t < ntot; t++)
        accumulate_limb(m, nq, np, n, t, d, y, key, ltot, alpha, conv_up, ext, red + t * n, red + (ntot + t) * n);
    for (size_t part = 0; part < 2; part++)
        mod_down(m, nq, np, n, red + part * ntot * n, conv_down, yp, conv, out + part * nq * n);
    return HE_OK;
}

/* ------------------------------------------------------------------ hoisted key switching
 * Many rotations of one ciphertext share its decomposition: ckks_modup computes the
 * mod-up digits of d once; ckks_ks_dot then finishes one key switch of the permuted d
 * (a Galois automorphism in NTT form permutes the digits' limbs the same way on every
 * prime), so each further rotation skips the inverse NTT, the base conversion and the
 * forward NTTs of step 2. */

size_t ckks_modup_scratch(size_t nq, size_t n) {
    return words_of(n, nq);  /* y: nq limbs */
}

int ckks_modup(const ckks_modulus *m, size_t nq, size_t np, size_t n, const uint64_t *d, size_t alpha,
               const uint64_t *conv_up, uint64_t *ext, uint64_t *scratch, size_t scratch_words) {
    if (!m || !d || !conv_up || !ext || !scratch) return HE_ERR_NULL;
    if (alpha == 0 || alpha > 64) return HE_ERR_ARGUMENT;
    const size_t ntot = nq + np, beta = beta_of(nq, alpha);
    int status = keyswitch_sizes(m, nq, np, n, beta, beta, ntot);
    if (status) return status;
    if (!ckks_scratch_ok(scratch, scratch_words, ckks_modup_scratch(nq, n))) return HE_ERR_SCRATCH;
    uint64_t *y = scratch;
    memcpy(y, d, nq * n * sizeof(uint64_t));
    for (size_t l = 0; l < nq; l++) ckks_intt_limb(m + l, n, y + l * n);
    const uint64_t *cu = conv_up;
    for (size_t j = 0; j < beta; j++) {
        const size_t lo = j * alpha, dj = (nq - lo < alpha) ? nq - lo : alpha;
        const uint64_t *hat = cu + dj;
        scale_by_inv_hat(m + lo, dj, n, y + lo * n, cu, y + lo * n);
        cu += dj + dj * ntot;
        for (size_t t = 0; t < ntot; t++) {
            uint64_t *e = ext + (j * ntot + t) * n;
            if (t >= lo && t < lo + dj) {  /* own limb: already in NTT form */
                memcpy(e, d + t * n, n * sizeof(uint64_t));
            } else {
                conv_limb(y + lo * n, dj, n, hat + t, ntot, m + t, e, dj == 1 ? m[lo].q : 0);
                ckks_ntt_limb(m + t, n, e);
            }
        }
    }
    return HE_OK;
}

size_t ckks_ks_dot_scratch(size_t nq, size_t np, size_t n) {
    if (nq > 4096 || np > 64) return SIZE_MAX;
    return words_of(n, 2 * (nq + np) + np + 1);  /* red (2 * ntot), mod-down lanes */
}

/* Limb t of both key parts: sum over the beta digits of ext (permuted by perm) times the key. */
CKKS_HOT static void dot_limb(const ckks_modulus *mt, size_t n, const uint64_t *ext, size_t ext_stride, size_t beta,
                              const uint32_t *perm, const uint64_t *key, size_t key_stride, uint64_t *r0,
                              uint64_t *r1) {
    ckks_u128 a0[KS_BLOCK], a1[KS_BLOCK];
    for (size_t k0 = 0; k0 < n; k0 += KS_BLOCK) {
        const size_t len = n - k0 < KS_BLOCK ? n - k0 : KS_BLOCK;
        memset(a0, 0, sizeof a0);
        memset(a1, 0, sizeof a1);
        for (size_t j = 0; j < beta; j++) {
            const uint64_t *e = ext + j * ext_stride;
            const uint64_t *b = key + 2 * j * key_stride + k0, *a = key + (2 * j + 1) * key_stride + k0;
            for (size_t k = 0; k < len; k++) {
                const uint64_t v = e[perm ? perm[k0 + k] : k0 + k];
                a0[k] += (ckks_u128)v * b[k];
                a1[k] += (ckks_u128)v * a[k];
            }
        }
        for (size_t k = 0; k < len; k++) {
            r0[k0 + k] = ckks_reduce128(a0[k], mt);
            r1[k0 + k] = ckks_reduce128(a1[k], mt);
        }
    }
}

int ckks_ks_dot(const ckks_modulus *m, size_t nq, size_t np, size_t n, const uint64_t *ext, size_t beta,
                const uint32_t *perm, const uint64_t *key, size_t dnum, size_t ltot,
                const uint64_t *conv_down, uint64_t *out, uint64_t *scratch, size_t scratch_words) {
    if (!m || !ext || !key || !conv_down || !out || !scratch) return HE_ERR_NULL;
    int status = keyswitch_sizes(m, nq, np, n, beta, dnum, ltot);
    if (status) return status;
    if (!ckks_scratch_ok(scratch, scratch_words, ckks_ks_dot_scratch(nq, np, n))) return HE_ERR_SCRATCH;
    if (perm)
        for (size_t k = 0; k < n; k++)
            if (perm[k] >= n) return HE_ERR_RANGE;
    const size_t ntot = nq + np;
    uint64_t *red = scratch;
    uint64_t *yp = red + 2 * ntot * n;
    uint64_t *conv = yp + np * n;
    for (size_t t = 0; t < ntot; t++) {
        const size_t kl = t < nq ? t : ltot - np + (t - nq);
        dot_limb(m + t, n, ext + t * n, ntot * n, beta, perm, key + kl * n, ltot * n, red + t * n,
                 red + (ntot + t) * n);
    }
    for (size_t part = 0; part < 2; part++)
        mod_down(m, nq, np, n, red + part * ntot * n, conv_down, yp, conv, out + part * nq * n);
    return HE_OK;
}
