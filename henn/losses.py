"""Losses on encrypted predictions and plaintext targets.

A loss returns the *encrypted gradient* with respect to the predictions (what
backward needs) and, separately, its value computed from decrypted predictions
(what the key holder reports for monitoring). The trainer never needs the
loss value to train.
"""
from __future__ import annotations

import numpy as np

from .activations import PolyActivation
from .tensor import EncTensor


def _targets(pred_shape: tuple[int, int], y) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.shape != tuple(pred_shape):
        raise ValueError(f"cannot compute loss: targets of shape {y.shape} for predictions of shape {pred_shape}")
    return y


class MSELoss:
    """Mean squared error ``mean((p - y)^2)`` over all entries."""

    name = "mse"

    def grad(self, pred: EncTensor, y) -> EncTensor:
        """Encrypted ``dL/dp = 2 (p - y) / n``.

        Raises:
            ValueError: ``y`` does not match the prediction shape.
        """
        y = _targets(pred.shape, y)
        return (pred - y) * (2.0 / y.size)

    def value(self, pred: np.ndarray, y) -> float:
        """The loss on decrypted predictions."""
        pred = np.asarray(pred, dtype=np.float64)
        return float(np.mean((pred - _targets(pred.shape, y)) ** 2))


class PolyLogisticLoss:
    """Logistic loss of a logit ``z`` through a polynomial sigmoid ``s``.

    The exact gradient of ``-[y log s(z) + (1-y) log(1 - s(z))]`` with respect to
    the logit is ``s(z) - y`` when ``s`` is the true sigmoid; the polynomial version
    uses that same form with ``s`` replaced by its polynomial fit, so the encrypted
    gradient is one ``polyval`` and a plaintext subtraction. Predictions passed to
    :meth:`grad` are therefore *logits*.

    Args:
        activation: the polynomial sigmoid ``s``.
    """

    name = "poly_logistic"

    def __init__(self, activation: PolyActivation):
        self.activation = activation

    def grad(self, logits: EncTensor, y) -> EncTensor:
        """Encrypted ``(s(z) - y) / n``."""
        y = _targets(logits.shape, y)
        return (logits.polyval(self.activation.coeffs) - y) * (1.0 / y.size)

    def value(self, logits: np.ndarray, y) -> float:
        """Mean logistic loss, with ``s(z)`` clipped into ``(0, 1)`` so the log is finite."""
        logits = np.asarray(logits, dtype=np.float64)
        y = _targets(logits.shape, y)
        p = np.clip(self.activation.value(logits), 1e-7, 1 - 1e-7)
        return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))
