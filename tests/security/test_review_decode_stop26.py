"""Attacker review of 6748d4b (a slot release decodes in long double before its flood; B takes the decode's bound).

Every step before the flood (lift, twist, FFT, unpack, .real) is measured against an exact
reference: the phase's integer coefficients (CRT in Python ints) decoded with 2^-240
fixed-point roots of unity, so the reference's own error is ~2^-200 of the values. N = 1024
(insecure test ring), one core. Each check has a companion that breaks the code the way the
check guards against (by monkeypatching, never by editing the library) and watches it fail.
Run: ``python -m pytest -q tests/security/test_review_decode_stop26.py``.
"""
from __future__ import annotations

import math
import warnings
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pytest

import he_core
from he_core import Flooding, KeyRequirements, PrecisionError, SeededRandom
from he_core.schemes.ckks import CkksParams, CkksScheme, encoder
from he_core.schemes.ckks import release as release_mod

pytestmark = [pytest.mark.filterwarnings("ignore::he_core.SecurityWarning"),
              pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built"),
              pytest.mark.skipif(np.finfo(np.longdouble).eps > 2.0**-63,
                                 reason="long double is not x87 extended here (the release is checked as such)")]

N = 1024
FB = 240  # fixed-point bits of the reference roots of unity
U = encoder.LONG_EPS
FLOODING = Flooding(queries=16)


# ------------------------------------------------------------------ exact reference
def _zeta_powers(n: int) -> tuple[list[int], list[int]]:
    """exp(i pi t / n) for t < 2n as integers times 2^FB (one 110-digit root, then exact products)."""
    with localcontext() as c:
        c.prec = 110
        pi = Decimal("3.14159265358979323846264338327950288419716939937510582097494459230781640628620899862803")
        x, cr, ci, term, k = pi / n, Decimal(1), Decimal(0), Decimal(1), 0
        while abs(term) >= Decimal(10) ** -100:  # exp(i x) term by term: i^k x^k / k!
            k += 1
            term = term * x / k
            if k % 2:
                ci += term if k % 4 == 1 else -term
            else:
                cr += term if k % 4 == 0 else -term
        wr, wi = int(cr * 2 ** (FB + 40)), int(ci * 2 ** (FB + 40))
    re, im, ar, ai = [], [], 1 << (FB + 40), 0
    for _ in range(2 * n):
        re.append(ar >> 40)
        im.append(ai >> 40)
        ar, ai = (ar * wr - ai * wi) >> (FB + 40), (ar * wi + ai * wr) >> (FB + 40)
    return re, im


_ZETA: dict[int, tuple[list[int], list[int]]] = {}


def _exact_slots(coeffs: list[int]) -> list[tuple[int, int]]:
    """Slot j = m(zeta^(5^j)) for every j < N/2, real and imaginary parts times 2^FB."""
    n = len(coeffs)
    re, im = _ZETA.setdefault(n, _zeta_powers(n))
    nz = [(i, c) for i, c in enumerate(coeffs) if c]
    out = []
    for j in range(n // 2):
        e, sr, si = pow(5, j, 2 * n), 0, 0
        for i, c in nz:
            t = (e * i) % (2 * n)
            sr += c * re[t]
            si += c * im[t]
        out.append((sr, si))
    return out


def _dist(value, exact_fixed: int) -> float:
    p, q = np.longdouble(value).as_integer_ratio()
    return float(Fraction(abs(p * (1 << FB) - exact_fixed * q), q << FB))


def _decode_error(computed: np.ndarray, coeffs: list[int], real_only: bool = False) -> float:
    """L2 norm over the slots of ``computed`` (complex slot values) minus the exact decode of ``coeffs``."""
    errs = []
    for v, (sr, si) in zip(computed, _exact_slots(coeffs)):
        errs.append(_dist(v.real, sr))
        if not real_only:
            errs.append(_dist(v.imag, si))
    return float(np.sqrt(np.sum(np.square(errs))))


def _exact_lift(s, limbs: np.ndarray) -> list[int]:
    q0 = int(s.ring.q[0])
    if limbs.shape[0] == 1:
        return [int(r) - q0 if int(r) > q0 // 2 else int(r) for r in limbs[0]]
    q1 = int(s.ring.q[1])
    inv, big = pow(q0, -1, q1), q0 * q1
    out = []
    for r0, r1 in zip(limbs[0], limbs[1]):
        x = int(r0) + q0 * (((int(r1) - int(r0)) * inv) % q1)
        out.append(x - big if x > big // 2 else x)
    return out


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def ring():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = CkksScheme(CkksParams(poly_degree=N, levels=3, allow_insecure=True))
    key = s.keygen(KeyRequirements(sizes=(512, 1)), rng=SeededRandom(26)).secret
    return s, key


def _at_vmax(s, level: int = 3):
    """A (1, 512) ciphertext at ``level`` with +-vmax in every slot: the largest power of two the encoder (and,
    below the top, the level drop) takes at this scale."""
    x = np.random.default_rng(3).choice([-1.0, 1.0], (1, 512)) * 0.999
    vmax = 2.0**30
    while True:
        try:
            ct = s.encrypt(x * vmax, rng=SeededRandom(2))
            return s.level_drop(ct, level) if level < 3 else ct
        except (he_core.EncodingError, he_core.HEOverflowError):
            vmax /= 2


def _release_pre_flood(s, key, ct) -> tuple[np.ndarray, list[list[int]]]:
    """What Releaser.flooded_slots holds just before its flood (captured at the addition), and the exact phases."""
    seen = {}

    class Spy:
        def gaussian(self, sigma, n, bound):
            return np.zeros(n, dtype=np.float64)

    real_unpack = release_mod.layout.unpack

    def unpack(slots, rows, size, stride):
        seen["slots"] = slots
        out = real_unpack(slots, rows, size, stride)
        seen["unpacked"] = out
        return out

    release_mod.layout.unpack = unpack
    try:
        released = s.releaser.flooded_slots(ct, key, 1.0, Spy())
    finally:
        release_mod.layout.unpack = real_unpack
    phases = [_exact_lift(s, m) for m in s.decryptor.phase_limbs(ct, s._s_full(key))]
    seen["released"] = released
    return seen, phases


def _check_release_decode(s, key, ct) -> tuple[float, float]:
    """The pre-flood decode of a slot release errs within Releaser.decode_error_bound (integer units), and
    nothing before the flood is rounded to float64 (the unpacked values are long double)."""
    seen, phases = _release_pre_flood(s, key, ct)
    assert seen["unpacked"].dtype == np.clongdouble, seen["unpacked"].dtype
    err = math.sqrt(sum(_decode_error(slots, c) ** 2 for slots, c in zip(seen["slots"], phases)))
    bound = s.releaser.decode_error_bound(ct)
    assert err <= bound, (math.log2(err), math.log2(bound))
    # with a zero flood, the released value is the captured decode / scale up to one final float64 rounding
    top = float(np.max(np.abs(seen["released"])))
    np.testing.assert_allclose(seen["released"], np.asarray(seen["unpacked"].real / np.longdouble(ct.scale),
                                                            dtype=np.float64), rtol=0, atol=top * 2.0**-52)
    return err, bound


# ------------------------------------------------------------------ 1. the release's pre-flood steps
@pytest.mark.parametrize("level", [3, 0])
def test_the_release_decode_is_long_double_and_within_its_bound(ring, level):
    """Values at vmax in every slot, at the top level (two-limb CRT lift, coefficients past 2^53) and at
    level 0 (one-limb branch): the decode before the flood errs within B's decode term."""
    s, key = ring
    ct = _at_vmax(s, level)
    err, bound = _check_release_decode(s, key, ct)
    assert err < 2.0**-3 * bound  # measured margin ~2^6: the bound is not tight, it is not about to be crossed


def test_a_float64_decode_or_lift_before_the_flood_is_caught(ring, monkeypatch):
    """The check above fails if the release decodes (the code before 6748d4b) or lifts in float64."""
    s, key = ring
    ct = _at_vmax(s)
    with monkeypatch.context() as m:
        m.setattr(encoder, "decode_precise", lambda c: encoder.decode(np.asarray(c, dtype=np.float64), 1.0)
                  .astype(np.clongdouble))
        with pytest.raises(AssertionError):
            _check_release_decode(s, key, ct)
    with monkeypatch.context() as m:
        m.setattr(s.decryptor, "lift_precise", lambda limbs: s.decryptor.lift(limbs).astype(np.longdouble))
        with pytest.raises(AssertionError):
            _check_release_decode(s, key, ct)
    with monkeypatch.context() as m:  # a cast to float64 between the decode and the flood
        real_unpack = release_mod.layout.unpack
        m.setattr(release_mod.layout, "unpack", lambda *a: real_unpack(*a).astype(np.complex128))
        with pytest.raises(AssertionError):
            _check_release_decode(s, key, ct)


# ------------------------------------------------------------------ 2. the bound against adversarial coefficients
def _adversarial() -> dict[str, list[int]]:
    rng = np.random.default_rng(26)
    top = 2**62 - 12345
    cases = {
        "random 2^62": [int(x) for x in rng.integers(-2**62, 2**62, N)],
        "all equal": [top] * N,
        "alternating": [top * (-1) ** i for i in range(N)],
        "one coefficient (index 1)": [0, top] + [0] * (N - 2),
        "near the lift's limit 2^118": [int(rng.integers(2**54, 2**55)) * 2**63 + int(rng.integers(0, 2**63)) *
                                        (1 if rng.random() < 0.5 else -1) for _ in range(N)],
        "+-vmax in every slot": [int(x) for x in encoder.encode(rng.choice([-16.0, 16.0], N // 2), N, 2.0**57)],
        "one hot slot": [int(x) for x in encoder.encode(np.eye(N // 2)[0] * 2.0**20, N, 2.0**40)],
        "conjugate twist": [int(x) for x in np.rint(2.0**61 * np.cos(np.pi * np.arange(N) / N))],
    }
    return cases


def _check_bound(coeffs: list[int]) -> float:
    """decode_precise of the long-double-rounded coefficients errs within decode_error_bound; returns the margin."""
    m = np.array([np.longdouble(str(c)) for c in coeffs], dtype=np.longdouble)  # the lift's rounding included
    err = _decode_error(encoder.decode_precise(m), coeffs)
    bound = encoder.decode_error_bound(N, math.sqrt(sum(float(c) ** 2 for c in coeffs)))
    assert err <= bound, (math.log2(err), math.log2(bound))
    return bound / err if err else math.inf


@pytest.mark.parametrize("name", list(_adversarial()))
def test_the_decode_bound_holds_for_adversarial_coefficients(name):
    margin = _check_bound(_adversarial()[name])
    assert margin >= 2.0**4, math.log2(margin)  # measured 2^5.7 to 2^6.7 (exact decodes count as infinite)


def test_a_bound_eight_times_too_small_is_caught(monkeypatch):
    """The adversarial check has teeth: with the unit roundoff understated 2^7 times the bound is crossed."""
    monkeypatch.setattr(encoder, "LONG_EPS", U * 2.0**-7)
    with pytest.raises(AssertionError):
        _check_bound(_adversarial()["random 2^62"])


# ------------------------------------------------------------------ the twist, the FFT, the lift
def _check_twist_and_fft() -> None:
    re, im = _ZETA.setdefault(N, _zeta_powers(N))
    tw = encoder._twist_long(N)
    worst = max(max(_dist(t.real, re[k]), _dist(t.imag, im[k])) for k, t in enumerate(tw))
    assert worst <= 4 * U, worst / U  # measured 2.9 u: angle from a long-double pi, cosl/sinl
    x = np.random.default_rng(5).integers(-2**62, 2**62, N)
    y = np.fft.ifft(x.astype(np.clongdouble) * tw)
    assert y.dtype == np.clongdouble
    pos = encoder._tables(N)[0]
    err = _decode_error(y[pos] * np.longdouble(N), [int(v) for v in x])
    assert err <= 2.0**-56 * math.sqrt(N) * float(np.linalg.norm(x.astype(np.float64))), err


def test_the_twist_and_numpys_fft_are_computed_in_long_double():
    _check_twist_and_fft()


def test_a_float64_twist_or_fft_is_caught(monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(encoder, "_twist_long", lambda n: np.exp(1j * np.pi * np.arange(n) / n).astype(np.clongdouble))
        with pytest.raises(AssertionError):
            _check_twist_and_fft()
    real_ifft = np.fft.ifft
    with monkeypatch.context() as m:
        m.setattr(np.fft, "ifft", lambda a: real_ifft(np.asarray(a, dtype=np.complex128)).astype(np.clongdouble))
        with pytest.raises(AssertionError):
            _check_twist_and_fft()


def _check_lift(s, lift) -> None:
    q0, q1 = int(s.ring.q[0]), int(s.ring.q[1])
    half = q0 * q1 // 2
    rng = np.random.default_rng(7)
    wanted = [0, 1, -1, q0 - 1, q0, -q0, -q0 - 1, q0 // 2 + 1, -(q0 // 2) - 1, 2**53 + 1, 2**63 - 1, -(2**63), 2**63,
              half, half - 1, -half + q0 // 2 + 1]  # the top of the CRT range (its bottom: see the report)
    wanted += [int(v) * q0 + int(w) for v, w in zip(rng.integers(-(q1 // 2) + 1, q1 // 2, 400), rng.integers(0, q0, 400))]
    wanted += [int(v) for v in rng.integers(-2**62, 2**62, N - len(wanted))]
    limbs = np.array([[x % q for x in wanted] for q in (q0, q1)], dtype=np.uint64)
    got = lift(limbs)
    for g, x in zip(got, wanted):
        f = Fraction(*np.longdouble(g).as_integer_ratio())
        if abs(x) < 2**63:
            assert f == x, (x, g)
        else:
            assert abs(f - x) <= 3 * U * abs(x), (x, g)
    lvl0 = lift(limbs[:1])
    assert [Fraction(*np.longdouble(g).as_integer_ratio()) for g in lvl0] == _exact_lift(s, limbs[:1])


def test_the_precise_lift_is_exact_below_2_63_and_within_3u_above(ring):
    s, _ = ring
    _check_lift(s, s.decryptor.lift_precise)


def test_a_float64_lift_is_caught(ring):
    s, _ = ring
    with pytest.raises(AssertionError):
        _check_lift(s, lambda limbs: s.decryptor.lift(limbs).astype(np.longdouble))


# ------------------------------------------------------------------ 3. a platform whose long double is a double
def test_where_long_double_is_a_double_the_release_is_flooded_for_it_or_refused(ring, monkeypatch):
    """Simulated: float64 lift, twist and FFT, and LONG_EPS = 2^-53. The bound then covers the float64
    decode's error (the release is not under-flooded), and sigma grows with it."""
    s, key = ring
    ct = _at_vmax(s)
    before = s.releaser.release_sigma(ct, FLOODING)
    monkeypatch.setattr(encoder, "LONG_EPS", 2.0**-53)
    monkeypatch.setattr(encoder, "decode_precise", lambda c: encoder.decode(np.asarray(c, dtype=np.float64), 1.0)
                        .astype(np.clongdouble))
    monkeypatch.setattr(s.decryptor, "lift_precise", lambda limbs: s.decryptor.lift(limbs).astype(np.longdouble))
    err, bound = _check_release_decode(s, key, ct)
    assert s.releaser.release_sigma(ct, FLOODING) >= before
    try:
        s.decrypt(ct, key, flooding=Flooding(queries=16, min_precision_bits=16), rng=SeededRandom(4))
    except PrecisionError:
        pass  # refused: acceptable


# ------------------------------------------------------------------ 5. the bound trusts the record's vmax
def test_a_value_above_its_declared_bound_is_refused(ring):
    """Finding (LOW, fixed in stop 26): after declare_bound(2^-20) on values of 2^18 the decode's error was
    2^-0.32 against a term of 2^-32.5 and the release went ahead. The key holder now refuses a phase whose
    L2 norm exceeds what the record bounds (scale vmax + 6 sqrt(N nspec)), before decoding it."""
    s, key = ring
    honest = _at_vmax(s)
    s.decrypt(honest, key, flooding=FLOODING, rng=SeededRandom(5))  # within its record: released
    ct = s.releaser.declare_bound(honest, 2.0**-20)  # a caller's bound the values break
    with pytest.raises(he_core.HEOverflowError, match="exceed their recorded bound"):
        s.decrypt(ct, key, flooding=FLOODING, rng=SeededRandom(5))
