/* Tensor products and key switching of the vhe scheme. See he_core.h for the contracts.
 * Rows split over threads (vhe_rows_run); key switching needs one digit buffer per thread. */
#include "vhe_internal.h"

/* The operands of the row kernels below (each uses the fields it needs). */
struct ks_args {
    const int64_t *a, *b, *mt;
    size_t ra, ma, rb, m, k, n, out_len, ell, head;
    int64_t div, limit;
    int digit_bits;
    int64_t *out;
};

static int tensor_args(size_t ra, size_t ma, size_t rb, size_t m, size_t k, size_t rows, int64_t div) {
    if (m < 1 || div < 1 || !(ma == 1 || ma == m) || !vhe_rows_ok(ra, rows) ||
        !vhe_rows_ok(rb, rows))
        return HE_ERR_ARGUMENT;
    if (k > VHE_MAX_K) return HE_ERR_RANGE;
    /* rows of the product: m (1+k)^2 entries each, k <= 64 */
    return vhe_shape_ok(rows, m) && vhe_shape_ok(rows * m, (1 + k) * (1 + k)) && vhe_shape_ok(rows, m + k)
               ? HE_OK : HE_ERR_ARGUMENT;
}

/* One output row of the compact tensor (m * (1+k)^2 entries); nonzero on overflow. */
static int tensor_row(const int64_t *x, size_t ma, const int64_t *y, size_t m, size_t k, int64_t div,
                      int64_t limit, int64_t *o) {
    int64_t left[VHE_MAX_K + 1], right[VHE_MAX_K + 1], unused = 0;
    const size_t blk = (1 + k) * (1 + k);
    for (size_t j = 0; j < k; j++) { left[1 + j] = x[ma + j]; right[1 + j] = y[m + j]; }
    for (size_t i = 0; i < m; i++) {
        left[0] = x[ma == 1 ? 0 : i];
        right[0] = y[i];
        for (size_t p = 0; p <= k; p++)
            for (size_t q = 0; q <= k; q++) {
                i128 v = vhe_round_div((i128)left[p] * right[q], div);
                if (vhe_store(v, limit, o + i * blk + p * (1 + k) + q, &unused)) return 1;
            }
    }
    return 0;
}

static int tensor_item(const void *ctx, size_t r, int64_t *scratch, int64_t *st) {
    const struct ks_args *g = ctx;
    const size_t blk = (1 + g->k) * (1 + g->k);
    const int64_t *x = g->a + (g->ra == 1 ? 0 : r) * (g->ma + g->k), *y = g->b + (g->rb == 1 ? 0 : r) * (g->m + g->k);
    return tensor_row(x, g->ma, y, g->m, g->k, g->div, g->limit, g->out + r * g->m * blk) ? HE_ERR_OVERFLOW : HE_OK;
}

int vhe_tensor(const int64_t *a, size_t ra, size_t ma, const int64_t *b, size_t rb, size_t m,
               size_t k, size_t rows, int64_t div, int64_t limit, int64_t *out) {
    if (!a || !b || !out) return HE_ERR_NULL;
    int status = tensor_args(ra, ma, rb, m, k, rows, div);
    if (status) return status;
    const struct ks_args g = {.a = a, .b = b, .ra = ra, .ma = ma, .rb = rb, .m = m, .k = k, .div = div,
                              .limit = limit, .out = out};
    const struct vhe_row_task task = {tensor_item, &g, NULL, 0, 0, 0};
    return vhe_rows_run(&task, rows, 4 * rows * m * (1 + k) * (1 + k), NULL);
}

/* The signed base-2^b digits of x[j], j < n, into dig[j * ell + d]; *l1 receives the sum
 * of |digit| over the row. HE_ERR_RANGE if an entry needs more than ell digits. */
static int decompose_row(const int64_t *x, size_t n, int digit_bits, size_t ell, int64_t *dig, int64_t *l1) {
    const int64_t half = (int64_t)1 << (digit_bits - 1);
    const uint64_t mask = ((uint64_t)1 << digit_bits) - 1;
    int64_t sum = 0;
    for (size_t j = 0; j < n; j++) {
        i128 rest = x[j];
        int64_t *dj = dig + j * ell;
        size_t d = 0;
        for (; d < ell && rest != 0; d++) {
            /* (rest + half) mod 2^b - half, in [-half, half): the low bits are taken through an
             * unsigned conversion, which C defines for negative values too */
            const int64_t digit = (int64_t)((uint64_t)(rest + half) & mask) - half;
            /* rest - digit is a multiple of 2^b; its magnitude is shifted as an unsigned value, so
             * the step is exact and fully defined by C. A right shift of a negative signed value
             * is implementation-defined (GCC documents it as arithmetic); nothing here relies on it. */
            const i128 v = rest - digit;
            rest = v < 0 ? -(i128)((unsigned __int128)(-v) >> digit_bits) : (i128)((unsigned __int128)v >> digit_bits);
            dj[d] = digit;
            sum += digit < 0 ? -digit : digit;
        }
        if (rest != 0) return HE_ERR_RANGE;
        for (; d < ell; d++) dj[d] = 0;
    }
    *l1 = sum;
    return HE_OK;
}

/* out[o] = sum_i dig[i] * mt[i, o] for o < out_len, block by block in 128-bit sums, stored
 * against limit while tracking head / key-column maxima; nonzero on overflow. */
static int apply_row(const int64_t *dig, size_t ndig, const int64_t *mt, size_t out_len, size_t head,
                     int64_t limit, int64_t *out, int64_t *mh, int64_t *mtl) {
    i128 acc[VHE_BLOCK];
    for (size_t o0 = 0; o0 < out_len; o0 += VHE_BLOCK) {
        const size_t len = out_len - o0 < VHE_BLOCK ? out_len - o0 : VHE_BLOCK;
        for (size_t o = 0; o < len; o++) acc[o] = 0;
        for (size_t i = 0; i < ndig; i++) {
            const int64_t digit = dig[i];
            if (!digit) continue;
            const int64_t *col = mt + i * out_len + o0;
            for (size_t o = 0; o < len; o++) acc[o] += (i128)col[o] * digit;
        }
        for (size_t o = 0; o < len; o++)
            if (vhe_store(acc[o], limit, out + o0 + o, o0 + o < head ? mh : mtl)) return 1;
    }
    return 0;
}

static int switch_args(size_t n, size_t out_len, int digit_bits, size_t ell, size_t head) {
    if (n < 1 || out_len < 1 || digit_bits < 2 || digit_bits > 20 || ell < 1 || ell > 64 || head > out_len)
        return HE_ERR_ARGUMENT;
    return vhe_shape_ok(n, ell) && n * ell <= VHE_MAX_DIGITS && vhe_shape_ok(n * ell, out_len) ? HE_OK
                                                                                           : HE_ERR_ARGUMENT;
}

/* Scratch of `parts` threads, each with `slice` words; SIZE_MAX if that does not fit. */
static size_t slices(size_t slice, size_t parts) {
    return (slice == SIZE_MAX || slice > SIZE_MAX / parts) ? SIZE_MAX : slice * parts;
}

static size_t keyswitch_slice(size_t n, size_t ell) {
    return vhe_shape_ok(n, ell ? ell : 1) ? n * ell : SIZE_MAX;  /* the digits of one row */
}

size_t vhe_keyswitch_scratch(size_t n, size_t ell) {
    return slices(keyswitch_slice(n, ell), he_get_threads());
}

static int keyswitch_item(const void *ctx, size_t r, int64_t *dig, int64_t *st) {
    const struct ks_args *g = ctx;
    int64_t l1 = 0;
    int status = decompose_row(g->a + r * g->n, g->n, g->digit_bits, g->ell, dig, &l1);
    if (l1 > st[2]) st[2] = l1;
    if (status != HE_OK) return status;
    return apply_row(dig, g->n * g->ell, g->mt, g->out_len, g->head, g->limit, g->out + r * g->out_len, &st[0],
                     &st[1]) ? HE_ERR_OVERFLOW : HE_OK;
}

int vhe_keyswitch(const int64_t *c, size_t rows, size_t n, const int64_t *mt, size_t out_len,
                  int digit_bits, size_t ell, size_t head, int64_t limit, int64_t *out,
                  int64_t *stats, int64_t *scratch, size_t scratch_words) {
    if (!c || !mt || !out || !stats || !scratch) return HE_ERR_NULL;
    int status = switch_args(n, out_len, digit_bits, ell, head);
    if (status) return status;
    if (!vhe_shape_ok(rows, n) || !vhe_shape_ok(rows, out_len)) return HE_ERR_ARGUMENT;
    const size_t slice = keyswitch_slice(n, ell);
    if (!vhe_scratch_ok(scratch, scratch_words, slice)) return HE_ERR_SCRATCH;
    const struct ks_args g = {.a = c, .mt = mt, .n = n, .out_len = out_len, .digit_bits = digit_bits, .ell = ell,
                              .head = head, .limit = limit, .out = out};
    const struct vhe_row_task task = {keyswitch_item, &g, scratch, slice, scratch_words / slice, 3};
    return vhe_rows_run(&task, rows, rows * n * ell * out_len / 8 + 1, stats);
}

static size_t mul_slice(size_t m, size_t k, size_t ell) {
    if (k > VHE_MAX_K || ell > 64 || !vhe_shape_ok(m ? m : 1, (1 + k) * (1 + k) * (ell + 1))) return SIZE_MAX;
    return m * (1 + k) * (1 + k) * (1 + ell);  /* the tensor row, then its digits */
}

size_t vhe_mul_scratch(size_t m, size_t k, size_t ell) {
    return slices(mul_slice(m, k, ell), he_get_threads());
}

static int mul_item(const void *ctx, size_t r, int64_t *t, int64_t *st) {
    const struct ks_args *g = ctx;
    const size_t tlen = g->m * (1 + g->k) * (1 + g->k);
    const int64_t *x = g->a + (g->ra == 1 ? 0 : r) * (g->ma + g->k), *y = g->b + (g->rb == 1 ? 0 : r) * (g->m + g->k);
    int64_t *dig = t + tlen, l1 = 0;
    if (tensor_row(x, g->ma, y, g->m, g->k, g->div, g->limit, t)) return HE_ERR_OVERFLOW;
    int status = decompose_row(t, tlen, g->digit_bits, g->ell, dig, &l1);
    if (l1 > st[2]) st[2] = l1;
    if (status != HE_OK) return status;
    return apply_row(dig, tlen * g->ell, g->mt, g->out_len, g->head, g->limit, g->out + r * g->out_len, &st[0],
                     &st[1]) ? HE_ERR_OVERFLOW : HE_OK;
}

int vhe_mul(const int64_t *a, size_t ra, size_t ma, const int64_t *b, size_t rb, size_t m, size_t k,
            size_t rows, int64_t div, const int64_t *mt, size_t out_len, int digit_bits, size_t ell,
            size_t head, int64_t limit, int64_t *out, int64_t *stats, int64_t *scratch, size_t scratch_words) {
    if (!a || !b || !mt || !out || !stats || !scratch) return HE_ERR_NULL;
    int status = tensor_args(ra, ma, rb, m, k, rows, div);
    if (status) return status;
    const size_t tlen = m * (1 + k) * (1 + k);
    status = switch_args(tlen, out_len, digit_bits, ell, head);
    if (status) return status;
    if (!vhe_shape_ok(rows, out_len)) return HE_ERR_ARGUMENT;
    const size_t slice = mul_slice(m, k, ell);
    if (!vhe_scratch_ok(scratch, scratch_words, slice)) return HE_ERR_SCRATCH;
    const struct ks_args g = {.a = a, .b = b, .mt = mt, .ra = ra, .ma = ma, .rb = rb, .m = m, .k = k, .div = div,
                              .out_len = out_len, .digit_bits = digit_bits, .ell = ell, .head = head,
                              .limit = limit, .out = out};
    const struct vhe_row_task task = {mul_item, &g, scratch, slice, scratch_words / slice, 3};
    return vhe_rows_run(&task, rows, rows * tlen * ell * out_len / 8 + 1, stats);
}
