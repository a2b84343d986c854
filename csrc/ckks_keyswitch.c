/* Hybrid (dnum-digit, special-prime) key switching (base conversion: ckks_baseconv.c).
 *
 * Key switching of d under key k = (b_j, a_j)_j over the basis Q_l * P:
 *   1. d to coefficient form; split its limbs into digits of alpha primes;
 *   2. mod-up each digit to the whole basis by fast base conversion, back to NTT form;
 *   3. accumulate sum_j digit_j * (b_j, a_j) in 128-bit lanes (reduced once);
 *   4. mod-down by P: subtract the base-converted P part, centred, and multiply by P^-1.
 *
 * Scratch is the caller's and plain uint64_t; 128-bit sums live in locals (a register
 * per coefficient in the base conversion, an L1 block in the inner product).
 *
 * Threads: each step is a job over limbs (step 1: source limbs; steps 2-3: target
 * limbs of Q*P; step 4: (part, limb) pairs), every item writing only its own limb, so
 * the result does not depend on the thread count. Step 2's mod-up limbs need one
 * slice of scratch per thread.
 */
#include <string.h>
#include "ckks_internal.h"
#include "pool.h"

/* Step 4 for both parts: red (2 parts of ntot limbs, NTT form, reduced) -> out (2 parts
 * of nq limbs). The P limbs of each part go to coefficient form times the inverse hats
 * (yp: np limbs per part); with several special primes each part's rounded overflow
 * counts go to v (n words per part); then each output limb is base-converted, centred,
 * into its own place in out, NTT'd there and combined: (red - conv) * P^-1. */
struct down_job {
    const ckks_modulus *m;
    size_t nq, np, n;
    uint64_t *red, *yp, *v, *out;
    const uint64_t *conv_down;
};

static void down_p_item(void *ctx, size_t item, size_t part) {
    const struct down_job *j = ctx;
    const size_t n = j->n, ntot = j->nq + j->np, half = item / j->np, i = item % j->np;
    uint64_t *src = j->red + (half * ntot + j->nq + i) * n;
    ckks_intt_limb(j->m + j->nq + i, n, src);
    ckks_scale_by_inv_hat(j->m + j->nq + i, 1, n, src, j->conv_down + i, j->yp + (half * j->np + i) * n);
}

static void down_v_item(void *ctx, size_t half, size_t part) {
    const struct down_job *j = ctx;
    ckks_round_overflow(j->m + j->nq, j->np, j->n, j->yp + half * j->np * j->n, j->v + half * j->n);
}

CKKS_HOT static void down_q_item(void *ctx, size_t item, size_t part) {
    const struct down_job *j = ctx;
    const size_t n = j->n, nq = j->nq, np = j->np, half = item / nq, t = item % nq;
    const uint64_t *hat = j->conv_down + np, *pinv = j->conv_down + np + np * nq;
    const uint64_t q = j->m[t].q, w = pinv[t], ws = ckks_shoup(w, q);
    uint64_t *o = j->out + (half * nq + t) * n;
    if (np == 1) {  /* one prime: centred by its own comparison with p / 2 */
        ckks_conv_limb(j->yp + half * n, 1, n, hat + t, nq, j->m + t, o, j->m[nq].q, NULL, 0);
    } else {  /* -P mod q_t from (P / p_0) mod q_t */
        const uint64_t p_mod = ckks_mulmod(hat[t], j->m[nq].q, j->m + t), neg_p = p_mod ? q - p_mod : 0;
        ckks_conv_limb(j->yp + half * np * n, np, n, hat + t, nq, j->m + t, o, 0, j->v + half * n, neg_p);
    }
    ckks_ntt_limb(j->m + t, n, o);
    const uint64_t *c = j->red + (half * (nq + np) + t) * n;
    for (size_t k = 0; k < n; k++) {
        uint64_t r = ckks_mul_shoup_lazy(c[k] + q - o[k], w, ws, q);
        o[k] = r >= q ? r - q : r;
    }
}

/* yp: 2 * np limbs, v: 2 limbs of scratch. */
static void mod_down(const ckks_modulus *m, size_t nq, size_t np, size_t n, uint64_t *red,
                     const uint64_t *conv_down, uint64_t *yp, uint64_t *v, uint64_t *out) {
    struct down_job job = {m, nq, np, n, red, yp, v, out, conv_down};
    he_run(2 * np, he_parts_for(2 * np, 8 * np * n, SIZE_MAX), down_p_item, &job);
    if (np > 1) he_run(2, he_parts_for(2, 2 * np * n, SIZE_MAX), down_v_item, &job);
    he_run(2 * nq, he_parts_for(2 * nq, 8 * nq * n, SIZE_MAX), down_q_item, &job);
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

/* Words of key-switching scratch with `parts` slices of mod-up limbs: y (nq limbs), red
 * (2 * ntot), the mod-down lanes (2 * np + 2), then beta limbs per part. Sizes are bounded
 * by keyswitch_sizes, so only n can overflow. */
static size_t keyswitch_words(size_t nq, size_t np, size_t n, size_t alpha, size_t parts) {
    if (nq > 4096 || np > 64 || alpha == 0 || parts > HE_MAX_THREADS) return SIZE_MAX;
    return ckks_words_of(n, nq + 2 * (nq + np) + 2 * np + 2 + parts * beta_of(nq, alpha));
}

size_t ckks_keyswitch_scratch(size_t nq, size_t np, size_t n, size_t alpha) {
    return keyswitch_words(nq, np, n, alpha, he_get_threads());
}


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
            ckks_conv_limb(y + lo * n, dj, n, hat + t, ntot, m + t, e, dj == 1 ? m[lo].q : 0, NULL, 0);
            ckks_ntt_limb(m + t, n, e);
            src[j] = e;
        }
        kb[j] = key + (j * 2 * ltot + kl) * n;
        ka[j] = key + ((j * 2 + 1) * ltot + kl) * n;
    }
    if (ckks_vec_path(m + t, n) == CKKS_VEC_IFMA) {  /* q_t < 2^50: eight lanes of 52-bit products */
        ckks_dot_limb_ifma(m + t, n, src, kb, beta, r0);
        ckks_dot_limb_ifma(m + t, n, src, ka, beta, r1);
        return;
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

/* Step 1 (shared with ckks_modup): limb l of d to coefficient form in y, times its
 * digit's inverse hat. digit_of / up_of: each limb's digit and its conv_up offset. */
struct up_job {
    const ckks_modulus *m;
    size_t nq, np, n, alpha, beta, ltot;
    const uint64_t *d, *key, *conv_up;
    size_t up_at[32];  /* offset of digit j's constants in conv_up */
    uint64_t *y, *ext, *red;
    size_t ext_slice;  /* words of ext per part (ckks_keyswitch) */
};

static void up_init(struct up_job *j) {
    const size_t ntot = j->nq + j->np;
    size_t at = 0;
    for (size_t k = 0; k < j->beta; k++) {
        const size_t lo = k * j->alpha, dj = (j->nq - lo < j->alpha) ? j->nq - lo : j->alpha;
        j->up_at[k] = at;
        at += dj + dj * ntot;
    }
}

static void up_source_item(void *ctx, size_t l, size_t part) {
    const struct up_job *j = ctx;
    const size_t n = j->n, digit = l / j->alpha;
    uint64_t *y = j->y + l * n;
    memcpy(y, j->d + l * n, n * sizeof(uint64_t));
    ckks_intt_limb(j->m + l, n, y);
    ckks_scale_by_inv_hat(j->m + l, 1, n, y, j->conv_up + j->up_at[digit] + (l - digit * j->alpha), y);
}

static void accumulate_item(void *ctx, size_t t, size_t part) {
    const struct up_job *j = ctx;
    const size_t n = j->n, ntot = j->nq + j->np;
    accumulate_limb(j->m, j->nq, j->np, n, t, j->d, j->y, j->key, j->ltot, j->alpha, j->conv_up,
                    j->ext + part * j->ext_slice, j->red + t * n, j->red + (ntot + t) * n);
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
    const size_t base = keyswitch_words(nq, np, n, alpha, 0);
    if (!ckks_scratch_ok(scratch, scratch_words, keyswitch_words(nq, np, n, alpha, 1))) return HE_ERR_SCRATCH;
    uint64_t *y = scratch;                  /* nq limbs: d in coefficient form times inverse hats */
    uint64_t *red = y + nq * n;             /* 2 * ntot limbs: the two accumulated parts */
    uint64_t *yp = red + 2 * ntot * n;      /* 2 * np limbs for the mod-down conversion */
    uint64_t *v = yp + 2 * np * n;          /* 2 limbs: its overflow counts */
    uint64_t *ext = v + 2 * n;              /* beta mod-up limbs per part */
    struct up_job job = {m, nq, np, n, alpha, beta, ltot, d, key, conv_up, {0}, y, ext, red, beta * n};
    up_init(&job);
    he_run(nq, he_parts_for(nq, ckks_ntt_weight(m, n) * nq * n, SIZE_MAX), up_source_item, &job);
    he_run(ntot, he_parts_for(ntot, 4 * ntot * (beta + 1) * n, (scratch_words - base) / (beta * n)), accumulate_item,
           &job);
    mod_down(m, nq, np, n, red, conv_down, yp, v, out);
    return HE_OK;
}

/* ------------------------------------------------------------------ hoisted key switching
 * Many rotations of one ciphertext share its decomposition: ckks_modup computes the
 * mod-up digits of d once; ckks_ks_dot then finishes one key switch of the permuted d
 * (a Galois automorphism in NTT form permutes the digits' limbs the same way on every
 * prime), so each further rotation skips the inverse NTT, the base conversion and the
 * forward NTTs of step 2. */

size_t ckks_modup_scratch(size_t nq, size_t n) {
    return ckks_words_of(n, nq);  /* y: nq limbs */
}

/* Step 2 of ckks_modup: item (digit j, target t) fills its own limb of ext. */
static void modup_target_item(void *ctx, size_t item, size_t part) {
    const struct up_job *jb = ctx;
    const size_t n = jb->n, ntot = jb->nq + jb->np, j = item / ntot, t = item % ntot;
    const size_t lo = j * jb->alpha, dj = (jb->nq - lo < jb->alpha) ? jb->nq - lo : jb->alpha;
    uint64_t *e = jb->ext + item * n;
    if (t >= lo && t < lo + dj) {  /* own limb: already in NTT form */
        memcpy(e, jb->d + t * n, n * sizeof(uint64_t));
    } else {
        const uint64_t *hat = jb->conv_up + jb->up_at[j] + dj;
        ckks_conv_limb(jb->y + lo * n, dj, n, hat + t, ntot, jb->m + t, e, dj == 1 ? jb->m[lo].q : 0, NULL, 0);
        ckks_ntt_limb(jb->m + t, n, e);
    }
}

int ckks_modup(const ckks_modulus *m, size_t nq, size_t np, size_t n, const uint64_t *d, size_t alpha,
               const uint64_t *conv_up, uint64_t *ext, uint64_t *scratch, size_t scratch_words) {
    if (!m || !d || !conv_up || !ext || !scratch) return HE_ERR_NULL;
    if (alpha == 0 || alpha > 64) return HE_ERR_ARGUMENT;
    const size_t ntot = nq + np, beta = beta_of(nq, alpha);
    int status = keyswitch_sizes(m, nq, np, n, beta, beta, ntot);
    if (status) return status;
    if (!ckks_scratch_ok(scratch, scratch_words, ckks_modup_scratch(nq, n))) return HE_ERR_SCRATCH;
    struct up_job job = {m, nq, np, n, alpha, beta, ntot, d, NULL, conv_up, {0}, scratch, ext, NULL, 0};
    up_init(&job);
    he_run(nq, he_parts_for(nq, ckks_ntt_weight(m, n) * nq * n, SIZE_MAX), up_source_item, &job);
    he_run(beta * ntot, he_parts_for(beta * ntot, 4 * beta * ntot * n, SIZE_MAX), modup_target_item, &job);
    return HE_OK;
}

size_t ckks_ks_dot_scratch(size_t nq, size_t np, size_t n) {
    if (nq > 4096 || np > 64) return SIZE_MAX;
    return ckks_words_of(n, 2 * (nq + np) + 2 * np + 2);  /* red (2 * ntot), mod-down lanes (2 * np + 2) */
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

struct dot_job {
    const ckks_modulus *m;
    size_t nq, np, n, beta, ltot;
    const uint64_t *ext, *key;
    const uint32_t *perm;
    uint64_t *red;
};

static void dot_item(void *ctx, size_t t, size_t part) {
    const struct dot_job *j = ctx;
    const size_t n = j->n, ntot = j->nq + j->np;
    const size_t kl = t < j->nq ? t : j->ltot - j->np + (t - j->nq);
    if (!j->perm && ckks_vec_path(j->m + t, n) == CKKS_VEC_IFMA) {  /* q_t < 2^50, unpermuted digits */
        const uint64_t *e[32], *kb[32], *ka[32];
        for (size_t d = 0; d < j->beta; d++) {
            e[d] = j->ext + t * n + d * ntot * n;
            kb[d] = j->key + kl * n + 2 * d * j->ltot * n;
            ka[d] = j->key + kl * n + (2 * d + 1) * j->ltot * n;
        }
        ckks_dot_limb_ifma(j->m + t, n, e, kb, j->beta, j->red + t * n);
        ckks_dot_limb_ifma(j->m + t, n, e, ka, j->beta, j->red + (ntot + t) * n);
        return;
    }
    dot_limb(j->m + t, n, j->ext + t * n, ntot * n, j->beta, j->perm, j->key + kl * n, j->ltot * n,
             j->red + t * n, j->red + (ntot + t) * n);
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
    struct dot_job job = {m, nq, np, n, beta, ltot, ext, key, perm, red};
    he_run(ntot, he_parts_for(ntot, 2 * beta * ntot * n, SIZE_MAX), dot_item, &job);
    mod_down(m, nq, np, n, red, conv_down, yp, yp + 2 * np * n, out);
    return HE_OK;
}
