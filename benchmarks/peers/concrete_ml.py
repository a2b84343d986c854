"""henn beside Concrete-ML: encrypted inference (LR, 2-layer MLP) and encrypted LR training.

    python -m benchmarks.peers.concrete_ml --cml-python /path/to/venv-cml/bin/python [--quick]

Concrete-ML pins numpy 1.26 and pulls torch, so it runs in its own virtual environment
(:mod:`benchmarks.peers.concrete_side`, started here as a subprocess); henn runs in this
one. Both halves use the same data: breast cancer and wine, standardised on the
training split, 80/20 split, seed 0.

What differs, and is labelled in the table: Concrete-ML (TFHE) quantises (n bits) and
trains its own quantisation-aware networks; henn serves scikit-learn's logistic regression
(imported exactly, :mod:`henn.importers`) and its own MLP (square activation, trained on
the plain twin), in CKKS at 128-bit security with the weights in the clear on the server
(single-key inference). Each is compared with its own clear model. For training, Concrete-ML's
``fit_encrypted`` encrypts data and weights with no key holder in the loop; henn's
``EncryptedLogisticRegression`` keeps the weights encrypted (the data are the
trainer's, in the clear) and refreshes through the key holder: its rounds are given.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def data(name: str):
    from sklearn.datasets import load_breast_cancer, load_wine
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    X, y = (load_breast_cancer if name == "breast_cancer" else load_wine)(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    sc = StandardScaler().fit(Xtr)
    return sc.transform(Xtr), sc.transform(Xte), ytr, yte


def henn_inference(circuit, clear_predict, classes, Xte, yte, queries: int) -> dict:
    """Encrypted inference of ``circuit`` (client and server in this process), against the clear model.

    Single queries in the ``rows`` layout (one small ciphertext each), the test set as one
    batch in the ``columns`` layout (a slot per query); both layouts' accuracy is reported.
    """
    def decide(out: np.ndarray) -> np.ndarray:
        return classes[(out[:, 0] > 0).astype(int)] if out.shape[1] == 1 else classes[out.argmax(1)]

    clear = clear_predict(Xte)
    out = {"clear_accuracy": float((clear == yte).mean()), "test_samples": int(len(yte))}
    for layout in ("rows", "columns"):
        r = _layout_run(circuit, layout, Xte, queries)
        predicted = decide(r.pop("answers"))
        r.update(encrypted_accuracy=float((predicted == yte).mean()), differing_predictions=int((predicted != clear).sum()))
        out[layout] = r
    rows, columns = out["rows"], out["columns"]
    out.update(seconds_per_query=rows["seconds_per_query"], seconds_per_query_batched=columns["seconds_per_batch"]
               / len(yte), encrypted_accuracy=columns["encrypted_accuracy"],
               differing_predictions=max(rows["differing_predictions"], columns["differing_predictions"]))
    return out


def _layout_run(circuit, layout: str, Xte, queries: int) -> dict:
    from he_core import serialization
    from henn.deploy import InferenceClient, InferenceServer, ServerBundle

    bundle = ServerBundle.create(circuit, "ckks", layout=layout)
    server = InferenceServer(bundle)
    t = time.perf_counter()
    client = InferenceClient(bundle.client_info())
    keygen = time.perf_counter() - t
    server.register(client.public_bytes())
    singles, reply = [], 0
    for i in range(queries):
        t = time.perf_counter()
        (q,) = client.encrypt(Xte[i:i + 1])
        answer = server.answer(q.ciphertext, q.count)
        client.decrypt(answer, q.rows)
        singles.append(time.perf_counter() - t)
        reply = len(serialization.dumps(answer))
    query_bytes = len(serialization.dumps(q.ciphertext))
    t = time.perf_counter()
    batches = client.encrypt(Xte)
    answers = np.vstack([client.decrypt(server.answer(q.ciphertext, q.count), q.rows) for q in batches])
    return {"seconds_per_query": float(np.median(singles)), "seconds_per_batch": time.perf_counter() - t,
            "batches": len(batches), "client_keygen_s": keygen, "key_bytes": len(client.public_bytes()),
            "single_query_bytes": query_bytes, "single_reply_bytes": reply, "answers": answers,
            "params": f"N={bundle.params.poly_degree}, {bundle.params.levels} levels, "
                      f"{bundle.params.security_bits}-bit"}


def henn_training(Xtr, Xte, ytr, yte, epochs: int) -> dict:
    from henn.sklearn import EncryptedLogisticRegression
    est = EncryptedLogisticRegression(scheme="ckks", epochs=epochs, random_state=0)
    t = time.perf_counter()
    est.fit(Xtr, ytr)
    seconds = time.perf_counter() - t
    return {"seconds_per_epoch": seconds / epochs, "epochs": epochs, "accuracy": float(est.score(Xte, yte)),
            "key_holder_rounds": est.keyholder_.refresh_rounds + est.keyholder_.releases,
            "rounds_per_epoch": (est.keyholder_.refresh_rounds + est.keyholder_.releases) / epochs}


def run_henn(quick: bool, skip_training: bool) -> dict:
    """Logistic regression: scikit-learn's, imported (exact). The MLP: henn's estimator, trained on the twin."""
    from sklearn.linear_model import LogisticRegression
    from henn.importers import from_sklearn
    from henn.sklearn import EncryptedMLPClassifier
    queries = 2 if quick else 10
    out = {"library": "henn", "results": {}}
    for name in ("breast_cancer", "wine"):
        Xtr, Xte, ytr, yte = data(name)
        res = {}
        lr = LogisticRegression(max_iter=2000).fit(Xtr, ytr)
        circuit, report = from_sklearn(lr, Xtr, ytr)
        res["logistic_regression"] = {**henn_inference(circuit, lr.predict, lr.classes_, Xte, yte, queries),
                                      "import_agreement_train": report.agreement}
        # the MLP: henn's own (square activation, one hidden layer as wide as the input, as Concrete-ML's)
        mlp = EncryptedMLPClassifier((Xtr.shape[1],), scheme="plain", epochs=10, random_state=0).fit(Xtr, ytr)
        res["mlp"] = henn_inference(mlp.export_circuit(), mlp.predict, mlp.classes_, Xte, yte, queries)
        if name == "breast_cancer" and not skip_training:
            res["lr_training"] = henn_training(Xtr, Xte, ytr, yte, 1 if quick else 6)
        out["results"][name] = res
        print("henn", name, json.dumps(res), flush=True)
    return out


def table(henn: dict, cml: dict) -> str:
    lines = ["| data | model | library | s / query (1) | s / query (batched) | accuracy (encrypted / clear) |",
             "|---|---|---|---|---|---|"]
    for name in ("breast_cancer", "wine"):
        h, c = henn["results"][name], cml.get("results", {}).get(name, {})
        rows = [("LR", "henn ckks 128-bit", h["logistic_regression"]), ("LR", "Concrete-ML 8-bit",
                                                                          c.get("logistic_regression")),
                ("MLP 2-layer", "henn ckks 128-bit (square activation)", h["mlp"]),
                ("MLP 2-layer", "Concrete-ML 3-bit", c.get("mlp_3bit")),
                ("MLP 2-layer", "Concrete-ML 6-bit", c.get("mlp_6bit"))]
        for model, lib, r in rows:
            if not r:
                continue
            batched = f"{r['seconds_per_query_batched']:.5f}" if "seconds_per_query_batched" in r else "—"
            lines.append(f"| {name} ({r['test_samples']}) | {model} | {lib} | {r['seconds_per_query']:.3f} | "
                         f"{batched} | {r['encrypted_accuracy']:.3f} / {r['clear_accuracy']:.3f} |")
    h, c = henn["results"]["breast_cancer"].get("lr_training"), cml.get("results", {}).get("breast_cancer", {}).get(
        "lr_training")
    if h or c:
        lines += ["", "| encrypted LR training (breast cancer) | s / epoch | test accuracy | key-holder rounds / epoch |",
                  "|---|---|---|---|"]
        if h:
            lines.append(f"| henn ckks (weights encrypted, data clear) | {h['seconds_per_epoch']:.1f} | "
                         f"{h['accuracy']:.3f} after {h['epochs']} | {h['rounds_per_epoch']:.0f} |")
        if c:  # one fit(max_iter=n): compilation, keys and n iterations of 8 samples, not n epochs
            lines.append(f"| Concrete-ML fit_encrypted (data and weights): one fit of {c['iterations']} "
                         f"8-sample iteration(s), compilation and keys included | {c['seconds_per_fit']:.1f} | "
                         f"{c['accuracy']:.3f} | 0 |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cml-python", help="Concrete-ML's interpreter (its own venv)")
    parser.add_argument("--cml-json", help="reuse a Concrete-ML result file instead of running it")
    parser.add_argument("--out", default="concrete_ml_comparison.json")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    cml: dict = {}
    if args.cml_json:
        cml = json.loads(Path(args.cml_json).read_text())
    elif args.cml_python:
        target = Path(args.out).with_suffix(".cml.json")
        cmd = [args.cml_python, str(HERE / "concrete_side.py"), "--out", str(target)]
        cmd += ["--quick"] * args.quick + ["--skip-training"] * args.skip_training
        status = subprocess.run(cmd).returncode
        if target.exists():
            cml = json.loads(target.read_text())
        if status != 0:
            print(f"the Concrete-ML half exited with {status}; its finished parts are kept", file=sys.stderr)
    henn = run_henn(args.quick, args.skip_training)
    Path(args.out).write_text(json.dumps({"henn": henn, "concrete_ml": cml}, indent=1))
    print(table(henn, cml))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
