"""Shared fixtures of the henn.distributed tests: a small circuit and its bundles."""
from __future__ import annotations

import numpy as np
import pytest

from henn import activations
from henn.deploy import Circuit


@pytest.fixture(scope="session")
def circuit() -> Circuit:
    """A breast-cancer-sized MLP (30 -> 16 -> 2, square activation), as the deploy tests use."""
    rng = np.random.default_rng(3)
    return Circuit([("linear", rng.normal(0, 0.3, (30, 16)), rng.normal(0, 0.1, 16)), ("poly", activations.square()),
                    ("linear", rng.normal(0, 0.3, (16, 2)), rng.normal(0, 0.1, 2))],
                   shift=np.zeros(30), scale=np.full(30, 2.0), clip=2.0)


@pytest.fixture(scope="session")
def ckks_bundle(circuit):
    """The circuit's 128-bit CKKS bundle (its parameter set found by a trial run: a few seconds, made once)."""
    import he_core
    from henn.deploy import ServerBundle

    if "ckks" not in he_core.available_schemes():
        pytest.skip("the ckks scheme is not built")
    return ServerBundle.create(circuit, "ckks")
