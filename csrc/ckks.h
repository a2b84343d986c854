/* Native core of the RNS-CKKS scheme: word-size modular arithmetic, negacyclic
 * NTTs, RNS element-wise kernels, rescaling, fast base conversion, hybrid key
 * switching and Galois permutations.
 *
 * Conventions (see he_core.h): plain C11, no global state, caller-owned buffers,
 * HE_* status codes. A polynomial in RNS form is a dense (nlimbs, n) uint64 array,
 * limb i reduced modulo mods[i].q. "NTT form" means the output order of ckks_ntt:
 * entry k holds a(psi^(2*bitrev(k)+1)).
 *
 * Every modulus is an odd prime q < 2^61 with q = 1 mod 2n, so lazy values in
 * [0, 4q) fit a 64-bit word with room to spare.
 */
#ifndef HENN_CKKS_H
#define HENN_CKKS_H
#include <stddef.h>
#include <stdint.h>
#include "he_status.h"

/* CDEF-BEGIN: declarations handed to cffi */
typedef struct ckks_modulus {
    uint64_t q;
    uint64_t r0, r1;         /* floor(2^128 / q) = r1 * 2^64 + r0, for Barrett reduction */
    uint64_t ninv, ninv_sh;  /* n^-1 mod q and its Shoup companion floor(ninv * 2^64 / q) */
    const uint64_t *psi;     /* psi^bitrev(k), k < n (owned by the caller's table buffer) */
    const uint64_t *psi_sh;  /* Shoup companions of psi */
    const uint64_t *ipsi;    /* psi^-bitrev(k) */
    const uint64_t *ipsi_sh;
} ckks_modulus;

/* Fill m for prime q and primitive 2n-th root psi; tables must hold 4*n words and
 * must outlive every use of m. */
int ckks_modulus_init(ckks_modulus *m, uint64_t q, uint64_t psi, size_t n, uint64_t *tables);

/* In-place forward / inverse negacyclic NTT of every limb (inputs and outputs in [0, q)). */
int ckks_ntt(const ckks_modulus *m, size_t nlimbs, size_t n, uint64_t *a);
int ckks_intt(const ckks_modulus *m, size_t nlimbs, size_t n, uint64_t *a);

/* Element-wise over limbs: out = a + b, a - b, -a, a * b; acc += a * b. out may alias a or b. */
int ckks_add(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *b, uint64_t *out);
int ckks_sub(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *b, uint64_t *out);
int ckks_neg(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, uint64_t *out);
int ckks_mul(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *b, uint64_t *out);
int ckks_muladd(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *b, uint64_t *acc);
/* out = a * s[limb] (one scalar per limb, each < q). */
int ckks_mul_scalar(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *s, uint64_t *out);
/* Signed int64 coefficients (any value) to RNS: out[l][i] = x[i] mod q_l. */
int ckks_from_signed(const ckks_modulus *m, size_t nlimbs, size_t n, const int64_t *x, uint64_t *out);

/* Rescale: a (nlimbs, n) in NTT form to out = round(a / q_last) over the first nlimbs - 1
 * limbs (also NTT form). out may alias a. scratch: 2 * n words. */
int ckks_rescale(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, uint64_t *out,
                 uint64_t *scratch);

/* Fast base conversion of coefficient-form x from basis `from` to basis `to`:
 * out_t = sum_i [x_i * inv_hat_i]_{q_i} * hat_mod[i * nto + t]  mod p_t. */
int ckks_base_conv(const ckks_modulus *from, size_t nfrom, const ckks_modulus *to, size_t nto, size_t n,
                   const uint64_t *x, const uint64_t *inv_hat, const uint64_t *hat_mod, uint64_t *out);

/* Hybrid key switching of d (nq limbs, NTT form) with a key of dnum digits laid out
 * (dnum, 2, ltot, n); m holds the nq primes of the level followed by the np special
 * primes. QP limb t uses key limb t (t < nq) or ltot - np + (t - nq).
 * conv_up: per digit j (dj = min(alpha, nq - j*alpha) primes): dj inverse hats, then
 *          dj * (nq + np) hats modulo every QP prime.
 * conv_down: np inverse hats of P, np * nq hats of P modulo q_t, then nq values P^-1 mod q_t.
 * out: (2, nq, n) in NTT form, the two parts of the switched ciphertext.
 * scratch: ckks_keyswitch_scratch(nq, np, n, alpha) words (reused between calls, so the
 * hot path never touches fresh pages). */
size_t ckks_keyswitch_scratch(size_t nq, size_t np, size_t n, size_t alpha);
int ckks_keyswitch(const ckks_modulus *m, size_t nq, size_t np, size_t n, const uint64_t *d,
                   const uint64_t *key, size_t dnum, size_t ltot, size_t alpha,
                   const uint64_t *conv_up, const uint64_t *conv_down, uint64_t *out,
                   uint64_t *scratch, size_t scratch_words);

/* Key switching converts one-prime digits (and a one-prime P in the mod-down) centred,
 * so its error has no bias along the all-ones polynomial.
 * Hoisted key switching: ckks_modup writes the beta = ceil(nq / alpha) mod-up digits of d
 * (NTT form in and out) to ext, shape (beta, nq + np, n); ckks_ks_dot finishes the key
 * switch of perm(d) from them (perm as in ckks_permute, or NULL for d itself), so that
 * many rotations of one ciphertext decompose it once. Same m, key and conv_* layouts as
 * ckks_keyswitch; scratch: ckks_modup_scratch / ckks_ks_dot_scratch words, 16-byte aligned. */
size_t ckks_modup_scratch(size_t nq, size_t n);
int ckks_modup(const ckks_modulus *m, size_t nq, size_t np, size_t n, const uint64_t *d, size_t alpha,
               const uint64_t *conv_up, uint64_t *ext, uint64_t *scratch, size_t scratch_words);
size_t ckks_ks_dot_scratch(size_t nq, size_t np, size_t n);
int ckks_ks_dot(const ckks_modulus *m, size_t nq, size_t np, size_t n, const uint64_t *ext, size_t beta,
                const uint32_t *perm, const uint64_t *key, size_t dnum, size_t ltot,
                const uint64_t *conv_down, uint64_t *out, uint64_t *scratch, size_t scratch_words);

/* out[l][i] = in[l][perm[i]] (a Galois automorphism in NTT form). out must not alias in. */
int ckks_permute(size_t nlimbs, size_t n, const uint64_t *in, const uint32_t *perm, uint64_t *out);
/* CDEF-END */

/* ---- internal inline helpers shared by the ckks_*.c files (not part of the cdef) ---- */
typedef unsigned __int128 ckks_u128;

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

#endif
