"""A short run of the key-service fuzzer (fuzz/run_keyservice.py): no request may crash the service.

The long run is ``python fuzz/run_keyservice.py --count 20000`` (see docs/formats.md).
"""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import he_core

_FUZZ = Path(__file__).resolve().parents[2] / "fuzz" / "run_keyservice.py"


def _load():
    spec = importlib.util.spec_from_file_location("henn_fuzz_keyservice", _FUZZ)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mutated_requests_never_crash_the_service(capsys):
    fuzz = _load()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        status = fuzz.run(600, seed=11)
    out = capsys.readouterr().out
    assert status == 0, out
    assert "crashes (exceptions the service would not answer): 0" in out
    assert out.count("answered") >= 2  # valid requests still get ciphertexts back
