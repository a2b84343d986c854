"""The README's examples run as written.

The Python blocks of README.md are extracted and run in a fresh interpreter, in a
temporary directory (the deploy block writes ``bundle.henn`` there). The library
example runs in the default suite (about 4 s). The estimator and deploy blocks train
an MLP on 128-bit CKKS (the digits run: about 12 minutes on one core), so they run
verbatim under ``-m slow``; the default suite runs them with ``scheme="ckks"`` replaced
by ``scheme="plain"`` (the same API, the same calls), which keeps the names and
signatures they use honest.
"""
from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def blocks(language: str) -> list[str]:
    """The fenced blocks of README.md tagged ``language``, in order."""
    return [body for lang, body in FENCE.findall(README.read_text()) if lang == language]


def _block(marker: str) -> str:
    found = [b for b in blocks("python") if marker in b]
    assert len(found) == 1, f"README.md should have one python block with {marker!r}, found {len(found)}"
    return found[0]


LIBRARY = _block('he_core.get_scheme("ckks")')
ESTIMATOR = _block("EncryptedMLPClassifier(")
DEPLOY = _block("ServerBundle.create(")


def run_python(code: str, cwd: pathlib.Path, timeout: float = 1800) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"README example failed:\n{code}\n--- stderr ---\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_every_python_block_is_run_here():
    assert sorted(blocks("python")) == sorted([LIBRARY, ESTIMATOR, DEPLOY])


def test_library_example_runs_as_written(tmp_path):
    out = run_python(LIBRARY, tmp_path).splitlines()
    assert len(out) == 4, out
    released, exact = (np.array(eval(line, {}), dtype=float) for line in (out[0], out[2]))  # printed arrays
    report = eval(out[1], {})  # the printed release report
    # 0.5*1 - 1.25*2 + 2*3 = 4: exact to CKKS's error; released to the flooding it reports
    assert exact.shape == (1, 1) and abs(exact[0, 0] - 4.0) < 1e-6
    assert report["flooded"] and abs(released[0, 0] - 4.0) <= 7 * report["value_sigma"] + report["grid"]
    assert "levels" in out[3] and "Capability.APPROXIMATE" in out[3]


def test_estimator_and_deploy_examples_run_on_the_plain_twin(tmp_path):
    code = (ESTIMATOR + DEPLOY).replace('scheme="ckks"', 'scheme="plain"').replace('"ckks")', '"plain")')
    assert "ckks" not in code
    run_python(code + "\nprint(clf.score(X_test, y_test))", tmp_path, timeout=600)
    assert (tmp_path / "bundle.henn").stat().st_size > 0


@pytest.mark.slow
def test_estimator_and_deploy_examples_run_as_written(tmp_path):
    out = run_python(ESTIMATOR + DEPLOY + "\nprint(clf.score(X_test, y_test))", tmp_path)
    assert float(out.splitlines()[-1]) >= 0.9
    assert (tmp_path / "bundle.henn").stat().st_size > 0

