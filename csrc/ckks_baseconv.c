/* Fast base conversion (the kernels shared by ckks_base_conv and key switching's mod-up
 * and mod-down): x over the primes q_i to any prime t as sum_i [x_i (Q/q_i)^-1]_{q_i} (Q/q_i)
 * mod t, which is x + u Q for an overflow count u in [0, nfrom); one-prime sources and the
 * mod-down are converted centred (see ckks_conv_limb and ckks_round_overflow).
 *
 * Threads: ckks_base_conv is two jobs, over source limbs then target limbs, each item
 * writing only its own limb.
 */
#include <string.h>
#include "ckks_internal.h"
#include "pool.h"

/* y_i[k] = x_i[k] * inv_hat_i mod q_i, for the nfrom limbs of x. */
CKKS_HOT void ckks_scale_by_inv_hat(const ckks_modulus *from, size_t nfrom, size_t n, const uint64_t *x,
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
 * 40-bit q_0 digit (or the floor of a mod-down) that bias dominated the rotation error.
 * A several-prime source is centred by its overflow counts v (see ckks_round_overflow): out
 * also gets v[k] * neg_src, neg_src = -(source product) mod mt (v[k] <= nfrom). */
CKKS_HOT void ckks_conv_limb(const uint64_t *y, size_t nfrom, size_t n, const uint64_t *hat, size_t stride,
                             const ckks_modulus *mt, uint64_t *out, uint64_t src_q, const uint64_t *v,
                             uint64_t neg_src) {
    if (nfrom == 1 && hat[0] == 1) {  /* one-prime digit (the usual dnum = L + 1): plain reduction */
        const uint64_t p = mt->q, p_sh = ckks_shoup(1, p);  /* y mod p as a Shoup product by 1: [0, 2p) */
        for (size_t k = 0; k < n; k++) {
            const uint64_t r = ckks_mul_shoup_lazy(y[k], 1, p_sh, p);
            out[k] = r >= p ? r - p : r;
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
    if (v) {  /* v[k] <= nfrom: its multiples of neg_src come from a table */
        uint64_t corr[65];
        const uint64_t q = mt->q;
        for (size_t u = 0; u <= nfrom; u++) corr[u] = ckks_mulmod(u, neg_src, mt);
        for (size_t k = 0; k < n; k++) {
            const uint64_t r = out[k] + corr[v[k]];
            out[k] = r >= q ? r - q : r;
        }
    }
}

/* The overflow count of a fast base conversion from the np primes p_i, rounded:
 * v[k] = round(sum_i y_i[k] / p_i), where y_i = [x * (P/p_i)^-1]_{p_i}. The conversion's
 * sum_i y_i * P/p_i equals [x]_P + u P with u = floor(that sum of fractions); taking
 * v P off instead leaves the centred residue of x in (-P/2, P/2], so the mod-down
 * (x - [x]_P) / P rounds to nearest instead of flooring and subtracting u in [0, np)
 * (a bias of about -np/2 on every coefficient, i.e. along the all-ones polynomial).
 * Doubles hold each term to ~2^-52, so v is exact unless the fraction lies within
 * ~np 2^-52 of one half; there v may be one off, and the result, one off from round(x / P),
 * is still within 1/2 + 2^-40 of x / P. v <= np: each term is at most 1. */
CKKS_HOT void ckks_round_overflow(const ckks_modulus *p, size_t np, size_t n, const uint64_t *y, uint64_t *v) {
    double inv[64], s[KS_BLOCK];
    for (size_t i = 0; i < np; i++) inv[i] = 1.0 / (double)p[i].q;
    for (size_t k0 = 0; k0 < n; k0 += KS_BLOCK) {  /* a block of sums in L1, one source limb at a time */
        const size_t len = n - k0 < KS_BLOCK ? n - k0 : KS_BLOCK;
        for (size_t k = 0; k < len; k++) s[k] = 0.5;
        for (size_t i = 0; i < np; i++) {
            const uint64_t *yi = y + i * n + k0;
            for (size_t k = 0; k < len; k++) s[k] += (double)(int64_t)yi[k] * inv[i];  /* y < 2^61 fits int64 */
        }
        for (size_t k = 0; k < len; k++) v[k0 + k] = (uint64_t)s[k];
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

struct conv_job {
    const ckks_modulus *from, *to;
    size_t n, nfrom, nto;
    const uint64_t *x, *inv_hat, *hat;
    uint64_t *y, *out;
};

static void conv_scale_item(void *ctx, size_t i, size_t part) {
    const struct conv_job *j = ctx;
    ckks_scale_by_inv_hat(j->from + i, 1, j->n, j->x + i * j->n, j->inv_hat + i, j->y + i * j->n);
}

static void conv_target_item(void *ctx, size_t t, size_t part) {
    const struct conv_job *j = ctx;
    ckks_conv_limb(j->y, j->nfrom, j->n, j->hat + t, j->nto, j->to + t, j->out + t * j->n, 0, NULL, 0);
}

size_t ckks_base_conv_scratch(size_t nfrom, size_t n) {
    return ckks_words_of(nfrom, n);  /* y: x times the inverse hats */
}

int ckks_base_conv(const ckks_modulus *from, size_t nfrom, const ckks_modulus *to, size_t nto, size_t n,
                   const uint64_t *x, const uint64_t *inv_hat, const uint64_t *hat_mod, uint64_t *out,
                   uint64_t *scratch, size_t scratch_words) {
    if (!from || !to || !x || !inv_hat || !hat_mod || !out || !scratch) return HE_ERR_NULL;
    if (n == 0 || nfrom == 0 || nfrom > 64) return HE_ERR_ARGUMENT;
    if (!ckks_dims_ok(from, nfrom, n) || !ckks_dims_ok(to, nto, n)) return HE_ERR_DIMENSION;
    if (!ckks_scratch_ok(scratch, scratch_words, ckks_base_conv_scratch(nfrom, n))) return HE_ERR_SCRATCH;
    if (!hats_in_range(from, nfrom, to, nto, inv_hat, hat_mod)) return HE_ERR_RANGE;
    struct conv_job job = {from, to, n, nfrom, nto, x, inv_hat, hat_mod, scratch, out};
    he_run(nfrom, he_parts_for(nfrom, nfrom * n, SIZE_MAX), conv_scale_item, &job);
    he_run(nto, he_parts_for(nto, nto * nfrom * n, SIZE_MAX), conv_target_item, &job);
    return HE_OK;
}
