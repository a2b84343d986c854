"""Shared pieces of the henn.lifecycle tests: toy models, key directories, the owner's identity."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import he_core
from he_core import serialization as ser
from henn import lifecycle as lc

# plain and vhe are below 128-bit security, so these tests opt in to loading them
# (the refusal itself: test_insecure_key_directories_and_models_need_the_opt_in).
load_public = functools.partial(lc.load_public, allow_insecure=True)
load_secret = functools.partial(lc.load_secret, allow_insecure=True)
load_owner = functools.partial(lc.load_owner, allow_insecure=True)
load_encrypted_model = functools.partial(lc.load_encrypted_model, allow_insecure=True)
make_switch_key = functools.partial(lc.make_switch_key, allow_insecure=True)
ser_load = functools.partial(ser.load, allow_insecure=True)

# Every built-in scheme: setup.py always builds the native modules, so a missing one is
# a broken build and must fail here, not drop out of the list.
SCHEMES = ["plain", "vhe", "ckks"]
REKEY_SCHEMES = [n for n in SCHEMES if he_core.get_scheme(n).supports(he_core.Capability.REKEY)]
FAST_SCHEMES = ["plain", "vhe"]  # the tests that run many key directories skip CKKS's keygen
TOL = {"plain": 0.0, "vhe": 1e-3, "ckks": 1e-4}  # exact for plain; fixed-point rounding otherwise
PASS = b"owner passphrase"
WEIGHTS = {"0.weight": np.array([[0.5, -1.25], [0.0, 2.0], [-3.0, 0.75]]), "0.bias": np.array([[0.25, -0.5]])}


def toy_model() -> lc.PlainModel:
    """Weights of every rank (matrix, row, vector, scalar) and nested metadata."""
    return lc.PlainModel({"0.weight": np.array([[0.5, -1.25], [0.0, 2.0], [-3.0, 0.75]]),
                          "0.bias": np.array([[0.25, -0.5]]), "2.weight": np.array([1.5, -2.0]),
                          "scale": np.array(3.0)}, {"arch": "toy", "layers": [3, 2, 1]})


def small_model() -> lc.PlainModel:
    """Two weights of vector size 2 (the sizes every ``sizes=(1, 2)`` key directory covers)."""
    return lc.PlainModel(dict(WEIGHTS), {"arch": "toy"})


def owner_of(name, tmp_path, label="A"):
    """Key directory ``tmp_path / label`` for ``name`` covering the toy model: ``(scheme, public, secret, pair)``."""
    pair = lc.keygen(name, tmp_path / label, sizes=lc.required_sizes(toy_model()),
                     rng=he_core.SeededRandom(5 + sum(map(ord, label))))
    return load_owner(tmp_path / label) + (pair,)


def encrypt_as_owner(scheme, secret, model):
    """Public-key encryption where the scheme has it, else with the owner's secret key."""
    use_secret = None if scheme.supports(he_core.Capability.PUBLIC_KEY_ENCRYPT) else secret
    return lc.encrypt_model(model, scheme, secret=use_secret)


@pytest.fixture
def owner(tmp_path):
    """A plain key directory covering the toy model."""
    lc.keygen("plain", tmp_path / "A", sizes=lc.required_sizes(toy_model()))
    return tmp_path / "A"


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    """An owner directory (signing key under PASS) and its key."""
    out = tmp_path_factory.mktemp("id") / "owner"
    lc.owner_init(out, PASS)
    return out, lc.load_signer(out, PASS)
