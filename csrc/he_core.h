/* The one public header of henn's native core: every exported function is declared
 * here, once. csrc/build_native.py hands cffi the "common" section plus the section of
 * the module it builds (he_core.native._ckks, he_core.native._vhe), so the bindings
 * cannot drift from the C.
 *
 * Conventions for every function declared below:
 *   - plain C11 (the .c files also use the GCC / Clang __int128 extension for 128-bit
 *     products and sums, and shift only unsigned values right: a right shift of a negative
 *     signed value is implementation-defined), no global state apart from the CPU-path
 *     choice made once at load and the module's thread pool (csrc/pool.c);
 *   - thread-compatible: calls from several threads may run at once (a call finding the
 *     pool busy runs on its own thread);
 *   - scratch sizes (*_scratch) include one slice per thread of the setting in force when
 *     they are asked; a kernel handed fewer slices uses fewer threads, never more;
 *   - sizes and counts are size_t, values are fixed-width integers;
 *   - every buffer is owned by the caller, its size given by the call's dimensions (arrays)
 *     or by a length (scratch, ckks_modulus_init's tables); no kernel allocates;
 *     scratch buffers come with a length the kernel checks against its *_scratch(), and must
 *     be aligned for their word type (else HE_ERR_SCRATCH); so do the tables;
 *   - every pointer is checked: NULL gives HE_ERR_NULL, never a crash;
 *   - arrays are dense, row-major (C order);
 *   - the return value is an HE_* status code. On an error the output buffers hold
 *     unspecified values unless the function says otherwise.
 */
#ifndef HE_CORE_H
#define HE_CORE_H
#include <stddef.h>
#include <stdint.h>

/* CDEF-BEGIN common */
#define HE_OK 0
#define HE_ERR_ARGUMENT 1   /* a size or parameter is invalid */
#define HE_ERR_OVERFLOW 2   /* a result would not fit in its integer type */
#define HE_ERR_SCRATCH 3    /* a scratch or table buffer is smaller than the kernel needs, or misaligned */
#define HE_ERR_RANGE 4      /* a value lies outside the range a parameter allows */
#define HE_ERR_NULL 5       /* a required pointer is NULL */
#define HE_ERR_DIMENSION 6  /* a modulus was initialised for another ring dimension n */
#define HE_MAX_THREADS 256

/* Threads of this module's kernels (each native module has its own pool; he_core.threads
 * sets them all). The kernels split their work over RNS limbs, rows or ciphertexts and
 * every item writes only its own outputs, so results are identical for any setting.
 * he_set_threads: 1 <= n <= HE_MAX_THREADS, else HE_ERR_ARGUMENT. he_get_threads: the
 * setting in force (always 1 in a build without threads). he_threads_built: 1 if the
 * module was built with its thread pool, 0 if every kernel runs on the calling thread.
 * he_split_jobs: how many kernel steps so far had a worker thread take part (for tests and
 * profiles; small steps stay on the calling thread, where waking workers costs more, and
 * a worker the scheduler has not run by the time the caller has done every item stays out). */
int he_set_threads(size_t n);
size_t he_get_threads(void);
int he_threads_built(void);
size_t he_split_jobs(void);
/* CDEF-END common */

/* ================================================================== RNS-CKKS
 * Word-size modular arithmetic, negacyclic NTTs, RNS element-wise kernels, rescaling,
 * fast base conversion, hybrid key switching and Galois permutations.
 *
 * A polynomial in RNS form is a dense (nlimbs, n) uint64 array, limb i reduced modulo
 * mods[i].q. "NTT form" means the output order of ckks_ntt: entry k holds
 * a(psi^(2*bitrev(k)+1)). Every modulus is an odd prime q < 2^61 with q = 1 mod 2n, so
 * lazy values in [0, 4q) fit a 64-bit word with room to spare. Every function taking n
 * refuses (HE_ERR_DIMENSION) a modulus initialised for another n: its twiddle tables
 * hold exactly n entries.
 */
/* CDEF-BEGIN ckks */
typedef struct ckks_modulus {
    uint64_t q;
    uint64_t r0, r1;         /* floor(2^128 / q) = r1 * 2^64 + r0, for Barrett reduction */
    uint64_t ninv, ninv_sh;  /* n^-1 mod q and its Shoup companion floor(ninv * 2^64 / q) */
    size_t n;                /* the ring dimension the tables below were built for */
    const uint64_t *psi;     /* psi^bitrev(k), k < n (owned by the caller's table buffer) */
    const uint64_t *psi_sh;  /* Shoup companions of psi */
    const uint64_t *ipsi;    /* psi^-bitrev(k) */
    const uint64_t *ipsi_sh;
} ckks_modulus;

/* Which build of the wide-vector kernels runs on this CPU: "x86-64-v4" (AVX-512),
 * "x86-64-v3" (AVX2, BMI2), "default" (baseline ISA) or "native" (a -march=native build). */
const char *ckks_cpu_path(void);

/* Which code runs the NTTs and ckks_dot: CKKS_VEC_SCALAR, CKKS_VEC_AVX2 (NTTs in four lanes of
 * 64-bit Shoup products), CKKS_VEC_AVX512 (eight lanes) or CKKS_VEC_IFMA (that, plus IFMA's
 * 52-bit products for the NTTs and sums of products of primes below 2^50). Results are
 * bit-identical on every path. want >= 0 asks for that path, capped at the best this CPU and
 * build have; -1 only asks. Returns the path in use. Default: the best, except that an
 * AVX2-only CPU stays scalar unless AVX2 is asked for. */
#define CKKS_VEC_SCALAR 0
#define CKKS_VEC_AVX2 1
#define CKKS_VEC_AVX512 2
#define CKKS_VEC_IFMA 3
int ckks_vector_path(int want);

/* Fill m for prime q and primitive 2n-th root psi. tables: tables_words words, at least 4*n
 * and aligned for uint64_t (else HE_ERR_SCRATCH), kept alive for every use of m (m points
 * into it). On an error m.n is 0, so every kernel refuses m. */
int ckks_modulus_init(ckks_modulus *m, uint64_t q, uint64_t psi, size_t n, uint64_t *tables,
                      size_t tables_words);

/* In-place forward / inverse negacyclic NTT of every limb (inputs and outputs in [0, q)). */
int ckks_ntt(const ckks_modulus *m, size_t nlimbs, size_t n, uint64_t *a);
int ckks_intt(const ckks_modulus *m, size_t nlimbs, size_t n, uint64_t *a);

/* Element-wise over limbs: out = a + b, a - b, -a, a * b; acc += a * b. out may alias a or b. */
int ckks_add(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *b, uint64_t *out);
int ckks_sub(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *b, uint64_t *out);
int ckks_neg(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, uint64_t *out);
int ckks_mul(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *b, uint64_t *out);
int ckks_muladd(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *b, uint64_t *acc);
/* out = sum_t xs[t] * ps[t] over nterms >= 1 pairs of (nlimbs, n) residue arrays, each sum reduced
 * once; out must not alias an input. */
int ckks_dot(const ckks_modulus *m, size_t nlimbs, size_t n, uint64_t *const *xs, uint64_t *const *ps, size_t nterms,
             uint64_t *out);
/* out = a * s[limb] (one scalar per limb, each < q). */
int ckks_mul_scalar(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, const uint64_t *s, uint64_t *out);
/* Integer linear combinations of polynomials: out_j = sum_r w[j][r][l] * a_r, limb by limb (any form,
 * the same for every operand). a_r starts at a + r * a_step and out_j at out + j * out_step, each
 * (nlimbs, n) words; w holds nout * nin * nlimbs residues, each below its limb's prime (else
 * HE_ERR_RANGE, before any output is written). Products are summed in 128 bits and reduced once
 * per few terms, so nin is unbounded. out must not overlap a. */
int ckks_lincomb(const ckks_modulus *m, size_t nlimbs, size_t n, size_t nin, size_t nout, const uint64_t *a,
                 size_t a_step, const uint64_t *w, uint64_t *out, size_t out_step);
/* Signed int64 coefficients (any value) to RNS: out[l][i] = x[i] mod q_l. */
int ckks_from_signed(const ckks_modulus *m, size_t nlimbs, size_t n, const int64_t *x, uint64_t *out);

/* Rescale: a (nlimbs, n) in NTT form to out = round(a / q_last) over the first nlimbs - 1
 * limbs (also NTT form). out may alias a. scratch: ckks_rescale_scratch(n) words. */
size_t ckks_rescale_scratch(size_t n);
int ckks_rescale(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a, uint64_t *out,
                 uint64_t *scratch, size_t scratch_words);

/* Fast base conversion of coefficient-form x from basis `from` to basis `to`:
 * out_t = sum_i [x_i * inv_hat_i]_{q_i} * hat_mod[i * nto + t]  mod p_t.
 * scratch: ckks_base_conv_scratch(nfrom, n) words. */
size_t ckks_base_conv_scratch(size_t nfrom, size_t n);
int ckks_base_conv(const ckks_modulus *from, size_t nfrom, const ckks_modulus *to, size_t nto, size_t n,
                   const uint64_t *x, const uint64_t *inv_hat, const uint64_t *hat_mod, uint64_t *out,
                   uint64_t *scratch, size_t scratch_words);

/* Hybrid key switching of d (nq limbs, NTT form) with a key of dnum digits laid out
 * (dnum, 2, ltot, n); m holds the nq primes of the level followed by the np special
 * primes. QP limb t uses key limb t (t < nq) or ltot - np + (t - nq).
 * conv_up: per digit j (dj = min(alpha, nq - j*alpha) primes): dj inverse hats, then
 *          dj * (nq + np) hats modulo every QP prime.
 * conv_down: np inverse hats of P, np * nq hats of P modulo q_t, then nq values P^-1 mod q_t.
 * out: (2, nq, n) in NTT form, the two parts of the switched ciphertext.
 * scratch: ckks_keyswitch_scratch(nq, np, n, alpha) words (reused between calls, so the
 * hot path never touches fresh pages).
 * Key switching converts one-prime digits centred and rounds the mod-down by P to nearest
 * (for any np: an overflow count rounded in doubles, see ckks_keyswitch.c), so its error
 * has no bias along the all-ones polynomial. */
size_t ckks_keyswitch_scratch(size_t nq, size_t np, size_t n, size_t alpha);
int ckks_keyswitch(const ckks_modulus *m, size_t nq, size_t np, size_t n, const uint64_t *d,
                   const uint64_t *key, size_t dnum, size_t ltot, size_t alpha,
                   const uint64_t *conv_up, const uint64_t *conv_down, uint64_t *out,
                   uint64_t *scratch, size_t scratch_words);

/* Hoisted key switching: ckks_modup writes the beta = ceil(nq / alpha) mod-up digits of d
 * (NTT form in and out) to ext, shape (beta, nq + np, n); ckks_ks_dot finishes the key
 * switch of perm(d) from them (perm as in ckks_permute, or NULL for d itself), so that
 * many rotations of one ciphertext decompose it once. Same m, key and conv_* layouts as
 * ckks_keyswitch; scratch: ckks_modup_scratch / ckks_ks_dot_scratch words. */
size_t ckks_modup_scratch(size_t nq, size_t n);
int ckks_modup(const ckks_modulus *m, size_t nq, size_t np, size_t n, const uint64_t *d, size_t alpha,
               const uint64_t *conv_up, uint64_t *ext, uint64_t *scratch, size_t scratch_words);
size_t ckks_ks_dot_scratch(size_t nq, size_t np, size_t n);
int ckks_ks_dot(const ckks_modulus *m, size_t nq, size_t np, size_t n, const uint64_t *ext, size_t beta,
                const uint32_t *perm, const uint64_t *key, size_t dnum, size_t ltot,
                const uint64_t *conv_down, uint64_t *out, uint64_t *scratch, size_t scratch_words);

/* out[l][i] = in[l][perm[i]] (a Galois automorphism in NTT form). out must not alias in. */
int ckks_permute(size_t nlimbs, size_t n, const uint64_t *in, const uint32_t *perm, uint64_t *out);
/* CDEF-END ckks */

/* ================================================================== vhe
 * Zhou-Wornell integer-vector HE, no modulus. Ciphertexts are batches of int64 rows of
 * length n = m + k (m message slots, k key columns). Every kernel accumulates in 128 bits
 * and refuses (HE_ERR_OVERFLOW) any result whose magnitude exceeds the caller's `limit`,
 * so nothing ever wraps. On an error the output buffer holds unspecified values, except
 * for vhe_scatter_add, which restores its in-place target.
 *
 * "Rounded division" by div >= 1 means floor((x + floor(div / 2)) / div): the nearest
 * integer, ties rounded up. div = 1 leaves x unchanged.
 *
 * stats[0] / stats[1] receive the largest |entry| of the head columns (0 .. head-1) and
 * of the key columns (head .. n-1) of the rows written.
 *
 * Row broadcasting: an operand with 1 row is reused for every output row.
 */
/* CDEF-BEGIN vhe */
#define VHE_MAX_K 64                        /* key columns: bounds every 128-bit sum over them */
#define VHE_MAX_NOISE 4611686018427387903   /* 2^62 - 1: 2 noise + 1 still fits int64 */
#define VHE_MAX_DIGITS 8796093022208        /* 2^43 key-switch digits per row: their |digit| sum fits
                                               int64, their 128-bit sums of products (< 2^82 each) cannot wrap */

/* out = a + sign * b (sign = 1 or -1, else HE_ERR_ARGUMENT), rows of a/b are ra/rb (each == rows or 1). */
int vhe_add(const int64_t *a, size_t ra, const int64_t *b, size_t rb, size_t rows, size_t n,
            size_t head, int64_t sign, int64_t limit, int64_t *out, int64_t *stats);

/* out[r] = round(a[r] * p[r] / div); p has rp (rows or 1) entries. */
int vhe_scale(const int64_t *a, size_t ra, const int64_t *p, size_t rp, size_t rows, size_t n,
              size_t head, int64_t div, int64_t limit, int64_t *out, int64_t *stats);

/* out[r] = round((hi[r] * 2^shift + lo[r]) / div), 0 <= shift <= 62: recombines a split key switch. */
int vhe_combine(const int64_t *hi, const int64_t *lo, size_t rows, size_t n, size_t head,
                int shift, int64_t div, int64_t limit, int64_t *out, int64_t *stats);

/* out[q] = round(sum_r w[q, r] * a[r] / div) for q < nq. A row of w with sum_r |w[q, r]| >= 2^64
 * is summed with overflow checks: HE_ERR_OVERFLOW also if a partial sum would leave 128 bits. */
int vhe_lincomb(const int64_t *w, size_t nq, const int64_t *a, size_t rows, size_t n,
                size_t head, int64_t div, int64_t limit, int64_t *out, int64_t *stats);

/* out (one row) = sum of a[idx[j]] for j < nidx, or of every row when idx is NULL. */
int vhe_gather_sum(const int64_t *a, size_t rows, size_t n, const int64_t *idx, size_t nidx,
                   size_t head, int64_t limit, int64_t *out, int64_t *stats);

/* In place: a[idx[j]] += b[j] (or b[0] when rb == 1). On overflow a is restored.
 * stats[2] receives the largest number of times one row index occurs.
 * scratch: vhe_scatter_add_scratch(rows) words. */
size_t vhe_scatter_add_scratch(size_t rows);
int vhe_scatter_add(int64_t *a, size_t rows, size_t n, const int64_t *idx, size_t nidx,
                    const int64_t *b, size_t rb, size_t head, int64_t limit, int64_t *stats,
                    int64_t *scratch, size_t scratch_words);

/* Compact tensor product. a: ra rows of length ma + k (ma == 1: a scalar ciphertext,
 * or ma == m), b: rb rows of length m + k, k <= VHE_MAX_K. For each output row and slot i
 * the (1+k)^2 products L[p] * R[q] with L = (a[i or 0], a[ma..]) and R = (b[i], b[m..])
 * are divided by div with rounding and written at out[row, i*(1+k)^2 + p*(1+k) + q]. */
int vhe_tensor(const int64_t *a, size_t ra, size_t ma, const int64_t *b, size_t rb, size_t m,
               size_t k, size_t rows, int64_t div, int64_t limit, int64_t *out);

/* Key switch: out[r] = M * digits(c[r]), with M given transposed (mt: n*ell rows of
 * out_len entries, row j*ell + d belongs to digit d of entry j). Digits are signed,
 * base 2^digit_bits (2 <= digit_bits <= 20), in [-2^(digit_bits-1), 2^(digit_bits-1)); n * ell <=
 * VHE_MAX_DIGITS (else HE_ERR_ARGUMENT).
 * HE_ERR_RANGE if an entry of c needs more than ell digits. stats[2] receives the largest
 * sum of |digit| over one input row (the key switch adds at most e_bound times that much
 * noise to the row). scratch: vhe_keyswitch_scratch(n, ell) words. */
size_t vhe_keyswitch_scratch(size_t n, size_t ell);
int vhe_keyswitch(const int64_t *c, size_t rows, size_t n, const int64_t *mt, size_t out_len,
                  int digit_bits, size_t ell, size_t head, int64_t limit, int64_t *out,
                  int64_t *stats, int64_t *scratch, size_t scratch_words);

/* A ciphertext product in one call: the compact tensor of vhe_tensor (its tlen = m (1+k)^2
 * entries per row, each checked against limit) key-switched as by vhe_keyswitch with a key
 * of tlen * ell rows (tlen * ell <= VHE_MAX_DIGITS). stats as for vhe_keyswitch. scratch: vhe_mul_scratch(m, k, ell) words. */
size_t vhe_mul_scratch(size_t m, size_t k, size_t ell);
int vhe_mul(const int64_t *a, size_t ra, size_t ma, const int64_t *b, size_t rb, size_t m, size_t k,
            size_t rows, int64_t div, const int64_t *mt, size_t out_len, int digit_bits, size_t ell,
            size_t head, int64_t limit, int64_t *out, int64_t *stats, int64_t *scratch, size_t scratch_words);

/* Secret-key encryption in place. On entry data (rows x (m+k)) holds uniform draws: its key
 * columns are kept as the ciphertext's key columns and its head entries u become the noise
 * (u mod (2 noise + 1)) - noise (floor modulo), 0 <= noise <= VHE_MAX_NOISE. On return
 * data[r, i] = w x[r, i] + noise_ri - sum_j t[i, j] data[r, m + j], k <= VHE_MAX_K.
 * HE_ERR_OVERFLOW if an entry (or a partial sum) would not fit. */
int vhe_encrypt(const int64_t *x, size_t rows, size_t m, size_t k, const int64_t *t, int64_t w,
                int64_t noise, int64_t *data);

/* Decryption: x[r, i] = round((c[r, i] + sum_j t[i, j] * c[r, m + j]) / w), k <= VHE_MAX_K. */
int vhe_decrypt(const int64_t *c, size_t rows, size_t m, size_t k, const int64_t *t, int64_t w,
                int64_t *x);
/* CDEF-END vhe */

#endif
