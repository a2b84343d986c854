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
from henn.deploy import Circuit, DeployError, InferenceServer, ServerBundle

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


def write_csv(path: Path, X: np.ndarray) -> Path:
    lines = [",".join(f"f{i}" for i in range(X.shape[1]))] + [",".join(f"{v:.17g}" for v in r) for r in X]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")
def test_predict_on_a_local_cluster(tmp_path, capsys):
    pytest.importorskip("distributed")
    c = circuit()
    bundle_path = tmp_path / "bundle.henn"
    bundle_path.write_bytes(ServerBundle.create(c, "vhe").to_bytes())
    X = np.random.default_rng(5).normal(0, 2, (90, 30))
    data, out = write_csv(tmp_path / "X.csv", X), tmp_path / "Y.csv"
    args = ["predict", "--bundle", str(bundle_path), "--cluster", "local", "--workers", "2", "--batch-rows", "30",
            "--data", str(data), "--out", str(out), "--json"]
    assert main(args) == 1  # vhe gives no security: asked for by name only
    assert "give no security" in capsys.readouterr().err
    assert main(args + ["--allow-insecure"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["batches"] == 3 and report["workers"] == 2 and report["threads"] == 2 and report["rows"] == 90
    rows = np.loadtxt(out, delimiter=",", skiprows=1)
    clear = c.evaluate(X)
    np.testing.assert_allclose(rows[:, :2], clear, atol=1e-2, rtol=0)  # vhe: 16-bit fixed point
    assert (rows[:, 2] == clear.argmax(1)).sum() >= 89
    # the same answer count as henn serve's, beside the bundle
    assert json.loads((tmp_path / "bundle.henn.answered").read_text()) == {"answered": 3}


@pytest.mark.parametrize("extra", [
    ["--server", "unix:/x.sock", "--cluster", "local"],                        # a cluster evaluates a bundle
    ["--bundle", "B"],                                                          # a bundle needs a cluster
    ["--server", "unix:/x.sock", "--bundle", "B", "--cluster", "local"],       # one or the other
    ["--bundle", "B", "--cluster", "tcp://10.0.0.5:8786"],                      # unauthenticated and not loopback
    ["--bundle", "B", "--cluster", "tls://sched.example:8786", "--workers", "2"],
    ["--bundle", "B", "--cluster", "local", "--workers", "4096"],              # more workers than cores
    ["--bundle", "B", "--cluster", "local", "--workers", "0"],
    ["--bundle", "B", "--cluster", "local", "--tls-ca", "ca.pem"],
    ["--bundle", "B", "--cluster", "tls://sched.example:8786", "--tls-cert", "c.pem"],
    ["--server", "unix:/x.sock", "--workers", "2"],
])
def test_cluster_usage_errors_exit_2(tmp_path, extra):
    pytest.importorskip("distributed")
    with pytest.raises(SystemExit) as exc:
        main(["predict", *extra, "--data", str(tmp_path / "X.csv"), "--out", str(tmp_path / "Y.csv")])
    assert exc.value.code == 2


@pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")
def test_predict_on_a_tls_cluster_with_the_users_certificate_files(tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    from distributed.security import Security

    security = Security.temporary()  # a throwaway CA; its PEMs written out as a user's TLS files would be
    files = {}
    for name, pem in (("ca", security.tls_ca_file), ("cert", security.tls_client_cert),
                      ("key", security.tls_client_key)):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_text(pem)
    c = circuit()
    bundle_path = tmp_path / "bundle.henn"
    bundle_path.write_bytes(ServerBundle.create(c, "vhe").to_bytes())
    X = np.random.default_rng(6).normal(0, 2, (20, 30))
    data, out = write_csv(tmp_path / "X.csv", X), tmp_path / "Y.csv"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tls://",
                                  host="127.0.0.1", security=security, dashboard_address="127.0.0.1:0") as tls:
        base = ["predict", "--bundle", str(bundle_path), "--cluster", tls.scheduler_address, "--data", str(data),
                "--out", str(out), "--allow-insecure"]
        assert main(base + ["--tls-ca", str(files["ca"]), "--tls-cert", str(files["cert"]),
                            "--tls-key", str(files["key"])]) == 0
        np.testing.assert_allclose(np.loadtxt(out, delimiter=",", skiprows=1)[:, :2], c.evaluate(X), atol=1e-2)
        capsys.readouterr()
        import dask
        with dask.config.set({"distributed.comm.tls.ca-file": None, "distributed.comm.tls.client.cert": None}):
            assert main(base) == 1  # tls:// without certificates, none in Dask's configuration either
        assert "lacks distributed.comm.tls.ca-file" in capsys.readouterr().err


def test_serve_refuses_an_insecure_bundle_before_listening(tmp_path, capsys):
    """vhe gives no security: ``henn serve`` asks for --allow-insecure, as predict does (and the API's server)."""
    bundle_path = tmp_path / "bundle.henn"
    bundle = ServerBundle.create(circuit(), "vhe")
    bundle_path.write_bytes(bundle.to_bytes())
    assert main(["serve", "--bundle", str(bundle_path), "--listen", "127.0.0.1:0"]) == 1
    assert "give no security" in capsys.readouterr().err
    with pytest.raises(DeployError, match="give no security"):
        InferenceServer(bundle)
