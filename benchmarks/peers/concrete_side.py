"""The Concrete-ML half of the side-by-side (run with Concrete-ML's own interpreter; no henn import).

    /path/to/venv-cml/bin/python benchmarks/peers/concrete_side.py --out cml.json [--quick] [--skip-training]

Breast cancer (standardised on the training split, 80/20 split, seed 0) and wine:
encrypted inference latency per query (``fhe="execute"``, first queries of the test
set) and accuracy (``fhe="simulate"`` over the whole test set, which Concrete-ML
guarantees equal to execute) against the clear (float) model, for logistic
regression and a 2-layer MLP at the default 3 bits and at 6 bits; and encrypted
training of logistic regression (``SGDClassifier(fit_encrypted=True)``): seconds of one
``fit(max_iter=1)`` (compilation, keys, one 8-sample iteration) and test accuracy.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def data(name: str):
    from sklearn.datasets import load_breast_cancer, load_wine
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    X, y = (load_breast_cancer if name == "breast_cancer" else load_wine)(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    sc = StandardScaler().fit(Xtr)
    return sc.transform(Xtr).astype(np.float32), sc.transform(Xte).astype(np.float32), ytr, yte


def inference(model, Xtr, Xte, ytr, yte, queries: int) -> dict:
    model.fit(Xtr, ytr)
    clear = float((model.predict(Xte, fhe="disable") == yte).mean())
    t = time.perf_counter()
    model.compile(Xtr)
    compile_s = time.perf_counter() - t
    simulate = float((model.predict(Xte, fhe="simulate") == yte).mean())
    model.fhe_circuit.keygen()
    times = []
    for i in range(queries):
        t = time.perf_counter()
        model.predict(Xte[i:i + 1], fhe="execute")
        times.append(time.perf_counter() - t)
    return {"clear_accuracy": clear, "encrypted_accuracy": simulate, "seconds_per_query": float(np.median(times)),
            "queries_timed": queries, "compile_s": compile_s, "test_samples": int(len(yte))}


def training(Xtr, Xte, ytr, yte, epochs: int) -> dict:
    from concrete.ml.sklearn import SGDClassifier
    model = SGDClassifier(random_state=0, max_iter=epochs, fit_encrypted=True, parameters_range=(-1.0, 1.0))
    t = time.perf_counter()
    model.fit(Xtr, ytr, fhe="execute")
    seconds = time.perf_counter() - t
    # max_iter counts iterations of 8 samples (an epoch is ~57): this is compilation, key
    # generation and `epochs` iterations, not epochs (time to accuracy: concrete_training.py)
    return {"seconds_per_fit": seconds, "iterations": epochs,
            "accuracy": float((model.predict(Xte) == yte).mean()), "key_holder_rounds": 0}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    import concrete.ml
    from concrete.ml.sklearn import LogisticRegression, NeuralNetClassifier
    queries = 2 if args.quick else 10
    out = {"library": "concrete-ml", "version": concrete.ml.__version__, "results": {}}
    for name in ("breast_cancer", "wine"):
        Xtr, Xte, ytr, yte = data(name)
        res = {"logistic_regression": inference(LogisticRegression(n_bits=8), Xtr, Xte, ytr, yte, queries)}
        for bits in (3, 6):
            mlp = NeuralNetClassifier(module__n_layers=2, module__n_w_bits=bits, module__n_a_bits=bits,
                                      module__n_accum_bits=8 + bits, module__n_hidden_neurons_multiplier=1,
                                      max_epochs=50, verbose=0)
            res[f"mlp_{bits}bit"] = inference(mlp, Xtr, Xte, ytr.astype(np.int64), yte, queries)
        if name == "breast_cancer" and not args.skip_training:
            res["lr_training"] = training(Xtr, Xte, ytr, yte, 1)
        out["results"][name] = res
        print(name, json.dumps(res), flush=True)
        with open(args.out, "w") as f:  # what is done so far, should a later part fail
            json.dump(out, f, indent=1)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
