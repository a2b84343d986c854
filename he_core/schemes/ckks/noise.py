"""Analytic (average-case) noise and magnitude estimates of CKKS ciphertexts.

Every ciphertext carries four numbers in its metadata, updated by each operation from
the operands' numbers and public parameters alone (nothing is measured). With e the
phase error (c0 + c1 s [+ c2 s^2]) - Delta m, in integer units at the ciphertext's
current modulus (Delta its scale, m its exact real message polynomial):

* ``meta["nvar"]``: rho^2, a bound on the variance of *each* coefficient of e;
* ``meta["nslot"]``: a bound on the variance of each slot's error, divided by N;
* ``meta["nspec"]``: a spectral bound, Cov(e) <= nspec I (so nvar, nslot <= nspec);
* ``meta["vmax"]``: V, a bound on |value| in every slot, garbage slots included (for
  coefficient-packed layouts: on every coefficient / scale, garbage included).

For white noise the three variances are equal; two kinds of operation separate them.
A rotate-and-sum (``inner``, ``row_sum``, ``sum_slots``, replication) adds copies of one
error moved by automorphisms X -> X^g, and every automorphism fixes coefficient 0 (and
N/2): there the w copies add coherently, w^2 rho^2, while a slot receives w independent
slot errors (a full sum over a subgroup puts the whole error on N/w coefficients, each
at w^2 rho^2). nvar and nspec take the robust rule there, nslot the independent one.
A plaintext product by pt = round(pt_scale w) multiplies the covariance by P P^T, whose
eigenvalues are the slot values |pt(zeta_j)|^2 <= pt_scale^2 max|w|^2: nspec and nslot
use that maximum, while each coefficient's variance is p^T Cov p <= nspec ||pt||^2, the
*mean* of |w|^2 (a mask keeping K of the N/2 slots divides it by N / 2K). Everywhere
else the three follow the same formulas, so the functions below take a variance or a
numpy vector of them alike.

Model: the central-limit heuristic of Costache, Curtis, Hales, Murphy, Ogilvie and
Player, "On the precision loss in approximate homomorphic encryption" (IACR eprint
2022/162): the coefficients of fresh error polynomials are independent and zero-mean,
and a coefficient of a product is a sum of N such terms (Gaussian in the limit). Its
rules are adapted to what this code base computes (see each function): rounded-
Gaussian errors, centred one-prime digits and mod-downs, uncentred multi-prime fast
base conversions, and the hybrid key switch (dnum digits, special modulus P). Where
two operands may share noise (x + x, x * x, a term and its own square in a polynomial,
a row sum over ciphertexts that copies of one row fed) sums use the robust rule
(sum rho_i)^2, which holds whatever the correlation; differently masked or weighted
rotations of one ciphertext (matvec diagonals, gathers, concatenated rows) add as
independent.

Assumptions and limits, stated where they are used: values are real (imaginary parts
are noise); a slot of a given key's error is not Gaussian but a product of Gaussians
(fresh noise times s(zeta_j) or a key's error e(zeta_j)), which the slot bound's tail
accounts for (:func:`slot_tail_factor`); a mask after a rotate-and-sum keeps the sum's
worst-case concentration (nspec), so e.g. ``sum_slots`` is bounded loosely (docs/noise.md).

Message norms: a slot vector bounded by V encodes a polynomial with
||Delta m||_2^2 = Delta^2 (2/N) sum_j |z_j|^2 <= Delta^2 (2/N)(N/2) V^2 = Delta^2 V^2,
and every coefficient |Delta m_k| <= Delta V (m_k averages the N embedding values).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# High-probability bounds fail with probability at most 2^-EPS_LOG2 (per batch).
EPS_LOG2 = 40
# Rounding a real to the nearest integer: uniform on [-1/2, 1/2], variance 1/12.
ROUND_VAR = 1.0 / 12.0
# Variances and bounds are kept finite: anything larger means "no information".
FLOAT_LIMIT = 2.0**1000
# The metadata fields: three variances and the value bound.
NOISE_KEYS = ("nvar", "nslot", "nspec", "vmax")


def finite(x):
    """``x`` (a float or an array) clipped to [0, FLOAT_LIMIT]; NaN and infinity (overflowing products) become the limit."""
    if type(x) is float:
        return finite_float(x)
    if np.ndim(x) == 0:
        return FLOAT_LIMIT if not x < FLOAT_LIMIT else max(0.0, float(x))
    x = np.asarray(x, dtype=np.float64)
    return np.clip(np.where(x < FLOAT_LIMIT, x, FLOAT_LIMIT), 0.0, FLOAT_LIMIT)


def finite_float(x: float) -> float:
    """:func:`finite` of a Python float, without NumPy."""
    return FLOAT_LIMIT if not x < FLOAT_LIMIT else max(0.0, x)


def secret_norm2(n: int, secret: str, hamming_weight: int) -> float:
    """E ||s||_2^2: the variance of one coefficient of r * s for r of unit variance.

    Args:
        n: ring dimension N.
        secret: ``"ternary"`` (uniform in {-1, 0, 1}: 2/3 per coefficient) or ``"hamming"``.
        hamming_weight: non-zero coefficients of a ``"hamming"`` secret.

    Returns:
        2N/3 for a uniform ternary secret, h for a fixed-weight one.
    """
    return 2.0 * n / 3.0 if secret == "ternary" else float(hamming_weight)


def error_var(sigma: float) -> float:
    """Variance of a rounded Gaussian of parameter sigma: sigma^2 + 1/12 (see ``RandomSource.gaussian``)."""
    return sigma * sigma + ROUND_VAR


def rounding_var(s_norm2: float, parts: int = 2) -> float:
    """Phase error of rounding every part of a ciphertext independently (centred).

    r0 + r1 s [+ r2 s^2] with r_i uniform on [-1/2, 1/2]: (1 + ||s||^2 [+ ||s^2||^2]) / 12,
    where E ||s^2||^2 ~ 2 ||s||^4 (each product s_i s_j appears twice in a coefficient).

    Args:
        s_norm2: E ||s||^2 (:func:`secret_norm2`).
        parts: 2, or 3 for a product whose relinearisation was deferred.
    """
    s4 = 2.0 * s_norm2 * s_norm2 + 2.0 * s_norm2 if parts == 3 else 0.0
    return (1.0 + s_norm2 + s4) * ROUND_VAR


def fresh_secret_var(sigma: float) -> float:
    """Secret-key encryption c = (-a s + e + round(Delta m), a): sigma^2 + 1/12 (error) + 1/12 (encoding)."""
    return error_var(sigma) + ROUND_VAR


def fresh_public_var(sigma: float, s_norm2: float, p_log2: float | None) -> float:
    """Public-key encryption (v pk0 + e0 + m, v pk1 + e1), v distributed as the secret.

    Its phase error is e v + e0 + e1 s: sigma_e^2 (1 + 2 ||s||^2). Over Q*P (``p_log2``
    given) the encryption is then divided by P with centred rounding, leaving
    sigma_e^2 (1 + 2 ||s||^2) / P^2 + (1 + ||s||^2) / 12; the encoding adds 1/12. For a
    ternary secret that is (1 + 2N/3) / 12 + 1/12 (the e / P part is negligible).

    Args:
        sigma: error parameter.
        s_norm2: E ||s||^2.
        p_log2: log2 of the special modulus P, or ``None`` for a key over Q alone.
    """
    raw = error_var(sigma) * (1.0 + 2.0 * s_norm2)
    if p_log2 is None:
        return raw + ROUND_VAR
    return raw * 2.0 ** (-2.0 * p_log2) + rounding_var(s_norm2) + ROUND_VAR


def conversion_moment(count: int) -> float:
    """Second moment of a fast base conversion's output, in units of M^2 (M the source modulus).

    One prime is converted centred (``conv_limb``): uniform on [-M/2, M/2), M^2/12.
    k > 1 primes are converted without correction: sum_i y_i (M / q_i) = M sum_i U_i
    with U_i uniform on [0, 1), second moment k/12 + k^2/4 (mean k/2).
    """
    return ROUND_VAR if count == 1 else count * ROUND_VAR + count * count / 4.0


def keyswitch_var(n: int, sigma: float, s_norm2: float, digits: Sequence[Sequence[int]],
                  special: Sequence[int]) -> float:
    """Noise a hybrid key switch adds to the phase.

    sum_j d_j (b_j + a_j s) = d s_from + sum_j d_j e_j over Q*P; dividing by P gives
    N sigma_e^2 sum_j E[d_j^2] / P^2, with E[d_j^2] = D_j^2 conversion_moment(|digit j|)
    (D_j = product of digit j's primes), plus the mod-down rounding of both parts,
    (1 + ||s||^2) / 12 (the mod-down is centred). For one-prime digits and one special prime:
    N sigma^2 sum_j D_j^2 / (12 P^2) + (1 + 2N/3) / 12.

    Args:
        n: ring dimension.
        sigma: error parameter of the keys.
        s_norm2: E ||s||^2.
        digits: the primes of each digit present at the ciphertext's level.
        special: the special primes (P = their product).
    """
    p_log2 = sum(math.log2(p) for p in special)
    acc = 0.0
    for primes in digits:
        d_log2 = sum(math.log2(q) for q in primes)
        acc += 2.0 ** (2.0 * (d_log2 - p_log2)) * conversion_moment(len(primes))
    # The mod-down is centred for any number of special primes (its overflow count is rounded).
    return n * error_var(sigma) * acc + (1.0 + s_norm2) * ROUND_VAR


def rescale_var(var, q: int, round_var: float):
    """Division by q with centred rounding of every part: rho^2 / q^2 + the rounding (:func:`rounding_var`)."""
    return finite(var / (float(q) * float(q)) + round_var)


def sum_var(variances: Sequence, independent: bool = False):
    """Variance of a sum of errors.

    Independent errors (different diagonals or masked pieces of rotated copies, fresh
    noise): sum of rho_i^2. Possibly correlated ones (any two ciphertexts the caller
    combined): (sum rho_i)^2, which holds whatever the correlation (Cauchy-Schwarz) and
    is at most k times the independent sum of k terms; x + x has exactly 4 rho^2.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if independent:
            return finite(sum(variances))
        return finite(sum(np.sqrt(v) for v in variances) ** 2)


def sum_var_pair(va: tuple, vb: tuple, independent: bool = False) -> tuple:
    """:func:`sum_var` of two (nvar, nslot, nspec) records kept as Python floats, component by
    component: the same IEEE operations as the array formula (so the same bits), without
    NumPy's per-call cost on three numbers, which dominated a ciphertext sum's bookkeeping."""
    if independent:
        return tuple(finite_float(x + y) for x, y in zip(va, vb))
    out = []
    for x, y in zip(va, vb):
        root = math.sqrt(x) + math.sqrt(y)
        out.append(finite_float(root * root))  # root <= 2^501: the square is finite or clipped, never raising
    return tuple(out)


def rotation_sum_var(var: np.ndarray, rotated: np.ndarray) -> np.ndarray:
    """(nvar, nslot, nspec) of x + rot(x), from those of x and of its rotation.

    Coefficient 0 (and N/2) is fixed by every automorphism, so there the two errors are
    the same: robust rule for nvar and nspec. Slot j receives the errors of slots j and
    j + k, uncorrelated: independent rule for nslot.
    """
    out = sum_var([var, rotated])
    out[1] = sum_var([var[1], rotated[1]], independent=True)
    return out


def mismatch_var(scale_a: float, scale_b: float, vmax_b: float) -> float:
    """Adding b at scale Delta_b to a at Delta_a reads b's message at the wrong scale.

    The error (Delta_b - Delta_a) m_b is deterministic, each coefficient at most
    |Delta_b - Delta_a| V_b; its square bounds the second moment.
    """
    d = (scale_b - scale_a) * vmax_b
    return finite(d * d)


def slot_message_norm2(scale: float, vmax: float) -> float:
    """Bound on ||Delta m||_2^2 (and on every slot of Delta m, squared, over N) for slots bounded by V: Delta^2 V^2."""
    x = scale * vmax
    return finite(x * x)


def coeff_message_norm2(scale: float, vmax: float, nonzero: int) -> float:
    """Bound on ||Delta m||_2^2 for ``nonzero`` coefficients each bounded by Delta V: nonzero Delta^2 V^2."""
    x = scale * vmax
    return finite(nonzero * x * x)


def product_var(var1, var2, norm1: float, norm2: float, n: int):
    """Phase error of a ciphertext product (before relinearisation).

    (Delta1 m1 + e1)(Delta2 m2 + e2) - Delta1 Delta2 m1 m2 = Delta1 m1 e2 + Delta2 m2 e1 + e1 e2.
    Each coefficient of Delta1 m1 e2 has variance rho2^2 ||Delta1 m1||^2 (a sum over the N
    coefficients of e2); the two cross terms are combined robustly (x * x makes them
    equal: 4 rho^2 ||Delta m||^2), and e1 e2 contributes N rho1^2 rho2^2 for independent
    operands, 2 N rho^4 for a square (each pair e_i e_j appears twice); 2N is used.

    Args:
        var1, var2: rho1^2, rho2^2 (floats or arrays of them).
        norm1, norm2: bounds on ||Delta1 m1||^2, ||Delta2 m2||^2 (:func:`slot_message_norm2`;
            Delta^2 V^2 bounds every slot of Delta m squared too, so it serves nslot and nspec).
        n: ring dimension.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        cross = np.sqrt(finite(var1 * norm2)) + np.sqrt(finite(var2 * norm1))
        return finite(cross * cross + 2.0 * n * finite(var1 * var2))


def plain_norm2(pt_scale: float, wmax: float, n: int) -> float:
    """Bound on the squared slot magnitude of an encoded plaintext factor round(pt_scale * w).

    Each slot is pt_scale w_j plus the encoding rounding's slot error (variance N/12):
    pt_scale^2 max|w|^2 + N/12, the largest eigenvalue of the product's P P^T (what nslot
    and nspec are multiplied by; each coefficient gets :func:`plain_mean_norm2` instead).
    """
    x = pt_scale * wmax
    return finite(x * x + n * ROUND_VAR)


def plain_mean_norm2(pt_scale: float, mean_w2: float, n: int) -> float:
    """||pt||_2^2 of an encoded plaintext: pt_scale^2 (2/N) sum_j |w_j|^2 + N/12 (Parseval, and the rounding).

    ``mean_w2`` is the mean of |w_j|^2 over the N/2 slots.
    """
    return finite(pt_scale * pt_scale * mean_w2 + n * ROUND_VAR)


def plain_stats(slotvecs: np.ndarray) -> tuple[float, float]:
    """(max |w|, max over rows of the mean |w|^2) of plaintext slot vectors (k, slots)."""
    w2 = np.abs(np.asarray(slotvecs)) ** 2
    if not w2.size:
        return 0.0, 0.0
    return float(np.sqrt(np.max(w2))), float(np.max(np.mean(w2, axis=-1)))


def plain_product_var(var, pt_norm2: float, msg_norm2: float, pt_round_var: float = ROUND_VAR):
    """Phase error of a ciphertext times a plaintext polynomial pt = pt_scale w + r.

    (Delta m + e)(pt) - Delta m pt_scale w = e pt + Delta m r: rho^2 ||pt||^2 + ||Delta m||^2 var(r).
    For an integer polynomial (a scalar, a sum of monomials) r = 0: pass ``pt_round_var=0``
    and ||pt||^2 = c^2 or sum count_r^2.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return finite(var * pt_norm2 + msg_norm2 * pt_round_var)


def tail_factor(count: int) -> float:
    """t / sigma such that count Gaussian samples all stay below t except with probability 2^-EPS_LOG2.

    Union bound over P(|X| > t) <= 2 exp(-t^2 / (2 sigma^2)): t = sigma sqrt(2 ln(2 count / eps)).
    """
    return math.sqrt(2.0 * (math.log(2.0 * max(1, count)) + EPS_LOG2 * math.log(2.0)))


def coeff_bound(var: float, count: int) -> float:
    """High-probability bound on max |e_i| over ``count`` coefficients of variance ``var``."""
    return finite(math.sqrt(var) * tail_factor(count))


def l2_bound(var: float, spec: float, count: float, heaviest: float = 1.0) -> float:
    """High-probability bound on ||e||_2 over ``count`` coefficients of variance <= ``var``, Cov(e) <= ``spec`` I.

    ``count`` may be a sum of weights w_j >= 1 and ``heaviest`` their largest: the bound then
    holds for variances <= w_j var and Cov(e) <= heaviest spec I (a fixed key's heavier slots).

    What a flood must hide is the whole noise vector a release shows, not one coefficient
    (:mod:`he_core.flooding`). For a Gaussian vector, Hsu, Kakade and Zhang's tail for
    quadratic forms (2012) gives ||e||^2 <= tr C + 2 sqrt(tr(C^2) x) + 2 ||C|| x except
    with probability e^-x, and tr C <= count var, tr(C^2) <= ||C|| tr C, ||C|| <= spec:
    whatever the correlation between coefficients. For white noise this is about
    sqrt(count var), e.g. 128 rho over N = 16384 coefficients where the largest one is ~9 rho.
    """
    var, x = float(var), EPS_LOG2 * math.log(2.0)
    spec = max(float(spec), var) * max(1.0, float(heaviest))
    total = max(1.0, float(count)) * var
    return finite(math.sqrt(total + 2.0 * math.sqrt(spec * total * x) + 2.0 * spec * x))


def slot_tail_factor(count: int) -> float:
    """t / sigma bounding ``count`` slot errors of variance sigma^2 (real parts) except with probability 2^-EPS_LOG2.

    A slot's error is mostly a product of fresh noise and a fixed key polynomial: the
    rounding r1 times s(zeta_j), a key-switching digit times the key's error e(zeta_j).
    For a given key the slot variances differ by the exponentially distributed
    |s(zeta_j)|^2 (up to ~ln(N/2) times the mean), so over keys and noise a slot is
    Re(X Y) with X, Y independent complex Gaussians, E (Re XY)^2 = sigma^2. From
    P(|X| |Y| > t) <= 2 exp(-t / sqrt(E|X|^2 E|Y|^2)): t = sqrt(2) sigma ln(2 count / eps).
    (A Gaussian of the same variance has the lighter tail; a coefficient sums N such
    products and is Gaussian, see :func:`tail_factor`.)
    """
    return math.sqrt(2.0) * (math.log(2.0 * max(1, count)) + EPS_LOG2 * math.log(2.0))


def slot_variance(var: float, n: int, scale: float) -> float:
    """Variance of the real part of one slot's error, in value units: N nslot / (2 Delta^2).

    A slot is sum_k e_k zeta^k / Delta over the N coefficients (|zeta| = 1): for white
    noise of variance rho^2 its complex variance is N rho^2 / Delta^2 (``nslot`` bounds it
    by N nslot in general), split evenly between the real and imaginary parts (the powers
    zeta^(2k) sum to zero); decryption keeps the real part.
    """
    return finite(n * var / (2.0 * scale * scale))


def value_bound(top: float, scale: float) -> float:
    """The public magnitude bound recorded at encryption: the power of two >= max(top, 1/scale).

    It reveals the exponent of the largest |value| (a few bits per tensor); values
    below the encoding's resolution 1/scale are indistinguishable from zero anyway.
    """
    floor = max(float(top), 1.0 / scale)
    return float(2.0 ** math.ceil(math.log2(floor)))


def estimate(nvar: float, nslot: float, n: int, scale: float, nct: int, coeff: bool) -> dict:
    """The numbers of ``CkksScheme.noise_estimate`` for a batch of ``nct`` ciphertexts.

    ``coeff_bound`` covers all N coefficients of every ciphertext (:func:`tail_factor`);
    ``slot_bound`` every slot (:func:`slot_tail_factor`), or for a coefficient layout
    every coefficient in value units (a value is one coefficient / scale).
    """
    # The bounds divide the standard deviation by the scale, not the variance by its square:
    # a tiny variance over 2^108 would underflow to a bound of 0 in float64.
    if coeff:
        slot_var = finite(nvar / (scale * scale))
        slot_bound = math.sqrt(nvar) / scale * tail_factor(nct * n)
    else:
        slot_var = slot_variance(nslot, n, scale)
        slot_bound = math.sqrt(n * nslot / 2.0) / scale * slot_tail_factor(nct * n // 2)
    return {"variance": float(nvar), "coeff_bound": coeff_bound(nvar, nct * n), "slot_variance": slot_var,
            "slot_bound": finite(slot_bound), "epsilon": 2.0**-EPS_LOG2}


def malformed(meta: dict) -> str | None:
    """``"key=value"`` for the first noise field of ``meta`` that is not a finite number >= 0, else None."""
    for key in NOISE_KEYS:
        v = meta.get(key)
        try:
            ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(float(v)) and v >= 0
        except OverflowError:  # an int beyond the float range
            ok = False
        if not ok:
            return f"{key}={v!r}"
    return None


def cap_limit(modulus_log2: float) -> float:
    """(Q/2)^2 for log2(Q), at most 2^1000: a centred residue modulo Q has no larger second moment."""
    return 2.0 ** min(2.0 * modulus_log2 - 2.0, 1000.0)


def modulus_cap(var, modulus_log2: float):
    """``var`` capped at (Q/2)^2: a centred residue modulo Q has no larger second moment."""
    return np.minimum(finite(var), cap_limit(modulus_log2))
