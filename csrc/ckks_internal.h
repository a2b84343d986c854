/* Helpers shared by the ckks_*.c files (not part of the cffi interface). */
#ifndef CKKS_INTERNAL_H
#define CKKS_INTERNAL_H
#include "he_core.h"

/* 128-bit products and accumulators live in locals of this type only; scratch buffers
 * are plain uint64_t, so no buffer is ever read through two types. */
typedef unsigned __int128 ckks_u128;

/* The hot loops (NTT butterflies, pointwise products, base conversion, the key-switch
 * inner product) are compiled once per x86-64 level and picked at load time by the
 * CPU (GCC function multi-versioning, an ifunc resolver). A -march=native build
 * (HENN_NATIVE=1) or a compiler / target without it gets one baseline copy. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && \
    defined(__linux__) && !defined(HENN_NATIVE_BUILD)
#define CKKS_DISPATCH 1
#define CKKS_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CKKS_DISPATCH 0
#define CKKS_HOT
#endif

/* The AVX-512 transforms (ckks_ntt_avx512.c) exist in builds by GCC >= 11 or Clang for
 * x86-64; whether they run is decided per CPU at run time. */
#if defined(__x86_64__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 11))
#define CKKS_AVX512_CODE 1
#else
#define CKKS_AVX512_CODE 0
#endif

/* Every limb's modulus was built for ring dimension n (its tables hold n twiddles). */
static inline int ckks_dims_ok(const ckks_modulus *m, size_t nlimbs, size_t n) {
    for (size_t l = 0; l < nlimbs; l++)
        if (m[l].n != n) return 0;
    return 1;
}

/* A caller's scratch buffer: at least need words, aligned for uint64_t. */
static inline int ckks_scratch_ok(const uint64_t *scratch, size_t words, size_t need) {
    return words >= need && ((uintptr_t)scratch % _Alignof(uint64_t)) == 0;
}

/* Barrett reduction of a 128-bit value with the precomputed floor(2^128 / q). */
static inline uint64_t ckks_reduce128(ckks_u128 z, const ckks_modulus *m) {
    uint64_t z0 = (uint64_t)z, z1 = (uint64_t)(z >> 64);
    uint64_t carry = (uint64_t)(((ckks_u128)z0 * m->r0) >> 64);
    ckks_u128 t = (ckks_u128)z0 * m->r1 + carry;
    uint64_t t_hi = (uint64_t)(t >> 64), t_lo = (uint64_t)t;
    ckks_u128 u = (ckks_u128)z1 * m->r0 + t_lo;
    uint64_t est = z1 * m->r1 + (uint64_t)(u >> 64) + t_hi;
    uint64_t r = z0 - est * m->q;  /* the estimate is short by at most 2 */
    r = r >= m->q ? r - m->q : r;
    return r >= m->q ? r - m->q : r;
}

static inline uint64_t ckks_mulmod(uint64_t a, uint64_t b, const ckks_modulus *m) {
    return ckks_reduce128((ckks_u128)a * b, m);
}

/* Shoup multiplication by a constant w with w_sh = floor(w * 2^64 / q): result in [0, 2q). */
static inline uint64_t ckks_mul_shoup_lazy(uint64_t a, uint64_t w, uint64_t w_sh, uint64_t q) {
    uint64_t hi = (uint64_t)(((ckks_u128)a * w_sh) >> 64);
    return a * w - hi * q;
}

static inline uint64_t ckks_shoup(uint64_t w, uint64_t q) {
    return (uint64_t)(((ckks_u128)w << 64) / q);
}

uint64_t ckks_powmod(uint64_t b, uint64_t e, const ckks_modulus *m);

/* One limb, no argument checks: the kernels behind ckks_ntt / ckks_intt. */
void ckks_ntt_limb(const ckks_modulus *m, size_t n, uint64_t *a);
void ckks_intt_limb(const ckks_modulus *m, size_t n, uint64_t *a);

/* The same transforms on AVX2 (ckks_ntt_avx2.c) and AVX-512 (ckks_ntt_avx512.c):
 * ckks_vec_path says which instance serves a limb (CKKS_VEC_IFMA only for q < 2^50; scalar
 * for n < 8 (AVX2) or n < 16 (AVX-512), or where switched off). */
int ckks_vec_path(const ckks_modulus *m, size_t n);
void ckks_ntt_limb_avx2(const ckks_modulus *m, size_t n, uint64_t *a);
void ckks_intt_limb_avx2(const ckks_modulus *m, size_t n, uint64_t *a);
void ckks_ntt_limb_avx512(const ckks_modulus *m, size_t n, uint64_t *a);
void ckks_intt_limb_avx512(const ckks_modulus *m, size_t n, uint64_t *a);
void ckks_ntt_limb_ifma(const ckks_modulus *m, size_t n, uint64_t *a);
void ckks_intt_limb_ifma(const ckks_modulus *m, size_t n, uint64_t *a);
/* z = sum_t x[t] * p[t] over len words of one limb, q < 2^50, nterms <= 64 (ckks_dot_avx512.c). */
void ckks_dot_limb_ifma(const ckks_modulus *ml, size_t len, const uint64_t *const *x, const uint64_t *const *p,
                        size_t nterms, uint64_t *z);

/* The serial cut-off's weight of a transform per word: it touches each word log2(n) times,
 * about 4 passes of an addition on the scalar path; the vector paths take about a quarter
 * of that, so fewer limbs are worth waking a worker for. */
static inline size_t ckks_ntt_weight(const ckks_modulus *m, size_t n) {
    return ckks_vec_path(m, n) >= CKKS_VEC_AVX512 ? 1 : 4;
}

/* Base conversion kernels (ckks_baseconv.c), no argument checks. */
#define KS_BLOCK 256  /* coefficients per accumulation block: 2 * 256 u128 lanes stay in L1 */

/* a * b words, or SIZE_MAX when that does not fit (no buffer can then be large enough). */
static inline size_t ckks_words_of(size_t a, size_t b) {
    return (b != 0 && a > SIZE_MAX / b) ? SIZE_MAX : a * b;
}

/* y_i = x_i * inv_hat_i mod q_i for the nfrom limbs of x (y may be x). */
void ckks_scale_by_inv_hat(const ckks_modulus *from, size_t nfrom, size_t n, const uint64_t *x,
                           const uint64_t *inv_hat, uint64_t *y);
/* out = sum_i y_i * hat[i * stride] mod mt; centred for a one-prime source given src_q != 0,
 * or by the overflow counts v (times neg_src = -source product mod mt) when v != NULL. */
void ckks_conv_limb(const uint64_t *y, size_t nfrom, size_t n, const uint64_t *hat, size_t stride,
                    const ckks_modulus *mt, uint64_t *out, uint64_t src_q, const uint64_t *v, uint64_t neg_src);
/* v[k] = round(sum_i y_i[k] / p_i) over np <= 64 primes: the overflow count that centres a conversion. */
void ckks_round_overflow(const ckks_modulus *p, size_t np, size_t n, const uint64_t *y, uint64_t *v);

#endif
