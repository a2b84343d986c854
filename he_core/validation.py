"""Argument checks shared by every scheme operation, core or optional.

:class:`Checks` is the first base of :class:`he_core.Scheme`: membership (scheme,
parameter set, key of each operand), shapes that broadcast, finite plaintext operands
and row indices in range. A concrete scheme extends ``_check_ct`` with the structure
its kernels rely on; everything else is shared.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .ciphertext import Ciphertext
from .errors import EncodingError, MismatchError
from .keys import SecretKey


class Checks:
    """Validation helpers; they read ``self.name`` and ``self.params_id`` of the scheme they serve."""

    name: str
    params_id: str

    def _check_params(self, scheme: str, params_id: str, what: str) -> None:
        if scheme != self.name:
            raise MismatchError(f"{what} belong to scheme {scheme!r}, this is {self.name!r}")
        if params_id != self.params_id:
            raise MismatchError(f"{what} use parameter set {params_id}, this scheme uses {self.params_id}")

    def _check_secret(self, key: SecretKey) -> None:
        if not isinstance(key, SecretKey):
            raise TypeError(f"expected a SecretKey, got {type(key).__name__}")
        self._check_params(key.scheme, key.params_id, "the secret key")

    def _check_ct(self, a: Ciphertext) -> None:
        if not isinstance(a, Ciphertext):
            raise TypeError(f"expected a Ciphertext, got {type(a).__name__}")
        if a.scheme != self.name or a.params_id != self.params_id:
            raise MismatchError(f"{a.describe()} does not belong to this scheme ({self.name}, params {self.params_id})")

    def _check_pair(self, a: Ciphertext, b: Ciphertext, op: str, *, allow_size_broadcast: bool,
                    allow_row_broadcast: bool = True) -> None:
        self._check_ct(a)
        self._check_ct(b)
        if a.key_id != b.key_id:
            raise MismatchError(f"cannot {op}: operands are under different keys:\n  left:  {a.describe()}\n"
                                f"  right: {b.describe()}")
        rows_ok = a.rows == b.rows or (allow_row_broadcast and 1 in (a.rows, b.rows))
        size_ok = a.size == b.size or (allow_size_broadcast and 1 in (a.size, b.size))
        if op in ("concat_rows", "index_add_"):  # index_add_ checked rows against the indices already
            rows_ok = True
        if not (rows_ok and size_ok):
            raise MismatchError(f"cannot {op}: shapes {a.shape} and {b.shape} do not broadcast")

    @staticmethod
    def _as_finite(values: Any, what: str) -> np.ndarray:
        if isinstance(values, Ciphertext):
            raise TypeError(f"{what} must be plaintext numbers, got a Ciphertext")
        if np.iscomplexobj(values):  # before the cast, which would warn and drop the imaginary parts
            raise TypeError(f"{what} must be real numbers, got complex values")
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{what} must be real numbers, got {type(values).__name__}") from exc
        if not np.all(np.isfinite(array)):
            raise EncodingError(f"{what} contains NaN or infinity")
        # A 0-d array stays a scalar (ascontiguousarray would make it a (1,) vector).
        return array if array.flags.c_contiguous else np.ascontiguousarray(array)

    def _as_plain_matrix(self, values: Any) -> np.ndarray:
        array = self._as_finite(values, "values to encrypt")
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] == 0 or array.shape[0] == 0:
            raise EncodingError(f"values to encrypt must be a non-empty vector or 2-D array, got shape {array.shape}")
        return array

    def _as_plain_operand(self, values: Any, shape: tuple[int, int], op: str) -> np.ndarray:
        if type(values) is float or type(values) is int:  # fast path: the common scalar operand
            if values - values != 0:  # NaN or infinity
                raise EncodingError(f"{op} operand contains NaN or infinity")
            return np.array(float(values))
        array = self._as_finite(values, f"{op} operand")
        if array.ndim == 0:
            return array
        try:
            np.broadcast_shapes(array.shape, shape)
        except ValueError:
            raise EncodingError(f"cannot {op}: plaintext of shape {array.shape} does not broadcast "
                                f"to the ciphertext shape {shape}") from None
        if array.ndim > 2 or np.broadcast_shapes(array.shape, shape) != tuple(shape):
            raise EncodingError(f"cannot {op}: plaintext of shape {array.shape} would grow the ciphertext "
                                f"shape {shape}")
        return array

    @staticmethod
    def _as_rows(rows: Any, nrows: int) -> np.ndarray:
        idx = np.asarray(rows)
        if idx.dtype == np.int64 and idx.ndim == 1 and idx.size and idx.flags.c_contiguous:
            # Fast path for the common case (pre-tokenised index arrays): one min/max pass.
            lo, hi = int(idx.min()), int(idx.max())
            if lo >= 0 and hi < nrows:
                return idx
        if idx.dtype == bool:
            if idx.shape != (nrows,):
                raise ValueError(f"boolean row mask has shape {idx.shape}, expected ({nrows},)")
            return np.flatnonzero(idx).astype(np.int64)
        if idx.size == 0:
            return np.zeros(0, dtype=np.int64)
        if not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"row indices must be integers, got dtype {idx.dtype}")
        if np.issubdtype(idx.dtype, np.unsignedinteger) and int(idx.max()) >= nrows:
            # before the cast: 2^64 - i would become -i, a valid-looking index from the end
            raise IndexError(f"row index out of range for {nrows} rows")
        idx = np.ascontiguousarray(idx.reshape(-1), dtype=np.int64)
        if idx.min() < -nrows or idx.max() >= nrows:
            raise IndexError(f"row index out of range for {nrows} rows")
        return np.where(idx < 0, idx + nrows, idx)

    def validate(self, ct: Ciphertext) -> None:
        """Every check a ciphertext received from another party (or a file) must pass before use.

        Membership and structure (as every operation checks), a finite positive scale,
        and the scheme's own checks on the numbers themselves (e.g. CKKS residues below
        their primes), so no kernel ever sees a malformed operand.

        Raises:
            MismatchError: the ciphertext is malformed or does not belong here.
        """
        self._check_ct(ct)
        scale = ct.scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating)) or not np.isfinite(scale) \
                or not scale > 0:
            raise MismatchError(f"{ct.describe()} has an invalid scale {scale!r}: it must be finite and positive")
        self._validate_values(ct)

    def _validate_values(self, ct: Ciphertext) -> None:
        return None
