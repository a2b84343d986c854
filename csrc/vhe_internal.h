/* Helpers shared by the vhe kernels (not part of the cffi interface). */
#ifndef VHE_INTERNAL_H
#define VHE_INTERNAL_H
#include <stdint.h>
#include "vhe.h"

typedef __int128 i128;

/* floor((x + div/2) / div) for div >= 1: nearest integer, ties up. */
static inline i128 vhe_round_div(i128 x, int64_t div) {
    if (div == 1) return x;
    i128 y = x + (i128)(div / 2);
    i128 q = y / div;
    if ((y % div != 0) && (y < 0)) q -= 1;  /* C division truncates toward zero */
    return q;
}

/* Store v into *dst if |v| <= limit, tracking the running maximum; 0 on success. */
static inline int vhe_store(i128 v, int64_t limit, int64_t *dst, int64_t *maxabs) {
    i128 a = v < 0 ? -v : v;
    if (a > (i128)limit) return 1;
    *dst = (int64_t)v;
    if ((int64_t)a > *maxabs) *maxabs = (int64_t)a;
    return 0;
}

#endif
