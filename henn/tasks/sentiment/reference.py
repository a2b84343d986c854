"""The NumPy float64 reference of the sentiment network: the accuracy encrypted runs are measured against.

The same per-review SGD as :func:`henn.tasks.sentiment.train`, in the clear, with the
tutorial's update order; it also reports the logits' range, which sizes the
polynomial sigmoid's interval.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ...activations import sigmoid
from .data import Prepared
from .network import SentimentConfig, init_weights


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
                    init: tuple[np.ndarray, np.ndarray] | None = None, batch_size: int = 1) -> dict:
    """The same SGD in NumPy float64: the accuracy the encrypted runs are measured against.

    Args:
        init: the initial ``(W01, w12)`` (default a fresh CSPRNG draw); pass the
            encrypted run's to compare like with like.
        batch_size: reviews per step; every review of a batch sees the weights the
            batch started from and their updates (``lr`` each, summed) land together, as
            in :func:`henn.tasks.sentiment.train` with the same ``batch_size`` (1: the
            tutorial's per-review SGD). Each step's rate follows ``config.lr_schedule()``
            as in the encrypted run.

    Returns:
        ``W01``, ``w12``, ``train_accuracy`` (running, as in training),
        ``validation_accuracy``, ``logit_range`` and ``logit_p99`` (the largest and
        99th-percentile ``|z|`` on the validation reviews, to size the polynomial's interval).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"cannot train the reference: batch_size must be a positive integer, got {batch_size!r}")
    W01, w12 = init if init is not None else init_weights(len(data.vocab), config)
    W01, w12 = np.array(W01, dtype=np.float64), np.array(w12, dtype=np.float64).reshape(-1)
    correct = 0
    n = len(data.train_ids)
    schedule, per_epoch = config.lr_schedule(), -(-n // batch_size)
    for epoch in range(epochs):
        for lo in range(0, n, batch_size):
            lr = schedule.at(epoch * per_epoch + lo // batch_size, epochs * per_epoch)
            dW01, dw12 = np.zeros_like(W01), np.zeros_like(w12)
            for review, y in zip(data.train_ids[lo:lo + batch_size], data.train_labels[lo:lo + batch_size]):
                h = W01[review].sum(axis=0)
                p = float(activation(np.array(h @ w12)))
                correct += (p > 0.5) == (y == 1)
                step = -lr * (p - int(y))
                dw12 += step * h
                np.add.at(dW01, review, step * w12)  # w12 before its update, as the tutorial does
            w12 += dw12
            W01 += dW01
    z = reference_logits(W01, w12, data.val_ids)
    return {"W01": W01, "w12": w12, "train_accuracy": correct / max(epochs * n, 1),
            "validation_accuracy": float(np.mean((activation(z) > 0.5) == (data.val_labels == 1))),
            "logit_range": float(np.max(np.abs(z))) if z.size else 0.0,
            "logit_p99": float(np.percentile(np.abs(z), 99)) if z.size else 0.0}
