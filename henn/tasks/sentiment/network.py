"""The sentiment network: its configuration, its initial weights, and the henn layers it is built from.

* :class:`~henn.embedding.EmbeddingBag` ``W01`` ``(vocab, hidden)``: a review is the
  *set* of its vocabulary words and ``h = sum(W01[words])`` (no activation);
* :class:`~henn.layers.Linear` ``hidden -> 1`` without bias, its weight ``w12`` kept
  as a one-row table: the logit ``z = h . w12``;
* :class:`~henn.losses.PolyLogisticLoss` with a polynomial sigmoid ``s``: the gradient
  at the logit is ``s(z) - y``.

Both weights live in the scheme's *table* layout, where a review's gather and scatter
are cheapest. The bounds below are what the network declares to the refresh masks.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

import he_core
from he_core import Scheme

from ...activations import PolyActivation, make
from ...embedding import EmbeddingBag
from ...layers import Linear
from ...losses import PolyLogisticLoss
from ...module import Sequential
from ...schedules import LinearDecayLR, LRSchedule, named
from ...tensor import EncTensor

#: Levels one training step needs between refreshes: the polynomial sigmoid (degree 5: depth 3)
#: and the product of its output with a weight row.
STEP_DEPTH = 4
#: Bounds the network declares, which size the refresh masks (a value beyond its bound is
#: still refreshed correctly; only its hiding weakens, SECURITY.md): every value it
#: refreshes (the scaled logit ``z / interval``, the weights) stays below VALUE_BOUND; a
#: review's hidden sum below HIDDEN_BOUND, so an update ``lr (s(z) - y) h`` or
#: ``lr (s(z) - y) w12`` stays below ``2 lr HIDDEN_BOUND``. The headroom over the values
#: actually seen on IMDB is measured in docs/sentiment.md ("The bounds the network declares").
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
        schedule: the learning rate's schedule over a run, one of
            :data:`henn.schedules.SCHEDULES`: ``"constant"`` (``lr`` at every step) or
            ``"linear"`` (from ``lr`` falling towards ``lr_end * lr``).
        lr_end: the fraction of ``lr`` a linear schedule falls towards, in (0, 1].

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
    schedule: str = "constant"
    lr_end: float = 0.1

    def __post_init__(self) -> None:
        if int(self.hidden) != self.hidden or self.hidden < 1:
            raise ValueError(f"cannot configure the sentiment network: hidden must be a positive integer, "
                             f"got {self.hidden!r}")
        if not (self.lr > 0 and np.isfinite(self.lr)):
            raise ValueError(f"cannot configure the sentiment network: lr must be positive, got {self.lr!r}")
        if not (self.init_scale >= 0 and np.isfinite(self.init_scale)):
            raise ValueError(f"cannot configure the sentiment network: init_scale must be >= 0, "
                             f"got {self.init_scale!r}")
        try:
            LinearDecayLR(self.lr, self.lr_end)  # lr_end is stored in model files: checked whatever the schedule
            self.lr_schedule()
        except ValueError as exc:
            raise ValueError(f"cannot configure the sentiment network: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SentimentConfig":
        # Files from before the CSPRNG initialisation also stored a "seed": it set nothing now.
        return cls(**{k: v for k, v in data.items() if k != "seed"})

    def lr_schedule(self) -> LRSchedule:
        """The learning rate of every step (:mod:`henn.schedules`); its peak is ``lr``."""
        return named(self.schedule, self.lr, self.lr_end)

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

