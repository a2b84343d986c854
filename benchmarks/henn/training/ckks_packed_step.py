"""Prototype of the batched CKKS training step with three refresh rounds per batch (issue #13, item 2).

Not the library's training path yet: it drives the scheme's own roles directly (the
table's scatter polynomials, products of coefficient-packed ciphertexts) where the
public API has no operation for them. Everything the protocol sends goes through real
masked refreshes of the key holder passed in, and every update lands encrypted.
docs/performance.md ("A batched CKKS step with three refresh rounds per batch") has the
design; per batch of ``B`` reviews:

1. per review: gather ``h_b`` from ``W01`` (coefficient-packed), ``z_b = h_b . w12``;
   then ``pack_constants`` puts the ``B`` logits into one ciphertext;
2. round 1: the packed logits -> ``B`` replicated slots at the top level; the sigmoid,
   ``g = lr (s(z) - y)``, once for the batch;
3. round 2: ``g`` -> coefficients ``0 .. B - 1`` at the table's level; ``expand_constants``;
4. ``U_k = sum_b S_b g_b`` (the reviews' scatter polynomials), ``dW01 = U w12`` and
   ``dw12 = sum_k W01_k U_k(X^-1)``;
5. round 3: ``dW01`` into the table's packing, ``dw12`` into ``w12``'s (two requests),
   then both land by subtraction. ``w12`` reversed for the next batch's logits is ``w12``
   under ``X -> X^-1`` times ``X^7`` (one key switch, no refresh).

Run from the repository root (IMDB at ``$HENN_IMDB`` or ``../shared/data/imdb``)::

    taskset -c 0 python -m benchmarks.henn.training.ckks_packed_step --batch 128 --batches 4
    taskset -c 0 python -m benchmarks.henn.training.ckks_packed_step --batch 128 --lr 0.003 --schedule linear --all
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import time
import warnings

import numpy as np

import he_core
from he_core import KeyRequirements
from he_core.schemes.ckks.coeff_layout import coeff_meta
from he_core.schemes.ckks.scheme import CkksScheme
from henn.keyholder import KeyHolder, RefreshTerms
from henn.tasks import sentiment as T

ROOT = pathlib.Path(__file__).resolve().parents[3]
#: Refresh requests per batch: the packed logits, the gradients, dW01 and dw12.
REQUESTS_PER_BATCH = 4


@dataclasses.dataclass
class PackedRun:
    """What a run measured: CPU seconds by phase, reviews, the key holder's rounds and bytes."""

    phases: dict = dataclasses.field(default_factory=dict)
    reviews: int = 0
    rounds: int = 0
    bytes_exchanged: int = 0

    def tick(self, phase: str, start: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + time.process_time() - start

    def summary(self) -> dict:
        n = max(self.reviews, 1)
        per = {k: round(v / n * 1e3, 3) for k, v in self.phases.items()}
        total = sum(self.phases.values()) / n
        return {"reviews": self.reviews, "ms_per_review": per, "total_ms_per_review": round(total * 1e3, 2),
                "reviews_per_s_cpu": round(1.0 / total, 2) if total else None,
                "refresh_rounds_per_review": self.rounds / n, "kb_per_review": self.bytes_exchanged / n / 1e3}


def job_terms(vocab: int, n: int, batch: int, poly_degree: int) -> RefreshTerms:
    """Terms sized for a run of ``n`` reviews in batches (refreshes, entries: the whole update table per batch)."""
    batches = -(-n // batch)
    return RefreshTerms(refreshes=REQUESTS_PER_BATCH * batches + 16, entries_per_refresh=max(vocab * 8, 2 * batch),
                        entries=batches * (7 * poly_degree + 8 + 3 * batch) + 1)


class PackedTrainer:
    """The step above over one scheme (keys with ``coefficient_moves``) and one key holder."""

    def __init__(self, scheme: CkksScheme, keyholder, config: T.SentimentConfig, W01: np.ndarray, w12: np.ndarray):
        self.s, self.kh, self.config = scheme, keyholder, config
        self.act = config.make_activation()
        self.W = scheme.encrypt(W01, layout="table")
        self.w = scheme.encrypt(np.asarray(w12, dtype=np.float64).reshape(1, -1), layout="table")
        self.level = scheme.level(self.W)
        # |s(z) - y| over every logit the network declares (|z| <= LOGIT_BOUND): the polynomial leaves [0, 1]
        # outside its fitted interval, so round 2's mask is sized from its reach, not from 2
        self.g_reach = 1.0 + sigmoid_reach(self.act, T.LOGIT_BOUND)
        self.run = PackedRun()

    def train(self, ids, labels, batch: int, *, epochs: int = 1) -> PackedRun:
        n, schedule = len(ids), self.config.lr_schedule()
        per_epoch = -(-n // batch)
        for epoch in range(epochs):
            for lo in range(0, n, batch):
                rate = schedule.at(epoch * per_epoch + lo // batch, epochs * per_epoch)
                self.step(ids[lo:lo + batch], np.asarray(labels[lo:lo + batch], dtype=np.float64), rate)
        return self.run

    def step(self, ids, ys: np.ndarray, lr: float) -> None:
        s, run, count = self.s, self.run, len(ids)
        rounds, sent = self.kh.refresh_rounds, self.kh.bytes_exchanged
        packed, ups = self._logits(ids)
        g = self._gradients(packed, ys, lr, count)
        t0 = time.process_time()
        consts = s.expand_constants(g, count)
        run.tick("expand", t0)
        dW, dw = self._updates(ups, consts)
        t0 = time.process_time()
        # The updates' bounds are the network's own update contract (network.update_bound: |s(z) - y| <= 2 per
        # review), as in per-review training; sized from the reach at |z| = LOGIT_BOUND, dw12's mask would need 121
        # of the floor's 120 bits at B = 128 (docs/performance.md; on IMDB the updates stay 5-12 bits below these).
        per_review = 2 * lr
        dW = self.kh.refresh(dW, layout=s.targets.coeff_target(self.W), value_bound=count * per_review * T.VALUE_BOUND)
        dw = self.kh.refresh(dw, layout=s.targets.coeff_target(self.w), value_bound=count * per_review * T.HIDDEN_BOUND)
        self.W, self.w = s.sub(self.W, dW), s.sub(self.w, dw)
        run.tick("round 3 and landing", t0)
        run.reviews += count
        run.rounds += self.kh.refresh_rounds - rounds
        run.bytes_exchanged += self.kh.bytes_exchanged - sent

    def _logits(self, ids):
        s, n, run = self.s, self.s.ring.n, self.run
        t0 = time.process_time()
        # w12 reversed: X -> X^-1, then X^(stride - 1) (a key switch, no refresh)
        rev = s.coeff_mover.shift(s.rotator.apply_galois(self.w, 2 * n - 1), 7)
        rev = rev.replace(meta={**self.w.meta, **{k: v for k, v in rev.meta.items() if k not in ("rev", "dirty")},
                                "rev": True, "dirty": False})
        zs, ups = [], []
        for r in ids:
            zs.append(s.inner(s.row_sum(self.W, r), rev))
            counts = np.bincount(r, minlength=self.W.rows).astype(np.int64)
            ups.append(s.tables.row_shifts(self.W, counts, down=False))  # the gather's polynomials, permuted
        run.tick("gather and logits", t0)
        t0 = time.process_time()
        packed = s.pack_constants(zs, position=7)  # stride 8, reversed: the logit's coefficient
        run.tick("pack", t0)
        return packed, ups

    def _gradients(self, packed, ys: np.ndarray, lr: float, count: int):
        s, run, act = self.s, self.run, self.act
        t0 = time.process_time()
        top = s.params.levels
        z = self.kh.refresh(packed, layout=s.targets.target("slots", top, batch=count), value_bound=T.LOGIT_BOUND)
        run.tick("round 1", t0)
        t0 = time.process_time()
        p = s.polyval(z, [c * lr / act.interval ** k for k, c in enumerate(act._t_coeffs)])
        g = s.sub_plain(p, (ys * lr).reshape(1, count))
        run.tick("sigmoid", t0)
        t0 = time.process_time()
        g = self.kh.refresh(g, layout=s.targets.target("coeff", self.level, stride=1, rev=False),
                            value_bound=lr * self.g_reach)
        run.tick("round 2", t0)
        return g

    def _updates(self, ups, consts):
        s, run, n, L = self.s, self.run, self.s.ring.n, self.level
        t0 = time.process_time()
        U = np.zeros((self.W.data.shape[0], 2, L + 1, n), dtype=np.uint64)
        for k in range(U.shape[0]):
            pairs = [(c, up[k]) for up, c in zip(ups, consts) if k in up]
            for part in range(2):  # one sum of products per part, reduced once
                s.ring.dot([c.data[0, part] for c, _ in pairs], [pt for _, pt in pairs], U[k, part])
        first = consts[0]
        u = first.replace(data=U, shape=(U.shape[0], 1), meta={**first.meta, "rep": False, "dirty": True})
        run.tick("scatter into U", t0)
        t0 = time.process_time()
        w_rows = self.w.replace(data=np.repeat(self.w.data, U.shape[0], axis=0), shape=(U.shape[0], 8))
        dW = s.evaluator.rescale(s.evaluator.mul(u, w_rows))
        dW = dW.replace(shape=self.W.shape, meta={**dW.meta, **coeff_meta(s.level(dW), 8, False, False)})
        prod = s.evaluator.mul(s.rotator.apply_galois(u, 2 * n - 1), self.W)
        acc = prod.data[0:1].copy()
        for k in range(1, prod.data.shape[0]):
            for part in range(2):
                s.ring.add(acc[0, part], np.ascontiguousarray(prod.data[k, part]), acc[0, part])
        dw = prod.replace(data=acc, shape=(1, 8), meta={**prod.meta, **coeff_meta(s.level(prod), 8, False, True)})
        run.tick("update products", t0)
        return dW, s.evaluator.rescale(dw)


def sigmoid_reach(act, bound: float) -> float:
    """max |s(z)| over |z| <= ``bound``: at the ends or where the polynomial's derivative vanishes."""
    crit = [r.real for r in np.roots(np.asarray(act.derivative)[::-1]) if abs(r.imag) < 1e-9 and abs(r.real) <= bound]
    return float(np.max(np.abs(act.value(np.array([-bound, bound, *crit])))))


def reference(W01, w12, ids, labels, config: T.SentimentConfig, batch: int):
    """The NumPy mini-batch SGD the step computes (same batches, same schedule)."""
    data = T.Prepared(None, ids, np.asarray(labels), ids[:1], np.asarray(labels)[:1])
    out = T.train_reference(data, config, activation=config.make_activation().value, init=(W01, w12),
                            batch_size=batch)
    return out["W01"], out["w12"]


def learn_signatures(scheme, secret, terms, config, W01, w12, ids, labels, batch: int) -> list[dict]:
    """The refresh signatures one batch asks for (a dry run on copies, as the owner learns a job's targets)."""
    from henn.jobs import unique_signatures
    from henn.training.targets import RecordingKeyHolder

    holder = RecordingKeyHolder(scheme, secret, terms=terms)
    PackedTrainer(scheme, holder, config, W01, w12).train(ids[:batch], labels[:batch], batch)
    return unique_signatures(holder.signatures)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.henn.training.ckks_packed_step")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--batches", type=int, default=4, help="batches to time (ignored with --all)")
    parser.add_argument("--all", action="store_true", help="the whole 20,000-review split, then validation")
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--schedule", choices=("constant", "linear"), default="linear")
    parser.add_argument("--apart", action="store_true",
                        help="the key service in a forked process pinned to the other core (as in real use)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", he_core.SecurityWarning)
    from henn.data.imdb import load_imdb
    data = T.prepare(load_imdb(pathlib.Path(os.environ.get("HENN_IMDB", ROOT.parent / "shared" / "data" / "imdb")),
                               "train"), validation=5000, seed=0)
    config = T.SentimentConfig(lr=args.lr, schedule=args.schedule)
    # whole batches only: a job allows the refresh shapes of its own batch size
    n = len(data.train_ids) // args.batch * args.batch if args.all else args.batch * args.batches
    scheme = T.scheme_for("ckks")  # the task's 128-bit set, for_protocol(4) (registered: it travels to a service)
    secret, _ = scheme.keygen(KeyRequirements(sizes=(1, 8), coefficient_moves=True))
    terms = job_terms(len(data.vocab), len(data.train_ids), args.batch, scheme.params.poly_degree)
    W01, w12 = T.init_weights(len(data.vocab), config, he_core.SeededRandom(0))
    if args.apart:
        from henn.keyservice.local_job import other_core, serve_apart
        targets = learn_signatures(scheme, secret, terms, config, W01, w12, data.train_ids, data.train_labels,
                                   args.batch)
        with serve_apart(scheme, secret, terms, targets, core=other_core()) as keyholder:
            trainer, run, wall = _timed(scheme, keyholder, config, W01, w12, data, n, args.batch)
    else:
        trainer, run, wall = _timed(scheme, KeyHolder(scheme, secret, terms=terms), config, W01, w12, data, n,
                                    args.batch)
    out = {**run.summary(), "wall_s": round(wall, 1), "reviews_per_s_wall": round(n / wall, 2),
           "batch": args.batch, "lr": args.lr, "schedule": args.schedule,
           "key_holder": "apart (other core)" if args.apart else "in process", "load": os.getloadavg()}
    ref_W, ref_w = reference(W01, w12, data.train_ids[:n], data.train_labels[:n], config, args.batch)
    got_W, got_w = scheme.decrypt_exact_local(trainer.W, secret), scheme.decrypt_exact_local(trainer.w, secret)[0]
    out["max_abs_vs_reference"] = [float(np.max(np.abs(got_W - ref_W))), float(np.max(np.abs(got_w - ref_w)))]
    if args.all:  # the owner's view of the trained weights (decrypted in this process: a measurement only)
        act = config.make_activation().value
        pred = T.clear_predictions(got_W, got_w, data.val_ids, act)
        out["validation_accuracy"] = float(np.mean(pred == data.val_labels))
        ref_pred = T.clear_predictions(ref_W, ref_w, data.val_ids, act)
        out["reference_validation_accuracy"] = float(np.mean(ref_pred == data.val_labels))
    print(json.dumps(out), flush=True)


def _timed(scheme, keyholder, config, W01, w12, data, n: int, batch: int):
    trainer = PackedTrainer(scheme, keyholder, config, W01, w12)
    wall = time.perf_counter()
    run = trainer.train(data.train_ids[:n], data.train_labels[:n], batch)
    return trainer, run, time.perf_counter() - wall


if __name__ == "__main__":
    main()
