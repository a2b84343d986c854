"""The ciphertext container shared by every scheme."""
from __future__ import annotations

import math
from typing import Any

import numpy as np


class Ciphertext:
    """A batch of encrypted vectors: logically a ``(rows, size)`` array of reals.

    Row ``i`` is one encrypted vector of length ``size``; operations are vectorised
    over rows. The layout of :attr:`data` belongs to the scheme (the ``vhe`` scheme
    keeps one int64 row per encrypted vector, the plaintext twin keeps the values).

    Attributes:
        scheme: name of the scheme that made it.
        params_id: identifier of the parameter set.
        key_id: identifier of the secret key it decrypts under.
        shape: logical ``(rows, size)``.
        scale: fixed-point scale of the encoded values (value * scale is what is encrypted).
        data: scheme-specific payload, a numpy array or a tuple of numpy arrays.
        meta: scheme-specific bookkeeping (noise and magnitude bounds, level, ...),
            a dict of JSON-compatible values.
        params: the parameter set itself (whose ``param_id`` is ``params_id``), so the
            ciphertext can be saved on its own; ``None`` when whoever made it did not say.
    """

    __slots__ = ("scheme", "params_id", "key_id", "shape", "scale", "data", "meta", "params")

    def __init__(self, scheme: str, params_id: str, key_id: str, shape: tuple[int, int], scale: float,
                 data: Any, meta: dict | None = None, params: Any = None):
        self.scheme = scheme
        self.params_id = params_id
        self.key_id = key_id
        self.shape = shape
        self.scale = scale
        self.data = data
        self.meta = {} if meta is None else meta
        self.params = params

    @property
    def rows(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        """Length of each encrypted vector."""
        return self.shape[1]

    @property
    def nbytes(self) -> int:
        """Bytes held by the payload arrays."""
        if isinstance(self.data, np.ndarray):
            return int(self.data.nbytes)
        return int(sum(getattr(a, "nbytes", 0) for a in self.data))

    def replace(self, **changes: Any) -> "Ciphertext":
        """A shallow copy with some attributes changed (the payload is not copied)."""
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields["meta"] = dict(self.meta)
        fields.update(changes)
        return Ciphertext(**fields)

    def describe(self) -> str:
        """One line naming where the ciphertext belongs, used in error messages."""
        real = isinstance(self.scale, (int, float)) and not isinstance(self.scale, bool)
        scale = f"2^{math.log2(self.scale):.2f}" if real and self.scale > 0 else repr(self.scale)
        return (f"{self.scheme} ciphertext (params {self.params_id}, key {self.key_id[:12]}, "
                f"shape {self.shape}, scale {scale})")

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    def __len__(self) -> int:
        return self.shape[0]
