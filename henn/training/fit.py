"""One trainer for any encrypted model: mini-batch SGD with refreshes through the key holder.

:func:`fit` trains a :class:`~henn.module.Sequential` whose parameters are encrypted,
on plaintext or encrypted rows and plaintext or encrypted targets, with any loss of
:mod:`henn.losses`. The trainer computes forward, backward and the update on
ciphertexts with public material only; whenever a ciphertext's budget runs low for
the next operation, the :class:`~henn.training.refresh.RefreshPolicy` refreshes it
through the key holder's masked protocol (:class:`~henn.keyholder.MaskedRefresh`).

What leaves the trainer for the key holder: masked refresh requests, and one
aggregate per ``k`` samples (the summed squared error of the model's probabilities,
the Brier score, refreshed and noise-flooded before release; ``k`` is the job's
``min_aggregate``). No per-sample value, label or weight is decrypted.

:func:`in_process_keyholder` makes keys and a key holder in the trainer's own process,
for experiments and tests: the key holder and the trainer are then **one party**, and
the weights are hidden from nobody.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from tqdm import tqdm

import he_core

from ..columns import basis_for
from ..depth import key_requirements, make_scheme
from ..keyholder import KeyHolder, MaskedRefresh, RefreshTerms
from ..losses import MSELoss
from ..module import Sequential
from ..optim import SGD
from ..tensor import EncTensor
from . import checkpoint as checkpoints
from .monitor import AggregateMonitor
from .refresh import GuardedScheme, RefreshPolicy

#: Bound on every refreshed value the model vouches for by default (weights, pre-activations, gradients).
DEFAULT_VALUE_BOUND = 16.0


class TrainingDiverged(he_core.HEError, ArithmeticError):
    """Values left the range the scheme (or the stated bound) can hold: lower the learning rate."""


class SinglePartyWarning(UserWarning):
    """The key holder lives in the trainer's process: nothing is hidden from the trainer."""


@dataclasses.dataclass
class History:
    """What a :func:`fit` run produced.

    Attributes:
        model: the trained model (still encrypted; parameters on the raw scheme).
        records: one dict per epoch: ``epoch``, ``loss`` (mean of the epoch's released
            aggregates, ``None`` when the key holder releases to the owner only or
            the epoch had fewer than ``k`` samples), ``seconds``, ``refreshes``
            (cumulative refresh rounds), ``releases`` (cumulative).
        seconds: wall time of the training loop.
        policy: the refresh policy's counters.
    """

    model: Sequential
    records: list[dict]
    seconds: float
    policy: dict

    @property
    def losses(self) -> list[float | None]:
        return [r["loss"] for r in self.records]

    def to_dict(self) -> dict:
        """The JSON-ready history (no ciphertexts)."""
        return {"records": self.records, "seconds": self.seconds, "policy": self.policy}


def in_process_keyholder(scheme: str | he_core.Scheme, model_or_sizes: Any, *, terms: RefreshTerms | None = None,
                         purpose: str = "train", rng: he_core.RandomSource | None = None
                         ) -> tuple[he_core.Scheme, KeyHolder]:
    """Keys and a key holder in this process (one party: warns with :class:`SinglePartyWarning`).

    Args:
        scheme: a scheme name (parameters chosen from the model's depth) or an
            instance without keys.
        model_or_sizes: a model whose depth and key sizes decide, or an iterable of
            vector sizes (then a named scheme keeps its defaults).
        terms: the job's terms (default :class:`RefreshTerms`).
        purpose: ``"train"`` or ``"infer"`` (see :func:`henn.depth.choose_parameters`).
        rng: key-generation randomness (default the OS CSPRNG; tests may seed).

    Returns:
        ``(scheme, keyholder)``; the scheme has the public keys installed.
    """
    warnings.warn("the key holder runs in the trainer's process: the trainer and the key holder are one party and "
                  "the weights are hidden from nobody; pass keyholder= the owner's key service to keep them apart",
                  SinglePartyWarning, stacklevel=2)
    if isinstance(model_or_sizes, Sequential):
        requirements = key_requirements(model_or_sizes)
        if isinstance(scheme, str):
            scheme = make_scheme(scheme, model_or_sizes, purpose=purpose)
    else:
        requirements = he_core.KeyRequirements(sizes=tuple({1, *model_or_sizes}))
        if isinstance(scheme, str):
            scheme = he_core.get_scheme(scheme)
    secret, _public = scheme.keygen(requirements, rng=rng)
    return scheme, KeyHolder(scheme, secret, terms=terms)


def fit(model: Sequential, X: Any, y: Any, *, keyholder: MaskedRefresh, lr: float, epochs: int = 1,
        batch_size: int = 32, loss: Any = None, callbacks: Iterable[Callable[[dict], None]] = (),
        shuffle: bool = True, random_state: int | None = None, value_bound: float = DEFAULT_VALUE_BOUND,
        weight_decay: float = 0.0, monitor: bool = True, progress: bool = False,
        checkpoint: str | Path | None = None, resume: bool = False) -> History:
    """Train ``model`` for ``epochs`` passes of mini-batch SGD over ``(X, y)``.

    Args:
        model: the encrypted network (built on ``keyholder.scheme``'s public keys).
        X: ``(n, in)`` plaintext rows, or an :class:`EncTensor` of them (the first
            layer then takes encrypted input).
        y: ``(n, out)`` (or ``(n,)`` for one output) plaintext targets, or an
            :class:`EncTensor` of them; one-hot rows for several classes.
        keyholder: the key holder's refresh half: an in-process
            :class:`~henn.keyholder.KeyHolder` or the owner's key service client.
        lr: learning rate.
        epochs, batch_size: passes over the data and rows per step.
        loss: a loss of :mod:`henn.losses` (default :class:`~henn.losses.MSELoss`).
        callbacks: called with each epoch's record.
        shuffle: visit the rows in a new random order each epoch.
        random_state: seed of the visiting order (the trainer's own data order).
        value_bound: bound on every value the model computes, which sizes refresh
            masks (see :class:`~henn.training.refresh.RefreshPolicy`).
        weight_decay: L2 penalty (see :class:`~henn.optim.SGD`).
        checkpoint: a file rewritten after every epoch (:mod:`henn.training.checkpoint`).
        resume: continue from ``checkpoint`` when it exists: the model's ciphertexts,
            the epochs done, the history, the visiting order and the key holder's
            counters (so the job's budgets and reported hiding cover the whole run).
        monitor: release the summed squared error of each ``k`` samples.
        progress: show a progress bar (stderr).

    Returns:
        The :class:`History`.

    Raises:
        ValueError: bad sizes or hyper-parameters, or ``X`` and ``y`` of different lengths.
        TrainingDiverged: values outgrew what the scheme holds (too large a learning rate).
    """
    _check_hyper(lr, epochs, batch_size)
    loss = loss if loss is not None else MSELoss()
    n = _rows(X, "X")
    if _rows(y, "y") != n:
        raise ValueError(f"cannot fit: X has {n} rows, y has {_rows(y, 'y')}")
    y = _as_targets(y)
    policy = RefreshPolicy(keyholder, value_bound=value_bound)
    guarded = GuardedScheme(keyholder.scheme, policy)
    _bind(model, guarded)
    X, y = (EncTensor(guarded, d.ct) if isinstance(d, EncTensor) else d for d in (X, y))  # data refreshes too
    opt = SGD(model.parameters(), lr, weight_decay)
    watch = _Watch(keyholder, value_bound) if monitor else None
    order_rng = np.random.default_rng(random_state)
    records: list[dict] = []
    first = 0
    if resume and checkpoint is not None and Path(checkpoint).exists():
        first, records, state = checkpoints.restore(checkpoint, model, keyholder)
        order_rng.bit_generator.state = state
    bar = _progress(epochs * n, progress)
    bar.update(first * n)
    start = time.perf_counter()
    try:
        for epoch in range(first, epochs):
            t0 = time.perf_counter()
            order = order_rng.permutation(n) if shuffle else np.arange(n)
            released_before = len(watch.monitor.records) if watch else 0
            for lo in range(0, n, batch_size):
                idx = order[lo:lo + batch_size]
                try:
                    _step(model, loss, opt, _take(X, idx), _take(y, idx), watch)
                except (he_core.EncodingError, he_core.HEOverflowError) as exc:
                    raise TrainingDiverged(f"cannot fit: epoch {epoch}, rows {lo}..{lo + idx.size - 1}: values left "
                                           f"the range the scheme holds ({exc}); lower the learning rate "
                                           f"(now {lr}) or the inputs' scale") from exc
                policy.new_step()
                bar.update(idx.size)
            if watch:
                watch.monitor.end_pass()
            record = _record(epoch, watch, released_before, time.perf_counter() - t0, keyholder)
            records.append(record)
            if checkpoint is not None:
                _bind(model, keyholder.scheme)
                checkpoints.save(checkpoint, model, keyholder, epochs_done=epoch + 1, records=records,
                                 order_rng=order_rng)
                _bind(model, guarded)
            bar.set_postfix(loss=record["loss"], refreshes=record["refreshes"])
            for callback in callbacks:
                callback(record)
    finally:
        bar.close()
        _bind(model, keyholder.scheme)
    return History(model, records, time.perf_counter() - start, policy.counters())


class _Watch:
    """The monitoring aggregate: each batch's squared error, scaled by ``1 / k`` before it is summed.

    The sum is refreshed before its release, at whatever level it ends: the scaling keeps
    its bound at ``value_bound`` (not ``k`` times that), so the refresh's mask fits even
    at the refresh floor. The released means are scaled back.
    """

    def __init__(self, keyholder: MaskedRefresh, value_bound: float):
        self.k = keyholder.terms.min_aggregate
        self.monitor = AggregateMonitor(keyholder, self.k, "brier", sample_bound=value_bound / self.k)

    def add(self, loss: Any, out: EncTensor, yb: Any) -> None:
        self.monitor.add(squared_error(loss.prediction(out), yb) * (1.0 / self.k), count=out.rows)

    def means(self, start: int = 0) -> list[float]:
        """The released per-sample means from record ``start`` on (the owner-only ones skipped)."""
        return [r["brier"] * self.k for r in self.monitor.records[start:] if r["brier"] is not None]


def _step(model: Sequential, loss: Any, opt: SGD, xb: Any, yb: Any, watch: _Watch | None) -> None:
    out = model(xb)
    if watch is not None:
        watch.add(loss, out, yb)
    model.backward(loss.grad(out, yb))
    opt.step()


def squared_error(p: EncTensor, y: Any) -> EncTensor:
    """The encrypted sum over rows and outputs of ``(p - y)^2``: a ``(1, 1)`` tensor."""
    diff = p - (y if isinstance(y, EncTensor) else np.asarray(y, dtype=np.float64).reshape(p.shape))
    total = (diff * diff).row_sum()
    return total if total.size == 1 else total.inner(_ones(total))


def _ones(t: EncTensor) -> EncTensor:
    return basis_for(t.scheme).row(np.ones(t.size))


def _record(epoch: int, watch: _Watch | None, released_before: int, seconds: float,
            keyholder: MaskedRefresh) -> dict:
    values = watch.means(released_before) if watch else []
    return {"epoch": epoch, "loss": float(np.mean(values)) if values else None, "seconds": seconds,
            "refreshes": keyholder.refresh_rounds, "releases": len(watch.monitor.records) if watch else 0}


def _check_hyper(lr: float, epochs: int, batch_size: int) -> None:
    if not (isinstance(lr, (int, float)) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"cannot fit: lr must be a positive finite number, got {lr!r}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"cannot fit: {name} must be a positive integer, got {value!r}")


def _rows(data: Any, name: str) -> int:
    if isinstance(data, EncTensor):
        return data.rows
    array = np.asarray(data)
    if array.ndim not in (1, 2) or array.shape[0] == 0:
        raise ValueError(f"cannot fit: {name} must be a non-empty 1-D or 2-D array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
        raise ValueError(f"cannot fit: {name} must hold finite numbers")
    return int(array.shape[0])


def _as_targets(y: Any) -> Any:
    if isinstance(y, EncTensor):
        return y
    y = np.asarray(y, dtype=np.float64)
    return y[:, None] if y.ndim == 1 else y


def _take(data: Any, idx: np.ndarray) -> Any:
    if isinstance(data, EncTensor):
        return data.take_rows(idx)
    return np.asarray(data)[idx]


def _bind(model: Sequential, scheme: Any) -> None:
    """Point every parameter at ``scheme`` (the guarded view while training, the raw scheme after)."""
    for p in model.parameters():
        p.value = EncTensor(scheme, p.value.ct)
        p.grad = None


def _progress(total: int, enabled: bool) -> tqdm:
    return tqdm(total=total, desc="fit", disable=not enabled, unit="row", dynamic_ncols=True, leave=False)


def predict(model: Sequential, X: Any, *, keyholder: MaskedRefresh | None = None,
            value_bound: float = DEFAULT_VALUE_BOUND) -> EncTensor:
    """The encrypted outputs of ``model`` on ``X`` (plaintext or encrypted rows); nothing is decrypted.

    With a ``keyholder`` the forward pass refreshes through it whenever a budget runs
    low (a model deeper than its parameter set); without, the parameters must hold
    the whole pass (:func:`henn.depth.choose_parameters` with ``purpose="infer"``).
    """
    if keyholder is None:
        return model.forward(X)
    policy = RefreshPolicy(keyholder, value_bound=value_bound)
    guarded = GuardedScheme(keyholder.scheme, policy)
    _bind(model, guarded)
    try:
        out = model.forward(EncTensor(guarded, X.ct) if isinstance(X, EncTensor) else X)
    finally:
        _bind(model, keyholder.scheme)
    return EncTensor(keyholder.scheme, out.ct)


def release_outputs(keyholder: KeyHolder, outputs: EncTensor, value_bound: float = DEFAULT_VALUE_BOUND
                    ) -> np.ndarray:
    """Outputs decrypted for the key holder's owner: refreshed (so the flood hides a fresh noise only), flooded."""
    if keyholder.scheme.supports(he_core.Capability.APPROXIMATE):
        outputs = keyholder.refresh(outputs, value_bound=value_bound)
    return keyholder.release(outputs)


__all__: Sequence[str] = ("History", "SinglePartyWarning", "TrainingDiverged", "fit", "in_process_keyholder", "predict",
                          "release_outputs", "squared_error")
