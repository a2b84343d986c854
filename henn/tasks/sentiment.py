"""IMDB sentiment (the 2017 tutorial's network) as a configuration of :func:`henn.training.fit.fit`.

The network, in henn's layers:

* :class:`~henn.embedding.EmbeddingBag` ``W01`` ``(vocab, hidden)``: a review is the
  *set* of its vocabulary words and ``h = sum(W01[words])`` (no activation);
* :class:`~henn.layers.Linear` ``hidden -> 1`` without bias, its weight ``w12`` kept
  as a one-row table: the logit ``z = h . w12``;
* :class:`~henn.losses.PolyLogisticLoss` with a polynomial sigmoid ``s``: the gradient
  at the logit is ``s(z) - y``.

Training is :func:`~henn.training.fit.fit` with one review per step in data order
(the tutorial's per-review SGD). ``W01`` and ``w12`` live in the scheme's *table*
layout, where a review's gather and scatter are cheapest (for CKKS: coefficient
packing, no level spent); every operation a table cannot serve (the polynomial, an
update arriving in another packing) is moved through the key holder's masked refresh by
the one trainer, exactly as for any model.

:class:`SentimentConfig` holds the tuned hyper-parameters; :func:`prepare` turns
reviews into index arrays; the remaining functions are the task's life around the
trainer: job terms, encrypted prediction and evaluation, the model file, and the NumPy
float64 reference the encrypted runs are measured against.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import he_core
from he_core import Scheme

from ..activations import PolyActivation, make, sigmoid
from ..data.imdb import Reviews, split_validation
from ..data.text import TextConfig, Vocabulary
from ..embedding import Bags, EmbeddingBag
from ..keyholder import KeyHolder, MaskedRefresh, RefreshTerms
from ..layers import Linear
from ..losses import PolyLogisticLoss
from ..module import Parameter, Sequential
from ..tensor import EncTensor
from ..training import targets
from ..training.fit import fit, predict

_EPS = 1e-7

#: Levels one training step needs between refreshes: the polynomial sigmoid (degree 5: depth 3)
#: and the product of its output with a weight row.
STEP_DEPTH = 4
#: Refreshes per review at most: the logit into the polynomial's layout, and the two
#: updates into their tables' packing (CKKS; ``vhe`` refreshes when noise runs low).
REFRESHES_PER_REVIEW = 3
#: Reviews per released aggregate by default (the owner never sees fewer at once).
MONITOR_EVERY = 500
#: Whole-table refreshes a run may make (a scheme with a noise budget refreshes W01 now and
#: then; a packing scheme never does): they size the masks' job-wide entry count.
TABLE_REFRESHES = 64
#: Bounds the network declares, which size the refresh masks (a value beyond its bound is
#: still refreshed correctly; only its hiding weakens, SECURITY.md): every value it
#: refreshes (the scaled logit ``z / interval``, the weights: measured |z| < 30,
#: |W01|, |w12| < 4) stays below VALUE_BOUND; a review's hidden sum below HIDDEN_BOUND
#: (measured < 40), so an update ``lr (s(z) - y) h`` or ``lr (s(z) - y) w12`` stays below
#: ``2 lr HIDDEN_BOUND``.
VALUE_BOUND = 16.0
HIDDEN_BOUND = 256.0
#: The logit's bound (twice the polynomial's interval: the activation declares its scaled input <= 2).
LOGIT_BOUND = 40.0


def update_bound(config: "SentimentConfig") -> float:
    """The bound on every update entry that lands in a table (see :data:`HIDDEN_BOUND`)."""
    return 2.0 * config.lr * HIDDEN_BOUND


@dataclasses.dataclass(frozen=True)
class SentimentConfig:
    """Hyper-parameters of the network and of its polynomial sigmoid.

    Attributes:
        hidden: width of layer 1.
        lr: SGD learning rate.
        init_scale: ``w12`` starts as ``normal(0, init_scale)``; ``W01`` starts at zero
            (the tutorial's choice: every word starts neutral).
        activation: ``henn.activations.make`` kind of the polynomial sigmoid.
        degree: its degree.
        interval: half-width of the interval it is fitted on (must cover the logits).

    The initial weights are drawn from the OS CSPRNG (:func:`init_weights`); no seed is
    part of the configuration, so a model file does not let anyone replay them. How the
    defaults were chosen (degree 5 rather than 3, lr 0.002, the interval) is in
    ``docs/sentiment.md``.
    """

    hidden: int = 8
    lr: float = 0.002
    init_scale: float = 1.0
    activation: str = "sigmoid_lsq"
    degree: int = 5
    interval: float = 20.0

    def __post_init__(self) -> None:
        if int(self.hidden) != self.hidden or self.hidden < 1:
            raise ValueError(f"cannot configure the sentiment network: hidden must be a positive integer, "
                             f"got {self.hidden!r}")
        if not (self.lr > 0 and np.isfinite(self.lr)):
            raise ValueError(f"cannot configure the sentiment network: lr must be positive, got {self.lr!r}")
        if not (self.init_scale >= 0 and np.isfinite(self.init_scale)):
            raise ValueError(f"cannot configure the sentiment network: init_scale must be >= 0, "
                             f"got {self.init_scale!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SentimentConfig":
        # Files from before the CSPRNG initialisation also stored a "seed": it set nothing now.
        return cls(**{k: v for k, v in data.items() if k != "seed"})

    def make_activation(self) -> PolyActivation:
        return make(self.activation, self.degree, self.interval)

    def make_loss(self) -> PolyLogisticLoss:
        return PolyLogisticLoss(self.make_activation())


def init_weights(vocab_size: int, config: SentimentConfig,
                 rng: he_core.RandomSource | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The initial ``(W01, w12)``: zeros and ``normal(0, init_scale)`` from the OS CSPRNG.

    Args:
        vocab_size: rows of ``W01``.
        config: the network's configuration.
        rng: randomness (default the OS CSPRNG; tests may pass ``he_core.SeededRandom``).

    Returns:
        ``W01`` of shape ``(vocab_size, hidden)`` and ``w12`` of shape ``(hidden,)``.
    """
    if vocab_size < 1:
        raise ValueError("cannot initialise: the vocabulary is empty")
    w12 = config.init_scale * (rng or he_core.OsRandom()).normal(config.hidden)
    return np.zeros((vocab_size, config.hidden)), w12


# ---------------------------------------------------------------------------- the model
def build_model(scheme: Scheme, W01: np.ndarray, w12: np.ndarray, *, rng: Any = None) -> Sequential:
    """The network with plaintext initial weights encrypted under ``scheme``'s public key, both as tables."""
    w12 = np.asarray(w12, dtype=np.float64).reshape(1, -1)
    return model_from(EncTensor.encrypt(scheme, np.asarray(W01, dtype=np.float64), rng=rng, layout="table"),
                      EncTensor.encrypt(scheme, w12, rng=rng, layout="table"))


def model_from(W01: EncTensor, w12: EncTensor) -> Sequential:
    """The network around encrypted ``W01`` ``(vocab, hidden)`` and ``w12`` ``(1, hidden)`` (w12 transposed).

    Raises:
        ValueError: the shapes do not fit together.
    """
    if W01.size != w12.size or w12.rows != 1:
        raise ValueError(f"cannot build the sentiment network: W01 {W01.shape} and w12 {w12.shape} "
                         "(expected (vocab, hidden) and (1, hidden))")
    return Sequential(EmbeddingBag(W01, output_bound=HIDDEN_BOUND),
                      Linear(w12, None, encrypted_input=True, output_bound=LOGIT_BOUND))


def weights(model: Sequential) -> dict[str, EncTensor]:
    """``{"W01": ..., "w12": ...}``: the network's encrypted weights under the file's names."""
    return {"W01": model[0].weight.value, "w12": model[1].weight.value}


class _Named:
    """The weights under the file's names (what :func:`henn.io.save_model` stores)."""

    def __init__(self, model: Sequential):
        self._params = [(name, Parameter(t, name)) for name, t in weights(model).items()]

    def named_parameters(self):
        return list(self._params)


# ---------------------------------------------------------------------------- data
@dataclasses.dataclass
class Prepared:
    """Reviews turned into index arrays, ready to train on.

    Attributes:
        vocab: the vocabulary (built from the training part only).
        train_ids, train_labels: training reviews in training order.
        val_ids, val_labels: held-out reviews.

    A review with no vocabulary word keeps an empty index array: it changes no weight
    and is predicted ``s(0)``.
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


# ---------------------------------------------------------------------------- keys and terms
def terms_for(reviews: int, epochs: int, hidden: int, *, vocab: int = 16384, validation: int = 0,
              monitor_every: int = MONITOR_EVERY, statistical_bits: int = 30,
              whole_entries: int = 1) -> RefreshTerms:
    """The job terms a training run of this size needs (refresh and release budgets, with 10% slack).

    Args:
        reviews: training reviews per epoch.
        epochs: passes over them.
        hidden: width of layer 1 (the entries a refresh of a row reads).
        vocab: rows of ``W01`` (the entries a refresh of the whole table reads).
        validation: reviews whose encrypted predictions will be released one by one
            (on a packing scheme each logit is moved into the polynomial's layout).
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
    levels between refreshes (:meth:`he_core.Scheme.params_for_depth`); other schemes
    their defaults. ``terms`` may be a function of the keyed scheme (e.g. to pass
    :func:`whole_entries`).
    """
    if not params:
        chosen = he_core.scheme_class(scheme_name).params_for_depth(STEP_DEPTH)
        scheme = he_core.get_scheme(scheme_name, chosen) if chosen is not None else he_core.get_scheme(scheme_name)
    else:
        scheme = he_core.get_scheme(scheme_name, **params)
    secret, _public = scheme.keygen(he_core.KeyRequirements(sizes=(1, hidden)), rng=rng)
    return scheme, KeyHolder(scheme, secret, terms=terms(scheme) if callable(terms) else terms)


def learn_targets(scheme: he_core.Scheme, secret: he_core.SecretKey, W01: he_core.Ciphertext,
                  w12: he_core.Ciphertext, config: SentimentConfig, terms: RefreshTerms,
                  reviews: int = 3) -> list[dict]:
    """The refresh signatures training this network asks for: a dry run of a few steps (owner side).

    A job allows exactly these (:func:`henn.training.targets.learn_targets`): the job's
    scheme, key and weights (copied), a few synthetic reviews, the trainer's settings.
    """
    vocab = W01.shape[0]

    def build(s: he_core.Scheme) -> Sequential:
        return model_from(EncTensor(s, s.copy(W01)), EncTensor(s, s.copy(w12)))

    X = Bags([np.arange(min(3, vocab), dtype=np.int64)] * reviews, vocab)
    y = np.arange(reviews, dtype=np.float64) % 2
    return targets.learn_targets(scheme, secret, terms, build, X, y, lr=config.lr, batch_size=1,
                                 loss=config.make_loss(), shuffle=False, value_bound=VALUE_BOUND,
                                 update_bound=update_bound(config))


# ---------------------------------------------------------------------------- training
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


def train(model: Sequential, keyholder: MaskedRefresh | None, ids: Sequence[np.ndarray], labels: np.ndarray,
          config: SentimentConfig, *, epochs: int = 1, monitor_every: int | None = MONITOR_EVERY,
          progress: bool | str | dict = False) -> TrainResult:
    """Per-review SGD on ciphertexts: :func:`~henn.training.fit.fit`, one review per step, in data order.

    Args:
        model: the encrypted network (:func:`build_model`; updated in place).
        keyholder: the masked refresh and aggregate release (in-process, or the owner's
            key service); ``None`` trains with public material only until a budget runs
            out (see :func:`~henn.training.fit.fit`).
        ids: each review's word indices.
        labels: 1/0 per review.
        config: the learning rate and polynomial sigmoid.
        epochs: passes over the reviews (same order each pass).
        monitor_every: reviews per released aggregate (``None``: release nothing).
        progress: show a progress bar (see :func:`~henn.training.fit.fit`).
    """
    if len(labels) != len(ids):
        raise ValueError(f"cannot train: {len(ids)} reviews but {len(labels)} labels")
    X = Bags(ids, model[0].in_features)
    rounds = keyholder.refresh_rounds if keyholder is not None else 0
    history = fit(model, X, np.asarray(labels, dtype=np.float64), keyholder=keyholder, lr=config.lr, epochs=epochs,
                  batch_size=1, loss=config.make_loss(), shuffle=False, value_bound=VALUE_BOUND,
                  update_bound=update_bound(config), monitor=monitor_every is not None,
                  monitor_every=monitor_every, progress=progress)
    records = [{"reviews": a["samples"], "mae": a["value"]} for a in history.aggregates]
    refreshes = keyholder.refresh_rounds - rounds if keyholder is not None else 0
    return TrainResult(records, history.seconds, epochs * len(ids), refreshes)


def train_public(model: Sequential, ids: Sequence[np.ndarray], labels: np.ndarray, config: SentimentConfig, *,
                 keyholder: MaskedRefresh | None = None, stop_when_exhausted: bool = False,
                 monitor_every: int | None = MONITOR_EVERY, progress: bool | str | dict = False) -> int:
    """The trainer's side: train with public material only, through the owner's key service or none.

    Without ``keyholder`` nothing is refreshed or released, and a scheme with a budget
    stops when it runs out (the reviews before it are trained and no weight holds half a
    step). With ``keyholder`` (:class:`henn.keyservice.RemoteKeyHolder`) the trainer
    refreshes as in :func:`train`, and the aggregates go to the owner's log only.

    Args:
        stop_when_exhausted: return early instead of raising when the budget runs out
            (the largest chunk one budget allows; the owner refreshes, training resumes).

    Returns:
        The number of reviews trained: all of them, or those before the budget ran out.

    Raises:
        NoiseBudgetExhausted / LevelExhaustedError / RefreshRequired: the budget ran out
            (or the scheme needs a key holder for every review); the message says after
            how many reviews.
    """
    try:
        train(model, keyholder, ids, labels, config, monitor_every=monitor_every if keyholder is not None else None,
              progress=progress)
    except (he_core.NoiseBudgetExhausted, he_core.LevelExhaustedError, he_core.RefreshRequired) as exc:
        done = int(getattr(exc, "samples_done", 0))
        if keyholder is not None:
            raise
        if stop_when_exhausted and done:
            return done
        raise type(exc)(*_exhausted_args(exc, done, len(ids))) from None
    return len(ids)


def _exhausted_args(exc: Exception, done: int, total: int) -> tuple:
    hint = ("train with the owner's key service (owner: henn serve-keys; trainer: --keyholder ADDRESS)")
    if isinstance(exc, he_core.RefreshRequired):
        return (f"cannot train review {done + 1} of {total} without a key holder: {exc}. The scheme needs the key "
                f"holder's masked re-encryption for every review; {hint}", exc.ciphertext, exc.target)
    # The budget is shared by every trainer since the owner last encrypted, so the hint
    # is the owner's refresh round trip rather than a per-trainer limit.
    return (f"cannot train review {done + 1} of {total} without a key holder: the weights' noise budget ran out "
            f"after {done} reviews; {exc}. Refreshing needs the key holder: {hint}, or train fewer reviews "
            "(--limit), let the owner refresh the model (henn decrypt-model, henn encrypt-model) and resume "
            "(--start; --until-exhausted trains as far as the budget goes)",)


# ---------------------------------------------------------------------------- prediction
def predict_encrypted(model: Sequential, keyholder: KeyHolder, ids: Sequence[np.ndarray], config: SentimentConfig,
                      *, batch: int = 1000) -> np.ndarray:
    """Encrypted forward pass and ``s(z)``; the key holder *releases* (flooded) each prediction.

    Reviews with no vocabulary word get ``s(0)`` without a ciphertext. A table in a
    scheme-specific packing (CKKS) is read one review at a time, each prediction moved
    into the polynomial's layout and released on its own; otherwise reviews go in
    batches. Each released prediction (or batch) counts against the release budget.
    """
    loss = config.make_loss()
    p = np.full(len(ids), loss.activation.coeffs[0])
    present = np.array([i for i, r in enumerate(ids) if r.size], dtype=np.int64)
    if not present.size:
        return p
    table = weights(model)["W01"]
    width = table.rows
    packed = not keyholder.scheme.in_default_layout(table.ct)
    step = 1 if packed else batch
    for lo in range(0, present.size, step):
        part = present[lo:lo + step]
        out = predict(model, Bags([ids[i] for i in part], width), keyholder=keyholder, value_bound=VALUE_BOUND,
                      loss=loss)
        p[part] = keyholder.release(out)[:, 0]
    return p


def evaluate_encrypted(model: Sequential, keyholder: KeyHolder, ids: Sequence[np.ndarray], labels: np.ndarray,
                       config: SentimentConfig) -> dict:
    """Accuracy and throughput of encrypted prediction on labelled reviews."""
    start = time.perf_counter()
    p = predict_encrypted(model, keyholder, ids, config)
    seconds = time.perf_counter() - start
    y = np.asarray(labels)
    pred = (p > 0.5).astype(np.int64)
    return {"accuracy": float(np.mean(pred == y)) if y.size else float("nan"),
            "loss": float(np.mean(cross_entropy(p, y))) if y.size else float("nan"),
            "reviews": int(y.size), "seconds": seconds,
            "reviews_per_s": y.size / seconds if seconds > 0 else float("inf"), "predictions": pred}


def outgoing_weights(model: Sequential, keyholder: MaskedRefresh | None) -> dict[str, he_core.Ciphertext]:
    """The trained weights as they leave the trainer: re-encrypted by the key holder, or sanitised.

    Through a key holder each tensor is refreshed into its own layout (a masked
    refresh), so its noise is the key holder's own and the owner's decryption shows the
    weights and nothing of how they were computed (an approximate scheme's noise follows
    the data). Otherwise (an exact scheme, or no key holder) each is sanitised:
    re-randomised, its noise flooded.
    """
    scheme = weights(model)["W01"].scheme
    through = keyholder is not None and scheme.supports(he_core.Capability.APPROXIMATE)
    out = {}
    for name, tensor in weights(model).items():
        ct = tensor.ct
        out[name] = (keyholder.fresh_for_owner(ct, VALUE_BOUND, layout=scheme.layout_of(ct)) if through
                     else scheme.sanitize(ct))
    return out


def release_weights(model: Sequential, keyholder: KeyHolder) -> tuple[np.ndarray, np.ndarray]:
    """Key holder: the model's weights, released (noise-flooded) for the owner's check."""
    w = weights(model)
    return keyholder.release(w["W01"]), keyholder.release(w["w12"])[0]


def cross_entropy(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-review cross-entropy; ``p`` is clipped into ``(0, 1)`` (a polynomial may leave it)."""
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


# ---------------------------------------------------------------------------- the NumPy reference
def reference_logits(W01: np.ndarray, w12: np.ndarray, ids: Sequence[np.ndarray]) -> np.ndarray:
    """Plaintext logits of many reviews (one gather each)."""
    if not len(ids):
        return np.zeros(0)
    return np.stack([np.asarray(W01)[r].sum(axis=0) for r in ids]) @ np.asarray(w12).reshape(-1)


def clear_predictions(W01: np.ndarray, w12: np.ndarray, ids: Sequence[np.ndarray],
                      activation: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Predicted labels from plaintext (e.g. released) weights."""
    return (activation(reference_logits(W01, w12, ids)) > 0.5).astype(np.int64)


def train_reference(data: Prepared, config: SentimentConfig, *, epochs: int = 1,
                    activation: Callable[[np.ndarray], np.ndarray] = sigmoid,
                    init: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """The same per-review SGD in NumPy float64: the accuracy the encrypted runs are measured against.

    Args:
        init: the initial ``(W01, w12)`` (default a fresh CSPRNG draw); pass the
            encrypted run's to compare like with like.

    Returns:
        ``W01``, ``w12``, ``train_accuracy`` (running, as in training),
        ``validation_accuracy``, ``logit_range`` and ``logit_p99`` (the largest and
        99th-percentile ``|z|`` on the validation reviews, to size the polynomial's interval).
    """
    W01, w12 = init if init is not None else init_weights(len(data.vocab), config)
    W01, w12 = np.array(W01, dtype=np.float64), np.array(w12, dtype=np.float64).reshape(-1)
    correct = 0
    for _ in range(epochs):
        for review, y in zip(data.train_ids, data.train_labels):
            h = W01[review].sum(axis=0)
            p = float(activation(np.array(h @ w12)))
            correct += (p > 0.5) == (y == 1)
            step = -config.lr * (p - int(y))
            g1 = step * w12  # w12 before its update, as the tutorial does
            w12 += step * h
            np.add.at(W01, review, g1)
    z = reference_logits(W01, w12, data.val_ids)
    return {"W01": W01, "w12": w12, "train_accuracy": correct / max(epochs * len(data.train_ids), 1),
            "validation_accuracy": float(np.mean((activation(z) > 0.5) == (data.val_labels == 1))),
            "logit_range": float(np.max(np.abs(z))) if z.size else 0.0,
            "logit_p99": float(np.percentile(np.abs(z), 99)) if z.size else 0.0}


# ---------------------------------------------------------------------------- saving
def save_sentiment(directory, model: Sequential, keyholder: KeyHolder, vocab: Vocabulary,
                   config: SentimentConfig, summary: dict | None = None) -> Path:
    """Write the encrypted model (weights, public keys, vocabulary, config) and the 0600 secret key."""
    from .. import io

    scheme = weights(model)["W01"].scheme
    meta = {"task": "sentiment", "config": config.to_dict(), "vocab": vocab.to_dict(),
            "layout": {"W01": "(vocab, hidden)", "w12": "(1, hidden): w12 transposed"},
            "summary": summary or {}}
    return io.save_model(directory, _Named(model), scheme, meta=meta, secret=keyholder.export_secret_key())


def load_sentiment(directory, *, terms: RefreshTerms | None = None, allow_insecure: bool = False,
                   passphrase: bytes | None = None) -> tuple[Sequential, KeyHolder, Vocabulary, SentimentConfig]:
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
    model = model_from(loaded.tensors["W01"], loaded.tensors["w12"])
    if model[0].in_features != len(vocab):
        raise ValueError(f"cannot load a sentiment model from {directory}: W01 has {model[0].in_features} rows "
                         f"but the vocabulary {len(vocab)} words")
    return model, KeyHolder(loaded.scheme, secret, terms=terms), vocab, config


# ---------------------------------------------------------------------------- parts of the training split
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
