/* Sums of products (ckks_dot) on AVX-512 IFMA for primes below 2^50, eight coefficients at a time.
 *
 * IFMA splits each product of two residues below 2^50 into its low 52 bits and the bits above
 * (below 2^48); the halves are summed in separate 64-bit lanes over runs of RUN terms, so
 * that after the low sum's carries move up, both stay below 2^52: hi < RUN 2^48 + RUN. A run's
 * sum hi 2^52 + lo is then reduced with two 52-bit Shoup products (hi by 2^52 mod q, lo by 1)
 * and added to the coefficient's residue. Outputs are fully reduced: the scalar path's words.
 */
#include "ckks_internal.h"

#if CKKS_AVX512_CODE
#include <immintrin.h>

#define IFMA __attribute__((target("avx512f,avx512dq,avx512ifma")))
#define RUN 15
#define MASK52 ((((uint64_t)1) << 52) - 1)

IFMA static inline __m512i bcast(uint64_t w) { return _mm512_set1_epi64((long long)w); }

/* x - m if x >= m else x, lane by lane (unsigned). */
IFMA static inline __m512i sub_if_ge(__m512i x, __m512i m) { return _mm512_min_epu64(x, _mm512_sub_epi64(x, m)); }

/* a w mod q in [0, 2q) for lanes a < 2^52, ws = floor(w 2^52 / q). */
IFMA static inline __m512i shoup52(__m512i a, __m512i w, __m512i ws, __m512i negq, __m512i mask) {
    const __m512i zero = _mm512_setzero_si512();
    const __m512i quot = _mm512_madd52hi_epu64(zero, a, ws);
    return _mm512_and_si512(_mm512_madd52lo_epu64(_mm512_madd52lo_epu64(zero, a, w), quot, negq), mask);
}

IFMA void ckks_dot_limb_ifma(const ckks_modulus *ml, size_t len, const uint64_t *const *x, const uint64_t *const *p,
                             size_t nterms, uint64_t *z) {
    const uint64_t q = ml->q, two52 = (((uint64_t)1) << 52) % q;
    const __m512i vq = bcast(q), vq2 = bcast(2 * q), negq = bcast((((uint64_t)1) << 52) - q), mask = bcast(MASK52);
    const __m512i c = bcast(two52), cs = bcast((uint64_t)(((ckks_u128)two52 << 52) / q));
    const __m512i one = bcast(1), ones = bcast((((uint64_t)1) << 52) / q);
    size_t k = 0;
    for (; k + 8 <= len; k += 8) {
        __m512i res = _mm512_setzero_si512();
        for (size_t t0 = 0; t0 < nterms; t0 += RUN) {
            const size_t t1 = nterms - t0 < RUN ? nterms : t0 + RUN;
            __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
            for (size_t t = t0; t < t1; t++) {
                const __m512i a = _mm512_loadu_si512(x[t] + k), b = _mm512_loadu_si512(p[t] + k);
                lo = _mm512_madd52lo_epu64(lo, a, b);
                hi = _mm512_madd52hi_epu64(hi, a, b);
            }
            hi = _mm512_add_epi64(hi, _mm512_srli_epi64(lo, 52));
            lo = _mm512_and_si512(lo, mask);
            __m512i r = _mm512_add_epi64(shoup52(hi, c, cs, negq, mask), shoup52(lo, one, ones, negq, mask));
            r = sub_if_ge(sub_if_ge(r, vq2), vq);  /* [0, 4q) -> [0, q) */
            res = sub_if_ge(_mm512_add_epi64(res, r), vq);
        }
        _mm512_storeu_si512(z + k, res);
    }
    for (; k < len; k++) {  /* the tail (a chunk of fewer than 8 words): at most 64 terms, no wrap */
        ckks_u128 acc = 0;
        for (size_t t = 0; t < nterms; t++) acc += (ckks_u128)x[t][k] * p[t][k];
        z[k] = ckks_reduce128(acc, ml);
    }
}

#else

void ckks_dot_limb_ifma(const ckks_modulus *ml, size_t len, const uint64_t *const *x, const uint64_t *const *p,
                        size_t nterms, uint64_t *z) {}

#endif
