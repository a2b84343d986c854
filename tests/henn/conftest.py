"""Shared fixtures of the henn tests: schemes with keys, and tolerances.

Every scheme-level test runs on the plaintext twin (float64 and 16-bit fixed point),
on ``vhe`` and on ``ckks`` (an insecure N = 2048 ring, same code paths as the 128-bit
sets). Tolerances come from the scheme's fixed-point unit ``u = 1 / scale``: an exact
integer scheme rounds each rescaled result to a multiple of ``u``, so a chain of ``k``
roundings through values of magnitude ``M`` is off by a bound the individual tests
derive from ``u``. CKKS does not round to a grid; its unit is the measured bound of
one operation's error, ``|error| <= 2^-20 (1 + M)`` at scale 2^40 (the largest seen
is about 2^-22 (1 + M), in the rotations and key switching of ``row_sum`` and
``lincomb``: ``python -m tests.henn.ckks_error``, section 6 of ``docs/noise.md``), and
``tol(k, M)`` is ``k`` such errors. Released decryptions are flooded on CKKS:
:meth:`Env.release_tol` takes the bound from the scheme's own release report.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import he_core
from henn.keyholder import KeyHolder

SIZES = (1, 2, 3, 4, 5)


#: The ckks case: an explicitly insecure small ring (the code paths of the 128-bit sets at
#: N = 2048), 40-bit scale like the default set and enough levels for the deepest fixture
#: test without a refresh (no refresh floor: a floor prime would be rescaled by here).
CKKS_PARAMS = dict(poly_degree=2048, levels=16, first_bits=60, scale_bits=40, special_bits=60, dnum=4,
                   allow_insecure=True)
#: Measured error unit of that set: every operation the tests use is off by at most
#: ``2^-UNIT_BITS (1 + M)`` (M: the largest magnitude of operands and result).
UNIT_BITS = 20

SCHEME_CASES = [
    pytest.param(("plain", {}), id="plain"),
    pytest.param(("plain", {"precision_bits": 16}), id="plain16"),
    pytest.param(("vhe", {}), id="vhe"),
    pytest.param(("ckks", CKKS_PARAMS), id="ckks"),
]


class Env:
    """A scheme with public keys installed and the key holder owning the secret."""

    def __init__(self, name: str, params: dict, sizes=SIZES):
        self.name = name
        self.scheme = he_core.get_scheme(name, **params)
        secret, _ = self.scheme.keygen(he_core.KeyRequirements(sizes=sizes), rng=he_core.SeededRandom(1))
        self.secret = secret
        self.keyholder = KeyHolder(self.scheme, secret)
        probe = self.scheme.encrypt([0.0])
        # Fixed-point unit: 1/scale for integer schemes; the float twin has none.
        self.unit = 1.0 / probe.scale if probe.scale > 1 else 0.0
        if name == "plain" and params.get("precision_bits") is not None:
            self.unit = 2.0 ** -params["precision_bits"]
        self.approximate = self.scheme.supports(he_core.Capability.APPROXIMATE)
        if self.approximate:  # not a rounding unit: the measured error bound of one operation
            self.unit = 2.0 ** -UNIT_BITS

    def release_tol(self, x, keyholder: KeyHolder | None = None) -> float:
        """Bound on a released decryption's error: exact schemes round once; CKKS floods.

        The flooding's per-value standard deviation and rounding grid are what the scheme
        reports for the release (``release_report``); 7 sigma is exceeded with
        probability about 2^-38 per value.
        """
        ct = getattr(x, "ct", x)
        flooding = (keyholder or self.keyholder).terms.flooding
        report = self.scheme.release_report(ct, flooding)
        if not report["flooded"]:
            return self.tol(1)
        return 7.0 * report["value_sigma"] + report["grid"] + self.tol(1, float(np.max(np.abs(self.decrypt(ct)))))

    def only_without(self, capability: he_core.Capability, covered_by: str) -> None:
        """Restrict a test, by capability, to schemes that lack ``capability``.

        For tests that drive a path a scheme with ``capability`` runs differently (a
        leveled scheme trains on the protocol's parameter set through the refresh
        policy; a packing scheme moves table rows through the key holder): the skip
        names the capability and the test that covers the path on such a scheme.
        """
        if self.scheme.supports(capability):
            pytest.skip(f"{self.name} declares {capability.name} ({capability.value}): this path is tested "
                        f"for it in {covered_by}")

    def decrypt(self, x):
        """Exact decryption in the test's own process (the key holder's releases are flooded)."""
        ct = getattr(x, "ct", x)
        return self.scheme.decrypt_exact_local(ct, self.secret)

    def tol(self, roundings: float, magnitude: float = 1.0) -> float:
        """Bound for ``roundings`` fixed-point roundings, each amplified by at most ``magnitude``."""
        if self.approximate:  # CKKS: each operation is off by at most unit * (1 + |x|)
            return roundings * (1.0 + magnitude) * self.unit
        return roundings * magnitude * self.unit + 1e-9


@functools.lru_cache(maxsize=None)
def make_env(name: str, params_items: tuple = ()) -> Env:
    return Env(name, dict(params_items))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.slow_on_ckks``: the test's ckks case is slow (the property tests' many
    key switchings at N = 2048), so that case alone is marked ``slow``; the others stay."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if item.get_closest_marker("slow_on_ckks") and callspec and callspec.id.split("-")[0] == "ckks":
            item.add_marker(pytest.mark.slow)


@pytest.fixture(params=SCHEME_CASES, scope="session")
def env(request) -> Env:
    name, params = request.param
    return make_env(name, tuple(sorted(params.items())))
