"""Inference on encrypted data across processes: owner, server (`henn serve`), client (`henn predict`).

    python examples/04_client_server.py                   # 128-bit CKKS
    python examples/04_client_server.py --scheme vhe      # the insecure teaching scheme (fast)
    python examples/04_client_server.py --layout rows     # a query per row: cheaper for a few queries

The owner trains an MLP on breast-cancer data and writes the server bundle (the
circuit, its parameters, the weights in the clear); a second process serves it on a
private Unix socket; the client encrypts the test rows, the server answers without
any secret key, and the client decrypts and compares with the clear model. The
bundle's layout decides how queries are packed: ``columns`` (a slot per query: a
thousand queries cost what one does) or ``rows`` (a row per query, one rotation-based
matvec per layer: the cheaper layout for a single query; CKKS only).
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from henn.deploy import ServerBundle
from henn.sklearn import EncryptedMLPClassifier
from henn.training.fit import SinglePartyWarning


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", default="ckks")
    parser.add_argument("--layout", choices=("columns", "rows"), default="columns")
    args = parser.parse_args()
    insecure = ["--allow-insecure"] if args.scheme == "vhe" else []
    warnings.simplefilter("ignore")  # SinglePartyWarning (the owner trains alone) and vhe's SecurityWarning
    _ = SinglePartyWarning

    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, _ = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    with tempfile.TemporaryDirectory(prefix="henn-ex-") as tmp:
        run(Path(tmp), Xtr, Xte, ytr, insecure, args.scheme, args.layout)


def run(work: Path, Xtr: np.ndarray, Xte: np.ndarray, ytr: np.ndarray, insecure: list[str], scheme: str,
        layout: str) -> None:
    # owner: train (on the plain twin here: the weights end in the clear in the bundle anyway) and export
    clf = EncryptedMLPClassifier((16,), scheme="plain", epochs=10, random_state=0).fit(Xtr, ytr)
    circuit = clf.export_circuit()
    (work / "bundle.henn").write_bytes(ServerBundle.create(circuit, scheme, layout=layout).to_bytes())
    with open(work / "X.csv", "w", newline="") as f:
        csv.writer(f).writerows(Xte.tolist())
    # server, in its own process
    address = f"unix:{work / 'infer.sock'}"
    server = subprocess.Popen([sys.executable, "-m", "henn", "serve", "--bundle", str(work / "bundle.henn"),
                               "--listen", address, "--connections", "1", *insecure], stdout=subprocess.PIPE, text=True)
    print(server.stdout.readline().strip())
    # client: keys, encrypt, send, decrypt
    done = subprocess.run([sys.executable, "-m", "henn", "predict", "--server", address, "--data", str(work / "X.csv"),
                           "--out", str(work / "Y.csv"), *insecure], capture_output=True, text=True)
    server.wait(timeout=60)
    print(done.stderr.strip())
    rows = np.loadtxt(work / "Y.csv", delimiter=",", skiprows=1, ndmin=2)
    same = int((rows[:, -1] == circuit.evaluate(Xte).argmax(1)).sum())
    print(f"encrypted answers agree with the clear model on {same} of {len(Xte)} rows")


if __name__ == "__main__":
    main()
