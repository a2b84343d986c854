"""One encrypted logistic-regression query, end to end, by stage: henn's rows and coeffs layouts beside Concrete-ML.

    taskset -c 0 python -m benchmarks.peers.single_query [--cml-python VENV/bin/python] [--queries 21]
        [--layouts rows,coeffs] [--clock wall|cpu]

henn: scikit-learn's logistic regression (imported exactly) on breast cancer (30 -> 1) and
wine (13 -> 3), a bundle per layout, client and server in this process; per query the
client's encryption, the server's answer (of it: the evaluation and the sanitising, timed
again on the same query; in ``coeffs`` the scheme does both in one call, so the sanitising
is timed on the answer and the evaluation is the answer's time less it) and the client's
decryption. Concrete-ML: its 8-bit
``LogisticRegression``, ``predict(fhe="execute")`` of one row, in its own interpreter
(:mod:`benchmarks.peers.concrete_side`'s data). Medians after three warm-up queries; the
two halves alternate ``--rounds`` times (the machine is shared: compare within a round).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
import warnings

import numpy as np

from .concrete_ml import HERE, data

#: The stages' clock: wall time (``--clock wall``, the default) or this process's CPU time
#: (``--clock cpu``: on a loaded machine, what the query costs without the other processes' share).
CLOCK = time.perf_counter

CML_SNIPPET = """
import json, sys, time
sys.path.insert(0, {here!r})
import numpy as np
from concrete_side import data
from concrete.ml.sklearn import LogisticRegression
for name in ("breast_cancer", "wine"):
    Xtr, Xte, ytr, yte = data(name)
    model = LogisticRegression(n_bits=8).fit(Xtr, ytr)
    model.compile(Xtr)
    model.fhe_circuit.keygen()
    times = []
    for i in range({queries} + 3):
        t = time.perf_counter()
        model.predict(Xte[i % len(Xte):i % len(Xte) + 1], fhe="execute")
        times.append(time.perf_counter() - t)
    print(json.dumps({{"data": name, "total_ms": 1e3 * float(np.median(times[3:]))}}))
"""


def henn_stages(name: str, queries: int, layout: str = "rows") -> dict:
    from sklearn.linear_model import LogisticRegression
    from he_core import serialization
    from henn.bundle import input_bound
    from henn.deploy import InferenceClient, InferenceServer, ServerBundle
    from henn.importers import from_sklearn
    from henn.tensor import EncTensor

    Xtr, Xte, ytr, yte = data(name)
    circuit, _ = from_sklearn(LogisticRegression(max_iter=2000).fit(Xtr, ytr), Xtr, ytr)
    bundle = ServerBundle.create(circuit, "ckks", layout=layout)
    server, client = InferenceServer(bundle), InferenceClient(bundle.client_info())
    scheme = server._clients[server.register(client.public_bytes())][0]
    rows = []
    for i in range(queries + 3):
        x = Xte[i % len(Xte):i % len(Xte) + 1]
        t0 = CLOCK()
        (q,) = client.encrypt(x)
        t1 = CLOCK()
        answer = server.answer(q.ciphertext, q.count)
        t2 = CLOCK()
        client.decrypt(answer, q.rows)
        t3 = CLOCK()
        if layout == "coeffs":  # one call evaluates and sanitises: time the sanitising alone on the answer
            t4 = t5 = CLOCK()
            scheme.sanitize(answer, flooding=server._flooding)
            t6 = CLOCK()
            t4 = t5 - ((t2 - t1) - (t6 - t5))
        else:
            received = EncTensor(scheme, scheme.as_received(q.ciphertext, input_bound(circuit)))
            t4 = CLOCK()
            out = bundle.circuit.run_rows(received)
            t5 = CLOCK()
            scheme.sanitize(out.ct, flooding=server._flooding)
            t6 = CLOCK()
        rows.append((t1 - t0, t2 - t1, t5 - t4, t6 - t5, t3 - t2, t3 - t0))
    med = np.median(np.array(rows[3:]), axis=0) * 1e3
    p = bundle.params
    return {"data": name, "layout": layout,
            "params": f"N={p.poly_degree}, {p.levels} levels, 2^{p.scale_bits} scale, "
                      f"{p.floor_levels} floor, {p.security_bits}-bit, log2 QP {p.log_qp:.0f}",
            **{k: round(float(v), 2) for k, v in zip(("encrypt_ms", "answer_ms", "evaluate_ms", "sanitise_ms",
                                                       "decrypt_ms", "total_ms"), med)},
            "key_bytes": len(client.public_bytes()), "query_bytes": len(serialization.dumps(q.ciphertext)),
            "reply_bytes": len(serialization.dumps(answer))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cml-python", help="Concrete-ML's interpreter (its own venv)")
    parser.add_argument("--queries", type=int, default=21)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--layouts", default="rows,coeffs", help="henn layouts, comma-separated")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="henn's stages: wall or CPU time")
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.perf_counter if args.clock == "wall" else time.process_time
    warnings.simplefilter("ignore")
    for r in range(args.rounds):
        if args.cml_python:
            code = CML_SNIPPET.format(here=str(HERE), queries=args.queries)
            done = subprocess.run([args.cml_python, "-W", "ignore", "-c", code], capture_output=True, text=True)
            for line in done.stdout.splitlines():
                if line.startswith("{"):
                    print(json.dumps({"round": r, "library": "concrete-ml 8-bit", **json.loads(line)}), flush=True)
        for name in ("breast_cancer", "wine"):
            for layout in args.layouts.split(","):
                print(json.dumps({"round": r, "library": f"henn {layout}", "clock": args.clock,
                                  **henn_stages(name, args.queries, layout)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
