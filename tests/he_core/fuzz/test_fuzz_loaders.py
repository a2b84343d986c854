"""Fuzzing the loaders: whatever the bytes, the only exception is FormatError.

The default run tries a few hundred inputs; ``python fuzz/run_loaders.py --count 100000``
is the long run (see docs/formats.md).
"""
from __future__ import annotations

import importlib.util
import random
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import he_core
from he_core import serialization as ser

_CORPUS = Path(__file__).resolve().parents[3] / "fuzz" / "corpus.py"


def _load_corpus():
    spec = importlib.util.spec_from_file_location("henn_fuzz_corpus", _CORPUS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


corpus = _load_corpus()
# plain and vhe cover every kind in small files; the long run (fuzz/run_loaders.py) adds ckks.
FILES = corpus.valid_files([n for n in corpus.usable_schemes() if n != "ckks"], max_bytes=64_000)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def only_format_errors(data: bytes) -> None:
    try:
        corpus.load_all_ways(data)
    except he_core.FormatError:
        pass


def test_the_corpus_is_valid():
    # The mutations below only mean something if the files they start from load.
    for name, blob in FILES.items():
        if name.endswith(".npz"):
            continue  # the plaintext model seed is for the lifecycle loaders (tests/henn)
        ser.loads(blob, allow_insecure=True, passphrase=corpus.PASSPHRASE)
        if name.endswith("+signed"):
            ser.loads(blob, allow_insecure=True, owner_key=corpus.OWNER.verify_key)
    assert {"plain/ciphertext", "plain/secret_key", "plain/public_keys", "plain/switch_key", "plain/bundle",
            "key_requirements", "plain/public_keys+signed", "plain/bundle+public+signed",
            "plain/secret_key+sealed"} <= set(FILES)


def test_a_sealed_key_without_its_passphrase_is_the_only_other_answer():
    with pytest.raises(he_core.KeyMissingError, match="sealed with a passphrase"):
        ser.loads(FILES["plain/secret_key+sealed"], allow_insecure=True)
    corpus.load_all_ways(FILES["plain/secret_key+sealed"])  # accepted there as the documented answer


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data):
    only_format_errors(data)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([(1, 0), (2, 0), (2, 1)]))
def test_random_bytes_behind_a_valid_preamble_and_digest(data, version_flags):
    preamble = ser.container.MAGIC + struct.pack("<HH", *version_flags) + b"\0" * 12
    only_format_errors(corpus.reseal(preamble + data))


@FUZZ
@given(st.sampled_from(sorted(FILES)), st.integers(0, 2**32), st.booleans())
def test_mutated_valid_files(name, seed, reseal):
    rng = random.Random(seed)
    data = FILES[name]
    for _ in range(rng.randint(1, 4)):
        data = corpus.mutate(data, rng)
    if reseal:
        data = corpus.reseal(data)
    if data != FILES[name] and not reseal:
        # Without a fresh digest every change must be caught by the envelope; a change to the
        # signature trailer only (which the digest does not cover) by the signature check.
        owner = {"owner_key": corpus.OWNER.verify_key} if name.endswith("+signed") else {}
        with pytest.raises(he_core.FormatError):
            ser.loads(data, allow_insecure=True, passphrase=corpus.PASSPHRASE, **owner)
    if data != FILES[name] and name.endswith("+signed"):
        # Resealed or not, a changed signed file never passes the owner's signature check.
        with pytest.raises(he_core.FormatError):
            ser.loads(data, allow_insecure=True, owner_key=corpus.OWNER.verify_key)
    # Resealed damage reaches the parsers; it may even be harmless (a changed float
    # digit), so success is allowed, but any failure must be a FormatError.
    only_format_errors(data)


@FUZZ
@given(st.sampled_from(sorted(FILES)), st.integers(0, 2**32))
def test_json_level_mutations(name, seed):
    only_format_errors(corpus.json_mutate(FILES[name], random.Random(seed)))
