"""Losses on encrypted predictions, with plaintext or encrypted targets.

A loss returns the *encrypted gradient* with respect to the predictions (what
backward needs) and, separately, its value computed from decrypted predictions
(what the key holder reports for monitoring). The trainer never needs the
loss value to train.

Targets may be plaintext arrays or :class:`EncTensor` s of the predictions' shape
(labels the data owner encrypted); the gradient is then computed without the
trainer seeing them. Multi-class targets are one-hot rows (:func:`one_hot`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

import he_core

from .activations import PolyActivation
from .columns import basis_for
from .tensor import EncTensor

#: Points sampled to measure a polynomial loss gradient's error (plus the corners of the box).
_ERROR_SAMPLES = 20000


def one_hot(labels: Any, classes: int) -> np.ndarray:
    """``(n, classes)`` one-hot rows for integer labels in ``[0, classes)``.

    Raises:
        ValueError: a label outside the range, or labels that are not integers.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"cannot one-hot encode: expected a 1-D array of integer labels, got {labels.dtype} "
                         f"of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"cannot one-hot encode: labels must lie in [0, {classes}), got {labels.min()}..{labels.max()}")
    out = np.zeros((labels.size, classes))
    out[np.arange(labels.size), labels] = 1.0
    return out


def _targets(pred_shape: tuple[int, int], y) -> np.ndarray | EncTensor:
    if isinstance(y, EncTensor):
        if y.shape != tuple(pred_shape):
            raise ValueError(f"cannot compute loss: encrypted targets of shape {y.shape} for predictions of shape "
                             f"{pred_shape}")
        return y
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.shape != tuple(pred_shape):
        raise ValueError(f"cannot compute loss: targets of shape {y.shape} for predictions of shape {pred_shape}")
    return y


def squared_error_term(grad: EncTensor, factor: float, k: int) -> EncTensor:
    """``sum((p - y)^2) / k`` from ``grad = factor * (p - y)``: a ``(1, 1)`` tensor (two products)."""
    sq = grad * grad
    total = sq.row_sum() if sq.rows > 1 else sq
    if total.size > 1:
        total = total.inner(basis_for(total).row(np.ones(total.size)))
    return total * (1.0 / (factor * factor * k))


def squared_error_bound(factor: float, value_bound: float, entries: int) -> float:
    """A bound on the gradient ``factor (p - y)`` and the sums of its squares over a batch's ``entries``.

    ``|p|`` and ``|y|`` stay below ``value_bound``, so ``|p - y|`` below twice that; and
    every value the model computes stays below ``value_bound`` (the trainer's contract),
    which caps the bound.
    """
    g = 2.0 * abs(factor) * value_bound
    return min(value_bound, max(g, g * g * entries))


class SquaredErrorMonitor:
    """What a loss releases while training by default: the squared error of its predictions.

    A loss's ``monitor_term`` is the batch's share of an aggregate over ``k`` samples,
    read off the gradient ``grad = factor * (prediction - y)``; ``monitor_bound`` bounds
    what it computes on the way (the refreshes it may need are masked for that).
    """

    #: What :meth:`monitor_term` measures (the name of the released aggregate).
    monitor_metric = "squared_error"

    def monitor_term(self, grad: EncTensor, y: Any, factor: float, k: int) -> EncTensor:
        """The batch's squared error over ``k``."""
        return squared_error_term(grad, factor, k)

    def monitor_bound(self, factor: float, value_bound: float, entries: int) -> float:
        """See :func:`squared_error_bound`."""
        return squared_error_bound(factor, value_bound, entries)


class MSELoss(SquaredErrorMonitor):
    """Mean squared error: over all entries (``reduction="mean"``), or summed over each
    row's outputs and averaged over rows (``reduction="row"``, whose step size does not
    shrink as outputs are added: one-hot targets of any number of classes).

    Raises:
        ValueError: an unknown reduction.
    """

    name = "mse"

    def __init__(self, reduction: str = "mean"):
        if reduction not in ("mean", "row"):
            raise ValueError(f"cannot build MSELoss: reduction must be 'mean' or 'row', got {reduction!r}")
        self.reduction = reduction

    def grad(self, pred: EncTensor, y, prediction: EncTensor | None = None, scale: float = 1.0) -> EncTensor:
        """Encrypted ``scale * dL/dp = scale * 2 (p - y) / n`` (``prediction`` is ``pred`` itself here).

        ``scale`` folds a factor into the one plaintext product the gradient needs anyway
        (the trainer passes the learning rate, so no parameter update pays a product for it).

        Raises:
            ValueError: ``y`` does not match the prediction shape.
        """
        y = _targets(pred.shape, y)
        return (pred - y) * self.error_factor(pred.shape, scale)

    def error_factor(self, shape: tuple[int, int], scale: float = 1.0) -> float:
        """The ``c`` of ``grad = c * (prediction - y)`` for predictions of ``shape``."""
        count = shape[0] * (shape[1] if self.reduction == "mean" else 1)
        return 2.0 * scale / count

    def prediction(self, pred: EncTensor) -> EncTensor:
        """The model's prediction as this loss reads it: the outputs themselves."""
        return pred

    def value(self, pred: np.ndarray, y) -> float:
        """The loss on decrypted predictions."""
        pred = np.asarray(pred, dtype=np.float64)
        squares = (pred - _targets(pred.shape, y)) ** 2
        return float(np.mean(squares) if self.reduction == "mean" else np.mean(np.sum(squares, axis=1)))


class PolyLogisticLoss:
    """Logistic loss of a logit ``z`` through a polynomial sigmoid ``s``.

    The exact gradient of ``-[y log s(z) + (1-y) log(1 - s(z))]`` with respect to
    the logit is ``s(z) - y`` when ``s`` is the true sigmoid; the polynomial version
    uses that same form with ``s`` replaced by its polynomial fit, so the encrypted
    gradient is one ``polyval`` and a plaintext subtraction. Predictions passed to
    :meth:`grad` are therefore *logits*.

    Args:
        activation: the polynomial sigmoid ``s``.
        reduction: ``"mean"`` averages a batch's gradients (the step size does not
            depend on the batch size); ``"sum"`` sums them, so the learning rate is per
            sample (mini-batch SGD that takes as large a step per sample as per-sample SGD).

    Raises:
        ValueError: an unknown reduction.
    """

    name = "poly_logistic"

    def __init__(self, activation: PolyActivation, reduction: str = "mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"cannot build PolyLogisticLoss: reduction must be 'mean' or 'sum', got {reduction!r}")
        self.activation = activation
        self.reduction = reduction

    def grad(self, logits: EncTensor, y, prediction: EncTensor | None = None, scale: float = 1.0) -> EncTensor:
        """Encrypted ``scale * (s(z) - y) / n``; ``prediction`` is :meth:`prediction` of these logits
        when the caller already has it (monitoring computes it too: one polynomial, not two);
        ``scale`` as in :meth:`MSELoss.grad`."""
        y = _targets(logits.shape, y)
        c = self.error_factor(logits.shape, scale)
        if prediction is not None:
            return (prediction - y) * c
        # c * s(z) with c folded into the polynomial, then c * y subtracted: no product of its own.
        return self.activation.apply(logits, c) - (y * c if isinstance(y, EncTensor) else np.asarray(y) * c)

    def error_factor(self, shape: tuple[int, int], scale: float = 1.0) -> float:
        """The ``c`` of ``grad = c * (prediction - y)`` for logits of ``shape``."""
        return scale / (shape[0] * shape[1] if self.reduction == "mean" else shape[1])

    monitor_metric = "absolute_error"

    def monitor_term(self, grad: EncTensor, y: Any, factor: float, k: int) -> EncTensor:
        """The batch's ``sum |p - y| / k``, as ``(2y - 1)(y - p)``... with the sign that makes it ``|p - y|``.

        For plaintext 0/1 targets and ``p`` in ``[0, 1]``, ``(1 - 2y)(p - y) = |p - y|``:
        linear in the gradient, one plaintext product (a polynomial sigmoid may overshoot
        ``[0, 1]`` slightly; the overshoot then counts negatively). Encrypted targets give
        the squared error instead (:func:`squared_error_term`), named so in the records.
        """
        if isinstance(y, EncTensor):
            return squared_error_term(grad, factor, k)
        signs, c = 1.0 - 2.0 * _targets(grad.shape, y), 1.0 / (factor * k)
        try:
            term = grad * (signs * c)
        except he_core.EncodingError:
            # A small factor over few samples makes a plaintext factor the scheme cannot encode at its
            # scale (an owner's dry run: lr 0.002 over k = 3 gives 166.7, beyond CKKS's range at 2^54):
            # the signs go in as the plaintext, the scalar after them (CKKS absorbs it into the scale).
            term = (grad * signs) * c
        return term.row_sum() if term.rows > 1 else term

    def monitor_bound(self, factor: float, value_bound: float, entries: int) -> float:
        """A bound on what :meth:`monitor_term` computes on the way: the gradient ``factor (p - y)``
        (below ``value_bound`` by the trainer's contract)."""
        return min(value_bound, 2.0 * abs(factor) * value_bound)

    def prediction(self, logits: EncTensor) -> EncTensor:
        """The probabilities ``s(z)`` (encrypted), evaluated in ``z / interval`` as the activation does."""
        return self.activation.forward(logits)

    def value(self, logits: np.ndarray, y) -> float:
        """Mean logistic loss, with ``s(z)`` clipped into ``(0, 1)`` so the log is finite."""
        logits = np.asarray(logits, dtype=np.float64)
        y = _targets(logits.shape, y)
        p = np.clip(self.activation.value(logits), 1e-7, 1 - 1e-7)
        return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


class PolySoftmaxCrossEntropy(SquaredErrorMonitor):
    """Softmax cross-entropy over ``classes`` logits, through its second-order expansion.

    The gradient of ``CE(z, y) = -z_y + log sum_j exp(z_j)`` with respect to the logits
    is ``softmax(z) - y``. Expanding ``log sum exp`` to second order about equal
    logits gives ``softmax(z)_i ~ (1 + z_i - mean(z)) / k``: a polynomial (linear)
    gradient that needs no division or exponential, so it runs on ciphertexts with
    two products (the mean, then its broadcast back across the row).

    Its error grows with the spread of the logits; :attr:`max_error` is the largest
    ``|softmax(z)_i - (1 + z_i - mean(z)) / k|`` measured over logits in
    ``[-interval, interval]^k`` (the corners and random points), so a model whose
    logits stay in that box trains on a gradient within it of the exact one.

    Args:
        classes: number of classes ``k >= 2``.
        interval: the half-width of the logit box the error is stated for.

    Raises:
        ValueError: fewer than two classes, or a non-positive interval.
    """

    name = "poly_softmax_ce"

    def __init__(self, classes: int, interval: float = 1.0):
        if not isinstance(classes, (int, np.integer)) or classes < 2:
            raise ValueError(f"cannot build the softmax loss: classes must be an integer >= 2, got {classes!r}")
        if not (interval > 0 and np.isfinite(interval)):
            raise ValueError(f"cannot build the softmax loss: interval must be positive and finite, got {interval!r}")
        self.classes = int(classes)
        self.interval = float(interval)
        self.max_error = self._max_error()

    def __repr__(self) -> str:
        return f"PolySoftmaxCrossEntropy(classes={self.classes}, interval=±{self.interval:g}, " \
               f"max_error={self.max_error:.3g})"

    def approx_softmax(self, z: np.ndarray) -> np.ndarray:
        """The polynomial stand-in for ``softmax(z)`` on plaintext logits (rows)."""
        z = np.atleast_2d(np.asarray(z, dtype=np.float64))
        return (1.0 + z - z.mean(axis=1, keepdims=True)) / z.shape[1]

    def _max_error(self) -> float:
        k, a = self.classes, self.interval
        rng = np.random.default_rng(0)  # a measurement, not key material
        points = [rng.uniform(-a, a, size=(_ERROR_SAMPLES, k))]
        if k <= 12:
            corners = (np.arange(2 ** k)[:, None] >> np.arange(k)) & 1
            points.append(a * (2.0 * corners - 1.0))
        z = np.concatenate(points)
        return float(np.max(np.abs(softmax(z) - self.approx_softmax(z))))

    def grad(self, logits: EncTensor, y, prediction: EncTensor | None = None, scale: float = 1.0) -> EncTensor:
        """Encrypted ``scale * ((1 + z - mean(z)) / k - y) / n`` for ``n`` rows (``prediction``,
        ``scale``: see :meth:`PolyLogisticLoss.grad`).

        Raises:
            ValueError: the logits do not have ``classes`` columns, or ``y`` does not
                match their shape.
        """
        y = _targets(logits.shape, y)
        p = self.prediction(logits) if prediction is None else prediction
        return (p - y) * self.error_factor(logits.shape, scale)

    def error_factor(self, shape: tuple[int, int], scale: float = 1.0) -> float:
        """The ``c`` of ``grad = c * (prediction - y)`` for logits of ``shape``."""
        return scale / shape[0]

    def prediction(self, logits: EncTensor) -> EncTensor:
        """The encrypted stand-in for the probabilities, ``(1 + z - mean(z)) / k`` row by row."""
        if logits.size != self.classes:
            raise ValueError(f"cannot compute the softmax loss: logits of width {logits.size}, "
                             f"the loss has {self.classes} classes")
        k = self.classes
        basis = basis_for(logits)
        mean = logits.inner(basis.row(np.full(k, 1.0 / k)))  # (n, 1)
        centred = logits - mean * basis.row(np.ones(k))
        return (centred + 1.0) * (1.0 / k)

    def value(self, logits: np.ndarray, y) -> float:
        """Mean exact cross-entropy of decrypted logits against one-hot (or soft) targets."""
        logits = np.atleast_2d(np.asarray(logits, dtype=np.float64))
        y = _targets(logits.shape, y)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-np.mean(np.sum(y * log_p, axis=1)))


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of plaintext logits."""
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
