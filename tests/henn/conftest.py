"""Shared fixtures of the henn tests: schemes with keys, and tolerances.

Every scheme-level test runs on the plaintext twin (float64 and 16-bit fixed point)
and on ``vhe``. Tolerances come from the scheme's fixed-point
unit ``u = 1 / scale``: an exact integer scheme rounds each rescaled result to a
multiple of ``u``, so a chain of ``k`` roundings through values of magnitude ``M``
is off by a bound the individual tests derive from ``u``.
"""
from __future__ import annotations

import functools

import pytest

import he_core
from henn.keyholder import KeyHolder

SIZES = (1, 2, 3, 4, 5)


SCHEME_CASES = [
    pytest.param(("plain", {}), id="plain"),
    pytest.param(("plain", {"precision_bits": 16}), id="plain16"),
    pytest.param(("vhe", {}), id="vhe"),
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

    def decrypt(self, x):
        """Exact decryption in the test's own process (the key holder's releases are flooded)."""
        ct = getattr(x, "ct", x)
        return self.scheme.decrypt_exact_local(ct, self.secret)

    def tol(self, roundings: float, magnitude: float = 1.0) -> float:
        """Bound for ``roundings`` fixed-point roundings, each amplified by at most ``magnitude``."""
        return roundings * magnitude * self.unit + 1e-9


@functools.lru_cache(maxsize=None)
def make_env(name: str, params_items: tuple = ()) -> Env:
    return Env(name, dict(params_items))


@pytest.fixture(params=SCHEME_CASES, scope="session")
def env(request) -> Env:
    name, params = request.param
    return make_env(name, tuple(sorted(params.items())))
