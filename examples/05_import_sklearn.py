"""Serve a model trained in the clear with scikit-learn, on encrypted data.

    python examples/05_import_sklearn.py                  # 128-bit CKKS
    python examples/05_import_sklearn.py --scheme vhe

Logistic regression imports exactly; an MLP's hidden activation is refitted as a
polynomial on the pre-activations the training data produce, and the accuracy change
is reported before anything is encrypted.
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from henn.deploy import InferenceClient, InferenceServer, ServerBundle
from henn.importers import from_sklearn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", default="ckks")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    X, y = load_wine(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    scaler = StandardScaler().fit(Xtr)
    Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
    for model in (LogisticRegression(max_iter=2000), MLPClassifier((8,), activation="tanh", max_iter=2000,
                                                                   random_state=0)):
        model.fit(Xtr, ytr)
        circuit, report = from_sklearn(model, Xtr, ytr, degree=3)
        bundle = ServerBundle.create(circuit, args.scheme)
        server = InferenceServer(bundle, allow_insecure=args.scheme == "vhe")
        client = InferenceClient(bundle.client_info())
        server.register(client.public_bytes())
        out = np.vstack([client.decrypt(server.answer(q.ciphertext, q.count), q.rows) for q in client.encrypt(Xte)])
        encrypted = model.classes_[out.argmax(1)]
        print(f"{type(model).__name__}: clear {model.score(Xte, yte):.3f}, imported (train agreement "
              f"{report.agreement:.3f}) and encrypted {float((encrypted == yte).mean()):.3f}")


if __name__ == "__main__":
    main()
