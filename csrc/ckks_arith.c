/* Element-wise RNS kernels and rescaling. */
#include <string.h>
#include "ckks_internal.h"

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

CKKS_HOT int ckks_add(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *b, uint64_t *out) {
    CHECK_ARGS(a, b, out);
    for (size_t l = 0; l < nlimbs; l++) {
        const uint64_t q = m[l].q;
        const uint64_t *x = a + l * n, *y = b + l * n;
        uint64_t *z = out + l * n;
        for (size_t i = 0; i < n; i++) {
            uint64_t s = x[i] + y[i];
            z[i] = s >= q ? s - q : s;
        }
    }
    return HE_OK;
}

CKKS_HOT int ckks_sub(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *b, uint64_t *out) {
    CHECK_ARGS(a, b, out);
    for (size_t l = 0; l < nlimbs; l++) {
        const uint64_t q = m[l].q;
        const uint64_t *x = a + l * n, *y = b + l * n;
        uint64_t *z = out + l * n;
        for (size_t i = 0; i < n; i++) {
            uint64_t s = x[i] + q - y[i];
            z[i] = s >= q ? s - q : s;
        }
    }
    return HE_OK;
}

int ckks_neg(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, uint64_t *out) {
    CHECK_ARGS(a, a, out);
    for (size_t l = 0; l < nlimbs; l++) {
        const uint64_t q = m[l].q;
        const uint64_t *x = a + l * n;
        uint64_t *z = out + l * n;
        for (size_t i = 0; i < n; i++) z[i] = x[i] ? q - x[i] : 0;
    }
    return HE_OK;
}

int ckks_mul(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *b, uint64_t *out) {
    CHECK_ARGS(a, b, out);
    for (size_t l = 0; l < nlimbs; l++) {
        const ckks_modulus *ml = m + l;
        const uint64_t *x = a + l * n, *y = b + l * n;
        uint64_t *z = out + l * n;
        for (size_t i = 0; i < n; i++) z[i] = ckks_mulmod(x[i], y[i], ml);
    }
    return HE_OK;
}

int ckks_muladd(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *b, uint64_t *acc) {
    CHECK_ARGS(a, b, acc);
    for (size_t l = 0; l < nlimbs; l++) {
        const ckks_modulus *ml = m + l;
        const uint64_t *x = a + l * n, *y = b + l * n;
        uint64_t *z = acc + l * n;
        const uint64_t q = ml->q;
        for (size_t i = 0; i < n; i++) {
            uint64_t s = ckks_mulmod(x[i], y[i], ml) + z[i];
            z[i] = s >= q ? s - q : s;
        }
    }
    return HE_OK;
}

int ckks_mul_scalar(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *s, uint64_t *out) {
    CHECK_ARGS(a, s, out);
    for (size_t l = 0; l < nlimbs; l++) {
        const uint64_t q = m[l].q;
        if (s[l] >= q) return HE_ERR_RANGE;
        const uint64_t w = s[l], ws = ckks_shoup(w, q);
        const uint64_t *x = a + l * n;
        uint64_t *z = out + l * n;
        for (size_t i = 0; i < n; i++) {
            uint64_t r = ckks_mul_shoup_lazy(x[i], w, ws, q);
            z[i] = r >= q ? r - q : r;
        }
    }
    return HE_OK;
}

int ckks_from_signed(const ckks_modulus *m, size_t nlimbs, size_t n, const int64_t *x, uint64_t *out) {
    CHECK_ARGS(x, x, out);
    for (size_t l = 0; l < nlimbs; l++) {
        const uint64_t q = m[l].q;
        uint64_t *z = out + l * n;
        for (size_t i = 0; i < n; i++) {
            int64_t v = x[i];
            uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
            uint64_t r = mag < q ? mag : ckks_reduce128(mag, m + l);  /* small errors skip the division */
            z[i] = (v < 0 && r) ? q - r : r;
        }
    }
    return HE_OK;
}

/* Subtract the centred last limb and divide by q_last, limb by limb:
 * (c - [c]_{q_last}) / q_last rounds c / q_last to the nearest integer. */
size_t ckks_rescale_scratch(size_t n) {
    return n <= SIZE_MAX / 2 ? 2 * n : SIZE_MAX;
}

CKKS_HOT int ckks_rescale(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, uint64_t *out,
                 uint64_t *scratch, size_t scratch_words) {
    if (!m || !a || !out || !scratch) return HE_ERR_NULL;
    if (nlimbs < 2 || n == 0) return HE_ERR_ARGUMENT;
    if (!ckks_dims_ok(m, nlimbs, n)) return HE_ERR_DIMENSION;
    if (!ckks_scratch_ok(scratch, scratch_words, ckks_rescale_scratch(n))) return HE_ERR_SCRATCH;
    const ckks_modulus *ml = m + nlimbs - 1;
    const uint64_t ql = ml->q, half = ql >> 1;
    uint64_t *last = scratch, *tmp = scratch + n;
    memcpy(last, a + (nlimbs - 1) * n, n * sizeof(uint64_t));
    ckks_intt_limb(ml, n, last);
    for (size_t l = 0; l + 1 < nlimbs; l++) {
        const ckks_modulus *mj = m + l;
        const uint64_t qj = mj->q, ql_mod = ql % qj;
        if (ql < 2 * qj) {  /* the usual case (primes of similar size): one conditional subtraction */
            for (size_t i = 0; i < n; i++) {
                uint64_t x = last[i];
                uint64_t r = x >= qj ? x - qj : x;
                uint64_t c = r >= ql_mod ? r - ql_mod : r + qj - ql_mod;  /* x - q_last, centred */
                tmp[i] = x > half ? c : r;
            }
        } else {
            for (size_t i = 0; i < n; i++) {
                uint64_t x = last[i], r = ckks_reduce128(x, mj);
                uint64_t c = r >= ql_mod ? r - ql_mod : r + qj - ql_mod;
                tmp[i] = x > half ? c : r;
            }
        }
        ckks_ntt_limb(mj, n, tmp);
        const uint64_t inv = ckks_powmod(ql_mod, qj - 2, mj), inv_sh = ckks_shoup(inv, qj);
        const uint64_t *c = a + l * n;
        uint64_t *o = out + l * n;
        for (size_t i = 0; i < n; i++) {
            uint64_t d = c[i] + qj - tmp[i];
            uint64_t r = ckks_mul_shoup_lazy(d, inv, inv_sh, qj);
            o[i] = r >= qj ? r - qj : r;
        }
    }
    return HE_OK;
}
