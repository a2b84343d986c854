"""One trainer for any encrypted model: mini-batch SGD with refreshes through the key holder.

:func:`fit` trains a :class:`~henn.module.Sequential` whose parameters are encrypted,
on plaintext or encrypted rows and plaintext or encrypted targets, with any loss of
:mod:`henn.losses`. The trainer computes forward, backward and the update on
ciphertexts with public material only; whenever a ciphertext's budget runs low for
the next operation, the :class:`~henn.training.refresh.RefreshPolicy` refreshes it
through the key holder's masked protocol (:class:`~henn.keyholder.MaskedRefresh`).

What leaves the trainer for the key holder: masked refresh requests, and one
aggregate per ``k`` samples (the summed error of the model's predictions, squared or
absolute as the loss says, refreshed and noise-flooded before release; ``k`` is the
job's ``min_aggregate``). No per-sample value, label or weight is decrypted.

:func:`~henn.training.keys.in_process_keyholder` makes keys and a key holder in the trainer's own process,
for experiments and tests: the key holder and the trainer are then **one party**, and
the weights are hidden from nobody.
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

import he_core

from ..columns import basis_for
from ..keyholder import MaskedRefresh
from ..losses import MSELoss
from ..module import Sequential
from ..optim import SGD
from ..schedules import LRSchedule, as_schedule
from ..tensor import EncTensor
from . import checkpoint as checkpoints
from .batches import as_targets, check_hyper, count_rows, take_rows
from .bootstrap import BootstrapRefresh, bootstrap_slots
from .guarded import GuardedScheme
# The in-process key holder lives in .keys; importable from here as before.
from .keys import SinglePartyWarning, in_process_keyholder
from .monitor import AggregateMonitor

# predict and release_outputs live in .predict; importable from here as before (henn.training.fit.predict).
from .predict import DEFAULT_VALUE_BOUND, bind_parameters, predict, release_outputs
from .refresh import RefreshPolicy

#: How a run refreshes: through the key holder, or by bootstrapping (no key holder in the loop).
REFRESH_KINDS = ("masked", "bootstrap")
#: The fewest samples per released aggregate a trainer accepts from a key service it reaches by
#: address, whatever the service's terms say (SECURITY.md: the owner never sees fewer).
REMOTE_MIN_AGGREGATE = 500


class TrainingDiverged(he_core.HEError, ArithmeticError):
    """Values left the range the scheme (or the stated bound) can hold: lower the learning rate."""


@dataclasses.dataclass
class History:
    """What a :func:`fit` run produced.

    Attributes:
        model: the trained model (still encrypted; parameters on the raw scheme).
        records: one dict per epoch: ``epoch``, ``loss`` (mean of the epoch's released
            aggregates of the loss's ``monitor_metric``, named in ``metric``: the
            squared error, or the absolute error for the logistic loss; ``None`` when the
            key holder releases to the owner only or the epoch had fewer than ``k``
            samples), ``seconds``, ``refreshes``
            (cumulative refresh rounds), ``releases`` (cumulative).
        seconds: wall time of the training loop.
        policy: the refresh policy's counters.
        aggregates: every released aggregate: ``samples`` seen when it was released
            and the per-sample mean of ``metric`` (``None`` when released to the owner only).
    """

    model: Sequential
    records: list[dict]
    seconds: float
    policy: dict
    aggregates: list[dict] = dataclasses.field(default_factory=list)

    @property
    def losses(self) -> list[float | None]:
        return [r["loss"] for r in self.records]

    def to_dict(self) -> dict:
        """The JSON-ready history (no ciphertexts)."""
        return {"records": self.records, "seconds": self.seconds, "policy": self.policy,
                "aggregates": self.aggregates}


def fit(model: Sequential, X: Any, y: Any, *, keyholder: MaskedRefresh | str | None, lr: float | LRSchedule, epochs: int = 1,
        batch_size: int = 32, loss: Any = None, callbacks: Iterable[Callable[[dict], None]] = (),
        shuffle: bool = True, random_state: int | None = None, value_bound: float = DEFAULT_VALUE_BOUND,
        weight_decay: float = 0.0, monitor: bool = True, monitor_every: int | None = None,
        progress: bool | str | dict = False, checkpoint: str | Path | None = None, resume: bool = False,
        tls_dir: str | Path | None = None, job: dict | None = None,
        update_bound: float | None = None, refresh: str = "masked", record_targets: bool = False) -> History:
    """Train ``model`` for ``epochs`` passes of mini-batch SGD over ``(X, y)``.

    Args:
        model: the encrypted network (built on ``keyholder.scheme``'s public keys).
        X: ``(n, in)`` plaintext rows, an :class:`EncTensor` of them (the first
            layer then takes encrypted input), or :class:`~henn.embedding.Bags` (sparse
            row indices, for a first :class:`~henn.embedding.EmbeddingBag`).
        y: ``(n, out)`` (or ``(n,)`` for one output) plaintext targets, or an
            :class:`EncTensor` of them; one-hot rows for several classes.
        keyholder: the key holder's refresh half: the address of the owner's key
            service (``unix:PATH`` or ``tls://HOST:PORT``; no secret key then exists in
            this process), its client (:class:`~henn.keyservice.RemoteKeyHolder`), an
            in-process :class:`~henn.keyholder.KeyHolder` (one party: experiments), or
            ``None`` trains with public material only until a budget runs out (the
            error then carries ``samples_done``: every sample before it was trained,
            and the one that failed changed no weight unless a table's in-place
            scatter itself refused).
        lr: learning rate, or a schedule of one (:mod:`henn.schedules`: step ``k`` of the
            run's ``epochs * ceil(n / batch_size)`` uses ``lr.at(k, total)``). Masks and
            bounds follow its ``peak``. A schedule changes the plaintext factor each step;
            on a scheme that absorbs such factors into a ciphertext's scale (CKKS) the
            refreshes then differ from step to step, so a key service enforcing a job's
            learnt targets may refuse them: use schedules on schemes with fixed scales.
        epochs, batch_size: passes over the data and rows per step.
        loss: a loss of :mod:`henn.losses` (default :class:`~henn.losses.MSELoss`).
        callbacks: called with each epoch's record.
        shuffle: visit the rows in a new random order each epoch.
        random_state: seed of the visiting order (the trainer's own data order).
        value_bound: bound on every value the model computes, which sizes refresh
            masks (see :class:`~henn.training.refresh.RefreshPolicy`).
        weight_decay: L2 penalty (see :class:`~henn.optim.SGD`).
        update_bound: bound on every entry of an update (``lr`` times a gradient) that
            lands in place (a table's rows), which sizes the masks of the refreshes
            moving updates into their table's packing; default ``lr * value_bound`` (the
            schedule's peak rate).
        checkpoint: a file rewritten after every epoch (:mod:`henn.training.checkpoint`).
        tls_dir: the trainer's certificates for a ``tls://`` key service address.
        job: the job record the owner signed into the model file (its key, terms and
            targets): a service whose greeting differs is refused. Through an address,
            aggregates cover at least :data:`REMOTE_MIN_AGGREGATE` samples whatever the
            service's terms say (fewer samples: nothing is released).
        resume: continue from ``checkpoint`` when it exists: the model's ciphertexts,
            the epochs done, the history, the visiting order and the key holder's
            counters (so the job's budgets and reported hiding cover the whole run).
        monitor: release the summed error of each ``monitor_every`` samples (needs a key holder).
        monitor_every: samples per released aggregate (default, and at least, the
            job's ``min_aggregate``).
        progress: show a progress bar (stderr); a string names it, a dict gives its
            ``desc`` and ``unit`` (``{"desc": "imdb", "unit": "review"}``).
        refresh: ``"masked"`` (ciphertexts low on budget go through the key holder's
            masked refresh) or ``"bootstrap"`` (the scheme bootstraps them with public
            keys: no key holder round trip; its keys must include bootstrapping's, see
            :func:`henn.training.bootstrap.bootstrap_keys`). Under ``"bootstrap"`` no loss is
            released while training (``monitor`` is ignored) and ``keyholder`` may be ``None``.
        record_targets: the owner's dry run that learns a job's refresh targets
            (:func:`henn.training.targets.learn_targets`): every operand on a noise budget
            is refreshed, so the run asks for every target a long run could, and the
            monitored terms are scaled for a job's aggregates (``REMOTE_MIN_AGGREGATE``
            samples), not for the dry run's few.

    Returns:
        The :class:`History`.

    Raises:
        ValueError: bad sizes or hyper-parameters, or ``X`` and ``y`` of different lengths.
        TrainingDiverged: values outgrew what the scheme holds (too large a learning rate).
    """
    check_hyper(lr, epochs, batch_size)
    schedule = as_schedule(lr)
    peak = schedule.peak  # read once: masks and bounds are sized for it, and no step may exceed it
    if refresh not in REFRESH_KINDS:
        raise ValueError(f"cannot fit: refresh must be one of {REFRESH_KINDS}, got {refresh!r}")
    if isinstance(keyholder, (str, Path)):
        with _connect(str(keyholder), model, tls_dir, job) as remote:
            # The trainer's own floor: a service (or a substitute) cannot ask for smaller aggregates.
            every = max(monitor_every or 0, REMOTE_MIN_AGGREGATE, remote.terms.min_aggregate)
            return fit(model, X, y, keyholder=remote, lr=lr, epochs=epochs, batch_size=batch_size, loss=loss,
                       callbacks=callbacks, shuffle=shuffle, random_state=random_state, value_bound=value_bound,
                       weight_decay=weight_decay, monitor=monitor, monitor_every=every, progress=progress,
                       checkpoint=checkpoint, resume=resume, update_bound=update_bound, refresh=refresh,
                       record_targets=record_targets)
    loss = loss if loss is not None else MSELoss()
    if update_bound is not None and not (update_bound > 0 and np.isfinite(update_bound)):
        raise ValueError(f"cannot fit: update_bound must be positive and finite, got {update_bound!r}")
    n = count_rows(X, "X")
    if count_rows(y, "y") != n:
        raise ValueError(f"cannot fit: X has {n} rows, y has {count_rows(y, 'y')}")
    y = as_targets(y)
    raw = keyholder.scheme if keyholder is not None else model.parameters()[0].value.scheme
    booting = refresh == "bootstrap"
    refresher = BootstrapRefresh(raw, bootstrap_slots(model, batch_size)) if booting else keyholder
    policy = RefreshPolicy(refresher, value_bound=value_bound, every_noise_operand=record_targets) \
        if refresher is not None else _NoRefresh()
    guarded = GuardedScheme(raw, policy) if refresher is not None else raw
    bind_parameters(model, guarded)
    X, y = (EncTensor(guarded, d.ct) if isinstance(d, EncTensor) else d for d in (X, y))  # data refreshes too
    opt = SGD(model.parameters(), peak, weight_decay)
    # The owner's dry run releases its few samples as one aggregate but scales its terms as a job's
    # runs do (at least REMOTE_MIN_AGGREGATE samples): the same computation, hence the same refreshes.
    watch = _Watch(keyholder, value_bound, loss.monitor_metric, monitor_every,
                   scaled_as=REMOTE_MIN_AGGREGATE if record_targets else None) \
        if monitor and keyholder is not None and not booting else None
    order_rng = np.random.default_rng(random_state)
    records: list[dict] = []
    first = 0
    if resume and checkpoint is not None and Path(checkpoint).exists():
        first, records, state, policy_state = checkpoints.restore(checkpoint, model, keyholder)
        order_rng.bit_generator.state = state
        try:
            policy.load_state(policy_state)
        except ValueError as exc:
            raise he_core.FormatError(f"cannot resume from {checkpoint}: {exc}") from None
    bar = _progress(epochs * n, progress)
    bar.update(first * n)
    per_epoch = -(-n // batch_size)
    start = time.perf_counter()
    try:
        for epoch in range(first, epochs):
            t0 = time.perf_counter()
            order = order_rng.permutation(n) if shuffle else np.arange(n)
            released_before = len(watch.monitor.records) if watch else 0
            for lo in range(0, n, batch_size):
                idx = order[lo:lo + batch_size]
                if booting:  # every parameter the step would take too low, in one bootstrap
                    refresher.refresh_parameters(model.parameters(), value_bound)
                opt.lr = _rate(schedule, epoch * per_epoch + lo // batch_size, epochs * per_epoch, peak)
                try:
                    _step(model, loss, opt, take_rows(X, idx), take_rows(y, idx), watch, policy,
                          update_bound if update_bound is not None else peak * value_bound)
                except (he_core.NoiseBudgetExhausted, he_core.LevelExhaustedError, he_core.RefreshRequired) as exc:
                    if keyholder is not None:
                        raise
                    exc.samples_done = epoch * n + lo  # type: ignore[attr-defined]
                    raise
                except (he_core.EncodingError, he_core.HEOverflowError) as exc:
                    raise TrainingDiverged(f"cannot fit: epoch {epoch}, rows {lo}..{lo + idx.size - 1}: values left "
                                           f"the range the scheme holds ({exc}); lower the learning rate "
                                           f"(now {opt.lr}) or the inputs' scale") from exc
                if booting:
                    refresher.end_step(model.parameters())
                policy.new_step()
                bar.update(idx.size)
            if watch:
                watch.monitor.end_pass()
            record = _record(epoch, watch, released_before, time.perf_counter() - t0, keyholder)
            if booting:
                record["bootstraps"] = refresher.bootstraps
                record["parameter_bootstraps"] = refresher.parameter_bootstraps
            records.append(record)
            if checkpoint is not None:
                if keyholder is None:
                    raise ValueError("cannot checkpoint without a key holder: the checkpoint records its counters")
                bind_parameters(model, raw)
                checkpoints.save(checkpoint, model, keyholder, epochs_done=epoch + 1, records=records,
                                 order_rng=order_rng, policy=policy.state())
                bind_parameters(model, guarded)
            bar.set_postfix(loss=record["loss"], **({"bootstraps": record["bootstraps"]} if booting
                                                     else {"refreshes": record["refreshes"]}))
            for callback in callbacks:
                callback(record)
    finally:
        bar.close()
        bind_parameters(model, raw)
    aggregates = [{"samples": r["samples"], "metric": watch.metric, "value": r[watch.metric]}
                  for r in watch.monitor.records] if watch else []
    counters = policy.counters()
    if booting:
        counters.update({k: v for k, v in refresher.counters().items() if k != "refresh_rounds"})
    return History(model, records, time.perf_counter() - start, counters, aggregates)


def _rate(schedule: LRSchedule, step: int, total: int, peak: float) -> float:
    """Step ``step``'s rate, refused unless in (0, peak]: a larger one would outgrow the masks sized for the peak."""
    rate = schedule.at(step, total)
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
            or not (np.isfinite(rate) and 0 < rate <= peak):
        raise ValueError(f"cannot fit: the schedule's rate at step {step} of {total} is {rate!r}, outside (0, "
                         f"{peak}] (its peak, which the refresh masks are sized for)")
    return float(rate)


def _connect(address: str, model: Sequential, tls_dir: str | Path | None, job: dict | None) -> MaskedRefresh:
    """The owner's key service for the key the model is under (its public keys say which)."""
    from ..keyservice import RemoteKeyHolder  # the network client: only for a remote key holder

    params = model.parameters()
    if not params:
        raise ValueError("cannot fit: the model has no parameters")
    scheme = params[0].value.scheme
    return RemoteKeyHolder(address, scheme, scheme.public_keys.key_id, job=job, tls_dir=tls_dir)


class _NoRefresh:
    """The policy of a run without a key holder: nothing is ever refreshed."""

    value_bound = DEFAULT_VALUE_BOUND

    @contextlib.contextmanager
    def bounded(self, value_bound: float) -> Iterator[None]:
        yield

    def current(self, ct: Any) -> Any:
        return ct

    def new_step(self) -> None:
        return None

    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        return None

    def counters(self) -> dict[str, int]:
        return {"op_refreshes": 0, "retry_refreshes": 0, "layout_refreshes": 0, "landing_refreshes": 0,
                "budget_checks": 0}


class _Watch:
    """The monitoring aggregate: each batch's error (the loss's ``monitor_term``), over ``k`` before it is summed.

    The sum is refreshed before its release, at whatever level it ends: the scaling keeps
    its bound at ``value_bound`` (not ``k`` times that), so the refresh's mask fits even
    at the refresh floor. The released means are scaled back.
    """

    def __init__(self, keyholder: MaskedRefresh, value_bound: float, metric: str, every: int | None = None,
                 scaled_as: int | None = None):
        k = keyholder.terms.min_aggregate
        if every is not None and (isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < k):
            raise ValueError(f"cannot fit: monitor_every must be an integer >= the job's min_aggregate {k}, "
                             f"got {every!r}")
        self.k = k if every is None else int(every)
        # the samples each term is scaled for: the aggregate's own (a dry run's: a real run's, see fit)
        self.scale_k = self.k if scaled_as is None else int(scaled_as)
        self.metric = metric
        self.sample_bound = value_bound / self.scale_k
        self.monitor = AggregateMonitor(keyholder, self.k, metric, sample_bound=self.sample_bound,
                                        term_scale=1.0 / self.scale_k)

    def add(self, term: EncTensor, count: int) -> None:
        """Add a batch's term (the loss's :meth:`monitor_term`, already over ``k``)."""
        self.monitor.add(term, count=count)

    def means(self, start: int = 0) -> list[float]:
        """The released per-sample means from record ``start`` on (the owner-only ones skipped)."""
        return [r[self.metric] for r in self.monitor.records[start:] if r[self.metric] is not None]


def _step(model: Sequential, loss: Any, opt: SGD, xb: Any, yb: Any, watch: _Watch | None,
          policy: RefreshPolicy, update_bound: float) -> None:
    out = model(xb)
    for p in model.parameters():
        # A weight the scheme asked to move into another packing keeps the new one.
        p.value = EncTensor(p.value.scheme, policy.current(p.value.ct))
    # The learning rate rides on the loss gradient: no parameter update pays a product for it.
    grad = loss.grad(out, yb, scale=opt.lr)
    if watch is not None:
        factor = loss.error_factor(out.shape, opt.lr)
        # Whatever the term's computation refreshes (the gradient, its squares, the term over k)
        # is masked for the largest of them, never for less than it can hold.
        bound = max(watch.sample_bound, loss.monitor_bound(factor, policy.value_bound, out.rows * out.size))
        with policy.bounded(bound):
            watch.add(loss.monitor_term(grad, yb, factor, watch.scale_k), grad.rows)
    model.backward(grad)
    landing = opt.prepare(prescaled=True)
    # What lands in place (a table's rows) is lr times a gradient: masked for that size.
    with policy.bounded(update_bound):
        opt.land(landing)


def squared_error(p: EncTensor, y: Any) -> EncTensor:
    """The encrypted sum over rows and outputs of ``(p - y)^2``: a ``(1, 1)`` tensor."""
    diff = p - (y if isinstance(y, EncTensor) else np.asarray(y, dtype=np.float64).reshape(p.shape))
    return _sum_all(diff * diff)


def _sum_all(t: EncTensor) -> EncTensor:
    """The sum of every entry: a ``(1, 1)`` tensor."""
    total = t.row_sum()
    return total if total.size == 1 else total.inner(_ones(total))


def _ones(t: EncTensor) -> EncTensor:
    return basis_for(t).row(np.ones(t.size))


def _record(epoch: int, watch: _Watch | None, released_before: int, seconds: float,
            keyholder: MaskedRefresh | None) -> dict:
    values = watch.means(released_before) if watch else []
    return {"epoch": epoch, "loss": float(np.mean(values)) if values else None,
            "metric": watch.metric if watch else None, "seconds": seconds,
            "refreshes": keyholder.refresh_rounds if keyholder is not None else 0,
            "releases": len(watch.monitor.records) if watch else 0}


def _progress(total: int, enabled: bool | str | dict) -> tqdm:
    options = {"desc": "fit", "unit": "row"}
    if isinstance(enabled, str):
        options["desc"] = enabled
    elif isinstance(enabled, dict):
        options.update({k: str(v) for k, v in enabled.items() if k in ("desc", "unit")})
    return tqdm(total=total, disable=not enabled, dynamic_ncols=True, leave=False, file=sys.stderr, **options)


__all__: Sequence[str] = ("History", "SinglePartyWarning", "TrainingDiverged", "fit", "in_process_keyholder", "predict",
                          "release_outputs", "squared_error")
