"""Row operations by bags: a whole mini-batch's gathers, and its scatters, in one call.

A text model's first layer sums, per sample, the table rows its bag of words names,
and its gradient lands back on those rows. Done one sample at a time, every sample
pays the operation's checks, bookkeeping and (for a trainer that refreshes) one
round trip to the key holder for its update. :meth:`BagRows.bag_sum` gathers all
samples at once (row ``b`` of the result is bag ``b``'s sum) and
:meth:`BagRows.bag_add_` scatters a batch of update rows at once (row ``b`` onto every
row bag ``b`` names), so the refresh of a batch's updates is one ciphertext.

The defaults here are built on each scheme's own ``_row_sum`` and ``_index_add_``
hooks, so every scheme has them; a scheme overrides the hooks where a vectorised
form is cheaper. A scheme whose tables keep their own packing (CKKS's coefficient
layout) takes updates row by row in that packing: its ``index_add_`` asks for the
move (:class:`~he_core.errors.RefreshRequired`), and so does ``bag_add_`` with a
batch outside that packing; such callers land each bag with ``index_add_``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .ciphertext import Ciphertext
from .errors import MismatchError

_EMPTY = np.zeros(0, dtype=np.int64)


class BagRows:
    """The bag operations of :class:`he_core.Scheme` (public methods validate, hooks compute)."""

    def bag_sum(self, a: Ciphertext, bags: Any) -> Ciphertext:
        """Per bag, the sum of the rows of ``a`` it names: shape ``(len(bags), size)``.

        Args:
            a: the table.
            bags: a sequence of 1-D integer index arrays (repeated indices count twice;
                an empty bag gives an encryption of a zero row).

        Raises:
            ValueError / IndexError / TypeError: no bags, or an index that is not a row of ``a``.
        """
        self._check_ct(a)
        return self._bag_sum(a, self._as_bags(bags, a.rows))

    def bag_add_(self, a: Ciphertext, bags: Any, b: Ciphertext) -> None:
        """In place: add row ``i`` of ``b`` to every row of ``a`` that ``bags[i]`` names.

        ``b`` has one row per bag (or one row for all of them). Repeated indices, within
        a bag or across bags, accumulate, as ``numpy.add.at`` does. The whole update is
        checked (noise, range) before any row changes: a refusal leaves ``a`` as it was.
        """
        flat, owner = self._bag_add_operands(a, bags, b)
        if flat.size:  # every bag empty: nothing lands
            self._index_add_(a, flat, self._spread(b, owner))

    def check_bag_add(self, a: Ciphertext, bags: Any, b: Ciphertext) -> None:
        """Raise what :meth:`bag_add_` would raise before computing, without changing ``a``."""
        flat, owner = self._bag_add_operands(a, bags, b)
        if flat.size:
            self._check_bag_add(a, flat, owner, b)

    # ------------------------------------------------------------------ validation
    def _as_bags(self, bags: Any, nrows: int) -> list[np.ndarray]:
        return self._bags_and_flat(bags, nrows)[0]

    def _bags_and_flat(self, bags: Any, nrows: int) -> tuple[list[np.ndarray], np.ndarray]:
        """The validated bags and all their indices in one array (concatenated once)."""
        if isinstance(bags, (str, bytes, np.ndarray)) or not isinstance(bags, Sequence):
            raise TypeError(f"bags must be a sequence of index arrays (one per sample), got {type(bags).__name__}")
        if not bags:
            raise ValueError("no bags given")
        if all(type(x) is np.ndarray and x.dtype == np.int64 and x.ndim == 1 for x in bags):
            # The usual batch (pre-tokenised index arrays): one range check over all of it.
            flat = np.concatenate(bags) if len(bags) > 1 else bags[0]
            if not flat.size or (int(flat.min()) >= 0 and int(flat.max()) < nrows):
                return [x if x.flags.c_contiguous else np.ascontiguousarray(x) for x in bags], flat
        out = []
        for bag in bags:
            arr = np.asarray(bag)
            if arr.ndim != 1:
                raise ValueError(f"a bag must be a 1-D array of row indices, got shape {arr.shape}")
            out.append(self._as_rows(arr, nrows) if arr.size else _EMPTY)
        return out, (np.concatenate(out) if len(out) > 1 else out[0])

    def _bag_add_operands(self, a: Ciphertext, bags: Any, b: Ciphertext) -> tuple[np.ndarray, np.ndarray | None]:
        """The flat row indices and, per index, the row of ``b`` that lands there (``None``: ``b``'s one row)."""
        self._check_ct(a)
        self._check_ct(b)
        idx, flat = self._bags_and_flat(bags, a.rows)
        if b.rows not in (1, len(idx)):
            raise MismatchError(f"cannot bag_add_: {b.rows} update rows for {len(idx)} bags")
        self._check_pair(a, b, "index_add_", allow_size_broadcast=False, allow_row_broadcast=True)
        if b.rows == 1 or not flat.size:  # nothing to spread (every bag empty: nothing lands)
            return flat, None
        lengths = np.fromiter((x.size for x in idx), dtype=np.int64, count=len(idx))
        return flat, np.repeat(np.arange(len(idx), dtype=np.int64), lengths)

    def _spread(self, b: Ciphertext, owner: np.ndarray | None) -> Ciphertext:
        """``b``'s rows, one per landing index (``b`` itself when its one row lands everywhere)."""
        return b if owner is None else self._take_rows(b, owner)

    # ------------------------------------------------------------------ hooks
    def _bag_sum(self, a: Ciphertext, bags: list[np.ndarray]) -> Ciphertext:
        """Default: one ``_row_sum`` per bag; an empty bag is a gathered row minus itself (the gather's layout)."""
        rows = [self._row_sum(a, bag) if bag.size else self._zero_row(a) for bag in bags]
        return rows[0] if len(rows) == 1 else self._concat_rows(rows)

    def _check_bag_add(self, a: Ciphertext, flat: np.ndarray, owner: np.ndarray | None, b: Ciphertext) -> None:
        """Default: ``index_add_``'s own check on the spread rows (a table's packing, say)."""
        self._check_index_add(a, flat, self._spread(b, owner))

    def _zero_row(self, a: Ciphertext) -> Ciphertext:
        first = self._row_sum(a, np.zeros(1, dtype=np.int64))
        return self._sub(first, first)
