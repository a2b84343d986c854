"""Training and evaluating the sentiment network with encrypted weights.

Roles: the *trainer* holds the encrypted ``W01`` / ``w12`` and the plaintext reviews
(pre-tokenised index arrays) and runs every SGD step on ciphertexts with public
material only. The :class:`~henn.keyholder.KeyHolder` decrypts (a) the training
outputs, in batches of ``monitor_every`` reviews, for the running loss and accuracy
the owner monitors, (b) validation predictions, computed encrypted, and (c) the final
weights when the owner asks to check them in the clear. It refreshes the weights
when their budget runs low (never for schemes with an unbounded budget).

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
from ..keyholder import KeyHolder, MaskedRefresh
from ..models.sentiment import EncSentimentNet, PlainSentimentNet, SentimentConfig, init_weights

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


def setup(scheme_name: str, hidden: int, *, rng: Any = None, **params: Any) -> tuple[he_core.Scheme, KeyHolder]:
    """Create the scheme, generate keys for sizes ``(1, hidden)``, give the secret to a key holder.

    Without ``params`` a leveled scheme gets its cheapest set with :data:`STEP_DEPTH`
    levels (:meth:`he_core.Scheme.params_for_depth`); other schemes their defaults.
    """
    if not params:
        chosen = he_core.scheme_class(scheme_name).params_for_depth(STEP_DEPTH)
        scheme = he_core.get_scheme(scheme_name, chosen) if chosen is not None else he_core.get_scheme(scheme_name)
    else:
        scheme = he_core.get_scheme(scheme_name, **params)
    secret, _public = scheme.keygen(he_core.KeyRequirements(sizes=(1, hidden)), rng=rng)
    return scheme, KeyHolder(scheme, secret)


def cross_entropy(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-review cross-entropy; ``p`` is clipped into ``(0, 1)`` (a polynomial may leave it)."""
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


@dataclasses.dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        history: one record per ``monitor_every`` reviews: ``reviews`` seen, ``loss``
            and ``accuracy`` over that chunk, ``running_accuracy`` since the start.
        seconds: wall time of the training loop (key generation and data preparation excluded).
        reviews: number of training steps run.
        refreshes: refresh rounds made on the weights.
    """

    history: list[dict]
    seconds: float
    reviews: int
    refreshes: int = 0

    @property
    def reviews_per_s(self) -> float:
        return self.reviews / self.seconds if self.seconds > 0 else float("inf")

    @property
    def final_loss(self) -> float:
        return self.history[-1]["loss"] if self.history else float("nan")

    @property
    def train_accuracy(self) -> float:
        return self.history[-1]["running_accuracy"] if self.history else float("nan")


@dataclasses.dataclass(frozen=True)
class RefreshPolicy:
    """When the trainer asks the key holder to re-encrypt.

    Only schemes whose budget is not ``"unbounded"`` refresh at all. After each step the
    budgets of ``w12`` (one row: cheap to refresh) and ``W01`` (the whole vocabulary:
    costly, so rare) are compared with their reserves; a step that still runs out
    (``NoiseBudgetExhausted`` / ``LevelExhaustedError``, raised before any weight
    changed) refreshes both and is retried once.

    Attributes:
        step: re-encrypt the scalar step of every review (keeps noise growth additive).
        w12_reserve, w01_reserve: refresh when ``budget.remaining`` falls below these
            (in the budget's own unit). The defaults were measured with ``vhe`` on IMDB
            (one step's ``inner`` and ``polyval`` use about 12 bits above the weights'
            noise).

    A scheme counting *levels* gets :meth:`for_kind`'s level policy instead: its
    packed tables cost no level to gather from or scatter into, and whatever else
    needs re-encrypting is named by the scheme itself (:class:`he_core.RefreshRequired`).
    """

    step: bool = True
    w12_reserve: float = 16.0
    w01_reserve: float = 14.0

    @classmethod
    def for_kind(cls, kind: str) -> "RefreshPolicy":
        """The default policy for a budget kind (``"noise"``, ``"levels"``, ``"unbounded"``)."""
        if kind == "levels":
            return cls(step=False, w12_reserve=1.0, w01_reserve=1.0)
        return cls()


def has_budget(tensor) -> bool:
    """Whether ``tensor``'s scheme tracks a finite noise/level budget (the plain twin does not)."""
    return tensor.budget().get("kind") != "unbounded"


def train_encrypted(net: EncSentimentNet, keyholder: KeyHolder, ids: Sequence[np.ndarray], labels: np.ndarray,
                    *, lr: float, epochs: int = 1, monitor_every: int = 1000,
                    policy: RefreshPolicy | None = None,
                    progress: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Per-review SGD on ciphertexts.

    Args:
        net: the encrypted network (updated in place).
        keyholder: decrypts the monitored outputs and refreshes.
        ids: each review's sorted distinct word indices.
        labels: 1/0 per review.
        lr: learning rate.
        epochs: passes over the reviews (same order each pass).
        monitor_every: decrypt the outputs every this many reviews (one key-holder round trip).
        policy: when to refresh (default: :meth:`RefreshPolicy.for_kind` of the weights'
            budget; ignored by schemes with an unbounded budget).
        progress: called after every monitored chunk with (reviews in the chunk, record).

    Returns:
        The history and timings.
    """
    if epochs < 1 or monitor_every < 1:
        raise ValueError(f"cannot train: epochs and monitor_every must be positive, got {epochs}, {monitor_every}")
    labels = [int(y) for y in labels]
    if len(labels) != len(ids):
        raise ValueError(f"cannot train: {len(ids)} reviews but {len(labels)} labels")
    bounded = has_budget(net.W01)
    policy = policy or RefreshPolicy.for_kind(net.W01.budget()["kind"])
    trainer = _BoundedTrainer(net, keyholder, policy) if bounded else None
    _attach_refresh(net, keyholder, policy if bounded else None)
    history: list[dict] = []
    seen = correct_total = 0
    start = time.perf_counter()
    try:
        for _ in range(epochs):
            for lo in range(0, len(ids), monitor_every):
                chunk_ids, chunk_y = ids[lo:lo + monitor_every], labels[lo:lo + monitor_every]
                run = _train_chunk if trainer is None else trainer.chunk
                steps = run(net, chunk_ids, chunk_y, lr)
                record, correct = _monitor(net, keyholder, steps, chunk_y, lr)
                seen += len(chunk_y)
                correct_total += correct
                record.update(reviews=seen, running_accuracy=correct_total / seen)
                history.append(record)
                if progress is not None:
                    progress(len(chunk_y), record)
    finally:
        net.refresh = net.refresh_to = None
    refreshes = trainer.refreshes if trainer is not None else 0
    return TrainResult(history, time.perf_counter() - start, seen, refreshes)


def _attach_refresh(net: EncSentimentNet, keyholder: MaskedRefresh, policy: RefreshPolicy | None) -> None:
    """Give the network its refresh hooks: the scalar step's (noise budgets) and the scheme-requested ones."""
    net.refresh = StepRefresher(net.scheme, keyholder) if policy is not None and policy.step else None
    net.refresh_to = _refresh_into(keyholder)


def _refresh_into(keyholder: MaskedRefresh) -> Callable:
    """``(ciphertext, layout) -> ciphertext``: the masked refresh into the layout a scheme asked for."""
    return lambda ct, layout: keyholder.refresh(ct, layout=layout)


class StepRefresher:
    """The masked refresh of the scalar step: :meth:`KeyHolder.refresh`'s protocol, made cheap.

    The trainer masks the ``(1, 1)`` step with a uniform ``r`` on ``[-M, M]`` (the key
    holder's ``mask_bound``, on the ciphertext's fixed-point grid, from the OS CSPRNG),
    the key holder re-encrypts the masked value (it sees only ``value + r``), and the
    trainer removes ``r``. Two things make it a few scheme calls instead of a dozen
    array operations per review: the masks of :attr:`BLOCK` reviews come from one CSPRNG
    draw (each draw has a fixed cost that dominates for one number), and a mask is a
    Python float, which the scheme interface takes on its scalar fast path. Anything
    but a ``(1, 1)`` ciphertext goes through :meth:`KeyHolder.refresh` unchanged.

    Args:
        scheme: the scheme the steps belong to.
        keyholder: the key holder whose re-encryption step is used (and counted).
        rng: mask randomness (default: the OS CSPRNG).
    """

    BLOCK = 1024

    def __init__(self, scheme: he_core.Scheme, keyholder: MaskedRefresh,
                 rng: he_core.RandomSource | None = None):
        self.scheme, self.keyholder = scheme, keyholder
        self._rng = rng or he_core.OsRandom()
        self._masks: list[float] = []
        self._grid = 0.0

    def _mask(self, scale: float) -> float:
        # Same grid as KeyHolder.draw_mask: multiples of 1/scale keep mask-then-unmask exact.
        grid = float(scale) if scale >= 2 else 2.0**30
        if grid != self._grid or not self._masks:
            half = int(self.keyholder.mask_bound * grid)
            self._masks = (self._rng.integers(-half, half, self.BLOCK) / grid).tolist()
            self._grid = grid
        return self._masks.pop()

    def __call__(self, step):
        if tuple(step.shape) != (1, 1):
            return self.keyholder.refresh(step)
        mask = self._mask(step.scale)
        masked = self.scheme.add_plain(step, mask)              # trainer side
        fresh_masked = self.keyholder.reencrypt(masked)         # key holder side: sees value + mask only
        return self.scheme.sub_plain(fresh_masked, mask)        # trainer side


def _train_chunk(net: EncSentimentNet, ids: Sequence[np.ndarray], labels: Sequence[int], lr: float) -> list:
    step = net.train_step
    # A review without vocabulary words has h = 0: its update is zero, only p = s(0) is monitored.
    return [step(review, y, lr) if review.size else None for review, y in zip(ids, labels)]


class _BoundedTrainer:
    """The per-review loop for schemes with a budget: refreshes between steps."""

    def __init__(self, net: EncSentimentNet, keyholder: MaskedRefresh, policy: RefreshPolicy):
        self.net, self.keyholder, self.policy = net, keyholder, policy
        self.refreshes = 0

    def chunk(self, net: EncSentimentNet, ids: Sequence[np.ndarray], labels: Sequence[int], lr: float) -> list:
        out = []
        for review, y in zip(ids, labels):
            out.append(self.step(review, y, lr) if review.size else None)
            self.keep_fresh()
        return out

    def step(self, review: np.ndarray, y: int, lr: float):
        try:
            return self.net.train_step(review, y, lr)
        except (he_core.NoiseBudgetExhausted, he_core.LevelExhaustedError):
            # Raised before any in-place update: refresh everything and retry once.
            self.refresh("w12")
            self.refresh("W01")
            return self.net.train_step(review, y, lr)

    def keep_fresh(self) -> None:
        net, policy = self.net, self.policy
        if net.w12.budget().remaining < policy.w12_reserve:
            self.refresh("w12")
        if net.W01.budget().remaining < policy.w01_reserve:
            self.refresh("W01")

    def refresh(self, name: str) -> None:
        tensor = getattr(self.net, name)
        setattr(self.net, name, self.keyholder.refresh(tensor, layout=self.net.scheme.layout_of(tensor.ct)))
        self.refreshes += 1


def _monitor(net: EncSentimentNet, keyholder: KeyHolder, steps: list, labels: Sequence[int],
             lr: float) -> tuple[dict, int]:
    """Key holder: decrypt a chunk's steps ``-lr (p - y)`` in one round trip; loss and accuracy."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.full(y.size, net.coeffs[0])
    present = [i for i, d in enumerate(steps) if d is not None]
    if present and net.scheme.supports(he_core.Capability.PACKING):
        # Gathering scalars into one packed batch would cost a rotation each: decrypt one by one.
        p[present] = [keyholder.decrypt(steps[i])[0, 0] / -lr + y[i] for i in present]
    elif present:
        batch = net.scheme.concat_rows([steps[i] for i in present])
        p[present] = keyholder.decrypt(batch)[:, 0] / -lr + y[present]
    correct = int(np.sum((p > 0.5) == (y == 1)))
    return {"loss": float(np.mean(cross_entropy(p, y))), "accuracy": correct / y.size}, correct


def refresh_weights(net: EncSentimentNet, keyholder: KeyHolder) -> None:
    """Re-encrypt the weight tensors whose budget is below the policy's reserve (before inference)."""
    if not has_budget(net.W01):
        return
    policy = RefreshPolicy.for_kind(net.W01.budget()["kind"])
    for name, reserve in (("W01", policy.w01_reserve), ("w12", policy.w12_reserve)):
        tensor = getattr(net, name)
        if tensor.budget().remaining < reserve or policy.step:  # noise budgets: always start fresh
            setattr(net, name, keyholder.refresh(tensor, layout=net.scheme.layout_of(tensor.ct)))


def predict_encrypted(net: EncSentimentNet, keyholder: KeyHolder, ids: Sequence[np.ndarray],
                      *, batch: int = 1000) -> np.ndarray:
    """Encrypted forward pass; only the key holder decrypts the outputs ``p``.

    Reviews with no vocabulary word get ``s(0)`` without a ciphertext. On a scheme with
    a budget the weights are refreshed first, so a long training run leaves room.
    """
    refresh_weights(net, keyholder)
    p = np.full(len(ids), net.coeffs[0])
    present = np.array([i for i, r in enumerate(ids) if r.size], dtype=np.int64)
    if present.size and net.scheme.layout_of(net.W01.ct) is not None:
        # A packed table (its gathered rows cannot be batched or enter the polynomial
        # without the key holder): decrypting each encrypted logit beats re-encrypting
        # each gathered row; the key holder applies the polynomial to the logits it decrypts.
        net.refresh_to = _refresh_into(keyholder)
        try:
            z = [keyholder.decrypt(net.logit(ids[i]))[0, 0] for i in present]
        finally:
            net.refresh_to = None
        p[present] = net.activation.value(np.asarray(z))
        return p
    for lo in range(0, present.size, batch):
        part = present[lo:lo + batch]
        p[part] = keyholder.decrypt(net.forward_batch([ids[i] for i in part]))[:, 0]
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
    """Predicted labels from plaintext (e.g. decrypted) weights."""
    net = PlainSentimentNet(W01, w12, activation)
    return (activation(net.logits(ids)) > 0.5).astype(np.int64)


def decrypt_weights(net: EncSentimentNet, keyholder: KeyHolder) -> tuple[np.ndarray, np.ndarray]:
    """Key holder: the model's weights in the clear (for the owner's check)."""
    return keyholder.decrypt(net.W01), keyholder.decrypt(net.w12)[0]


def train_reference(data: Prepared, config: SentimentConfig, *, epochs: int = 1,
                    activation: Callable[[np.ndarray], np.ndarray] = sigmoid) -> dict:
    """Train the NumPy float64 reference on ``data`` and report its validation accuracy and logits.

    Returns:
        ``net``, ``train_accuracy`` (running, as in training), ``validation_accuracy``,
        ``logit_range`` and ``logit_p99`` (the largest and 99th-percentile ``|z|`` on the
        validation reviews, to size the polynomial's fit interval).
    """
    W01, w12 = init_weights(len(data.vocab), config)
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


def load_sentiment(directory) -> tuple[EncSentimentNet, KeyHolder, Vocabulary, SentimentConfig]:
    """Read a model written by :func:`save_sentiment`, with the key holder of its saved key.

    Raises:
        FileNotFoundError: missing model or key file.
        he_core.FormatError: corrupt files, or a key that is not the model's.
        ValueError: the model is not a sentiment model.
    """
    from .. import io

    loaded = io.load_model(directory)
    meta = loaded.meta
    if meta.get("task") != "sentiment" or set(loaded.tensors) != {"W01", "w12"}:
        raise ValueError(f"cannot load a sentiment model from {directory}: it holds a {meta.get('task')!r} model")
    config = SentimentConfig.from_dict(meta["config"])
    vocab = Vocabulary.from_dict(meta["vocab"])
    secret = io.load_secret(directory, key_id=loaded.key_id, expect_scheme=loaded.scheme.name)
    net = EncSentimentNet(loaded.scheme, loaded.tensors["W01"], loaded.tensors["w12"], config.make_activation())
    if net.vocab_size != len(vocab):
        raise ValueError(f"cannot load a sentiment model from {directory}: W01 has {net.vocab_size} rows but "
                         f"the vocabulary {len(vocab)} words")
    return net, KeyHolder(loaded.scheme, secret), vocab, config


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
                 policy: RefreshPolicy | None = None,
                 progress: Callable[[int], None] | None = None) -> int:
    """Per-review SGD on ciphertexts with public material only: the trainer's side.

    Nothing is decrypted, so there is no loss to monitor. Without ``keyholder`` nothing
    is refreshed either, and a scheme with a noise budget stops when it runs out:
    ``train_step`` raises before changing any weight, so the reviews before it are
    trained and the weights stay consistent. With ``keyholder`` (the owner's key
    service, :class:`henn.keyservice.RemoteKeyHolder`) the trainer refreshes exactly as
    :func:`train_encrypted` does, through masked re-encryptions only.

    Args:
        net: the encrypted network (updated in place).
        ids, labels: the reviews (sorted distinct word indices) and their 1/0 labels.
        lr: learning rate.
        stop_when_exhausted: return early instead of raising when the budget runs out
            (the largest chunk one budget allows; the owner refreshes, training resumes).
        keyholder: who re-encrypts masked ciphertexts (``None``: nobody).
        policy: when to refresh (with ``keyholder`` only).
        progress: called with 1 after each review.

    Returns:
        The number of reviews trained: all of them, or those before the budget ran out.

    Raises:
        NoiseBudgetExhausted / LevelExhaustedError: the budget ran out; the message says
            after how many reviews (the weights then hold exactly that many steps).
    """
    if len(ids) != len(labels):
        raise ValueError(f"cannot train: {len(ids)} reviews but {len(labels)} labels")
    bounded = keyholder is not None and has_budget(net.W01)
    policy = policy or RefreshPolicy.for_kind(net.W01.budget()["kind"])
    trainer = _BoundedTrainer(net, keyholder, policy) if bounded else None
    if keyholder is not None:
        _attach_refresh(net, keyholder, policy if bounded else None)
    else:
        net.refresh = net.refresh_to = None
    try:
        for done, (review, y) in enumerate(zip(ids, labels)):
            if review.size:
                try:
                    if trainer is None:
                        net.train_step(review, int(y), lr)
                    else:
                        trainer.step(review, int(y), lr)
                        trainer.keep_fresh()
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
        net.refresh = net.refresh_to = None
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
