/* Negacyclic NTTs on AVX2, four coefficients per instruction, for CPUs without AVX-512.
 *
 * The transforms of ckks_ntt.c (Cooley-Tukey forward, Gentleman-Sande inverse, the same
 * twiddle order and lazy ranges, full reduction at the end: the scalar path's words). AVX2
 * has neither a 64-bit low product nor unsigned 64-bit comparisons, so:
 *   - the 64-bit Shoup product is built from 32-bit ones: the quotient as in the AVX-512
 *     instance (three products, without the low words' carry, so short by at most 2 and the
 *     remainder in [0, 4q), brought to [0, 2q) by one conditional subtraction), and each
 *     low product a * w mod 2^64 from three more;
 *   - "x >= m" is a signed comparison, valid because every lazy value and bound is below
 *     4q < 2^63.
 * Strides of 4 and more load whole vectors (pairs of stages at once where both do); strides
 * 2 and 1 pair words inside a vector and are regrouped on blocks of 8 words in registers.
 */
#include "ckks_internal.h"

#if CKKS_AVX512_CODE
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))

struct v4q {
    __m256i q, q2, q_hi;
};

AVX2 static inline __m256i b4(uint64_t w) { return _mm256_set1_epi64x((long long)w); }

/* x - m if x >= m else x, for lanes below 2^63. */
AVX2 static inline __m256i sub_ge(__m256i x, __m256i m) {
    return _mm256_sub_epi64(x, _mm256_andnot_si256(_mm256_cmpgt_epi64(m, x), m));
}

/* a * b mod 2^64 from 32-bit products (b_hi = b >> 32). */
AVX2 static inline __m256i mullo64(__m256i a, __m256i b, __m256i b_hi) {
    const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), b), _mm256_mul_epu32(a, b_hi));
    return _mm256_add_epi64(_mm256_mul_epu32(a, b), _mm256_slli_epi64(cross, 32));
}

/* a * w mod q in [0, 2q) for lanes a < 2^63, with ws = floor(w 2^64 / q). */
AVX2 static inline __m256i shoup(__m256i a, __m256i w, __m256i ws, const struct v4q *c) {
    const __m256i a1 = _mm256_srli_epi64(a, 32), b1 = _mm256_srli_epi64(ws, 32);
    const __m256i mid = _mm256_add_epi64(_mm256_srli_epi64(_mm256_mul_epu32(a, b1), 32),
                                         _mm256_srli_epi64(_mm256_mul_epu32(a1, ws), 32));
    const __m256i quot = _mm256_add_epi64(_mm256_mul_epu32(a1, b1), mid);
    const __m256i r = _mm256_sub_epi64(mullo64(a, w, _mm256_srli_epi64(w, 32)), mullo64(quot, c->q, c->q_hi));
    return sub_ge(r, c->q2);
}

AVX2 static inline void ct4(__m256i *x, __m256i *y, __m256i w, __m256i ws, const struct v4q *c) {
    const __m256i u = sub_ge(*x, c->q2), v = shoup(*y, w, ws, c);
    *x = _mm256_add_epi64(u, v);
    *y = _mm256_add_epi64(_mm256_sub_epi64(u, v), c->q2);
}

AVX2 static inline void gs4(__m256i *x, __m256i *y, __m256i w, __m256i ws, const struct v4q *c) {
    const __m256i u = *x, v = *y;
    *x = sub_ge(_mm256_add_epi64(u, v), c->q2);
    *y = shoup(_mm256_add_epi64(_mm256_sub_epi64(u, v), c->q2), w, ws, c);
}

AVX2 static inline struct v4q v4q_of(uint64_t q) {
    struct v4q c = {b4(q), b4(2 * q), b4(q >> 32)};
    return c;
}

/* Stride 2 on a block of 8 words (lo = words 0..3, hi = 4..7) starting at word k0: pairs
 * (0, 2), (1, 3), (4, 6), (5, 7), twiddles tw[n/4 + k0/4] for the first two, the next for the others. */
AVX2 static inline void stride2(__m256i *lo, __m256i *hi, const uint64_t *tw, const uint64_t *tw_sh, size_t at,
                                int inverse, const struct v4q *c) {
    __m256i x = _mm256_permute2x128_si256(*lo, *hi, 0x20), y = _mm256_permute2x128_si256(*lo, *hi, 0x31);
    const __m256i w = _mm256_set_epi64x((long long)tw[at + 1], (long long)tw[at + 1], (long long)tw[at],
                                        (long long)tw[at]);
    const __m256i ws = _mm256_set_epi64x((long long)tw_sh[at + 1], (long long)tw_sh[at + 1], (long long)tw_sh[at],
                                         (long long)tw_sh[at]);
    if (inverse) {
        gs4(&x, &y, w, ws, c);
    } else {
        ct4(&x, &y, w, ws, c);
    }
    *lo = _mm256_permute2x128_si256(x, y, 0x20);
    *hi = _mm256_permute2x128_si256(x, y, 0x31);
}

/* Stride 1 on a block of 8 words: pairs (0, 1), (2, 3), (4, 5), (6, 7). The unpacks hold the
 * pairs in the order 0, 2, 1, 3, so the four consecutive twiddles at tw + at are permuted
 * alike; the twiddles read end at index n - 1. */
AVX2 static inline void stride1(__m256i *lo, __m256i *hi, const uint64_t *tw, const uint64_t *tw_sh, size_t at,
                                int inverse, const struct v4q *c) {
    __m256i x = _mm256_unpacklo_epi64(*lo, *hi), y = _mm256_unpackhi_epi64(*lo, *hi);
    const __m256i w = _mm256_permute4x64_epi64(_mm256_loadu_si256((const __m256i *)(tw + at)), 0xD8);
    const __m256i ws = _mm256_permute4x64_epi64(_mm256_loadu_si256((const __m256i *)(tw_sh + at)), 0xD8);
    if (inverse) {
        gs4(&x, &y, w, ws, c);
    } else {
        ct4(&x, &y, w, ws, c);
    }
    *lo = _mm256_unpacklo_epi64(x, y);
    *hi = _mm256_unpackhi_epi64(x, y);
}

#define LD(p) _mm256_loadu_si256((const __m256i *)(p))
#define ST(p, v) _mm256_storeu_si256((__m256i *)(p), (v))

AVX2 void ckks_ntt_limb_avx2(const ckks_modulus *m, size_t n, uint64_t *a) {
    const struct v4q vc = v4q_of(m->q), *c = &vc;
    const uint64_t *psi = m->psi, *psi_sh = m->psi_sh;
    size_t h = 1, t = n / 2;  /* the next stage: h blocks of 2t words */
    while (t >= 4) {
        if (t >= 8) {  /* stages (h, t) and (2h, t / 2) at once */
            const size_t t2 = t / 2;
            for (size_t i = 0; i < h; i++) {
                const __m256i w = b4(psi[h + i]), ws = b4(psi_sh[h + i]);
                const __m256i w0 = b4(psi[2 * h + 2 * i]), w0s = b4(psi_sh[2 * h + 2 * i]);
                const __m256i w1 = b4(psi[2 * h + 2 * i + 1]), w1s = b4(psi_sh[2 * h + 2 * i + 1]);
                uint64_t *x = a + 2 * i * t;
                for (size_t j = 0; j < t2; j += 4) {
                    __m256i A = LD(x + j), B = LD(x + t2 + j), C = LD(x + t + j), D = LD(x + t + t2 + j);
                    ct4(&A, &C, w, ws, c);
                    ct4(&B, &D, w, ws, c);
                    ct4(&A, &B, w0, w0s, c);
                    ct4(&C, &D, w1, w1s, c);
                    ST(x + j, A);
                    ST(x + t2 + j, B);
                    ST(x + t + j, C);
                    ST(x + t + t2 + j, D);
                }
            }
            h *= 4;
            t /= 4;
        } else {  /* t = 4 */
            for (size_t i = 0; i < h; i++) {
                __m256i X = LD(a + 8 * i), Y = LD(a + 8 * i + 4);
                ct4(&X, &Y, b4(psi[h + i]), b4(psi_sh[h + i]), c);
                ST(a + 8 * i, X);
                ST(a + 8 * i + 4, Y);
            }
            h *= 2;
            t /= 2;
        }
    }
    /* The strides left (2 and 1, or just 1) on blocks of 8 words, then [0, 4q) -> [0, q). */
    for (size_t k0 = 0; k0 < n; k0 += 8) {
        __m256i lo = LD(a + k0), hi = LD(a + k0 + 4);
        if (t == 2) stride2(&lo, &hi, psi, psi_sh, n / 4 + k0 / 4, 0, c);
        stride1(&lo, &hi, psi, psi_sh, n / 2 + k0 / 2, 0, c);
        ST(a + k0, sub_ge(sub_ge(lo, c->q2), c->q));
        ST(a + k0 + 4, sub_ge(sub_ge(hi, c->q2), c->q));
    }
}

AVX2 void ckks_intt_limb_avx2(const ckks_modulus *m, size_t n, uint64_t *a) {
    const struct v4q vc = v4q_of(m->q), *c = &vc;
    const uint64_t *ipsi = m->ipsi, *ipsi_sh = m->ipsi_sh;
    for (size_t k0 = 0; k0 < n; k0 += 8) {  /* strides 1 and 2 in registers (n >= 8: neither is the last) */
        __m256i lo = LD(a + k0), hi = LD(a + k0 + 4);
        stride1(&lo, &hi, ipsi, ipsi_sh, n / 2 + k0 / 2, 1, c);
        stride2(&lo, &hi, ipsi, ipsi_sh, n / 4 + k0 / 4, 1, c);
        ST(a + k0, lo);
        ST(a + k0 + 4, hi);
    }
    size_t t = 4, h = n / 8;
    while (h > 1) {  /* every further stage but the last (h = 1) */
        if (h >= 4) {  /* stages (h, t) and (h / 2, 2t) at once */
            for (size_t i = 0; i < h / 2; i++) {
                const __m256i w0 = b4(ipsi[h + 2 * i]), w0s = b4(ipsi_sh[h + 2 * i]);
                const __m256i w1 = b4(ipsi[h + 2 * i + 1]), w1s = b4(ipsi_sh[h + 2 * i + 1]);
                const __m256i w = b4(ipsi[h / 2 + i]), ws = b4(ipsi_sh[h / 2 + i]);
                uint64_t *x = a + 4 * i * t;
                for (size_t j = 0; j < t; j += 4) {
                    __m256i A = LD(x + j), B = LD(x + t + j), C = LD(x + 2 * t + j), D = LD(x + 3 * t + j);
                    gs4(&A, &B, w0, w0s, c);
                    gs4(&C, &D, w1, w1s, c);
                    gs4(&A, &C, w, ws, c);
                    gs4(&B, &D, w, ws, c);
                    ST(x + j, A);
                    ST(x + t + j, B);
                    ST(x + 2 * t + j, C);
                    ST(x + 3 * t + j, D);
                }
            }
            h /= 4;
            t *= 4;
        } else {  /* h = 2 */
            for (size_t i = 0; i < 2; i++) {
                const __m256i w = b4(ipsi[2 + i]), ws = b4(ipsi_sh[2 + i]);
                uint64_t *x = a + 2 * i * t;
                for (size_t j = 0; j < t; j += 4) {
                    __m256i X = LD(x + j), Y = LD(x + t + j);
                    gs4(&X, &Y, w, ws, c);
                    ST(x + j, X);
                    ST(x + t + j, Y);
                }
            }
            h = 1;
            t *= 2;
        }
    }
    /* Last stage (t = n / 2) fused with the multiplication by n^-1, as in ckks_intt_limb. */
    const uint64_t wn = ckks_mulmod(m->ipsi[1], m->ninv, m);
    const __m256i ni = b4(m->ninv), nis = b4(m->ninv_sh), wv = b4(wn), wvs = b4(ckks_shoup(wn, m->q));
    uint64_t *x = a, *y = a + t;
    for (size_t j = 0; j < t; j += 4) {
        const __m256i u = LD(x + j), v = LD(y + j);
        ST(x + j, sub_ge(shoup(_mm256_add_epi64(u, v), ni, nis, c), c->q));
        ST(y + j, sub_ge(shoup(_mm256_add_epi64(_mm256_sub_epi64(u, v), c->q2), wv, wvs, c), c->q));
    }
}

#else

void ckks_ntt_limb_avx2(const ckks_modulus *m, size_t n, uint64_t *a) {}
void ckks_intt_limb_avx2(const ckks_modulus *m, size_t n, uint64_t *a) {}

#endif
