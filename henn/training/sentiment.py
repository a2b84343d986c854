"""Training and evaluating the sentiment network with encrypted weights.

Roles: the *trainer* holds the encrypted ``W01`` / ``w12`` and the plaintext reviews
(pre-tokenised index arrays) and runs every SGD step on ciphertexts with public
material only. The key holder (:class:`~henn.keyholder.KeyHolder` in-process, or the
owner's key service) does two things for it, both through :mod:`henn.keyholder`:
masked refreshes (whenever the scheme asks, or a budget runs low) and *releases*,
noise-flooded: (a) the mean absolute error over at least ``monitor_every`` reviews
(:mod:`henn.training.monitor`; never a per-review value or label), (b) validation
predictions computed encrypted, (c) the final weights when the owner checks them.

The same functions train the ``plain`` twin; :func:`train_reference` is the NumPy
float64 reference of the same network (exact sigmoid by default).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import he_core

from ..activations import sigmoid
from ..data.imdb import Reviews, split_validation
from ..data.text import TextConfig, Vocabulary
from ..keyholder import KeyHolder, MaskedRefresh, RefreshTerms
from ..models.sentiment import EncSentimentNet, PlainSentimentNet, SentimentConfig, init_weights
from .monitor import AggregateMonitor
from .refresh import RefreshPolicy

_EPS = 1e-7


@dataclasses.dataclass
class Prepared:
    """Reviews turned into index arrays, ready to train on.

    Attributes:
        vocab: the vocabulary (built from the training part only).
        train_ids, train_labels: training reviews in training order.
        val_ids, val_labels: held-out reviews.

    A review with no vocabulary word keeps an empty index array: it trains nothing and
    is predicted ``s(0)``.
    """

    vocab: Vocabulary
    train_ids: list[np.ndarray]
    train_labels: np.ndarray
    val_ids: list[np.ndarray]
    val_labels: np.ndarray


def prepare(reviews: Reviews, *, validation: int = 5000, limit: int | None = None, seed: int = 0,
            text: TextConfig = TextConfig()) -> Prepared:
    """Split, build the vocabulary on the training part and tokenise everything once.

    Args:
        reviews: all labelled reviews.
        validation: how many to hold out (fixed ``seed``).
        limit: train on only the first ``limit`` training reviews (after the split).
        seed: seed of the split.
        text: tokenisation and vocabulary settings.

    Returns:
        The prepared data.
    """
    train_idx, val_idx = split_validation(len(reviews), validation, seed)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"cannot prepare: limit must be positive, got {limit}")
        train_idx = train_idx[:limit]
    train = reviews.subset(train_idx)
    val = reviews.subset(val_idx)
    vocab = Vocabulary.build(train.texts, train.labels, text)
    return Prepared(vocab, vocab.encode_all(train.texts), train.labels,
                    vocab.encode_all(val.texts), val.labels)


# Levels one training step needs between refreshes: the polynomial sigmoid (degree 5:
# depth 3) and the product of its output with a weight row.
STEP_DEPTH = 4
#: Refreshes per review a packing scheme asks for at most (the logit, the two updates).
REFRESHES_PER_REVIEW = 3
#: Reviews per released aggregate by default (the owner never sees fewer at once).
MONITOR_EVERY = 500
#: A bound on one review's monitored |p - y| (the polynomial sigmoid may overshoot [0, 1]).
MAE_BOUND = 2.0
#: Key-holder reserves (in the budget's unit) below which a weight is refreshed between
#: steps: one step's inner product and polynomial use about 12 bits of vhe noise above
#: the weights' noise; a leveled scheme's tables never lose a level.
RESERVES = {"noise": {"W01": 14.0, "w12": 16.0}, "levels": {"W01": 0.0, "w12": 0.0}}


#: Whole-table refreshes a run may make (a scheme with a noise budget refreshes W01 now and
#: then; a packing scheme never does): they size the masks' job-wide entry count.
TABLE_REFRESHES = 64


def terms_for(reviews: int, epochs: int, hidden: int, *, vocab: int = 16384, validation: int = 0,
              monitor_every: int = MONITOR_EVERY, statistical_bits: int = 30,
              whole_entries: int = 1) -> RefreshTerms:
    """The job terms a training run of this size needs (refresh and release budgets, with 10% slack).

    Args:
        reviews: training reviews per epoch.
        epochs: passes over them.
        hidden: width of layer 1 (the entries a refresh of a row reads).
        vocab: rows of ``W01`` (the entries a refresh of the whole table reads).
        validation: reviews whose encrypted predictions will be released one by one.
        monitor_every: reviews per released aggregate.
        statistical_bits: lambda for masks and flooding.
        whole_entries: entries a refresh of one whole ciphertext reads (an aggregate is
            refreshed before its release): :func:`whole_entries` of the scheme.
    """
    steps = max(reviews * epochs, 1)
    row = 1 << max(hidden - 1, 7).bit_length()  # a table row's stride: hidden rounded up to a power of two, >= 8
    aggregates = steps // monitor_every + epochs
    refreshes = int(1.1 * (REFRESHES_PER_REVIEW * steps + validation + aggregates)) + TABLE_REFRESHES + 16
    entries = (REFRESHES_PER_REVIEW * steps * row + validation + aggregates * whole_entries
               + TABLE_REFRESHES * vocab * row)
    releases = int(1.1 * (aggregates + validation)) + 4  # + the two weight tensors, twice
    return RefreshTerms(statistical_bits=statistical_bits, refreshes=refreshes,
                        entries_per_refresh=max(vocab * row, whole_entries, row), entries=int(1.1 * entries),
                        releases=releases, min_aggregate=min(monitor_every, MONITOR_EVERY))


def whole_entries(scheme: he_core.Scheme) -> int:
    """Masked entries a refresh of one whole ciphertext (one value, its own layout) reads under ``scheme``."""
    return max(1, int(scheme.refresh_plan(scheme.encrypt(np.zeros((1, 1)))).n_read))


def setup(scheme_name: str, hidden: int, *,
          terms: RefreshTerms | Callable[[he_core.Scheme], RefreshTerms] | None = None, rng: Any = None,
          **params: Any) -> tuple[he_core.Scheme, KeyHolder]:
    """Create the scheme, generate keys for sizes ``(1, hidden)``, give the secret to a key holder.

    Without ``params`` a leveled scheme gets its cheapest set with :data:`STEP_DEPTH`
    levels between refreshes (:meth:`he_core.Scheme.params_for_depth`, which also leaves
    room for refresh masks and flooded releases); other schemes their defaults.
    ``terms`` may be a function of the keyed scheme (e.g. to pass :func:`whole_entries`).
    """
    if not params:
        chosen = he_core.scheme_class(scheme_name).params_for_depth(STEP_DEPTH)
        scheme = he_core.get_scheme(scheme_name, chosen) if chosen is not None else he_core.get_scheme(scheme_name)
    else:
        scheme = he_core.get_scheme(scheme_name, **params)
    secret, _public = scheme.keygen(he_core.KeyRequirements(sizes=(1, hidden)), rng=rng)
    return scheme, KeyHolder(scheme, secret, terms=terms(scheme) if callable(terms) else terms)


def cross_entropy(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-review cross-entropy; ``p`` is clipped into ``(0, 1)`` (a polynomial may leave it)."""
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


@dataclasses.dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        history: one record per released aggregate: ``reviews`` seen and ``mae``, the
            mean of ``(1 - 2y)(p - y)`` over the aggregate, which is the mean absolute
            error |p - y| while the polynomial's ``p`` stays in [0, 1] (``None`` when only
            the owner sees it).
        seconds: wall time of the training loop (key generation and data preparation excluded).
        reviews: number of training steps run.
        refreshes: refresh rounds made.
    """

    history: list[dict]
    seconds: float
    reviews: int
    refreshes: int = 0

    @property
    def reviews_per_s(self) -> float:
        return self.reviews / self.seconds if self.seconds > 0 else float("inf")

    @property
    def final_mae(self) -> float | None:
        values = [r["mae"] for r in self.history if r.get("mae") is not None]
        return values[-1] if values else None


def has_budget(tensor) -> bool:
    """Whether ``tensor``'s scheme tracks a finite noise/level budget (the plain twin does not)."""
    return tensor.budget().get("kind") != "unbounded"


class SentimentTrainer:
    """The per-review loop: SGD steps, refreshes through one masked refresh, released aggregates.

    Args:
        net: the encrypted network (updated in place).
        keyholder: the masked refresh (in-process key holder, or the owner's key
            service); ``None`` trains with public material only, until a budget runs out.
        monitor_every: reviews per released aggregate; ``None`` releases nothing.

    Attributes:
        policy: the one refresh policy (:class:`henn.training.refresh.RefreshPolicy`).
        monitor: the aggregate monitor, or ``None``.
    """

    def __init__(self, net: EncSentimentNet, keyholder: MaskedRefresh | None, *,
                 monitor_every: int | None = MONITOR_EVERY):
        self.net, self.keyholder = net, keyholder
        kind = net.W01.budget()["kind"]
        self.bounded = keyholder is not None and kind != "unbounded"
        self.policy = RefreshPolicy(keyholder) if self.bounded else None
        self.reserves = RESERVES.get(kind, {})
        net.refresher = keyholder
        net.refresh_step = self.bounded and kind == "noise"
        self.monitor = (AggregateMonitor(keyholder, monitor_every, "mae", sample_bound=MAE_BOUND)
                        if keyholder is not None and monitor_every is not None else None)

    def close(self) -> None:
        """Detach the key holder from the network (it may be used elsewhere afterwards)."""
        self.net.refresher, self.net.refresh_step = None, False

    def step(self, review: np.ndarray, y: int, lr: float):
        """One review; returns its encrypted step ``-lr (p - y)`` (or ``None`` for an empty review)."""
        if not review.size:
            return None
        try:
            step = self.net.train_step(review, y, lr)
        except (he_core.NoiseBudgetExhausted, he_core.LevelExhaustedError):
            if not self.bounded:
                raise
            # Raised before any in-place update: refresh the weights and retry once.
            self.refresh("w12")
            self.refresh("W01")
            step = self.net.train_step(review, y, lr)
        if self.bounded:
            self.keep_fresh()
        return step

    def observe(self, step, y: int, lr: float) -> dict | None:
        """Add the review's (1 - 2y)(p - y) to the monitored aggregate, as (2y - 1) step / lr: no decryption.

        For p in [0, 1] that is |p - y|, linear in the step (a polynomial sigmoid may
        overshoot slightly; the overshoot then counts negatively). Returns the
        released record when this review completed an aggregate.
        """
        if self.monitor is None or step is None:
            return None
        return self.monitor.add(self.net.scheme.mul_plain(step, (2.0 * y - 1.0) / lr))

    def keep_fresh(self) -> None:
        for name, reserve in self.reserves.items():
            tensor = getattr(self.net, name)
            if tensor.budget().remaining < reserve:
                self.refresh(name)

    def refresh(self, name: str) -> None:
        tensor = getattr(self.net, name)
        setattr(self.net, name, self.keyholder.refresh(tensor, layout=self.net.scheme.layout_of(tensor.ct)))


def train_encrypted(net: EncSentimentNet, keyholder: MaskedRefresh, ids: Sequence[np.ndarray], labels: np.ndarray,
                    *, lr: float, epochs: int = 1, monitor_every: int | None = MONITOR_EVERY,
                    progress: Callable[[int, dict | None], None] | None = None) -> TrainResult:
    """Per-review SGD on ciphertexts, refreshing through ``keyholder`` and releasing aggregates.

    Args:
        net: the encrypted network (updated in place).
        keyholder: the masked refresh and aggregate release (in-process or remote).
        ids: each review's sorted distinct word indices.
        labels: 1/0 per review.
        lr: learning rate.
        epochs: passes over the reviews (same order each pass).
        monitor_every: reviews per released aggregate (``None``: release nothing).
        progress: called after every review with (1, the released record or ``None``).

    Returns:
        The history (released aggregates) and timings.
    """
    if epochs < 1:
        raise ValueError(f"cannot train: epochs must be positive, got {epochs}")
    labels = [int(y) for y in labels]
    if len(labels) != len(ids):
        raise ValueError(f"cannot train: {len(ids)} reviews but {len(labels)} labels")
    trainer = SentimentTrainer(net, keyholder, monitor_every=monitor_every)
    seen = 0
    start = time.perf_counter()
    try:
        for _ in range(epochs):
            for review, y in zip(ids, labels):
                record = trainer.observe(trainer.step(review, y, lr), y, lr)
                seen += 1
                if progress is not None:
                    progress(1, record)
            if trainer.monitor is not None:
                trainer.monitor.end_pass()
    finally:
        trainer.close()
    history = [{"reviews": r["samples"], "mae": r["mae"]} for r in (trainer.monitor.records if trainer.monitor else [])]
    return TrainResult(history, time.perf_counter() - start, seen, keyholder.refresh_rounds if keyholder else 0)


class _RecordingKeyHolder(KeyHolder):
    """An in-process key holder that notes the public signature of every refresh it serves."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.signatures: list[dict] = []
        self.aggregated = False

    def reencrypt(self, masked, layout=None):
        self.signatures.append(self.scheme.refresh_target_signature(masked, layout))
        return super().reencrypt(masked, layout)

    def release_aggregate(self, x, count, *, value_bound=None):
        """The refresh that precedes an aggregate's release, once, and nothing released (a dry run)."""
        if not self.aggregated:
            self.fresh_for_owner(x, value_bound)
            self.aggregated = True
        return 0.0


def learn_targets(scheme: he_core.Scheme, secret: he_core.SecretKey, W01, w12, config: SentimentConfig,
                  terms: RefreshTerms, reviews: int = 3) -> list[dict]:
    """The refresh signatures training this network asks for: a dry run of a few steps (owner side).

    A job allows exactly these (and refuses anything else), so the dry run uses the
    job's own scheme, key and freshly encrypted weights, on a few synthetic reviews.
    """
    from ..jobs import unique_signatures
    from ..tensor import EncTensor

    holder = _RecordingKeyHolder(scheme, secret, terms=terms)  # the job's terms: its masks, its levels
    # Copies: the steps update the tables in place, and the job's model must leave untouched.
    net = EncSentimentNet(scheme, EncTensor(scheme, scheme.copy(W01)), EncTensor(scheme, scheme.copy(w12)),
                          config.make_activation())
    trainer = SentimentTrainer(net, holder, monitor_every=1)  # each step's aggregate: its refresh target too
    try:
        for k in range(reviews):
            y = k % 2
            trainer.observe(trainer.step(np.arange(min(3, net.vocab_size), dtype=np.int64), y, config.lr), y,
                            config.lr)
    finally:
        trainer.close()
    # The weights themselves, in their own layouts: a budget may run low on them later in a run.
    weights = [scheme.refresh_target_signature(ct, scheme.layout_of(ct)) for ct in (W01, w12)]
    return unique_signatures(holder.signatures + weights)


def outgoing_weights(net: EncSentimentNet, keyholder: MaskedRefresh | None) -> dict[str, he_core.Ciphertext]:
    """The trained weights as they leave the trainer: re-encrypted by the key holder, or sanitised.

    Through a key holder each tensor is refreshed into its own layout (a masked
    refresh), so its noise is the key holder's own and the owner's decryption shows
    the weights and nothing of how they were computed (an approximate scheme's noise
    follows the data). Otherwise (an exact scheme, or no key holder: a scheme with a
    noise budget trained as far as it goes) each is sanitised: re-randomised, its noise
    flooded.
    """
    scheme = net.scheme
    through_keyholder = keyholder is not None and scheme.supports(he_core.Capability.APPROXIMATE)
    out = {}
    for name in ("W01", "w12"):
        ct = getattr(net, name).ct
        if not through_keyholder:
            out[name] = scheme.sanitize(ct)
        else:
            out[name] = keyholder.fresh_for_owner(ct, EncSentimentNet.WEIGHT_BOUND, layout=scheme.layout_of(ct))
    return out


def refresh_weights(net: EncSentimentNet, keyholder: MaskedRefresh) -> None:
    """Re-encrypt the weight tensors whose budget is below their reserve (before inference)."""
    if not has_budget(net.W01):
        return
    trainer = SentimentTrainer(net, keyholder, monitor_every=None)
    try:
        if net.W01.budget()["kind"] == "noise":  # noise budgets: start inference fresh
            trainer.refresh("W01")
            trainer.refresh("w12")
        else:
            trainer.keep_fresh()
    finally:
        trainer.close()


def predict_encrypted(net: EncSentimentNet, keyholder: KeyHolder, ids: Sequence[np.ndarray],
                      *, batch: int = 1000) -> np.ndarray:
    """Encrypted forward pass; the key holder *releases* (flooded) each prediction.

    Reviews with no vocabulary word get ``s(0)`` without a ciphertext. On a scheme with
    a budget the weights are refreshed first, so a long training run leaves room. Each
    released prediction counts against the key holder's release budget.
    """
    refresh_weights(net, keyholder)
    p = np.full(len(ids), net.coeffs[0])
    present = np.array([i for i, r in enumerate(ids) if r.size], dtype=np.int64)
    if present.size and net.scheme.layout_of(net.W01.ct) is not None:
        # A packed table (its gathered rows cannot be batched or enter the polynomial
        # without the key holder): each review's p, through one refresh of its logit.
        net.refresher = keyholder
        try:
            p[present] = [keyholder.release(net.predict(ids[i]))[0, 0] for i in present]
        finally:
            net.refresher = None
        return p
    for lo in range(0, present.size, batch):
        part = present[lo:lo + batch]
        p[part] = keyholder.release(net.forward_batch([ids[i] for i in part]))[:, 0]
    return p


def evaluate_encrypted(net: EncSentimentNet, keyholder: KeyHolder, ids: Sequence[np.ndarray],
                       labels: np.ndarray) -> dict:
    """Accuracy and throughput of encrypted prediction on labelled reviews."""
    start = time.perf_counter()
    p = predict_encrypted(net, keyholder, ids)
    seconds = time.perf_counter() - start
    y = np.asarray(labels)
    pred = (p > 0.5).astype(np.int64)
    return {"accuracy": float(np.mean(pred == y)) if y.size else float("nan"),
            "loss": float(np.mean(cross_entropy(p, y))) if y.size else float("nan"),
            "reviews": int(y.size), "seconds": seconds,
            "reviews_per_s": y.size / seconds if seconds > 0 else float("inf"), "predictions": pred}


def clear_predictions(W01: np.ndarray, w12: np.ndarray, ids: Sequence[np.ndarray],
                      activation: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Predicted labels from plaintext (e.g. released) weights."""
    net = PlainSentimentNet(W01, w12, activation)
    return (activation(net.logits(ids)) > 0.5).astype(np.int64)


def release_weights(net: EncSentimentNet, keyholder: KeyHolder) -> tuple[np.ndarray, np.ndarray]:
    """Key holder: the model's weights, released (noise-flooded) for the owner's check."""
    return keyholder.release(net.W01), keyholder.release(net.w12)[0]


def train_reference(data: Prepared, config: SentimentConfig, *, epochs: int = 1,
                    activation: Callable[[np.ndarray], np.ndarray] = sigmoid,
                    init: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Train the NumPy float64 reference on ``data`` and report its validation accuracy and logits.

    Returns:
        ``init`` is the initial ``(W01, w12)`` (default: a fresh CSPRNG draw); pass the
        encrypted run's to compare like with like.

        ``net``, ``train_accuracy`` (running, as in training), ``validation_accuracy``,
        ``logit_range`` and ``logit_p99`` (the largest and 99th-percentile ``|z|`` on the
        validation reviews, to size the polynomial's fit interval).
    """
    W01, w12 = init if init is not None else init_weights(len(data.vocab), config)
    net = PlainSentimentNet(W01, w12, activation)
    correct = 0
    for _ in range(epochs):
        for review, y in zip(data.train_ids, data.train_labels):
            correct += (net.train_step(review, int(y), config.lr) > 0.5) == (y == 1)
    z = net.logits(data.val_ids)
    return {"net": net, "train_accuracy": correct / (epochs * len(data.train_ids)),
            "validation_accuracy": float(np.mean((activation(z) > 0.5) == (data.val_labels == 1))),
            "logit_range": float(np.max(np.abs(z))) if z.size else 0.0,
            "logit_p99": float(np.percentile(np.abs(z), 99)) if z.size else 0.0}


# ---------------------------------------------------------------------------- saving
def save_sentiment(directory, net: EncSentimentNet, keyholder: KeyHolder, vocab: Vocabulary,
                   config: SentimentConfig, summary: dict | None = None) -> Path:
    """Write the encrypted model (weights, public keys, vocabulary, config) and the 0600 secret key.

    Returns:
        The directory.
    """
    from .. import io

    meta = {"task": "sentiment", "config": config.to_dict(), "vocab": vocab.to_dict(),
            "layout": {"W01": "(vocab, hidden)", "w12": "(1, hidden): w12 transposed"},
            "summary": summary or {}}
    return io.save_model(directory, net, net.scheme, meta=meta, secret=keyholder.export_secret_key())


def load_sentiment(directory, *, terms: RefreshTerms | None = None, allow_insecure: bool = False,
                   passphrase: bytes | None = None) -> tuple[EncSentimentNet, KeyHolder, Vocabulary,
                                                                             SentimentConfig]:
    """Read a model written by :func:`save_sentiment`, with the key holder of its saved key.

    Raises:
        FileNotFoundError: missing model or key file.
        he_core.FormatError: corrupt files, or a key that is not the model's.
        ValueError: the model is not a sentiment model.
    """
    from .. import io

    loaded = io.load_model(directory, allow_insecure=allow_insecure)
    meta = loaded.meta
    if meta.get("task") != "sentiment" or set(loaded.tensors) != {"W01", "w12"}:
        raise ValueError(f"cannot load a sentiment model from {directory}: it holds a {meta.get('task')!r} model")
    config = SentimentConfig.from_dict(meta["config"])
    vocab = Vocabulary.from_dict(meta["vocab"])
    secret = io.load_secret(directory, key_id=loaded.key_id, expect_scheme=loaded.scheme.name,
                            passphrase=passphrase, allow_insecure=allow_insecure)
    net = EncSentimentNet(loaded.scheme, loaded.tensors["W01"], loaded.tensors["w12"], config.make_activation())
    if net.vocab_size != len(vocab):
        raise ValueError(f"cannot load a sentiment model from {directory}: W01 has {net.vocab_size} rows but "
                         f"the vocabulary {len(vocab)} words")
    return net, KeyHolder(loaded.scheme, secret, terms=terms), vocab, config


# ---------------------------------------------------------------------------- trainer without a key holder
def parse_part(text: str) -> tuple[int, int]:
    """``"K/M"`` -> ``(K, M)`` with ``1 <= K <= M``.

    Raises:
        ValueError: not of that form.
    """
    k, sep, m = str(text).partition("/")
    try:
        part, parts = int(k), int(m)
    except ValueError:
        part = parts = 0
    if not sep or not 1 <= part <= parts:
        raise ValueError(f"cannot select a part: expected K/M with 1 <= K <= M, got {text!r}")
    return part, parts


def part_slice(n: int, part: int, parts: int) -> slice:
    """The ``part``-th (1-based) of ``parts`` contiguous, disjoint, near-equal slices of ``range(n)``."""
    if not 1 <= part <= parts:
        raise ValueError(f"cannot select part {part} of {parts}")
    return slice(n * (part - 1) // parts, n * part // parts)


def train_public(net: EncSentimentNet, ids: Sequence[np.ndarray], labels: np.ndarray, *, lr: float,
                 stop_when_exhausted: bool = False, keyholder: MaskedRefresh | None = None,
                 monitor_every: int | None = MONITOR_EVERY, progress: Callable[[int], None] | None = None) -> int:
    """Per-review SGD on ciphertexts with public material only: the trainer's side.

    Without ``keyholder`` nothing is refreshed or released, and a scheme with a budget
    stops when it runs out: ``train_step`` raises before changing any weight, so the
    reviews before it are trained and the weights stay consistent. With ``keyholder``
    (the owner's key service, :class:`henn.keyservice.RemoteKeyHolder`) the trainer
    refreshes exactly as :func:`train_encrypted` does, and the aggregates it releases
    go to the owner's log only.

    Args:
        net: the encrypted network (updated in place).
        ids, labels: the reviews (sorted distinct word indices) and their 1/0 labels.
        lr: learning rate.
        stop_when_exhausted: return early instead of raising when the budget runs out
            (the largest chunk one budget allows; the owner refreshes, training resumes).
        keyholder: who re-encrypts masked ciphertexts (``None``: nobody).
        monitor_every: reviews per aggregate released to the owner (with ``keyholder`` only).
        progress: called with 1 after each review.

    Returns:
        The number of reviews trained: all of them, or those before the budget ran out.

    Raises:
        NoiseBudgetExhausted / LevelExhaustedError: the budget ran out; the message says
            after how many reviews (the weights then hold exactly that many steps).
    """
    if len(ids) != len(labels):
        raise ValueError(f"cannot train: {len(ids)} reviews but {len(labels)} labels")
    trainer = SentimentTrainer(net, keyholder, monitor_every=monitor_every if keyholder is not None else None)
    try:
        for done, (review, y) in enumerate(zip(ids, labels)):
            try:
                step = trainer.step(review, int(y), lr)
                trainer.observe(step, int(y), lr)
            except (he_core.NoiseBudgetExhausted, he_core.LevelExhaustedError, he_core.RefreshRequired) as exc:
                if stop_when_exhausted and done:
                    return done
                if isinstance(exc, he_core.RefreshRequired):
                    raise he_core.RefreshRequired(
                        f"cannot train review {done + 1} of {len(ids)} without a key holder: {exc}. The scheme "
                        "needs the key holder's masked re-encryption for every review; train with the owner's "
                        "key service (owner: henn serve-keys; trainer: --keyholder ADDRESS)",
                        exc.ciphertext, exc.target) from None
                raise type(exc)(_out_of_budget(net, done, len(ids), exc)) from None
            if progress is not None:
                progress(1)
    finally:
        trainer.close()
    return len(ids)


def _out_of_budget(net: EncSentimentNet, done: int, total: int, exc: Exception) -> str:
    # The budget is shared by every trainer since the owner last encrypted, so the hint
    # is the owner's refresh round trip rather than a per-trainer limit.
    return (f"cannot train review {done + 1} of {total} without a key holder: the weights' noise budget ran out "
            f"after {done} reviews (W01 {net.W01.budget().remaining:.1f}, w12 {net.w12.budget().remaining:.1f} "
            f"bits left); {exc}. Refreshing needs the key holder: train with the owner's key service "
            "(owner: henn serve-keys; trainer: --keyholder ADDRESS), or train fewer reviews (--limit), let the "
            "owner refresh the model (henn decrypt-model, henn encrypt-model) and resume (--start; "
            "--until-exhausted trains as far as the budget goes)")
