"""The analytic noise estimate (he_core.schemes.ckks.noise) against the measured noise.

Measurement: the phase c0 + c1 s (+ c2 s^2) is reconstructed exactly (CRT over every
limb with Python ints, so no float64 rounding at any level or scale), minus Delta m: the
exact, unrounded coefficients of the expected slot values at the ciphertext's scale
(garbage slots included, simulated in numpy), or for coefficient layouts the expected
coefficients. Checks on every ciphertext:

(a) upper bound: the mean square of the coefficient errors is at most ``nvar`` times a
    chi-square slack, and the same for the slot errors at the values' positions against
    ``slot_variance``. The slack is Laurent and Massart's for a weighted sum of squared
    Gaussians, sum a_i X_i^2 <= sum a_i + 2 ||a||_2 sqrt(x) + 2 max(a) x except with
    probability e^-x, x = 40 ln 2, with the weights' spread read off the sample: the
    error of a fixed key is not white (a slot's variance follows |s(zeta_j)|^2 or a
    key's |e(zeta_j)|^2), so the N coefficients are fewer independent samples. The
    coefficients' mean square is, by Parseval, a sum over the N/2 slots of the error
    polynomial's |z_j|^2, each ~ v_j Exp(1): ||a||_2 / sum a = 1 / sqrt(dof) with
    dof = 2 (sum |z|^2)^2 / sum |z|^4 (N for white noise), and max(a) / sum a is
    taken as max |z|^2 / sum |z|^2 (conservative);
(b) max |e_i| <= ``coeff_bound`` and max |slot error| <= ``slot_bound`` (whose tail is
    a product of Gaussians': fresh noise times a fixed key polynomial, in each slot);
(c) not absurdly loose: ``nvar`` <= 2^6 max(mean square, (max |e_i| / t)^2), t the
    tail factor of (b). The second reading covers errors concentrated on a few
    coefficients (rotate-and-sum: coefficient 0 is fixed by every rotation), where the
    estimate bounds the largest coefficient's variance rather than the mean. The same
    for the slot domain.

Parameters: N = 2048 (explicitly insecure, for speed) with the production prime sizes,
and the 32-bit-scale shape of the sentiment tables for coefficient layouts; one check
on the default 128-bit N = 8192 set. Observed ratios: docs/noise.md, produced by
``python tests/he_core/schemes/ckks/test_noise.py``.
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import he_core
from he_core import KeyRequirements, SeededRandom
from he_core.errors import EncodingError, LevelExhaustedError, MismatchError
from he_core.schemes.ckks import CkksParams, CkksScheme, encoder, layout, noise

LOOSE = 2.0**6
X_TAIL = noise.EPS_LOG2 * math.log(2.0)


def insecure(**kw) -> CkksScheme:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CkksScheme(CkksParams(allow_insecure=True, **kw))


@pytest.fixture(scope="module")
def ctx():
    scheme = insecure(poly_degree=2048, levels=4)
    keys = scheme.keygen(KeyRequirements(sizes=(4, 8), rotations=(3, -5, 7)), rng=SeededRandom(7))
    return scheme, keys.secret


@pytest.fixture(scope="module")
def tctx():
    scheme = insecure(poly_degree=2048, levels=4, scale_bits=32, first_bits=44, special_bits=44)
    keys = scheme.keygen(KeyRequirements(sizes=(1, 8)), rng=SeededRandom(5))
    return scheme, keys.secret


# ---------------------------------------------------------------------------- measurement
def phase_ints(s: CkksScheme, ct, secret) -> list[np.ndarray]:
    """Each ciphertext's phase as exact centred Python ints (object arrays)."""
    r, nl = s.ring, ct.data.shape[2]
    sk = np.ascontiguousarray(s._s_full(secret)[:nl])
    s2 = r.mul(sk, sk) if ct.data.shape[1] == 3 else None
    qs = [int(q) for q in r.q[:nl]]
    big = math.prod(qs)
    out = []
    for c in ct.data:
        m = r.add(np.ascontiguousarray(c[0]), r.mul(np.ascontiguousarray(c[1]), sk))
        if s2 is not None:
            r.muladd(np.ascontiguousarray(c[2]), s2, m)
        limbs = r.intt(m)
        x = np.zeros(r.n, dtype=object)
        for i, q in enumerate(qs):
            hat = big // q
            x = x + limbs[i].astype(object) * (hat * pow(hat, -1, q))
        x = x % big
        out.append(np.where(x > big // 2, x - big, x))
    return out


def slot_coeffs(z: np.ndarray, n: int, scale: float) -> np.ndarray:
    """The unrounded coefficients of slot values z at ``scale`` (the encoder without rint)."""
    pos, conj, twist = encoder._tables(n)
    w = np.zeros(n, dtype=np.complex128)
    w[pos], w[conj] = z, np.conj(z)
    return np.real(np.fft.fft(w) / n * np.conj(twist)) * scale


def packed(s, values, stride=None, rep=False) -> np.ndarray:
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    stride = stride or layout.next_pow2(values.shape[1])
    return layout.pack(np.ascontiguousarray(values), s.params.slots, stride, rep=rep)


def slack(energies: np.ndarray, complex_terms: bool) -> float:
    """Laurent-Massart slack for a sum of independent terms with these sample energies.

    Complex terms |z|^2 = (v/2)(X^2 + Y^2), E|z|^4 = 2 v^2; real terms s^2 = v X^2, E s^4 = 3 v^2.
    The max weight is taken as the largest energy itself (an overestimate).
    """
    total, fourth, top = float(np.sum(energies)), float(np.sum(energies**2)), float(np.max(energies))
    if total == 0.0:
        return 1.0
    if complex_terms:  # weights v/2 on two real terms: ||a||_2 = sqrt(sum v^2 / 2) ~ sqrt(sum |z|^4) / 2
        return 1.0 + math.sqrt(X_TAIL * fourth) / total + X_TAIL * top / total
    return 1.0 + 2.0 * math.sqrt(X_TAIL * fourth / 3.0) / total + 2.0 * X_TAIL * top / total


def readings(err: np.ndarray, var: float, bound: float, energies: np.ndarray, complex_terms: bool) -> dict:
    """(a)-(c) quantities of one error sample against its estimate."""
    ms, mx = float(np.mean(err**2)), float(np.max(np.abs(err)))
    n, tail = err.size, bound / math.sqrt(var) if var > 0 else 1.0
    return {"n": n, "ms": ms, "max": mx, "est": var, "slack": slack(energies, complex_terms), "ratio": var / ms if ms else math.inf,
            "max_ratio": mx / bound, "loose": var / max(ms, (mx / tail) ** 2)}


def check(s, ct, secret, full=None, coeffs=None, loose=LOOSE) -> dict:
    """Measure ct's error and assert (a)-(c); ``full``: expected (nct, slots) slot values."""
    est = s.noise_estimate(ct)
    if coeffs is None:
        assert float(np.max(np.abs(full))) <= est["value_bound"] * (1 + 1e-9), "value bound violated"
        coeffs = [slot_coeffs(z, s.ring.n, ct.scale) for z in full]
    e = np.array([(p - np.array([int(v) for v in np.rint(c)], dtype=object)).astype(np.float64)
                  for p, c in zip(phase_ints(s, ct, secret), coeffs)])
    spectrum = np.array([encoder.decode(x, 1.0) for x in e])  # the error's slots, integer units
    if ct.meta.get("coeff"):
        which, pos = s._coeff_positions(ct)
        slots = e[which, pos] / ct.scale
    else:
        slots = layout.unpack(spectrum.real / ct.scale, ct.rows, ct.size, ct.meta["stride"])
    c = readings(e, est["variance"], est["coeff_bound"], np.abs(spectrum.ravel()) ** 2, True)
    sl = readings(slots, est["slot_variance"], est["slot_bound"], slots.ravel() ** 2, False)
    for name, r in (("coefficient", c), ("slot", sl)):
        assert r["ms"] <= r["est"] * r["slack"], f"{name} mean square {r['ms']:.4g} above estimate {r['est']:.4g}"
        assert r["max_ratio"] <= 1.0, f"{name} max error {r['max']:.4g} above its bound ({r['max_ratio']:.3f})"
        # (c) needs a sample: a (1, 1) result has one value, whose square says little.
        assert r["n"] < 32 or r["loose"] <= loose, \
            f"{name} estimate {r['loose']:.1f}x the measured noise (allowed {loose})"
    return {"coeff": c, "slot": sl}


def within(z: np.ndarray, width: int, step: int) -> np.ndarray:
    """The slot simulation of Rotator.sum_within."""
    shift = step
    while shift < width * step:
        z = z + np.roll(z, -shift, axis=-1)
        shift *= 2
    return z


def dense(seed, rows=128, size=8):
    """A batch filling every slot of one ciphertext at N = 2048 (no empty slots to flatter the estimate)."""
    return np.random.default_rng(seed).uniform(-1, 1, (rows, size))


# ---------------------------------------------------------------------------- the model itself
def test_formulas_match_the_stated_rules():
    n, s2 = 8192, 2 * 8192 / 3
    assert noise.secret_norm2(n, "ternary", 64) == s2 and noise.secret_norm2(n, "hamming", 64) == 64
    assert noise.fresh_secret_var(3.2) == pytest.approx(3.2**2 + 2 / 12)
    assert noise.fresh_public_var(3.2, s2, 60.0) == pytest.approx((1 + s2) / 12 + 1 / 12)
    assert noise.fresh_public_var(3.2, s2, None) == pytest.approx((3.2**2 + 1 / 12) * (1 + 2 * s2) + 1 / 12)
    ks = noise.keyswitch_var(n, 3.2, s2, [[2**40], [2**40]], [2**60])
    assert ks == pytest.approx(n * (3.2**2 + 1 / 12) * 2 * 2.0**-40 / 12 + (1 + s2) / 12)
    assert noise.rescale_var(2.0**90, 2**40, 1.0) == pytest.approx(2.0**10 + 1)
    assert noise.product_var(4.0, 9.0, 1.0, 1.0, 8) == pytest.approx((2 + 3) ** 2 + 2 * 8 * 36)
    assert noise.sum_var([4.0, 9.0]) == 25.0 and noise.sum_var([4.0, 9.0], independent=True) == 13.0
    assert list(noise.rotation_sum_var(np.array([4.0, 4.0, 4.0]), np.array([4.0, 4.0, 4.0]))) == [16, 8, 16]
    assert noise.value_bound(0.3, 2.0**40) == 0.5 and noise.value_bound(4.0, 2.0**40) == 4.0
    assert noise.value_bound(0.0, 2.0**40) == 2.0**-40
    assert noise.finite(float("inf")) == noise.FLOAT_LIMIT and noise.finite(float("nan")) == noise.FLOAT_LIMIT


# ---------------------------------------------------------------------------- slot operations
def test_fresh_encryptions_are_estimated_closely(ctx):
    s, sk = ctx
    x = dense(1)
    for ct in (s.encrypt(x), s.encrypt(x, sk)):
        r = check(s, ct, sk, packed(s, x))["coeff"]
        assert r["ratio"] >= 0.8, "a fresh encryption's estimate should be close to its noise"
        assert ct.meta["vmax"] == 1.0 and ct.meta["nvar"] == ct.meta["nslot"] == ct.meta["nspec"]


def test_elementwise_operations(ctx):
    s, sk = ctx
    x, y = dense(2), dense(3)
    a, b = s.encrypt(x), s.encrypt(y, sk)
    px, py = packed(s, x), packed(s, y)
    cases = [(s.add(a, b), px + py), (s.sub(a, b), px - py), (s.neg(a), -px), (s.add_plain(a, y), px + py),
             (s.mul_plain(a, y), px * py), (s.mul_plain(a, y, rescale=False), px * py),
             (s.mul_plain(a, -2.5), -2.5 * px), (s.mul_plain(a, 3000.0), 3000 * px),
             (s.mul_plain(a, 1e-4), 1e-4 * px), (s.mul(a, b), px * py), (s.mul(a, b, rescale=False), px * py),
             (s.rescale(s.mul(a, b, rescale=False)), px * py), (s.mul(a, a), px * px)]
    for ct, full in cases:
        check(s, ct, sk, full)


def test_correlated_operands_use_the_robust_rule(ctx):
    """x + x has 4 rho^2 (the independent rule would say 2): the estimate must still bound it."""
    s, sk = ctx
    x = dense(4)
    a = s.encrypt(x)
    double = s.add(a, a)
    r = check(s, double, sk, packed(s, 2 * x))["coeff"]
    assert r["ratio"] >= 0.8 and double.meta["nvar"] == pytest.approx(4 * a.meta["nvar"])
    sq = s.mul(a, a)
    check(s, s.mul(sq, sq), sk, packed(s, x**4))


@pytest.mark.parametrize("steps", [1, 3, -5, 7, 100])
def test_rotations(ctx, steps):
    s, sk = ctx
    x = dense(5)
    r = check(s, s.rotate(s.encrypt(x), steps), sk, np.roll(packed(s, x), -steps, axis=1))["coeff"]
    assert r["ratio"] >= 0.8  # one key switch (or a few): the model is close


def test_conjugate_and_rekey(ctx):
    s, sk = ctx
    x = dense(6)
    a = s.encrypt(x)
    check(s, s.conjugate(a), sk, packed(s, x))
    other = s.keygen(KeyRequirements(), rng=SeededRandom(9)).secret
    s.set_public_keys(s.keygen(KeyRequirements(sizes=(4, 8), rotations=(3, -5, 7)), rng=SeededRandom(7)).public)
    moved = s.rekey(a, s.make_switch_key(sk, other, rng=SeededRandom(3)))
    check(s, moved, other, packed(s, x))


def test_rotate_and_sum_concentrates_on_fixed_coefficients(ctx):
    """row_sum sums all 128 blocks: the error sits on N/128 coefficients at 128^2 rho^2.

    An estimate with the independent rule for nvar (128 rho^2) fails (b) here; nslot keeps
    the slots' (independent) reading, which (a) checks at the slots.
    """
    s, sk = ctx
    x = dense(7)
    out = s.row_sum(s.encrypt(x))
    r = check(s, out, sk, packed(s, x.sum(0), rep=True))
    assert out.meta["nslot"] < out.meta["nvar"] / 32 and r["coeff"]["max_ratio"] > 1 / 8


def test_linear_maps_and_polynomials(ctx):
    s, sk = ctx
    x, y = dense(8), dense(9)
    a, b = s.encrypt(x), s.encrypt(y, sk)
    check(s, s.inner(a, b), sk, within(packed(s, x * y), 8, 1))
    m = np.random.default_rng(10).uniform(-1, 1, (5, 8))
    check(s, s.matvec(a, m), sk, packed(s, x @ m.T))
    for c in ([0.1, 0.5, -0.3, 0.2], [0.0, 1.2, 0.0, -0.4, 0.0, 0.1], [0.3, 1.2, 0.5, -0.4, 0.2, 0.1]):
        check(s, s.polyval(a, c), sk, packed(s, np.polynomial.polynomial.polyval(x, c)))


def test_sum_slots_is_bounded_but_loose(ctx):
    """A mask after a block sum keeps the block sum's worst-case concentration (docs/noise.md)."""
    s, sk = ctx
    x = dense(11)
    v = np.zeros((1, s.params.slots))
    v[0, :8] = x.sum(0)
    check(s, s.sum_slots(s.encrypt(x)), sk, within(v, 8, 1), loose=2.0**12)


def test_row_operations(ctx):
    # Seeded encryptions: the repeated-row sum's estimate is 8-43x its measured noise over 40 random
    # draws (median 21) and once reached 73x, past check's 64x; one fixed draw keeps the test exact.
    s, sk = ctx
    x, y = dense(12), dense(13)
    a, b = s.encrypt(x, rng=SeededRandom(31)), s.encrypt(y, sk, rng=SeededRandom(32))
    idx = np.array([0, 3, 3, 7, 2])
    check(s, s.row_sum(a, idx), sk, packed(s, x[idx].sum(0), rep=True))
    check(s, s.take_rows(a, idx), sk, packed(s, x[idx]))
    check(s, s.take_rows(s.encrypt(x[:3], rng=SeededRandom(35)), [2, 0]), sk, packed(s, x[[2, 0]]))
    check(s, s.concat_rows([s.take_rows(a, [1, 2]), b]), sk, packed(s, np.vstack([x[[1, 2]], y])))
    w = np.random.default_rng(14).uniform(-1, 1, (3, x.shape[0]))
    check(s, s.lincomb(w, a), sk, packed(s, w @ x))
    for upd in (s.encrypt(y[:1], rng=SeededRandom(33)), s.encrypt(y[:5], rng=SeededRandom(34))):
        c = s.copy(a)
        s.index_add_(c, idx, upd)
        want = x.copy()
        np.add.at(want, idx, np.broadcast_to(y[: upd.rows], (idx.size, 8)))
        check(s, c, sk, packed(s, want))


# ---------------------------------------------------------------------------- coefficient tables
def _table_coeffs(s, ct, values, rev=False) -> list[np.ndarray]:
    stride, n = ct.meta["stride"], s.ring.n
    rpc = n // stride
    out = np.zeros((ct.data.shape[0] * rpc, stride))
    cols = stride - 1 - np.arange(values.shape[1]) if rev else np.arange(values.shape[1])
    out[: values.shape[0], cols] = values
    return list(out.reshape(-1, n) * ct.scale)


def _shift(poly: np.ndarray, k: int) -> np.ndarray:
    """poly * X^k in Z[X] / (X^N + 1)."""
    n = poly.size
    k %= 2 * n
    out = np.roll(poly, k % n) * (-1 if k >= n else 1)
    out[: k % n] *= -1
    return out


def _negaconv(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    full = np.convolve(a, b)
    out = full[: a.size].copy()
    out[: full.size - a.size] -= full[a.size:]
    return out


def _gathered(s, ct, values, counts) -> np.ndarray:
    """The message of row_sum(table, rows) with its garbage: sum_r count_r X^(-stride r) * table."""
    base, stride = _table_coeffs(s, ct, values), ct.meta["stride"]
    rpc = s.ring.n // stride
    return sum(counts[r] * _shift(base[r // rpc], -stride * (r % rpc)) for r in np.nonzero(counts)[0])


def test_tables(tctx):
    s, sk = tctx
    rng = np.random.default_rng(15)
    x = rng.uniform(-2, 2, (600, 8))
    for key in (None, sk):
        t = s.encrypt(x, key, layout="table")
        check(s, t, sk, coeffs=_table_coeffs(s, t, x))
    idx = np.array([3, 3, 3, 10, 257, 599, 0, 3])
    counts = np.bincount(idx, minlength=600)
    gathered = s.row_sum(t, idx)
    check(s, gathered, sk, coeffs=[_gathered(s, t, x, counts)])
    assert gathered.meta["vmax"] == t.meta["vmax"] * idx.size

    row = rng.uniform(-1, 1, (1, 8))
    # The scattered row's error reaches every coefficient once per row it is added to:
    # rho_b^2 sum count_r^2, not rho_b^2 max count_r (64 distinct rows tell them apart).
    for rows in ([5, 5, 300, 599, 5], list(range(100, 164))):
        table = s.encrypt(x, layout="table")
        s.index_add_(table, rows, s.encrypt(row, layout=s.coeff_target(table)))
        want = x.copy()
        np.add.at(want, rows, np.broadcast_to(row, (len(rows), 8)))
        check(s, table, sk, coeffs=_table_coeffs(s, table, want))

    u, v = rng.uniform(-1, 1, (2, 1, 8))
    a = s.encrypt(u, layout="table")
    for left, msg in ((a, _table_coeffs(s, a, u)[0]), (gathered, _gathered(s, t, x, counts))):
        rev = s.encrypt(v, layout=s.coeff_target(left, rev=True))
        prod = _negaconv(msg, _table_coeffs(s, rev, v, rev=True)[0]) / s.ring.q[s.level(left)]
        check(s, s.inner(left, rev), sk, coeffs=[prod])

    level = s.level(t)
    const = s.encrypt([[0.37]], layout={"layout": "constant", "level": level, "scale": t.scale})
    small = s.encrypt(x[:200], layout="table")
    factor = 0.37 * const.scale / s.ring.q[level]
    check(s, s.mul(small, const), sk, coeffs=[c * factor for c in _table_coeffs(s, small, x[:200])])
    check(s, s.mul(gathered, const), sk, coeffs=[_gathered(s, t, x, counts) * factor])


# ---------------------------------------------------------------------------- random circuits
OPS = ["add", "sub", "add_same", "neg", "add_plain", "mul_plain", "mul_scalar", "free_scalar", "mul", "square",
       "rotate"]


def _step(s, op, a, b, fa, fb, rng):
    """One random operation on ciphertexts a, b and its slot simulation on fa, fb."""
    w = rng.uniform(-1, 1, (64, 8))
    pw, steps = packed(s, w), int(rng.integers(-9, 10))
    if op in ("add", "sub"):
        return (s.add(a, b), fa + fb) if op == "add" else (s.sub(a, b), fa - fb)
    if op in ("add_same", "neg"):
        return (s.add(a, a), 2 * fa) if op == "add_same" else (s.neg(a), -fa)
    if op in ("add_plain", "mul_plain"):
        return (s.add_plain(a, w), fa + pw) if op == "add_plain" else (s.mul_plain(a, w), fa * pw)
    if op in ("mul_scalar", "free_scalar"):  # an integer factor and a rescale, or only a new scale
        c = 1500.0 if op == "mul_scalar" else 0.75
        return s.mul_plain(a, c), c * fa
    if op in ("mul", "square"):
        return (s.mul(a, b), fa * fb) if op == "mul" else (s.mul(a, a), fa * fa)
    return s.rotate(a, steps), np.roll(fa, -steps, axis=1)


@settings(max_examples=6, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 1)), min_size=1, max_size=6),
       seed=st.integers(0, 2**16))
# Found by a fresh CI run (stop 29; it fails the same way on stop 28's code): x1 + x0, x0 + x1, then two
# differences cancel x1's encryption noise exactly, so the measured noise falls below a fresh one's while each
# robust sum has added standard deviations: the estimate ends ~6,500x the measured variance.
@example(ops=[("rotate", 0), ("add", 1), ("add", 0), ("sub", 0), ("sub", 0)], seed=0)
def test_random_sequences(ctx, ops, seed):
    """Random circuits on two registers, every step measured (levels allowing): (a) and (b) hold."""
    s, sk = ctx
    rng = np.random.default_rng(seed)
    vals = [rng.uniform(-1, 1, (64, 8)) for _ in range(2)]
    regs = [s.encrypt(vals[0]), s.encrypt(vals[1], sk)]
    full = [packed(s, v) for v in vals]
    for op, i in ops:
        try:
            out, want = _step(s, op, regs[i], regs[1 - i], full[i], full[1 - i], rng)
        except (LevelExhaustedError, MismatchError, EncodingError):
            continue  # no level left, or values out of range: the circuit stops there
        if float(np.max(np.abs(want))) > 2.0**8:
            continue
        # (c) is for single operations: a circuit may cancel correlated noise (x1 + (x0 - x1)),
        # which the robust rule cannot see: up to 6 robust sums compound to 4^6 = 2^12 in variance, and
        # cancelling a fresh encryption's noise divides the measured one further. A sanity cap at 2^14
        # still catches runaway estimates; (a) and (b), the bounds holding, are unchanged.
        check(s, out, sk, want, loose=2.0**14)
        regs[i], full[i] = out, want


# ---------------------------------------------------------------------------- the default 128-bit set
def test_default_parameters():
    s = CkksScheme()
    sk = s.keygen(KeyRequirements(sizes=(8,)), rng=SeededRandom(21)).secret
    x, y = dense(22, rows=512), dense(23, rows=512)
    a, b = s.encrypt(x), s.encrypt(y, sk)
    px, py = packed(s, x), packed(s, y)
    prod = s.mul(a, b)
    check(s, a, sk, px)
    check(s, prod, sk, px * py)
    check(s, s.rotate(prod, 8), sk, np.roll(px * py, -8, axis=1))


# ---------------------------------------------------------------------------- metadata and API
def test_noise_estimate_reports_the_formulas(ctx):
    s, _ = ctx
    ct = s.encrypt(dense(24))
    est = s.noise_estimate(ct)
    n = s.ring.n
    assert set(est) >= {"variance", "coeff_bound", "slot_bound", "value_bound", "log2_scale", "level"}
    assert est["coeff_bound"] == pytest.approx(math.sqrt(2 * est["variance"] * math.log(2 * n / 2.0**-40)))
    assert est["slot_variance"] == pytest.approx(n * ct.meta["nslot"] / (2 * ct.scale**2))
    assert est["level"] == s.params.levels and est["log2_scale"] == pytest.approx(40.0)
    assert est["value_bound"] == 1.0 and est["epsilon"] == 2.0**-40


def test_a_public_bound_replaces_the_recorded_exponent(ctx):
    s, _ = ctx
    x = np.full((1, 4), 0.3)
    assert s.encrypt(x).meta["vmax"] == 0.5
    assert s.encrypt(x, bound=1.0).meta["vmax"] == 1.0
    with pytest.raises(EncodingError, match="bound"):
        s.encrypt(x, bound=0.25)
    with pytest.raises(EncodingError, match="bound"):
        s.encrypt(x, bound=float("nan"))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, "1e3", True, None, 10**400])
def test_malformed_noise_metadata_is_refused(ctx, bad):
    s, _ = ctx
    ct = s.encrypt([[0.5]])
    for key in ("nvar", "nslot", "nspec", "vmax"):
        broken = ct.replace(meta={**ct.meta, key: bad})
        with pytest.raises(MismatchError, match="noise metadata"):
            s.add(broken, ct)


def test_missing_noise_metadata_gets_the_pessimistic_bound(ctx):
    s, sk = ctx
    ct = s.mul(s.encrypt([[0.5, -0.25]]), s.encrypt([[2.0, 1.0]]))
    old = ct.replace(meta={k: v for k, v in ct.meta.items() if k not in ("nvar", "nslot", "nspec", "vmax")})
    exact = getattr(s, "decrypt_exact_local", s.decrypt)  # decrypt() is becoming the flooded release
    np.testing.assert_allclose(exact(old, sk), [[1.0, -0.25]], atol=1e-6)
    q01 = float(s.ring.q[0]) * float(s.ring.q[1])
    assert old.meta["nvar"] == old.meta["nspec"] == pytest.approx((q01 / 2) ** 2)
    assert old.meta["vmax"] == pytest.approx(q01 / (2 * ct.scale))
    assert s.noise_estimate(old)["coeff_bound"] > s.noise_estimate(ct)["coeff_bound"] * 2**30


def test_noise_metadata_survives_serialisation(ctx):
    s, _ = ctx
    ct = s.mul(s.encrypt([[0.5]]), s.encrypt([[0.25]]))
    back = he_core.serialization.loads(he_core.serialization.dumps(ct), allow_insecure=True)
    assert {k: back.meta[k] for k in ("nvar", "nslot", "nspec", "vmax")} == \
        {k: ct.meta[k] for k in ("nvar", "nslot", "nspec", "vmax")}


# ---------------------------------------------------------------------------- docs/noise.md
def _report_rows(s, sk):  # pragma: no cover - run by hand
    """(name, ciphertext, expected full slots or coefficients, secret) for every operation of the table."""
    x, y = dense(1, rows=512), dense(2, rows=512)
    a, b = s.encrypt(x), s.encrypt(y, sk)
    px, py = packed(s, x), packed(s, y)
    idx, m = np.array([0, 3, 3, 7, 2]), np.random.default_rng(3).uniform(-1, 1, (5, 8))
    w = np.random.default_rng(4).uniform(-1, 1, (3, 512))
    sq, upd = s.mul(a, a), s.copy(a)
    s.index_add_(upd, idx, s.take_rows(b, np.arange(idx.size)))
    want = x.copy()
    np.add.at(want, idx, y[: idx.size])
    total = np.zeros((1, s.params.slots))
    total[0, :8] = x.sum(0)
    other = s.keygen(KeyRequirements(), rng=SeededRandom(9)).secret
    s.set_public_keys(s.keygen(KeyRequirements(sizes=(8,), rotations=(3,)), rng=SeededRandom(1)).public)
    yield from [("encrypt, public key", a, px), ("encrypt, secret key", b, py), ("add", s.add(a, b), px + py),
                ("add x + x", s.add(a, a), 2 * px), ("add_plain", s.add_plain(a, y), px + py),
                ("mul_plain vector", s.mul_plain(a, y), px * py), ("mul_plain 0.75 (scale only)", s.mul_plain(a, 0.75),
                                                                   0.75 * px),
                ("mul_plain 3000 (integer)", s.mul_plain(a, 3000.0), 3000 * px),
                ("mul + relin + rescale", s.mul(a, b), px * py), ("mul, not rescaled", s.mul(a, b, rescale=False), px * py),
                ("square", sq, px * px), ("x^4 (square of square)", s.mul(sq, sq), px**4),
                ("rotate 3", s.rotate(a, 3), np.roll(px, -3, 1)),
                ("rotate 100 (composed)", s.rotate(a, 100), np.roll(px, -100, 1)), ("conjugate", s.conjugate(a), px),
                ("inner", s.inner(a, b), within(px * py, 8, 1)), ("matvec 5x8", s.matvec(a, m), packed(s, x @ m.T)),
                ("polyval degree 3", s.polyval(a, [0.1, 0.5, -0.3, 0.2]),
                 packed(s, np.polynomial.polynomial.polyval(x, [0.1, 0.5, -0.3, 0.2]))),
                ("row_sum, 5 rows", s.row_sum(a, idx), packed(s, x[idx].sum(0), rep=True)),
                ("row_sum, all 512 rows", s.row_sum(a), packed(s, x.sum(0), rep=True)),
                ("sum_slots", s.sum_slots(a), within(total, 8, 1)), ("take_rows, 5 rows", s.take_rows(a, idx),
                                                                     packed(s, x[idx])),
                ("concat_rows", s.concat_rows([s.take_rows(a, idx), b]), packed(s, np.vstack([x[idx], y]))),
                ("lincomb 3x512", s.lincomb(w, a), packed(s, w @ x)), ("index_add_, 5 rows", upd, packed(s, want))]
    yield "rekey", s.rekey(a, s.make_switch_key(sk, other, rng=SeededRandom(3))), px, other
    t = s.encrypt(x, layout="table")
    counts = np.bincount(idx, minlength=512)
    gathered, row = s.row_sum(t, idx), dense(5, rows=1)
    table = s.encrypt(x, layout="table")
    s.index_add_(table, list(range(64)), s.encrypt(row, layout=s.coeff_target(table)))
    want = x.copy()
    want[:64] += row
    rev = s.encrypt(row, layout=s.coeff_target(gathered, rev=True))
    inner = _negaconv(_gathered(s, t, x, counts), _table_coeffs(s, rev, row, rev=True)[0]) / s.ring.q[1]
    const = s.encrypt([[0.37]], layout={"layout": "constant", "level": 1, "scale": t.scale})
    yield from [("table: encrypt", t, _table_coeffs(s, t, x)), ("table: row_sum, 5 rows", gathered,
                                                                [_gathered(s, t, x, counts)]),
                ("table: index_add_, 64 rows", table, _table_coeffs(s, table, want)),
                ("table: inner, reversed row", s.inner(gathered, rev), [inner]),
                ("table: row times constant", s.mul(gathered, const),
                 [_gathered(s, t, x, counts) * 0.37 * const.scale / s.ring.q[1]])]


def _report() -> None:  # pragma: no cover - run by hand
    """Print estimate / measured for each operation at N = 8192 with the default 128-bit parameters."""
    s = CkksScheme()
    sk = s.keygen(KeyRequirements(sizes=(8,), rotations=(3,)), rng=SeededRandom(1)).secret
    print("| operation | nvar | mean square | nvar / mean sq | max e / coeff_bound | slot var / mean sq "
          "| max slot / slot_bound |")
    print("|---|---|---|---|---|---|---|")
    for name, ct, want, *key in _report_rows(s, sk):
        coeff = ct.meta.get("coeff")
        r = check(s, ct, key[0] if key else sk, None if coeff else want, want if coeff else None, loose=math.inf)
        c, sl = r["coeff"], r["slot"]
        print(f"| {name} | {c['est']:.3g} | {c['ms']:.3g} | {c['ratio']:.2f} | {c['max_ratio']:.2f} "
              f"| {sl['ratio']:.2f} | {sl['max_ratio']:.2f} |")


if __name__ == "__main__":  # pragma: no cover
    _report()


@pytest.mark.parametrize("secret", ["ternary", "hamming"])
def test_the_recorded_bound_covers_key_switches_with_several_special_primes(secret):
    """The model charges the centred mod-down 1/12 for any number of special primes (was k/12 + k^2/4):
    rotations and conjugations on a 6-special-prime chain must still decrypt within the recorded slot bound."""
    import warnings

    from he_core import KeyRequirements, SeededRandom
    from he_core.schemes.ckks import CkksParams, CkksScheme

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extra = {"secret": "hamming", "hamming_weight": 192} if secret == "hamming" else {}
        s = CkksScheme(CkksParams(poly_degree=1024, levels=11, dnum=2, allow_insecure=True, **extra))
    assert len(s.ring.p) == 6
    keys = s.keygen(KeyRequirements(sizes=(512,), rotations=(1, 3)), rng=SeededRandom(5))
    gen = np.random.default_rng(5)
    for trial in range(4):
        x = gen.uniform(-1, 1, (1, 512))
        ct = s.encrypt(x, rng=SeededRandom(100 + trial))
        for out, want in ((s.rotate(ct, 1), np.roll(x, -1, axis=1)), (s.rotate(s.rotate(ct, 3), 1), np.roll(x, -4, axis=1))):
            err = np.max(np.abs(s.decrypt_exact_local(out, keys.secret) - want))
            assert err <= s.noise_estimate(out)["slot_bound"]


_VARIANCE = st.one_of(st.floats(0.0, 2.0**1000, allow_nan=False), st.sampled_from([0.0, 2.0**1000, 2.0**-1074]))


@settings(max_examples=300, deadline=None)
@given(va=st.tuples(_VARIANCE, _VARIANCE, _VARIANCE), vb=st.tuples(_VARIANCE, _VARIANCE, _VARIANCE),
       independent=st.booleans())
def test_the_float_sum_of_two_records_is_the_array_formula_bit_for_bit(va, vb, independent):
    want = noise.sum_var([np.array(va), np.array(vb)], independent)
    got = noise.sum_var_pair(va, vb, independent)
    assert [float(x) for x in want] == list(got)
    assert all(type(x) is float for x in got)


def test_the_float_sum_clips_overflow_to_the_limit_without_raising():
    top = (2.0**1000,) * 3
    assert noise.sum_var_pair(top, top) == (noise.FLOAT_LIMIT,) * 3
    assert noise.sum_var_pair(top, top, independent=True) == (noise.FLOAT_LIMIT,) * 3
    assert noise.finite_float(float("nan")) == noise.FLOAT_LIMIT
    assert noise.finite_float(-1.0) == 0.0
