"""Logistic regression trained with encrypted weights, by gradient descent or the fixed-Hessian Newton method."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import activations
from ..layers import Linear
from ..losses import PolyLogisticLoss, PolySoftmaxCrossEntropy
from ..module import Sequential
from .base import _EncryptedClassifier

SOLVERS = ("sgd", "newton")


class EncryptedLogisticRegression(_EncryptedClassifier):
    """Logistic regression trained with encrypted weights.

    Two classes: one output through a polynomial sigmoid (:class:`~henn.losses.PolyLogisticLoss`);
    more: one output per class with the polynomial softmax cross-entropy. A cubic
    sigmoid turns back beyond its interval, so a logit that leaves it pulls the
    weights further out: the default weight decay keeps the logits inside.
    Arguments as :class:`EncryptedMLPClassifier` (no hidden layers; ``sigmoid_interval``
    is the half-width the sigmoid is fitted on, ``sigmoid_degree`` its odd degree).

    ``solver="newton"``: the fixed-Hessian Newton method (Böhning's bound
    ``H = X^T X / 4 + ridge I`` on the logistic loss's Hessian, as Bonte and Vercauteren
    use it for encrypted training): every step is ``w <- w - H^-1 grad``, which converges
    in a few full-batch steps where gradient descent on these correlated features takes
    hundreds. The trainer computes ``H`` from its own rows in the clear and trains plain
    gradient descent (``lr`` 1, ``batch_size`` the whole set) on rows multiplied by
    ``H^-1/2`` (the bias column included), which is the same step; ``whitening_`` maps
    them back for :meth:`export_circuit`. ``ridge`` is H's ridge (default 0.01).
    """

    def __init__(self, scheme: str = "ckks", *, epochs: int = 6, batch_size: int = 128, lr: float = 0.5,
                 weight_decay: float = 0.1, sigmoid_interval: float = 8.0, sigmoid_degree: int = 3,
                 solver: str = "sgd", ridge: float = 0.01, input_scale: float = 2.0,
                 input_clip: float = 2.0, random_state: int | None = None, keyholder: Any = None,
                 monitor: bool = True, progress: bool = False, checkpoint: str | None = None,
                 refresh: str = "masked", insecure_ring: int | None = None):
        self.refresh = refresh
        self.insecure_ring = insecure_ring
        self.checkpoint = checkpoint
        self.scheme = scheme
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.sigmoid_interval = sigmoid_interval
        self.sigmoid_degree = sigmoid_degree
        self.solver = solver
        self.ridge = ridge
        self.input_scale = input_scale
        self.input_clip = input_clip
        self.random_state = random_state
        self.keyholder = keyholder
        self.monitor = monitor
        self.progress = progress

    def _outputs(self) -> int:
        return 1 if self.classes_.size == 2 else self.classes_.size

    def _sigmoid(self) -> activations.PolyActivation:
        return activations.sigmoid_lsq(self.sigmoid_degree, self.sigmoid_interval)

    def _fit_inputs(self, Xs: np.ndarray) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"cannot fit: solver must be one of {SOLVERS}, got {self.solver!r}")
        self.whitening_ = newton_whitening(Xs, self.ridge) if self.solver == "newton" else None
        if self.whitening_ is not None:  # the rows' largest entry brought to input_clip (plaintext factors are bounded)
            rows = np.hstack([Xs, np.ones((Xs.shape[0], 1))]) @ self.whitening_
            shrink = max(1.0, float(np.max(np.abs(rows))) / self.input_clip)
            self.whitening_ = self.whitening_ / shrink
            self.newton_lr_scale_ = shrink**2

    def _inputs(self, X: np.ndarray) -> np.ndarray:
        z = self._standardised(X)
        if self.whitening_ is None:
            return z
        return np.clip(np.hstack([z, np.ones((z.shape[0], 1))]) @ self.whitening_, -self.input_clip, self.input_clip)

    def _step_scale(self) -> float:
        # Rows whitened to +-input_clip are H^-1/2 rows divided by c: the Newton step then needs lr c^2.
        return 1.0 if self.whitening_ is None else self.newton_lr_scale_

    def _exported_layers(self, layers: list[tuple]) -> list[tuple]:
        # The whitening folded into the first layer (the whitened rows' clip, which only rows
        # beyond the training set's range reach, is not kept).
        if self.whitening_ is None:
            return layers
        (_, w, b), *rest = layers
        return [("linear", self.whitening_[:-1] @ w, b + self.whitening_[-1] @ w), *rest]

    def _build(self, scheme: Any, n_in: int, n_out: int, rng: Any) -> Sequential:
        # Under the Newton solver the whitened rows carry the bias column: no separate bias (its
        # step would not be whitened).
        bias = None if getattr(self, "whitening_", None) is not None else 0.0
        return Sequential(Linear.init(scheme, n_in, n_out, init_scale=0.0, rng=rng, bias=bias))

    def _loss(self, n_out: int) -> Any:
        return PolyLogisticLoss(self._sigmoid()) if n_out == 1 else PolySoftmaxCrossEntropy(n_out)

    def _probabilities(self, out: np.ndarray) -> np.ndarray:
        if out.shape[1] == 1:
            return self._sigmoid().value(out)
        return PolySoftmaxCrossEntropy(out.shape[1]).approx_softmax(out)

    def predict(self, X: Any, fhe: str = "disable") -> np.ndarray:
        out = self.decision_function(X, fhe)
        index = (out[:, 0] > 0.0).astype(int) if out.shape[1] == 1 else out.argmax(axis=1)
        return self.classes_[index]


def newton_whitening(Xs: np.ndarray, ridge: float) -> np.ndarray:
    """``H^-1/2`` for Böhning's fixed Hessian ``H = [X 1]^T [X 1] / (4 n) + ridge I`` of the logistic loss.

    Gradient descent at learning rate 1 on rows ``[x 1] H^-1/2`` takes the fixed-Hessian
    Newton step ``w <- w - H^-1 grad`` in the original coordinates (``w = H^-1/2 v``).

    Raises:
        ValueError: a ridge that is not a positive finite number.
    """
    if not (isinstance(ridge, (int, float)) and math.isfinite(ridge) and ridge > 0):
        raise ValueError(f"cannot fit: ridge must be a positive number, got {ridge!r}")
    rows = np.hstack([Xs, np.ones((Xs.shape[0], 1))])
    hessian = rows.T @ rows / (4.0 * rows.shape[0]) + ridge * np.eye(rows.shape[1])
    eigenvalues, vectors = np.linalg.eigh(hessian)
    return (vectors / np.sqrt(eigenvalues)) @ vectors.T
