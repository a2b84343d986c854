"""``henn serve`` / ``henn predict`` in two processes: encrypted queries answered like the clear model."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import he_core
from henn import activations
from henn.cli import main
from henn.deploy import Circuit, ServerBundle

pytestmark = pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")


def circuit() -> Circuit:
    rng = np.random.default_rng(3)
    return Circuit([("linear", rng.normal(0, 0.3, (30, 16)), rng.normal(0, 0.1, 16)), ("poly", activations.square()),
                    ("linear", rng.normal(0, 0.3, (16, 2)), rng.normal(0, 0.1, 2))],
                   shift=np.zeros(30), scale=np.full(30, 2.0), clip=2.0)


def start_server(bundle_path: Path, address: str, connections: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "henn", "serve", "--bundle", str(bundle_path), "--listen", address,
                             "--connections", str(connections)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()  # printed once listening
    assert "listening on" in line, proc.stderr.read()
    return proc


@pytest.mark.parametrize("layout", ["columns", "rows"])
def test_serve_and_predict_across_processes(tmp_path, capsys, layout):
    c = circuit()
    bundle_path = tmp_path / "bundle.henn"
    bundle_path.write_bytes(ServerBundle.create(c, "ckks", layout=layout).to_bytes())
    X = np.random.default_rng(4).normal(0, 2, (114, 30))
    data = tmp_path / "X.csv"
    lines = [",".join(f"f{i}" for i in range(30))] + [",".join(f"{v:.17g}" for v in r) for r in X]
    data.write_text("\n".join(lines) + "\n")
    sock_dir = Path(tempfile.mkdtemp(prefix="henn-serve-"))  # short path: Unix sockets have a length limit
    address = f"unix:{sock_dir / 's.sock'}"
    server = start_server(bundle_path, address, connections=1)
    try:
        out = tmp_path / "Y.csv"
        code = main(["predict", "--server", address, "--data", str(data), "--out", str(out), "--json"])
        assert code == 0
        report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        server.wait(timeout=60)
    finally:
        server.kill()
    rows = np.loadtxt(out, delimiter=",", skiprows=1)
    clear = c.evaluate(X)
    np.testing.assert_allclose(rows[:, :2], clear, atol=1e-2, rtol=0)  # as test_deploy: flooding ~2^-9
    assert (rows[:, 2] == clear.argmax(1)).sum() >= 113
    # columns: a relinearisation key only; rows: also one 32-wide matvec's 15 rotation keys
    key_limit = 90e6 if layout == "columns" else 160e6
    assert report["batches"] == 1 and report["key_bytes"] < key_limit and report["answer_bytes"] > 0
    assert server.returncode == 0
    # the answered batches are counted across restarts, beside the bundle
    assert json.loads((tmp_path / "bundle.henn.answered").read_text()) == {"answered": 1}


def test_usage_and_refusals(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--server", "unix:/nope"])
    assert exc.value.code == 2
    bad = tmp_path / "X.csv"
    bad.write_text("a,b\n1,x\n")
    assert main(["predict", "--server", "unix:/nope/s.sock", "--data", str(bad), "--out", str(tmp_path / "o")]) == 1
    assert "expected rows of numbers" in capsys.readouterr().err
    not_a_bundle = tmp_path / "b.henn"
    not_a_bundle.write_bytes(b"hello")
    assert main(["serve", "--bundle", str(not_a_bundle), "--listen", "unix:/tmp/x.sock"]) == 1
