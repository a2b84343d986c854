"""Encrypted logistic-regression training with no key holder, henn against Concrete-ML: time to a test accuracy.

    PYTHONPATH=. python -m benchmarks.peers.lr_time_to_accuracy \
        --cml-python /path/to/venv-cml/bin/python [--cml-json FILE] [--ring N] [--json OUT]

Breast cancer, 80/20 split (stratified, seed 0), features standardised on the training
split; the target is the clear model's test accuracy (scikit-learn's logistic regression)
to within one test sample of 114, the issue's bar.

* henn: :class:`henn.sklearn.EncryptedLogisticRegression` with ``solver="newton"`` and
  ``refresh="bootstrap"`` at the 128-bit N = 2^16 set (``--ring``: a small insecure ring,
  for trials): weights encrypted, no key holder while training, one release at the end.
  Its plain twin runs the same arithmetic step by step and says after how many full-batch
  steps the target is reached; the encrypted fit then runs exactly that many, timed whole
  (key generation, training, the final release), and its accuracy is checked.
* Concrete-ML (``concrete_training.py`` in its own interpreter): ``SGDClassifier
  (fit_encrypted=True)`` (TFHE, data and weights encrypted, no key holder). Its accuracy
  after each 8-sample iteration comes from ``fhe="simulate"``; its time to the first
  iteration that reaches the target is the measured first encrypted ``partial_fit``
  (compilation, key generation, one iteration) plus the median encrypted iteration times
  the iterations after it.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
#: The henn settings (full batch, fixed-Hessian Newton, cubic sigmoid on +-8): see docs/bootstrapping.md.
HENN_SETTINGS = dict(lr=1.0, weight_decay=0.01, sigmoid_degree=3, sigmoid_interval=8.0, solver="newton", ridge=0.01)
MAX_STEPS = 12


def split():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    sc = StandardScaler().fit(Xtr)
    clear = LogisticRegression().fit(sc.transform(Xtr), ytr).predict(sc.transform(Xte))
    return Xtr, Xte, ytr, yte, clear


def target(clear, yte) -> float:
    """The clear model's accuracy less one test sample."""
    return float((clear == yte).mean()) - 1.0 / len(yte)


def henn_estimator(scheme: str, steps: int, n: int, **extra):
    from henn.sklearn import EncryptedLogisticRegression
    return EncryptedLogisticRegression(scheme, epochs=steps, batch_size=n, random_state=0, monitor=False,
                                       **HENN_SETTINGS, **extra)


def henn_curve(Xtr, Xte, ytr, yte, clear) -> list[dict]:
    """The plain twin's test accuracy after 1 .. MAX_STEPS full-batch steps."""
    out = []
    for steps in range(1, MAX_STEPS + 1):
        pred = henn_estimator("plain", steps, len(ytr)).fit(Xtr, ytr).predict(Xte)
        out.append({"steps": steps, "accuracy": float((pred == yte).mean()), "differ_from_clear": int((pred != clear).sum())})
    return out


def henn_encrypted(Xtr, Xte, ytr, yte, clear, steps: int, ring: int | None) -> dict:
    """One encrypted fit of ``steps`` steps, timed whole, and its test accuracy."""
    cpu, wall = time.process_time(), time.perf_counter()
    model = henn_estimator("ckks", steps, len(ytr), refresh="bootstrap", insecure_ring=ring).fit(Xtr, ytr)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    pred = model.predict(Xte)
    counters = model.keyholder_.counters()
    return {"steps": steps, "seconds": wall, "cpu_seconds": cpu, "accuracy": float((pred == yte).mean()),
            "differ_from_clear": int((pred != clear).sum()), "bootstraps": model.history_.policy.get("bootstraps"),
            "refresh_rounds": counters["refresh_rounds"], "releases": counters["releases"],
            "security_bits": 0 if ring else 128, "ring": ring or 65536,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def concrete(args) -> dict:
    if args.cml_json and Path(args.cml_json).exists():
        return json.loads(Path(args.cml_json).read_text())
    if not args.cml_python:
        return {}
    out = args.cml_json or "cml_training.json"
    subprocess.run([args.cml_python, str(HERE / "concrete_training.py"), "--out", out], check=True, cwd=HERE)
    return json.loads(Path(HERE / out if not Path(out).is_absolute() else out).read_text())


def concrete_time_to(cml: dict, goal: float) -> dict | None:
    """Concrete-ML's first iteration at ``goal`` and its encrypted time, or None without both halves."""
    if not cml or "execute" not in cml:
        return None
    hits = [p["iteration"] for p in cml["curve"] if p["accuracy"] >= goal - 1e-12]
    if not hits:
        return {"iteration": None, "seconds": None, "simulated_iterations": len(cml["curve"])}
    first = hits[0]
    ex = cml["execute"]
    held = float(np.mean([p["accuracy"] >= goal - 1e-12 for p in cml["curve"][first - 1:]]))
    return {"iteration": first, "seconds": ex["first_s"] + (first - 1) * ex["median_iteration_s"],
            "first_s": ex["first_s"], "median_iteration_s": ex["median_iteration_s"],
            "share_of_later_iterations_at_goal": held,
            "final_accuracy": cml["curve"][-1]["accuracy"], "simulated_iterations": len(cml["curve"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cml-python", help="Concrete-ML's interpreter (its own venv)")
    parser.add_argument("--cml-json", help="reuse (or write) Concrete-ML's results here")
    parser.add_argument("--ring", type=int, default=None, help="an insecure ring degree for trials")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--henn-json", help="reuse henn's half from this earlier --json output (no encrypted run)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    Xtr, Xte, ytr, yte, clear = split()
    goal = target(clear, yte)
    curve = henn_curve(Xtr, Xte, ytr, yte, clear)
    steps = next((p["steps"] for p in curve if p["accuracy"] >= goal - 1e-12), None)
    if steps is None:
        print(f"henn's twin does not reach {goal:.4f} in {MAX_STEPS} steps", file=sys.stderr)
        return 1
    if args.henn_json:
        henn = json.loads(Path(args.henn_json).read_text())["henn"]
    else:
        henn = henn_encrypted(Xtr, Xte, ytr, yte, clear, steps, args.ring)
    cml = concrete_time_to(concrete(args), goal)
    result = {"goal_accuracy": goal, "clear_accuracy": float((clear == yte).mean()), "henn_twin_curve": curve,
              "henn": henn, "concrete_ml": cml}
    if cml and cml.get("seconds") and henn["accuracy"] >= goal - 1e-12:
        result["speedup"] = cml["seconds"] / henn["seconds"]
    print(json.dumps({k: v for k, v in result.items() if k != "henn_twin_curve"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
