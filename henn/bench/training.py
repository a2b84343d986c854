"""``henn bench --train``: encrypted-weight training throughput, per scheme and batch size.

The sentiment network (an embedding table, a hidden layer of 8, a degree-5 sigmoid) is
trained on synthetic reviews (:mod:`henn.data.synthetic`: no data set needed), with the
refreshes a real run takes. By default the key holder is what it is in real use, a
service in a process of its own, pinned to a core this one does not use
(:func:`henn.keyservice.local_job.serve_apart`); ``in_process=True`` keeps it here.
Each (scheme, batch size) trains chunks until its time budget is spent, so a slow
scheme reports a rate over fewer reviews instead of running for minutes.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Callable, Iterable, Sequence

import he_core

from ..data.synthetic import make_reviews
from ..data.text import TextConfig
from ..keyholder import KeyHolder
from ..keyservice.local_job import other_core, serve_apart
from ..tasks import sentiment as T

#: Reviews per timed chunk, per review of a batch (a chunk is at least this many batches).
CHUNK_BATCHES = 16
CONFIG = T.SentimentConfig(hidden=8)


@dataclasses.dataclass
class TrainRecord:
    """One (scheme, batch size): reviews trained in the budget and what they cost."""

    scheme: str
    batch_size: int
    key_service: str
    reviews: int = 0
    seconds: float = 0.0
    refresh_rounds: int = 0
    status: str = "ok"
    detail: str = ""

    @property
    def reviews_per_s(self) -> float | None:
        return self.reviews / self.seconds if self.seconds > 0 else None

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["reviews_per_s"] = self.reviews_per_s
        out["refresh_rounds_per_review"] = self.refresh_rounds / self.reviews if self.reviews else None
        return out


def run(schemes: Sequence[str], batch_sizes: Iterable[int], *, seconds: float, in_process: bool = False,
        reviews: int = 4096, progress: Callable[[TrainRecord], None] | None = None) -> list[TrainRecord]:
    """Time training for every scheme that can refresh, at every batch size.

    Args:
        schemes: scheme names (those without the masked refresh are reported as skipped).
        batch_sizes: reviews per step (1: per-review SGD).
        seconds: the time budget of each (scheme, batch size); at least one chunk runs.
        in_process: keep the key holder in this process instead of a forked service.
        reviews: synthetic reviews available (training stops earlier when the budget is spent).
        progress: called with each finished record.
    """
    data = T.prepare(make_reviews(reviews + 100, seed=7), validation=100, seed=0,
                     text=TextConfig(min_count=2, polarity_cutoff=0.0))
    out = []
    for name in schemes:
        for b in batch_sizes:
            try:
                record = _one(name, int(b), data, seconds, in_process)
            except (he_core.HEError, ValueError, OSError) as exc:  # one scheme's failure does not stop the others
                record = TrainRecord(name, int(b), "in-process" if in_process else "apart", status="error",
                                     detail=f"{type(exc).__name__}: {exc}")
            out.append(record)
            if progress is not None:
                progress(record)
    return out


def _one(name: str, b: int, data: T.Prepared, seconds: float, in_process: bool) -> TrainRecord:
    record = TrainRecord(name, b, "in-process" if in_process else "apart")
    scheme = T.scheme_for(name)  # the set the task itself trains on
    if not scheme.supports(he_core.Capability.REFRESH):
        record.status, record.detail = "skipped", "no masked refresh"
        return record
    n = len(data.train_ids) // b * b
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, CONFIG.hidden)))
        terms = T.terms_for(n, 1, CONFIG.hidden, vocab=len(data.vocab), monitor_every=n,
                            whole_entries=T.whole_entries(scheme), batch_size=b)
        model = T.build_model(scheme, *T.init_weights(len(data.vocab), CONFIG))
        if in_process:
            _train(record, model, KeyHolder(scheme, secret, terms=terms), data, n, seconds)
        else:
            targets = T.learn_targets(scheme, secret, model[0].weight.value.ct, model[1].weight.value.ct, CONFIG,
                                      terms, batch_size=b)
            with serve_apart(scheme, secret, terms, targets, core=other_core()) as holder:
                _train(record, model, holder, data, n, seconds)
    return record


def _train(record: TrainRecord, model, keyholder, data: T.Prepared, n: int, seconds: float) -> None:
    chunk = max(CHUNK_BATCHES * record.batch_size, 64) // record.batch_size * record.batch_size
    rounds = keyholder.refresh_rounds
    start = time.perf_counter()
    for lo in range(0, n - chunk + 1, chunk):
        T.train(model, keyholder, data.train_ids[lo:lo + chunk], data.train_labels[lo:lo + chunk], CONFIG,
                monitor_every=None, batch_size=record.batch_size)
        record.reviews += chunk
        if time.perf_counter() - start >= seconds:
            break
    record.seconds = time.perf_counter() - start
    record.refresh_rounds = keyholder.refresh_rounds - rounds


def table(records: Sequence[TrainRecord]) -> str:
    """A text table of the records."""
    lines = [f"{'scheme':<8}{'batch':>6}  {'key service':<12}{'reviews':>9}{'reviews/s':>12}{'rounds/review':>15}"]
    for r in records:
        if r.status != "ok":
            lines.append(f"{r.scheme:<8}{r.batch_size:>6}  {r.key_service:<12}{r.status}: {r.detail}")
            continue
        lines.append(f"{r.scheme:<8}{r.batch_size:>6}  {r.key_service:<12}{r.reviews:>9}{r.reviews_per_s:>12,.0f}"
                     f"{r.refresh_rounds / max(r.reviews, 1):>15.3f}")
    return "\n".join(lines)
