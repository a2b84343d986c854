"""What :func:`henn.training.fit.fit` accepts as data: checked hyper-parameters, rows, targets, batches.

Rows may be a NumPy array, :class:`~henn.embedding.Bags` or an
:class:`~henn.tensor.EncTensor`; targets may be plaintext or encrypted.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..embedding import Bags
from ..schedules import LRSchedule
from ..tensor import EncTensor


def check_hyper(lr: float | LRSchedule, epochs: int, batch_size: int) -> None:
    """Refuse a non-positive or non-finite ``lr`` (or schedule peak) and non-integer or non-positive
    counts (``ValueError``)."""
    rate = lr.peak if isinstance(lr, LRSchedule) and not isinstance(lr, (int, float)) else lr
    if isinstance(rate, bool) or not (isinstance(rate, (int, float)) and np.isfinite(rate) and rate > 0):
        raise ValueError(f"cannot fit: lr must be a positive finite number or a schedule, got {lr!r}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"cannot fit: {name} must be a positive integer, got {value!r}")


def count_rows(data: Any, name: str) -> int:
    """The number of rows of ``data``; plaintext must be a non-empty 1-D/2-D array of finite numbers.

    Raises:
        ValueError: anything else (``name`` says which argument).
    """
    if isinstance(data, EncTensor):
        return data.rows
    if isinstance(data, Bags):
        return len(data)
    array = np.asarray(data)
    if array.ndim not in (1, 2) or array.shape[0] == 0:
        raise ValueError(f"cannot fit: {name} must be a non-empty 1-D or 2-D array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
        raise ValueError(f"cannot fit: {name} must hold finite numbers")
    return int(array.shape[0])


def as_targets(y: Any) -> Any:
    """Targets as ``(rows, outputs)``: a 1-D plaintext vector becomes a column; encrypted ones pass."""
    if isinstance(y, EncTensor):
        return y
    y = np.asarray(y, dtype=np.float64)
    return y[:, None] if y.ndim == 1 else y


def take_rows(data: Any, idx: np.ndarray) -> Any:
    """The rows ``idx`` of a batch, whatever its kind (array, :class:`Bags`, :class:`EncTensor`)."""
    if isinstance(data, EncTensor):
        return data.take_rows(idx)
    if isinstance(data, Bags):
        return data.take(idx)
    return np.asarray(data)[idx]

