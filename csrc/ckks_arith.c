/* Element-wise RNS kernels and rescaling. Each splits its limbs over the thread pool:
 * one limb per item, every item writing only its own limb of the output. */
#include <string.h>
#include "ckks_internal.h"
#include "pool.h"

/* The checks every element-wise kernel makes: pointers, then sizes, then the moduli's n. */
static int elementwise_args(const ckks_modulus *m, size_t nlimbs, size_t n, const void *a, const void *b,
                            const void *out) {
    if (!m || !a || !b || !out) return HE_ERR_NULL;
    if (n == 0) return HE_ERR_ARGUMENT;
    return ckks_dims_ok(m, nlimbs, n) ? HE_OK : HE_ERR_DIMENSION;
}

#define CHECK_ARGS(a, b, out)                                          \
    do {                                                               \
        int status_ = elementwise_args(m, nlimbs, n, (a), (b), (out)); \
        if (status_) return status_;                                   \
    } while (0)

/* ------------------------------------------------------------------ one limb of each operation */
CKKS_HOT static void add_limb(const ckks_modulus *ml, size_t n, const uint64_t *x, const uint64_t *y, uint64_t *z) {
    const uint64_t q = ml->q;
    for (size_t i = 0; i < n; i++) {
        uint64_t s = x[i] + y[i];
        z[i] = s >= q ? s - q : s;
    }
}

CKKS_HOT static void sub_limb(const ckks_modulus *ml, size_t n, const uint64_t *x, const uint64_t *y, uint64_t *z) {
    const uint64_t q = ml->q;
    for (size_t i = 0; i < n; i++) {
        uint64_t s = x[i] + q - y[i];
        z[i] = s >= q ? s - q : s;
    }
}

static void neg_limb(const ckks_modulus *ml, size_t n, const uint64_t *x, const uint64_t *y, uint64_t *z) {
    const uint64_t q = ml->q;
    for (size_t i = 0; i < n; i++) z[i] = x[i] ? q - x[i] : 0;
}

static void mul_limb(const ckks_modulus *ml, size_t n, const uint64_t *x, const uint64_t *y, uint64_t *z) {
    if (ckks_vec_path(ml, ml->n) == CKKS_VEC_IFMA) {  /* q < 2^50: a one-term sum of products on IFMA lanes */
        const uint64_t *xs[1] = {x}, *ys[1] = {y};
        ckks_dot_limb_ifma(ml, n, xs, ys, 1, z);
        return;
    }
    for (size_t i = 0; i < n; i++) z[i] = ckks_mulmod(x[i], y[i], ml);
}

static void muladd_limb(const ckks_modulus *ml, size_t n, const uint64_t *x, const uint64_t *y, uint64_t *z) {
    const uint64_t q = ml->q;
    for (size_t i = 0; i < n; i++) {
        uint64_t s = ckks_mulmod(x[i], y[i], ml) + z[i];
        z[i] = s >= q ? s - q : s;
    }
}

/* y points at the limb's scalar (checked < q by the caller). */
static void mul_scalar_limb(const ckks_modulus *ml, size_t n, const uint64_t *x, const uint64_t *y, uint64_t *z) {
    const uint64_t q = ml->q, w = *y, ws = ckks_shoup(w, q);
    for (size_t i = 0; i < n; i++) {
        uint64_t r = ckks_mul_shoup_lazy(x[i], w, ws, q);
        z[i] = r >= q ? r - q : r;
    }
}

/* x holds int64 values (the same n for every limb). Values of magnitude below q (errors,
 * ternary secrets, most encodings) take a branch-free loop the compiler vectorises. */
CKKS_HOT static void from_signed_limb(const ckks_modulus *ml, size_t n, const uint64_t *xs, const uint64_t *y,
                                      uint64_t *z) {
    const int64_t *x = (const int64_t *)(const void *)xs;
    const uint64_t q = ml->q;
    uint64_t big = 0;
    for (size_t i = 0; i < n; i++) {
        const uint64_t v = (uint64_t)x[i], sign = (uint64_t)(x[i] >> 63);
        big |= ((v ^ sign) - sign) >= q;  /* |x| >= q */
    }
    if (!big) {
        for (size_t i = 0; i < n; i++) z[i] = (uint64_t)x[i] + (q & (uint64_t)(x[i] >> 63));  /* x, or q + x < q */
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t v = x[i];
        uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        uint64_t r = mag < q ? mag : ckks_reduce128(mag, ml);  /* small errors skip the division */
        z[i] = (v < 0 && r) ? q - r : r;
    }
}

typedef void (*limb_op)(const ckks_modulus *, size_t, const uint64_t *, const uint64_t *, uint64_t *);

/* a_step / b_step: words between one limb of an operand and the next (0: the same for all);
 * b_step == 1 means one scalar per limb. Items are chunks of EW_CHUNK coefficients of a limb,
 * so that a few limbs still spread evenly over the threads (3 limbs on 2 threads: 6 + 6). */
#define EW_CHUNK 2048
struct ew_job {
    limb_op op;
    const ckks_modulus *m;
    size_t n, a_step, b_step, chunks;
    const uint64_t *a, *b;
    uint64_t *out;
};

static void ew_item(void *ctx, size_t item, size_t part) {
    const struct ew_job *j = ctx;
    const size_t l = item / j->chunks, at = (item % j->chunks) * EW_CHUNK;
    const size_t len = j->n - at < EW_CHUNK ? j->n - at : EW_CHUNK;
    const uint64_t *b = j->b + l * j->b_step + (j->b_step == 1 ? 0 : at);
    j->op(j->m + l, len, j->a + l * j->a_step + at, b, j->out + l * j->n + at);
}

/* cost: the op's work per word relative to an addition (a Barrett product is ~4), for the
 * serial cut-off: a few limbs of additions finish before a worker would wake. */
static int ew_run(limb_op op, size_t cost, const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a,
                  size_t a_step, const uint64_t *b, size_t b_step, uint64_t *out) {
    const size_t chunks = n / EW_CHUNK + (n % EW_CHUNK != 0), items = nlimbs * chunks;
    struct ew_job job = {op, m, n, a_step, b_step, chunks, a, b, out};
    he_run(items, he_parts_for(items, cost * nlimbs * n, SIZE_MAX), ew_item, &job);
    return HE_OK;
}

/* ------------------------------------------------------------------ the public kernels */
int ckks_add(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *b, uint64_t *out) {
    CHECK_ARGS(a, b, out);
    return ew_run(add_limb, 1, m, nlimbs, n, a, n, b, n, out);
}

int ckks_sub(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *b, uint64_t *out) {
    CHECK_ARGS(a, b, out);
    return ew_run(sub_limb, 1, m, nlimbs, n, a, n, b, n, out);
}

int ckks_neg(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, uint64_t *out) {
    CHECK_ARGS(a, a, out);
    return ew_run(neg_limb, 1, m, nlimbs, n, a, n, a, n, out);
}

int ckks_mul(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *b, uint64_t *out) {
    CHECK_ARGS(a, b, out);
    return ew_run(mul_limb, 4, m, nlimbs, n, a, n, b, n, out);
}

int ckks_muladd(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *b, uint64_t *acc) {
    CHECK_ARGS(a, b, acc);
    return ew_run(muladd_limb, 4, m, nlimbs, n, a, n, b, n, acc);
}

int ckks_mul_scalar(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *s, uint64_t *out) {
    CHECK_ARGS(a, s, out);
    for (size_t l = 0; l < nlimbs; l++)
        if (s[l] >= m[l].q) return HE_ERR_RANGE;  /* checked before any limb is written */
    return ew_run(mul_scalar_limb, 2, m, nlimbs, n, a, n, s, 1, out);
}

int ckks_from_signed(const ckks_modulus *m, size_t nlimbs, size_t n, const int64_t *x, uint64_t *out) {
    CHECK_ARGS(x, x, out);
    const uint64_t *xs = (const uint64_t *)(const void *)x;
    return ew_run(from_signed_limb, 2, m, nlimbs, n, xs, 0, xs, 0, out);
}

/* ------------------------------------------------------------------ sums of products */
/* Items are (limb, chunk of EW_CHUNK coefficients). Each coefficient's products are summed
 * in a 128-bit register and reduced once (runs of terms folded before a sum could wrap):
 * one Barrett reduction per coefficient instead of one per product. */
struct dot_sum_job {
    const ckks_modulus *m;
    size_t n, nterms, chunks;
    uint64_t *const *xs, *const *ps;
    uint64_t *out;
};

static size_t lincomb_terms(uint64_t q);

CKKS_HOT static void dot_sum_item(void *ctx, size_t item, size_t part) {
    const struct dot_sum_job *j = ctx;
    const size_t l = item / j->chunks, at = (item % j->chunks) * EW_CHUNK;
    const size_t len = j->n - at < EW_CHUNK ? j->n - at : EW_CHUNK, off = l * j->n + at;
    const ckks_modulus *ml = j->m + l;
    const uint64_t q = ml->q;
    const size_t most = lincomb_terms(q), fold = most < 64 ? most : 64;  /* 64: the pointer arrays below */
    uint64_t *z = j->out + off;
    for (size_t t0 = 0; t0 < j->nterms; t0 += fold) {  /* runs of terms whose sum cannot wrap */
        const size_t t1 = j->nterms - t0 < fold ? j->nterms : t0 + fold;
        const uint64_t *x[64], *p[64];
        for (size_t t = t0; t < t1; t++) {
            x[t - t0] = j->xs[t] + off;
            p[t - t0] = j->ps[t] + off;
        }
        if (!t0 && t1 == j->nterms && ckks_vec_path(ml, j->n) == CKKS_VEC_IFMA) {  /* one run, q < 2^50 */
            ckks_dot_limb_ifma(ml, len, x, p, t1, z);
            return;
        }
        for (size_t k = 0; k < len; k++) {  /* t1 - t0 sequential streams; the sum stays in registers */
            ckks_u128 acc = 0;
            for (size_t t = 0; t < t1 - t0; t++) acc += (ckks_u128)x[t][k] * p[t][k];
            uint64_t r = ckks_reduce128(acc, ml);
            if (t0) {
                r += z[k];
                r = r >= q ? r - q : r;
            }
            z[k] = r;
        }
    }
}

int ckks_dot(const ckks_modulus *m, size_t nlimbs, size_t n, uint64_t *const *xs, uint64_t *const *ps, size_t nterms,
             uint64_t *out) {
    if (!xs || !ps) return HE_ERR_NULL;
    if (nterms == 0) return HE_ERR_ARGUMENT;
    for (size_t t = 0; t < nterms; t++)
        if (!xs[t] || !ps[t]) return HE_ERR_NULL;
    CHECK_ARGS(xs[0], ps[0], out);
    const size_t chunks = n / EW_CHUNK + (n % EW_CHUNK != 0), items = nlimbs * chunks;
    struct dot_sum_job job = {m, n, nterms, chunks, xs, ps, out};
    he_run(items, he_parts_for(items, 2 * nterms * nlimbs * n, SIZE_MAX), dot_sum_item, &job);
    return HE_OK;
}

/* ------------------------------------------------------------------ integer linear combinations */
/* Items are (limb, chunk of EW_CHUNK coefficients); each writes that chunk of every output. */
struct lincomb_job {
    const ckks_modulus *m;
    size_t nlimbs, n, nin, nout, a_step, out_step, chunks;
    const uint64_t *a, *w;
    uint64_t *out;
};

/* Terms a 128-bit sum of products below q^2 takes before it could wrap: floor((2^128 - 1) / (q - 1)^2),
 * capped (the cap keeps the loop's bound a plain size_t). */
static size_t lincomb_terms(uint64_t q) {
    const ckks_u128 top = (ckks_u128)(q - 1) * (q - 1);
    const ckks_u128 most = top ? ~(ckks_u128)0 / top : ~(ckks_u128)0;
    return most > 1024 ? 1024 : (size_t)most;
}

/* Up to LINCOMB_BLOCK outputs share each load of an input word. */
#define LINCOMB_BLOCK 4

CKKS_HOT static void lincomb_item(void *ctx, size_t item, size_t part) {
    const struct lincomb_job *j = ctx;
    const size_t l = item / j->chunks, at = (item % j->chunks) * EW_CHUNK;
    const size_t len = j->n - at < EW_CHUNK ? j->n - at : EW_CHUNK;
    const ckks_modulus *ml = j->m + l;
    const uint64_t q = ml->q;
    const size_t terms = lincomb_terms(q), step = j->nlimbs;
    for (size_t o = 0; o < j->nout; o += LINCOMB_BLOCK) {
        const size_t nb = j->nout - o < LINCOMB_BLOCK ? j->nout - o : LINCOMB_BLOCK;
        const uint64_t *w[LINCOMB_BLOCK];
        uint64_t *z[LINCOMB_BLOCK];
        for (size_t b = 0; b < LINCOMB_BLOCK; b++) {  /* a short block repeats its last output (not stored) */
            const size_t ob = o + (b < nb ? b : nb - 1);
            w[b] = j->w + (ob * j->nin) * step + l;
            z[b] = j->out + ob * j->out_step + l * j->n + at;
        }
        for (size_t i = 0; i < len; i++) {
            const uint64_t *x = j->a + l * j->n + at + i;
            ckks_u128 acc[LINCOMB_BLOCK] = {0};
            uint64_t reduced[LINCOMB_BLOCK] = {0};
            for (size_t r = 0, since = 0; r < j->nin; r++) {
                const uint64_t xr = x[r * j->a_step];
                for (size_t b = 0; b < LINCOMB_BLOCK; b++) acc[b] += (ckks_u128)w[b][r * step] * xr;
                if (++since == terms) {  /* fold into residues before a sum could wrap */
                    for (size_t b = 0; b < LINCOMB_BLOCK; b++) {
                        const uint64_t t = ckks_reduce128(acc[b], ml) + reduced[b];
                        reduced[b] = t >= q ? t - q : t;
                        acc[b] = 0;
                    }
                    since = 0;
                }
            }
            for (size_t b = 0; b < nb; b++) {
                const uint64_t t = ckks_reduce128(acc[b], ml) + reduced[b];
                z[b][i] = t >= q ? t - q : t;
            }
        }
    }
}

int ckks_lincomb(const ckks_modulus *m, size_t nlimbs, size_t n, size_t nin, size_t nout, const uint64_t *a,
                 size_t a_step, const uint64_t *w, uint64_t *out, size_t out_step) {
    CHECK_ARGS(a, w, out);
    if (nin == 0 || nout == 0) return HE_ERR_ARGUMENT;
    const size_t poly = ckks_words_of(nlimbs, n);
    if (poly == SIZE_MAX || a_step < poly || out_step < poly || ckks_words_of(nin, nlimbs) == SIZE_MAX
        || ckks_words_of(nout, ckks_words_of(nin, nlimbs)) == SIZE_MAX || ckks_words_of(nin, a_step) == SIZE_MAX
        || ckks_words_of(nout, out_step) == SIZE_MAX)
        return HE_ERR_ARGUMENT;  /* operands that overlap themselves, or spans past size_t */
    for (size_t k = 0; k < nout * nin; k++)
        for (size_t l = 0; l < nlimbs; l++)
            if (w[k * nlimbs + l] >= m[l].q) return HE_ERR_RANGE;
    const size_t chunks = n / EW_CHUNK + (n % EW_CHUNK != 0), items = nlimbs * chunks;
    struct lincomb_job job = {m, nlimbs, n, nin, nout, a_step, out_step, chunks, a, w, out};
    const size_t work = ckks_words_of(ckks_words_of(poly, nin), nout);
    he_run(items, he_parts_for(items, work == SIZE_MAX ? SIZE_MAX : 4 * work, SIZE_MAX), lincomb_item, &job);
    return HE_OK;
}

/* Subtract the centred last limb and divide by q_last, limb by limb:
 * (c - [c]_{q_last}) / q_last rounds c / q_last to the nearest integer.
 * Scratch: the last limb in coefficient form, then one limb per thread. */
size_t ckks_rescale_scratch(size_t n) {
    const size_t slices = 1 + he_get_threads();
    return n <= SIZE_MAX / slices ? slices * n : SIZE_MAX;
}

struct rescale_job {
    const ckks_modulus *m;
    size_t n;
    const uint64_t *a, *last;
    uint64_t *out, *tmp;  /* tmp: one limb per part */
    uint64_t ql;
};

CKKS_HOT static void rescale_item(void *ctx, size_t l, size_t part) {
    const struct rescale_job *job = ctx;
    const size_t n = job->n;
    const ckks_modulus *mj = job->m + l;
    const uint64_t *last = job->last;
    uint64_t *tmp = job->tmp + part * n;
    const uint64_t ql = job->ql, half = ql >> 1, qj = mj->q, ql_mod = ql % qj;
    if (ql < 2 * qj) {  /* the usual case (primes of similar size): one conditional subtraction */
        for (size_t i = 0; i < n; i++) {
            uint64_t x = last[i];
            uint64_t r = x >= qj ? x - qj : x;
            uint64_t c = r >= ql_mod ? r - ql_mod : r + qj - ql_mod;  /* x - q_last, centred */
            tmp[i] = x > half ? c : r;
        }
    } else {  /* a larger last prime (a special prime over smaller ones): x mod q_j as a Shoup product by 1 */
        const uint64_t one_sh = ckks_shoup(1, qj);
        for (size_t i = 0; i < n; i++) {
            uint64_t x = last[i], r = ckks_mul_shoup_lazy(x, 1, one_sh, qj);
            r = r >= qj ? r - qj : r;
            uint64_t c = r >= ql_mod ? r - ql_mod : r + qj - ql_mod;
            tmp[i] = x > half ? c : r;
        }
    }
    ckks_ntt_limb(mj, n, tmp);
    const uint64_t inv = ckks_powmod(ql_mod, qj - 2, mj), inv_sh = ckks_shoup(inv, qj);
    const uint64_t *c = job->a + l * n;
    uint64_t *o = job->out + l * n;
    for (size_t i = 0; i < n; i++) {
        uint64_t d = c[i] + qj - tmp[i];
        uint64_t r = ckks_mul_shoup_lazy(d, inv, inv_sh, qj);
        o[i] = r >= qj ? r - qj : r;
    }
}

int ckks_rescale(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, uint64_t *out,
                 uint64_t *scratch, size_t scratch_words) {
    if (!m || !a || !out || !scratch) return HE_ERR_NULL;
    if (nlimbs < 2 || n == 0) return HE_ERR_ARGUMENT;
    if (!ckks_dims_ok(m, nlimbs, n)) return HE_ERR_DIMENSION;
    if (n > SIZE_MAX / 2 || !ckks_scratch_ok(scratch, scratch_words, 2 * n)) return HE_ERR_SCRATCH;
    const ckks_modulus *ml = m + nlimbs - 1;
    uint64_t *last = scratch;
    memcpy(last, a + (nlimbs - 1) * n, n * sizeof(uint64_t));
    ckks_intt_limb(ml, n, last);
    struct rescale_job job = {m, n, a, last, out, scratch + n, ml->q};
    const size_t rest = nlimbs - 1;
    he_run(rest, he_parts_for(rest, 4 * rest * n, scratch_words / n - 1), rescale_item, &job);
    return HE_OK;
}
