"""The property campaign's contexts, strategies and oracle (issue #12 item 5).

Every encrypted operation is compared with the same operation on the plaintext:

* ``plain`` (float64): bit-for-bit equal to numpy where the twin performs the very same
  floating-point operations; where it may sum in another order (``polyval``, ``matvec``,
  ``lincomb``, ``inner``), within the float64 round-off bound ``n eps sum |terms|``.
* ``vhe`` (fixed point, unit ``u = 2^-f``): inputs are drawn on the grid, so every
  operation without a rescale is exact (error 0). After one rescale the exact result
  ``V`` is a rational and decryption rounds ``(w V + e) / w`` with ``|e|`` at most the
  ciphertext's own noise bound ``meta["noise"]``: the error is at most
  ``1/2 + noise / w`` units. Circuits of several roundings (``polyval``) take the
  worst-case bound propagated by :mod:`tests.henn.errbound`.
* ``ckks``: the error of every result is at most ``noise_estimate(result)["slot_bound"]``,
  the scheme's own analytic bound on every decrypted value of the batch (it fails with
  probability at most 2^-40 per batch if the noise model holds). The campaign records
  the worst ``error / slot_bound`` it met, so the bound's tightness is measured.

The number of cases: the ``thorough`` hypothesis profile (``tests/conftest.py``) runs
at least 10,000 per property; otherwise each property runs :data:`DEFAULT_EXAMPLES`
(``HENN_CAMPAIGN_EXAMPLES=n`` sets another count).
With ``HENN_CAMPAIGN_REPORT=path`` the process writes, at exit, a JSON file with the
cases run per (scheme, operation) and the worst CKKS error ratio.
"""
from __future__ import annotations

import atexit
import functools
import json
import math
import os
import warnings
from collections import defaultdict

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import he_core
from he_core import KeyRequirements, SeededRandom

THOROUGH = settings.get_current_profile_name() == "thorough"
DEFAULT_EXAMPLES = 8
EXAMPLES = settings.default.max_examples if THOROUGH else DEFAULT_EXAMPLES
if os.environ.get("HENN_CAMPAIGN_EXAMPLES"):  # a partial campaign, e.g. while a failure is being chased
    EXAMPLES = int(os.environ["HENN_CAMPAIGN_EXAMPLES"])

#: Settings of every campaign property (the count comes from the profile, see above).
CAMPAIGN = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])

#: Vector sizes the keys are made for (vhe makes one secret per size).
SIZES = (1, 2, 3, 4, 5, 8)
MAX_ROWS = 4
#: Magnitudes: linear operations draw up to ``LINEAR``, products up to ``PRODUCT`` (so a
#: product of two stays well inside every scheme's range; the range's edge has its own test).
LINEAR, PRODUCT = 1024.0, 16.0
EPS = np.finfo(np.float64).eps

#: The schemes of the campaign: name -> (scheme name, parameter keywords).
CONTEXTS = {
    "plain": ("plain", {}),
    "vhe": ("vhe", {}),
    # An explicitly insecure small ring with the production prime sizes: the code paths of
    # the 128-bit sets at a fraction of the cost (issue #12: N = 2^10 or 2^11).
    "ckks": ("ckks", dict(poly_degree=1024, levels=3, allow_insecure=True)),
    "ckks128": ("ckks", {}),  # the default 128-bit set (N = 8192)
}

STATS: dict[str, dict] = defaultdict(lambda: {"cases": 0, "worst_ratio": 0.0})


def _write_report() -> None:
    path = os.environ.get("HENN_CAMPAIGN_REPORT")
    if path and STATS:
        with open(path + ".tmp", "w") as fh:
            json.dump({"profile": settings.get_current_profile_name(), "examples": EXAMPLES, "stats": STATS},
                      fh, indent=1, sort_keys=True)
        os.replace(path + ".tmp", path)  # a reader never sees half a report


atexit.register(_write_report)


class Ctx:
    """One scheme with two key pairs (a second one for re-keying and mixed-key checks)."""

    def __init__(self, label: str):
        name, params = CONTEXTS[label]
        self.label = label
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", he_core.SecurityWarning)
            self.scheme = he_core.get_scheme(name, **params)
            self.other = he_core.get_scheme(name, **params)
            req = KeyRequirements(sizes=SIZES, rotations=(1, -1, 3), transforms=SIZES)
            self.keys = self.scheme.keygen(req, rng=SeededRandom(101))
            self.other_keys = self.other.keygen(req, rng=SeededRandom(202))
        self.kind = {"plain": "float", "vhe": "fixed"}.get(name, "approx")
        self.unit = 1.0 / self.scheme.params.scale if self.kind == "fixed" else 0.0
        # An unrescaled vhe product sits at scale 2^2f, whose range is |v| < 2^(62 - w_bits - 2f) = 1/8.
        self.unrescaled = 0.25 if self.kind == "fixed" else PRODUCT

    @property
    def name(self) -> str:
        return self.scheme.name

    def dec(self, ct: he_core.Ciphertext) -> np.ndarray:
        return self.scheme.decrypt_exact_local(ct, self.keys.secret)

    def enc(self, x: np.ndarray, *, public: bool = True) -> he_core.Ciphertext:
        return self.scheme.encrypt(x) if public else self.scheme.encrypt(x, self.keys.secret)

    # ------------------------------------------------------------------ the oracle
    def check(self, op: str, ct: he_core.Ciphertext, got: np.ndarray, want: np.ndarray, *,
              roundings: float = 0, reorder: float | np.ndarray = 0.0, fixed_bound: float | None = None,
              bound: float | None = None) -> None:
        """Assert that ``got`` (a decryption of ``ct``) is ``want`` under this scheme's rule (module docstring).

        Args:
            roundings: vhe: how many rescales the result went through (each 1/2 unit, plus the noise).
            reorder: plain: the float64 round-off a differently ordered sum may carry.
            fixed_bound: vhe: a propagated bound (value units) replacing ``roundings``.
            bound: ckks: a bound replacing the result's ``slot_bound`` (released decryptions).
        """
        want = np.asarray(want, dtype=np.float64)
        assert got.shape == want.shape, f"{op}: shape {got.shape}, expected {want.shape}"
        assert np.all(np.isfinite(got)), f"{op}: non-finite decryption {got}"
        err = np.abs(got - want)
        stat = STATS[f"{self.label}:{op}"]
        stat["cases"] += 1
        if stat["cases"] % 100 == 0:
            _write_report()  # a long campaign stopped early still leaves its counts
        if self.kind == "float":
            if np.all(np.asarray(reorder) == 0):
                assert np.array_equal(got, want), f"{op}: {got} != {want}"
            else:
                assert np.all(err <= reorder), f"{op}: error {err.max()} above float64 round-off {np.max(reorder)}"
            return
        if self.kind == "fixed":
            units = err / self.unit
            if fixed_bound is not None:
                assert np.all(err <= fixed_bound), f"{op}: error {err.max()} above propagated bound {fixed_bound}"
            elif roundings == 0:
                assert np.all(units == 0), f"{op}: not exact ({units.max()} units): {got} vs {want}"
            else:
                allowed = 0.5 * roundings + ct.meta["noise"] / self.scheme.params.w
                assert np.all(units <= allowed), f"{op}: {units.max()} units off, allowed {allowed}"
            stat["worst_ratio"] = max(stat["worst_ratio"], float(units.max(initial=0.0)))
            return
        limit = self.scheme.noise_estimate(ct)["slot_bound"] if bound is None else bound
        worst = float(err.max(initial=0.0))
        ratio = worst / limit if limit > 0 else (0.0 if worst == 0 else math.inf)
        stat["worst_ratio"] = max(stat["worst_ratio"], ratio)
        assert ratio <= 1.0, f"{op}: error {err.max():.3e} above the noise model's bound {limit:.3e} (x{ratio:.3f})"


def round_off(n: int, *terms: np.ndarray) -> np.ndarray:
    """float64 round-off of a sum of ``n`` products: ``(n + 1) eps`` times the sum of |terms| (gamma_n)."""
    total = sum(np.abs(t) for t in terms)
    return (n + 1) * EPS * total + np.finfo(np.float64).tiny


# ---------------------------------------------------------------------- strategies
# Strategies are built once per distinct argument set: building and validating them on
# every draw costs about as much as the plain scheme's operations.
@functools.lru_cache(maxsize=None)
def shapes(max_rows: int = MAX_ROWS) -> st.SearchStrategy[tuple[int, int]]:
    return st.tuples(st.integers(1, max_rows), st.sampled_from(SIZES))


def arrays(ctx: Ctx, shape, bound: float) -> st.SearchStrategy[np.ndarray]:
    """Arrays of ``shape`` in [-bound, bound]: zeros, negatives and the ends included (hypothesis favours them).

    On vhe the values lie on the fixed-point grid, so encoding is exact and every
    difference from the oracle is the scheme's own.
    """
    return _arrays(ctx.kind, ctx.unit, tuple(shape), float(bound))


@functools.lru_cache(maxsize=None)
def _arrays(kind: str, unit: float, shape: tuple, bound: float) -> st.SearchStrategy[np.ndarray]:
    if kind == "fixed":
        top = int(bound / unit)
        return hnp.arrays(np.int64, shape, elements=st.integers(-top, top)).map(lambda a: a * unit)
    edges = st.sampled_from([0.0, -0.0, bound, -bound, 1.0, -1.0, 2.0**-30, -(2.0**-30)])
    floats = st.floats(-bound, bound, allow_nan=False, allow_infinity=False)
    if kind == "approx":  # below 2^-500 the CKKS noise model's squares underflow (see test_bad_inputs)
        floats = floats.map(lambda v: v if abs(v) >= 2.0**-500 else 0.0)
    return hnp.arrays(np.float64, shape, elements=st.one_of(edges, floats))


def scalars(ctx: Ctx, bound: float) -> st.SearchStrategy[float]:
    return arrays(ctx, (), bound).map(float)


@functools.lru_cache(maxsize=None)
def operand_shapes(shape: tuple[int, int]) -> st.SearchStrategy:
    """The plaintext operand shapes that broadcast against ``shape``: scalar, vector, column, full."""
    rows, size = shape
    return st.sampled_from([(), (size,), (rows, 1), (1, size), (rows, size)])
