"""The 2017 tutorial's sentiment network, in the clear and with encrypted weights.

Network (Trask's IMDB network): a review is the *set* of vocabulary words it
contains. With ``W01`` of shape ``(vocab, hidden)`` and ``w12`` of shape ``(hidden,)``:

* ``h = sum(W01[words])`` — layer 1, **no activation**;
* ``z = h . w12`` and ``p = sigmoid(z)`` (here a polynomial ``s(z)`` when encrypted);
* per-review SGD on the cross-entropy loss, whose gradient at the logit is
  ``delta = p - y``: ``w12 -= lr * delta * h`` and ``W01[words] -= lr * delta * w12``
  (with ``w12`` *before* its update, as the tutorial does).

Two implementations of exactly that arithmetic:

* :class:`PlainSentimentNet` — NumPy float64, any activation (the exact sigmoid for
  the reference accuracy; the polynomial to be the oracle of the encrypted one);
* :class:`EncSentimentNet` — ``W01`` and ``w12`` encrypted under one scheme (reviews
  stay plaintext index arrays). One training step is 7 scheme calls plus
  one ``polyval``: ``row_sum`` (gather-sum), ``inner``, ``mul_plain`` by ``1/interval``,
  ``polyval`` (``-y`` and ``-lr`` folded into its coefficients, so it returns the scaled
  step directly), two ``mul`` with size-1 broadcasting and two in-place ``index_add_``
  (scatter-add). Schemes with a noise budget also re-encrypt the scalar step through
  the key holder (see :meth:`EncSentimentNet.train_step`).

Layout: ``W01`` is one encrypted row of length ``hidden`` per vocabulary word; ``w12``
is stored *transposed*, as a single ``(1, hidden)`` row, so ``z`` is one ``inner``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

import he_core
from he_core import Scheme

from ..activations import PolyActivation, sigmoid
from ..tensor import EncTensor


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
    part of the configuration, so a model file does not let anyone replay them.

    The defaults were tuned on the plaintext reference (20,000 IMDB training reviews,
    5,000 held out, one epoch; vocabulary ``min_count=10``, ``polarity_cutoff=0.2``):
    over split seeds 0-3 the degree-5 polynomial network reaches 0.879 / 0.871 / 0.883 /
    0.873 and the exact-sigmoid one 0.878 / 0.874 / 0.884 / 0.874 (``lr=0.003`` was
    as good on seed 0 but fell to 0.858 on seed 1). Degree 3 is not used: its
    negative cubic term makes ``s(z)`` fall again beyond its peak, so a review whose
    logit overshoots is pushed further out and training diverges. The degree-5 fit ends
    in a positive ``z^5`` term that pulls outliers back, and ``lr`` is small enough
    that one step (which moves ``z`` by about ``lr * n_words * |w12|^2``) does not jump
    across the interval. 99% of the validation logits lie within ``[-15, 15]``; on
    ``[-20, 20]`` the only real root of ``s(z) - 1/2`` is 0, so the polynomial's
    decisions equal sigmoid's for every logit.
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
        from ..activations import make
        return make(self.activation, self.degree, self.interval)


def init_weights(vocab_size: int, config: SentimentConfig,
                 rng: he_core.RandomSource | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The initial ``(W01, w12)``: zeros and ``normal(0, init_scale)`` from the OS CSPRNG.

    The owner initialises and keeps nothing that would let a trainer replay it (a
    trainer who knew the initial weights could follow training in the clear).

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


def _check_ids(ids: np.ndarray, vocab_size: int) -> None:
    if ids.size and (ids[0] < 0 or ids[-1] >= vocab_size):
        raise IndexError(f"word index out of range for a vocabulary of {vocab_size}")


class PlainSentimentNet:
    """The reference: the network in NumPy float64.

    Args:
        W01: ``(vocab, hidden)`` initial first-layer weights (copied).
        w12: ``(hidden,)`` initial output weights (copied).
        activation: ``sigmoid`` by default; pass ``PolyActivation.value`` to mirror
            the encrypted network.
    """

    def __init__(self, W01: np.ndarray, w12: np.ndarray,
                 activation: Callable[[np.ndarray], np.ndarray] = sigmoid):
        self.W01 = np.array(W01, dtype=np.float64)
        self.w12 = np.array(w12, dtype=np.float64).reshape(-1)
        if self.W01.ndim != 2 or self.W01.shape[1] != self.w12.size:
            raise ValueError(f"cannot build the network: W01 {self.W01.shape} and w12 {self.w12.shape} disagree")
        self.activation = activation

    def logit(self, ids: np.ndarray) -> float:
        return float(self.W01[ids].sum(axis=0) @ self.w12)

    def predict(self, ids: np.ndarray) -> float:
        """``p`` for one review (its sorted distinct word indices)."""
        return float(self.activation(np.array(self.logit(ids))))

    def logits(self, reviews: Sequence[np.ndarray]) -> np.ndarray:
        """The logits of many reviews (vectorised: one gather per review)."""
        H = np.stack([self.W01[ids].sum(axis=0) for ids in reviews]) if len(reviews) else np.zeros((0, 1))
        return H @ self.w12 if len(reviews) else np.zeros(0)

    def train_step(self, ids: np.ndarray, label: int, lr: float) -> float:
        """One SGD step on one review; returns ``p`` before the update."""
        h = self.W01[ids].sum(axis=0)
        p = float(self.activation(np.array(h @ self.w12)))
        step = -lr * (p - label)
        g1 = step * self.w12           # uses w12 before its update
        self.w12 += step * h
        self.W01[ids] += g1            # ids are distinct, so fancy-index += is exact
        return p


class EncSentimentNet:
    """The network with ``W01`` and ``w12`` encrypted under ``scheme``.

    Args:
        scheme: any he_core scheme with public keys installed (multiplication and
            inner products needed).
        W01: encrypted ``(vocab, hidden)``.
        w12: encrypted ``(1, hidden)`` (``w12`` transposed).
        activation: the polynomial sigmoid.

    Attributes:
        refresher: ``None``, or the trainer's masked refresh
            (:class:`henn.keyholder.MaskedRefresh`). When the scheme answers an
            operation with :class:`he_core.RefreshRequired` (a packing scheme whose
            gathered rows must be re-encrypted before entering the sigmoid, or whose
            update must reach the table at its level), the operand goes through it and
            the operation is repeated; without it the error propagates.
        refresh_step: re-encrypt each review's scalar step through ``refresher`` (the
            trainer sets it for schemes with a noise budget: it cuts the
            ``W01 -> step -> W01`` noise loop, so the weights' noise grows additively).
    """

    #: Bounds the model vouches for, which size the refresh masks (he_core.Scheme.refresh_plan):
    #: |u| = |z| / interval stays below 1 on the polynomial's interval (twice that is
    #: masked: a logit beyond it is outside the model anyway); |s(z) - y| <= 2 there, so a
    #: step is at most 2 lr; weights stay below WEIGHT_BOUND and a review's hidden layer
    #: below HIDDEN_BOUND (measured on IMDB: |W01|, |w12| < 4, |h| < 40). A value beyond its
    #: bound is still refreshed correctly; only its hiding weakens (SECURITY.md).
    U_BOUND = 2.0
    WEIGHT_BOUND = 64.0
    HIDDEN_BOUND = 256.0

    def __init__(self, scheme: Scheme, W01: EncTensor, w12: EncTensor, activation: PolyActivation):
        if W01.size != w12.size or w12.rows != 1:
            raise ValueError(f"cannot build the encrypted network: W01 {W01.shape} and w12 {w12.shape} "
                             "(expected (vocab, hidden) and (1, hidden))")
        self.scheme = scheme
        self.W01 = W01
        self.w12 = w12
        self.activation = activation
        self.refresher: Any = None
        self.refresh_step = False
        self.coeffs = tuple(activation.coeffs)
        # The polynomial is evaluated in u = z / interval: powers of u stay near 1 where
        # powers of z (|z| up to ~30) would leave a fixed-point scheme's range.
        self.z_scale = 1.0 / activation.interval
        self.u_coeffs = tuple(c * activation.interval ** i for i, c in enumerate(self.coeffs))
        self._step_cache: dict[tuple[int, float], tuple[float, ...]] = {}

    @classmethod
    def encrypt(cls, scheme: Scheme, W01: np.ndarray, w12: np.ndarray, activation: PolyActivation,
                *, rng: Any = None) -> "EncSentimentNet":
        """Encrypt plaintext initial weights with the scheme's public key (both as tables).

        ``w12`` is a one-row table: a packing scheme then keeps it in the layout its
        inner product with a gathered row needs, and refreshes never change packing.
        """
        enc_W01 = EncTensor.encrypt(scheme, np.asarray(W01, dtype=np.float64), rng=rng, layout="table")
        enc_w12 = EncTensor.encrypt(scheme, np.asarray(w12, dtype=np.float64).reshape(1, -1), rng=rng,
                                    layout="table")
        return cls(scheme, enc_W01, enc_w12, activation)

    def named_parameters(self):
        """``(name, Parameter)`` pairs, the shape ``henn.io.save_model`` stores."""
        from ..module import Parameter
        return [("W01", Parameter(self.W01, "W01")), ("w12", Parameter(self.w12, "w12"))]

    @property
    def vocab_size(self) -> int:
        return self.W01.rows

    @property
    def hidden(self) -> int:
        return self.W01.size

    # ------------------------------------------------------------------ training
    def step_coeffs(self, label: int, lr: float) -> tuple[float, ...]:
        """Coefficients (in ``u = z / interval``) of ``-lr * (s(z) - label)``.

        Folding ``-y`` into the constant and ``-lr`` into every coefficient makes the
        whole output layer one ``polyval`` call.
        """
        key = (label, lr)
        cached = self._step_cache.get(key)
        if cached is None:
            c = list(self.u_coeffs)
            c[0] -= label
            cached = self._step_cache[key] = tuple(-lr * v for v in c)
        return cached

    def train_step(self, ids: np.ndarray, label: int, lr: float):
        """One SGD step on one review, entirely on ciphertexts.

        Every product is computed before the two in-place updates, so an exception
        while computing (say, a noise budget running out) leaves the weights as they were.

        Args:
            ids: the review's sorted distinct word indices (int64, non-empty).
            label: 1 or 0.
            lr: learning rate.

        Returns:
            The encrypted ``step = -lr * (s(z) - label)`` (a ``(1, 1)`` ciphertext); the
            trainer may hand it to the key holder to monitor loss and accuracy.
        """
        s, call = self.scheme, self._call
        h = s.declare_bound(call(s.row_sum, self.W01.ct, ids), self.HIDDEN_BOUND)  # (1, hidden)
        u = s.mul_plain(call(s.inner, h, self.w12.ct, bound=self.WEIGHT_BOUND), self.z_scale)  # (1, 1): z / 20
        step = self._call(s.polyval, u, self.step_coeffs(label, lr), bound=self.U_BOUND)  # -lr * (s(z) - y)
        if self.refresh_step:
            step = self.refresher.refresh(step)
        g1 = call(s.mul, self.w12.ct, step)                            # old w12 * step
        gh = call(s.mul, h, step)                                      # h * step
        # Both updates are made ready (re-encrypted if the scheme asks) before either
        # lands, so a failed round trip cannot leave W01 updated and w12 not.
        g1 = self._ready(self.W01.ct, ids, g1, 2.0 * lr * self.WEIGHT_BOUND)
        gh = self._ready(self.w12.ct, _ROW0, gh, 2.0 * lr * self.HIDDEN_BOUND)
        s.index_add_(self.W01.ct, ids, g1)                             # W01[ids] += g1
        s.index_add_(self.w12.ct, _ROW0, gh)                           # w12 += gh
        self.W01.ct = s.declare_bound(self.W01.ct, self.WEIGHT_BOUND)
        self.w12.ct = s.declare_bound(self.w12.ct, self.WEIGHT_BOUND)
        return step

    def _ready(self, table, rows, update, bound: float):
        """``update`` as ``index_add_(table, rows, update)`` will take it (re-encrypted if the scheme asks).

        ``bound`` is the update's value bound the model vouches for (sizes the mask).
        """
        for _ in range(3):
            try:
                self.scheme.check_index_add(table, rows, update)
                return update
            except he_core.RefreshRequired as exc:
                if self.refresher is None or exc.ciphertext is not update:
                    raise
                update = self.refresher.refresh(update, layout=exc.target, value_bound=bound)
        self.scheme.check_index_add(table, rows, update)
        return update

    def _call(self, op: Callable, *args, bound: float | None = None):
        """``op(*args)``, re-encrypting operands through :attr:`refresher` while the scheme asks for it.

        A weight that gets re-encrypted (say ``w12`` into the packing an inner product
        needs) is replaced in the network too, so later calls see the new one.
        ``bound`` is a bound on the operands' values the model vouches for (it sizes
        the refresh masks; see :meth:`he_core.Scheme.refresh_plan`).
        """
        for _ in range(len(args) + 1):
            try:
                return op(*args)
            except he_core.RefreshRequired as exc:
                if self.refresher is None:
                    raise
                old = exc.ciphertext
                new = self.refresher.refresh(old, layout=exc.target, value_bound=bound)
                for weight in (self.W01, self.w12):
                    if weight.ct is old:
                        weight.ct = new
                args = tuple(new if a is old else a for a in args)
        return op(*args)

    # ------------------------------------------------------------------ inference
    def logit(self, ids: np.ndarray):
        """Encrypted logit ``z`` of one review (a ``(1, 1)`` ciphertext; refreshes as :meth:`train_step`)."""
        s = self.scheme
        h = s.declare_bound(self._call(s.row_sum, self.W01.ct, ids), self.HIDDEN_BOUND)
        return self._call(s.inner, h, self.w12.ct, bound=self.WEIGHT_BOUND)

    def predict(self, ids: np.ndarray):
        """Encrypted ``p = s(z)`` of one review (a ``(1, 1)`` ciphertext; refreshes as :meth:`train_step`).

        Releasing ``p`` rather than the logit keeps the released value in [0, 1] and its
        noise that of the polynomial on a fresh ``u``, not the gathered row's.
        """
        s = self.scheme
        u = s.mul_plain(self.logit(ids), self.z_scale)
        return self._call(s.polyval, u, self.u_coeffs, bound=self.U_BOUND)

    def hidden_batch(self, reviews: Sequence[np.ndarray]):
        """Encrypted layer 1 of many reviews: a ``(len(reviews), hidden)`` ciphertext."""
        s, w01 = self.scheme, self.W01.ct
        return s.concat_rows([s.row_sum(w01, ids) for ids in reviews])

    def forward_batch(self, reviews: Sequence[np.ndarray]):
        """Encrypted ``p`` for many reviews: a ``(len(reviews), 1)`` ciphertext."""
        s = self.scheme
        if not len(reviews):
            raise ValueError("cannot run forward: no reviews given")
        u = s.mul_plain(s.inner(self.hidden_batch(reviews), self.w12.ct), self.z_scale)
        return s.polyval(u, self.u_coeffs)


_ROW0 = np.zeros(1, dtype=np.int64)
