"""Concrete-ML's encrypted training of logistic regression, by time to a test accuracy (Concrete-ML's interpreter; no henn import).

    /path/to/venv-cml/bin/python benchmarks/peers/concrete_training.py --out cml_training.json \
        [--iterations 1000 | --curve-from EARLIER.json] [--execute 4]

``SGDClassifier(fit_encrypted=True)`` trains on encrypted data and weights with no key
holder (TFHE). One of its *iterations* is one gradient step on a batch of 8 samples
drawn from the training set (``max_iter`` counts iterations, not epochs: an epoch of
the 455 training samples is ~57 iterations). Two measurements:

* ``curve``: test accuracy after every iteration in ``fhe="simulate"`` (which Concrete-ML
  runs on the same quantised circuit as ``execute``), and how many test predictions
  differ from the clear model's (scikit-learn's ``LogisticRegression`` on the same split);
* ``execute``: seconds of the first ``partial_fit`` (compilation, key generation, one
  iteration) and of each further one (one iteration, plus encrypting and decrypting the
  weights around it), in ``fhe="execute"``.

Time to an accuracy is then ``first + iterations x median iteration``: the iterations
the simulated curve needs, at the measured encrypted cost of one.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from concrete_side import data  # same split and scaling as the inference side

CLASSES = np.array([0, 1])


def clear_predictions(Xtr, Xte, ytr) -> np.ndarray:
    """The clear model the issue names: scikit-learn's logistic regression at its defaults."""
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression().fit(Xtr, ytr).predict(Xte)


def model():
    from concrete.ml.sklearn import SGDClassifier
    return SGDClassifier(random_state=0, fit_encrypted=True, parameters_range=(-1.0, 1.0))


def curve(Xtr, Xte, ytr, yte, clear, iterations: int) -> list[dict]:
    """Accuracy and predictions differing from the clear model after each simulated iteration."""
    m, out = model(), []
    for i in range(1, iterations + 1):
        m.partial_fit(Xtr, ytr, fhe="simulate", classes=CLASSES)
        pred = m.predict(Xte)
        out.append({"iteration": i, "accuracy": float((pred == yte).mean()),
                    "differ_from_clear": int((pred != clear).sum())})
    return out


def execute(Xtr, ytr, calls: int) -> dict:
    """Seconds of the first encrypted ``partial_fit`` and of the next ones."""
    m, seconds = model(), []
    for _ in range(calls):
        t = time.perf_counter()
        m.partial_fit(Xtr, ytr, fhe="execute", classes=CLASSES)
        seconds.append(time.perf_counter() - t)
    return {"first_s": seconds[0], "iteration_s": seconds[1:],
            "median_iteration_s": float(np.median(seconds[1:])) if len(seconds) > 1 else None}


def first_reaching(points: list[dict], max_differ: int) -> int | None:
    """The first iteration with at most ``max_differ`` test predictions unlike the clear model's."""
    return next((p["iteration"] for p in points if p["differ_from_clear"] <= max_differ), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--iterations", type=int, default=1000, help="simulated iterations (default 1000)")
    parser.add_argument("--curve-from", help="take the simulated curve from this earlier output instead")
    parser.add_argument("--execute", type=int, default=4, help="encrypted partial_fit calls (0: none)")
    args = parser.parse_args()
    import concrete.ml
    Xtr, Xte, ytr, yte = data("breast_cancer")
    clear = clear_predictions(Xtr, Xte, ytr)
    out = {"library": "concrete-ml", "version": concrete.ml.__version__, "train_samples": int(len(ytr)),
           "test_samples": int(len(yte)), "batch_size": model().batch_size,
           "clear_accuracy": float((clear == yte).mean())}
    t = time.perf_counter()
    if args.curve_from:  # the curve of an earlier run with these settings (the timings are what is re-run)
        out["curve"] = json.loads(open(args.curve_from).read())["curve"]
    else:
        out["curve"] = curve(Xtr, Xte, ytr, yte, clear, args.iterations)
    out["curve_s"] = time.perf_counter() - t
    out["first_within_one"] = first_reaching(out["curve"], 1)
    out["best_accuracy"] = max(p["accuracy"] for p in out["curve"])
    print(json.dumps({k: v for k, v in out.items() if k != "curve"}), flush=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    if args.execute:
        out["execute"] = execute(Xtr, ytr, args.execute)
        print(json.dumps(out["execute"]), flush=True)
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
