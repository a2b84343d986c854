/* Negacyclic NTTs on AVX-512, eight coefficients per instruction, in two instances (and the
 * run-time choice of vector path, AVX2's instance included: ckks_ntt_avx2.c):
 *
 *   - IFMA (q < 2^50): 52-bit Shoup products from vpmadd52{lo,hi}uq, three per product. Every
 *     lazy value, up to 4q, must fit the 52 bits IFMA multiplies, hence q < 2^50. The 52-bit
 *     companion of a twiddle is its 64-bit one shifted right by 12
 *     (floor(floor(x 2^12) / 2^12) = floor(x)), so the tables of ckks_modulus_init serve both.
 *   - AVX-512F/DQ (any q < 2^61): 64-bit Shoup products whose quotient is the high word of
 *     a * ws without the carry out of the low words (three 32-bit products, no fourth):
 *     short by at most 2, so the remainder lies in [0, 4q) and one conditional subtraction
 *     brings it to [0, 2q).
 *
 * Both are the transforms of ckks_ntt.c (Cooley-Tukey forward, Gentleman-Sande inverse,
 * the same twiddle order and lazy ranges) and reduce fully at the end, so their outputs are
 * bit-identical to the scalar path's. Strides of 8 and more load whole vectors; the last
 * three forward stages (the first three inverse ones), whose butterflies pair words inside
 * one vector, regroup 16 words into a vector of first and one of second operands with
 * two-source permutes.
 *
 * Built with GCC >= 11 or Clang on x86-64 (the body is ckks_ntt_avx512.inc, once per
 * instance); which instance runs is decided per CPU at run time, so a portable build
 * carries both.
 */
#include "ckks_internal.h"

#if CKKS_AVX512_CODE
#include <immintrin.h>

#define BASE __attribute__((target("avx512f,avx512dq")))
#define MASK52 ((((uint64_t)1) << 52) - 1)

/* The best path this CPU has (CKKS_VEC_*), or -1 until asked; the path in use. */
static _Atomic int cpu_best = -1, in_use = -1;

static int cpu_path_best(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512dq"))
        return __builtin_cpu_supports("avx2") ? CKKS_VEC_AVX2 : CKKS_VEC_SCALAR;
    return __builtin_cpu_supports("avx512ifma") ? CKKS_VEC_IFMA : CKKS_VEC_AVX512;
}

int ckks_vector_path(int want) {
    if (cpu_best < 0) cpu_best = cpu_path_best();
    if (want >= 0) in_use = want < cpu_best ? want : cpu_best;
    /* The default is the best path, except AVX2's: on the CPUs measured so far its transforms
     * were no faster than the scalar code (docs/performance.md), so it is only used when asked. */
    else if (in_use < 0) in_use = cpu_best == CKKS_VEC_AVX2 ? CKKS_VEC_SCALAR : cpu_best;
    return in_use;
}

int ckks_vec_path(const ckks_modulus *m, size_t n) {
    int path = in_use;
    if (path < 0) path = ckks_vector_path(-1);
    if (path == CKKS_VEC_AVX2) return n >= 8 ? CKKS_VEC_AVX2 : CKKS_VEC_SCALAR;
    if (n < 16 || path == CKKS_VEC_SCALAR) return CKKS_VEC_SCALAR;
    return (path == CKKS_VEC_IFMA && m->q < ((uint64_t)1 << 50)) ? CKKS_VEC_IFMA : CKKS_VEC_AVX512;
}

/* The constants of one prime, broadcast. */
struct vq {
    __m512i q, q2, negq52, mask52;
};

BASE static inline __m512i bcast(uint64_t w) { return _mm512_set1_epi64((long long)w); }

BASE static inline struct vq vq_of(uint64_t q) {
    struct vq v = {bcast(q), bcast(2 * q), bcast((((uint64_t)1) << 52) - q), bcast(MASK52)};
    return v;
}

/* x - m if x >= m else x, for unsigned lanes (a wrapped difference is the larger). */
BASE static inline __m512i sub_if_ge(__m512i x, __m512i m) {
    return _mm512_min_epu64(x, _mm512_sub_epi64(x, m));
}

/* For a stride t in {1, 2, 4}: where 16 consecutive words go. first / second: the positions
 * (0..15) of the eight first / second operands; back_lo / back_hi: the two-source permute
 * indices (0..7 first operands, 8..15 second ones) that put words 0..7 / 8..15 back;
 * tw: which of eight consecutive twiddles serves each butterfly. */
struct regroup {
    __m512i first, second, back_lo, back_hi, tw;
};

BASE static struct regroup regroup_of(size_t t) {
    long long first[8], second[8], back[16], tw[8];
    for (size_t k = 0; k < 8; k++) {
        const size_t pos = (k / t) * 2 * t + k % t;  /* the k-th word whose bit t is clear */
        first[k] = (long long)pos;
        second[k] = (long long)(pos + t);
        back[pos] = (long long)k;
        back[pos + t] = (long long)(8 + k);
        tw[k] = (long long)(pos / (2 * t));
    }
    struct regroup g = {_mm512_loadu_si512(first), _mm512_loadu_si512(second), _mm512_loadu_si512(back),
                        _mm512_loadu_si512(back + 8), _mm512_loadu_si512(tw)};
    return g;
}

/* 64-bit Shoup for lanes a < 4q < 2^63: the quotient hi(a * ws) from a1 b1 + (a0 b1 + a1 b0) / 2^32,
 * missing the carry of the low words (at most 2), so a w - quot q lies in [0, 4q). */
BASE static inline __m512i mul_shoup64(__m512i a, __m512i w, __m512i ws, const struct vq *c) {
    const __m512i a1 = _mm512_srli_epi64(a, 32), b1 = _mm512_srli_epi64(ws, 32);
    const __m512i mid = _mm512_add_epi64(_mm512_srli_epi64(_mm512_mul_epu32(a, b1), 32),
                                         _mm512_srli_epi64(_mm512_mul_epu32(a1, ws), 32));
    const __m512i quot = _mm512_add_epi64(_mm512_mul_epu32(a1, b1), mid);
    const __m512i r = _mm512_sub_epi64(_mm512_mullo_epi64(a, w), _mm512_mullo_epi64(quot, c->q));
    return sub_if_ge(r, c->q2);
}

#define VEC(name) name##_avx512
#define VEC_TARGET BASE
#define VEC_MUL(a, w, ws) mul_shoup64((a), (w), (ws), c)
#define VEC_SH(ws64) (ws64)
#define VEC_SH_OF(w, q) ckks_shoup((w), (q))
#include "ckks_ntt_avx512.inc"
#undef VEC
#undef VEC_TARGET
#undef VEC_MUL
#undef VEC_SH
#undef VEC_SH_OF

#define IFMA __attribute__((target("avx512f,avx512dq,avx512ifma")))

/* 52-bit Shoup for lanes a < 2^52, ws = floor(w 2^52 / q): a w - floor(a ws / 2^52) q, computed
 * modulo 2^52 (the true value is below 2q < 2^52). */
IFMA static inline __m512i mul_shoup52(__m512i a, __m512i w, __m512i ws, const struct vq *c) {
    const __m512i zero = _mm512_setzero_si512();
    const __m512i quot = _mm512_madd52hi_epu64(zero, a, ws);
    const __m512i r = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(zero, a, w), quot, c->negq52);
    return _mm512_and_si512(r, c->mask52);
}

#define VEC(name) name##_ifma
#define VEC_TARGET IFMA
#define VEC_MUL(a, w, ws) mul_shoup52((a), (w), (ws), c)
#define VEC_SH(ws64) _mm512_srli_epi64((ws64), 12)
#define VEC_SH_OF(w, q) ((uint64_t)(((ckks_u128)(w) << 52) / (q)))
#include "ckks_ntt_avx512.inc"

#else /* no AVX-512 code in this build */

int ckks_vector_path(int want) { return CKKS_VEC_SCALAR; }

int ckks_vec_path(const ckks_modulus *m, size_t n) { return CKKS_VEC_SCALAR; }

void ckks_ntt_limb_avx512(const ckks_modulus *m, size_t n, uint64_t *a) {}
void ckks_intt_limb_avx512(const ckks_modulus *m, size_t n, uint64_t *a) {}
void ckks_ntt_limb_ifma(const ckks_modulus *m, size_t n, uint64_t *a) {}
void ckks_intt_limb_ifma(const ckks_modulus *m, size_t n, uint64_t *a) {}

#endif
