"""Fuzzing the lifecycle file loaders: whatever the bytes, the only exception is FormatError.

The long run is ``python fuzz/run_loaders.py --count 100000`` (see docs/formats.md).
"""
from __future__ import annotations

import functools
import importlib.util
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import he_core
from henn import lifecycle as lc

_CORPUS = Path(__file__).resolve().parents[3] / "fuzz" / "corpus.py"
_spec = importlib.util.spec_from_file_location("henn_fuzz_corpus_lifecycle", _CORPUS)
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)

FILES = corpus.valid_files(["plain"], max_bytes=64_000)
NPZ = FILES["model/plain.npz"]
MODEL = FILES["model/encrypted"]
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
# The seeds are plain files: without the opt-in every load would stop at the security check.
load_encrypted_model = functools.partial(lc.load_encrypted_model, allow_insecure=True)
load_public = functools.partial(lc.load_public, allow_insecure=True)


def only_format_errors(loader, path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        loader(path)
    except he_core.FormatError:
        pass


def test_the_seeds_load(tmp_path):
    (tmp_path / "m.npz").write_bytes(NPZ)
    (tmp_path / "m.henn").write_bytes(MODEL)
    assert set(lc.read_plain_model(tmp_path / "m.npz").arrays) == {"w", "b"}
    assert set(load_encrypted_model(tmp_path / "m.henn").tensors) == {"w", "b"}


@FUZZ
@given(seed=st.integers(0, 2**32), rezip=st.booleans())
def test_mutated_npz_models(tmp_path, seed, rezip):
    rng = random.Random(seed)
    data = corpus.npz_mutate(NPZ, rng) if rezip else corpus.mutate(NPZ, rng)
    only_format_errors(lc.read_plain_model, tmp_path / "m.npz", data)


@FUZZ
@given(seed=st.integers(0, 2**32))
def test_mutated_encrypted_models(tmp_path, seed):
    rng = random.Random(seed)
    data = corpus.json_mutate(MODEL, rng) if rng.random() < 0.5 else corpus.reseal(corpus.mutate(MODEL, rng))
    for loader in (load_encrypted_model, load_public):
        only_format_errors(loader, tmp_path / "m.henn", data)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(tmp_path, data):
    for loader in (lc.read_plain_model, load_encrypted_model, load_public):
        only_format_errors(loader, tmp_path / "x", data)
