/* Negacyclic NTT over word-size primes with Harvey's lazy butterflies.
 *
 * Forward: Cooley-Tukey, decimation in time, natural order in, bit-reversed order
 * out, twiddles psi^bitrev(k) (so the x^n = -1 twist is folded into the twiddles).
 * Inverse: Gentleman-Sande with psi^-bitrev(k), then a multiplication by n^-1.
 * Values stay in [0, 4q) (forward) / [0, 2q) (inverse) between stages and are
 * reduced to [0, q) once at the end.
 */
#include "ckks_internal.h"
#include "pool.h"

uint64_t ckks_powmod(uint64_t b, uint64_t e, const ckks_modulus *m) {
    uint64_t r = 1 % m->q;
    b %= m->q;
    while (e) {
        if (e & 1) r = ckks_mulmod(r, b, m);
        b = ckks_mulmod(b, b, m);
        e >>= 1;
    }
    return r;
}

static size_t bitrev(size_t x, int bits) {
    size_t r = 0;
    for (int i = 0; i < bits; i++) {
        r = (r << 1) | (x & 1);
        x >>= 1;
    }
    return r;
}

static int log2_exact(size_t n) {
    int k = 0;
    if (n < 2 || (n & (n - 1))) return -1;
    while ((size_t)1 << k != n) k++;
    return k;
}

const char *ckks_cpu_path(void) {
#if defined(HENN_NATIVE_BUILD)
    return "native";
#elif CKKS_DISPATCH
    /* The same ISA-level tests GCC's target_clones resolver makes, in the same order. */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4";
    if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3";
    return "default";
#else
    return "default";
#endif
}

int ckks_modulus_init(ckks_modulus *m, uint64_t q, uint64_t psi, size_t n, uint64_t *tables,
                      size_t tables_words) {
    if (!m || !tables) return HE_ERR_NULL;
    m->n = 0;  /* until the tables are built: a failed (re-)init leaves m refused by every kernel */
    int logn = log2_exact(n);
    if (logn < 0 || logn > 59 || q < 3 || q >= ((uint64_t)1 << 61) || (q & 1) == 0) return HE_ERR_ARGUMENT;
    if (!ckks_scratch_ok(tables, tables_words, ckks_words_of(4, n))) return HE_ERR_SCRATCH;
    if ((q - 1) % (2 * (uint64_t)n) != 0) return HE_ERR_ARGUMENT;  /* logn <= 59: 2n cannot wrap */
    ckks_u128 ratio = ~(ckks_u128)0 / q;  /* q is odd, so this equals floor(2^128 / q) */
    m->q = q;
    m->r0 = (uint64_t)ratio;
    m->r1 = (uint64_t)(ratio >> 64);
    if (psi == 0 || psi >= q || ckks_powmod(psi, n, m) != q - 1) return HE_ERR_ARGUMENT;
    uint64_t ipsi = ckks_powmod(psi, q - 2, m);
    uint64_t *fw = tables, *fw_sh = tables + n, *iv = tables + 2 * n, *iv_sh = tables + 3 * n;
    uint64_t p = 1, ip = 1;
    for (size_t k = 0; k < n; k++) {
        size_t r = bitrev(k, logn);
        fw[r] = p;
        iv[r] = ip;
        p = ckks_mulmod(p, psi, m);
        ip = ckks_mulmod(ip, ipsi, m);
    }
    for (size_t k = 0; k < n; k++) {
        fw_sh[k] = ckks_shoup(fw[k], q);
        iv_sh[k] = ckks_shoup(iv[k], q);
    }
    m->ninv = ckks_powmod(n % q, q - 2, m);
    m->ninv_sh = ckks_shoup(m->ninv, q);
    m->n = n;
    m->psi = fw;
    m->psi_sh = fw_sh;
    m->ipsi = iv;
    m->ipsi_sh = iv_sh;
    return HE_OK;
}

/* Cooley-Tukey butterfly on lazy values in [0, 4q): (x, y) -> (x + w y, x - w y), still in [0, 4q). */
#define CT_BF(x, y, w, ws)                                   \
    do {                                                     \
        uint64_t u_ = (x) >= q2 ? (x) - q2 : (x);            \
        uint64_t v_ = ckks_mul_shoup_lazy((y), (w), (ws), q); \
        (x) = u_ + v_;                                       \
        (y) = u_ - v_ + q2;                                  \
    } while (0)

/* The vector instances by CKKS_VEC_* code (ckks_ntt_avx2.c, ckks_ntt_avx512.c). */
typedef void (*limb_transform)(const ckks_modulus *, size_t, uint64_t *);
static const limb_transform VEC_NTT[] = {NULL, ckks_ntt_limb_avx2, ckks_ntt_limb_avx512, ckks_ntt_limb_ifma};
static const limb_transform VEC_INTT[] = {NULL, ckks_intt_limb_avx2, ckks_intt_limb_avx512, ckks_intt_limb_ifma};

CKKS_HOT void ckks_ntt_limb(const ckks_modulus *m, size_t n, uint64_t *a) {
    const int path = ckks_vec_path(m, n);
    if (path != CKKS_VEC_SCALAR) {
        VEC_NTT[path](m, n, a);
        return;
    }
    const uint64_t q = m->q, q2 = 2 * q;
    size_t t = n, h = 1;
    while (h < n / 2) {  /* every stage but the last */
        t >>= 1;
        if (2 * h < n / 2) {
            /* Two stages at once (radix 4): each element is loaded and stored once per pair. */
            const size_t t2 = t >> 1;
            for (size_t i = 0; i < h; i++) {
                const uint64_t w = m->psi[h + i], ws = m->psi_sh[h + i];
                const uint64_t w0 = m->psi[2 * h + 2 * i], w0s = m->psi_sh[2 * h + 2 * i];
                const uint64_t w1 = m->psi[2 * h + 2 * i + 1], w1s = m->psi_sh[2 * h + 2 * i + 1];
                uint64_t *x = a + 2 * i * t;
                for (size_t j = 0; j < t2; j++) {
                    uint64_t A = x[j], B = x[t2 + j], C = x[t + j], D = x[t + t2 + j];
                    CT_BF(A, C, w, ws);
                    CT_BF(B, D, w, ws);
                    CT_BF(A, B, w0, w0s);
                    CT_BF(C, D, w1, w1s);
                    x[j] = A;
                    x[t2 + j] = B;
                    x[t + j] = C;
                    x[t + t2 + j] = D;
                }
            }
            h <<= 2;
            t = t2;
        } else {
            for (size_t i = 0; i < h; i++) {
                const uint64_t w = m->psi[h + i], ws = m->psi_sh[h + i];
                uint64_t *x = a + 2 * i * t, *y = x + t;
                for (size_t j = 0; j < t; j++) CT_BF(x[j], y[j], w, ws);
            }
            h <<= 1;
        }
    }
    /* Last stage (pairs of neighbours) fused with the final reduction to [0, q). */
    for (size_t i = 0; i < h; i++) {
        const uint64_t w = m->psi[h + i], ws = m->psi_sh[h + i];
        uint64_t s0 = a[2 * i], s1 = a[2 * i + 1];
        CT_BF(s0, s1, w, ws);
        s0 = s0 >= q2 ? s0 - q2 : s0;
        s1 = s1 >= q2 ? s1 - q2 : s1;
        a[2 * i] = s0 >= q ? s0 - q : s0;
        a[2 * i + 1] = s1 >= q ? s1 - q : s1;
    }
}

CKKS_HOT void ckks_intt_limb(const ckks_modulus *m, size_t n, uint64_t *a) {
    const int path = ckks_vec_path(m, n);
    if (path != CKKS_VEC_SCALAR) {
        VEC_INTT[path](m, n, a);
        return;
    }
    const uint64_t q = m->q, q2 = 2 * q;
    size_t t = 1;
    for (size_t h = n >> 1; h > 1; h >>= 1) {  /* every stage but the last */
        for (size_t i = 0; i < h; i++) {
            const uint64_t w = m->ipsi[h + i], ws = m->ipsi_sh[h + i];
            uint64_t *x = a + 2 * i * t, *y = x + t;
            for (size_t j = 0; j < t; j++) {
                uint64_t u = x[j], v = y[j];
                uint64_t s = u + v;
                x[j] = s >= q2 ? s - q2 : s;
                y[j] = ckks_mul_shoup_lazy(u - v + q2, w, ws, q);
            }
        }
        t <<= 1;
    }
    /* Last stage fused with the multiplication by n^-1: (u + v) / n and (u - v) * w / n,
     * the second with the precomputed product w * n^-1. */
    const uint64_t w = m->ipsi[1], wn = ckks_mulmod(w, m->ninv, m), wn_sh = ckks_shoup(wn, q);
    (void)w;
    uint64_t *x = a, *y = a + t;
    for (size_t j = 0; j < t; j++) {
        uint64_t u = x[j], v = y[j];
        uint64_t s0 = ckks_mul_shoup_lazy(u + v, m->ninv, m->ninv_sh, q);
        uint64_t s1 = ckks_mul_shoup_lazy(u - v + q2, wn, wn_sh, q);
        x[j] = s0 >= q ? s0 - q : s0;
        y[j] = s1 >= q ? s1 - q : s1;
    }
}

static int transform_args(const ckks_modulus *m, size_t nlimbs, size_t n, const uint64_t *a) {
    if (!m || !a) return HE_ERR_NULL;
    if (log2_exact(n) < 0) return HE_ERR_ARGUMENT;
    return ckks_dims_ok(m, nlimbs, n) ? HE_OK : HE_ERR_DIMENSION;
}

/* One limb per item: the transforms and the permutation of many limbs split over threads. */
struct limbs_job {
    const ckks_modulus *m;
    size_t n;
    uint64_t *a;
    const uint64_t *in;
    const uint32_t *perm;
};

static void ntt_item(void *ctx, size_t l, size_t part) {
    const struct limbs_job *job = ctx;
    ckks_ntt_limb(job->m + l, job->n, job->a + l * job->n);
}

static void intt_item(void *ctx, size_t l, size_t part) {
    const struct limbs_job *job = ctx;
    ckks_intt_limb(job->m + l, job->n, job->a + l * job->n);
}

static size_t ntt_parts(const ckks_modulus *m, size_t nlimbs, size_t n) {
    return he_parts_for(nlimbs, ckks_ntt_weight(m, n) * nlimbs * n, SIZE_MAX);
}

int ckks_ntt(const ckks_modulus *m, size_t nlimbs, size_t n, uint64_t *a) {
    int status = transform_args(m, nlimbs, n, a);
    if (status) return status;
    struct limbs_job job = {m, n, a, NULL, NULL};
    he_run(nlimbs, ntt_parts(m, nlimbs, n), ntt_item, &job);
    return HE_OK;
}

int ckks_intt(const ckks_modulus *m, size_t nlimbs, size_t n, uint64_t *a) {
    int status = transform_args(m, nlimbs, n, a);
    if (status) return status;
    struct limbs_job job = {m, n, a, NULL, NULL};
    he_run(nlimbs, ntt_parts(m, nlimbs, n), intt_item, &job);
    return HE_OK;
}

static void permute_item(void *ctx, size_t l, size_t part) {
    const struct limbs_job *job = ctx;
    const size_t n = job->n;
    const uint64_t *src = job->in + l * n;
    uint64_t *dst = job->a + l * n;
    for (size_t i = 0; i < n; i++) dst[i] = src[job->perm[i]];
}

int ckks_permute(size_t nlimbs, size_t n, const uint64_t *in, const uint32_t *perm, uint64_t *out) {
    if (!in || !perm || !out) return HE_ERR_NULL;
    if (in == out) return HE_ERR_ARGUMENT;
    for (size_t i = 0; i < n; i++)
        if (perm[i] >= n) return HE_ERR_RANGE;
    struct limbs_job job = {NULL, n, out, in, perm};
    he_run(nlimbs, he_parts_for(nlimbs, nlimbs * n, SIZE_MAX), permute_item, &job);
    return HE_OK;
}
