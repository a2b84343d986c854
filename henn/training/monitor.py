"""What the key holder may see of a training run: flooded aggregates over at least k samples.

Monitoring follows one rule, whoever holds the key: the trainer sums an encrypted
per-sample quantity (a loss) over at least ``k`` samples and only that sum is released
(noise-flooded, :meth:`henn.keyholder.KeyHolder.release_aggregate`). No per-sample
value or label is ever decrypted; everything else stays with the trainer.

Across processes the owner's key service decrypts the aggregate for the owner's own
log and answers the trainer with nothing: a decryption handed back to the party that
chose the ciphertext would be a decryption oracle.
"""
from __future__ import annotations

from typing import Any

from he_core import Ciphertext

from ..keyholder import check_scale
from ..tensor import EncTensor


class AggregateMonitor:
    """Accumulates an encrypted per-sample quantity and releases its mean every ``k`` samples.

    Args:
        keyholder: anything with ``release_aggregate(ciphertext, count, value_bound=, scale=) -> float | None``
            (the in-process :class:`~henn.keyholder.KeyHolder`, or the remote key holder,
            whose answer is ``None``: the value goes to the owner only).
        k: samples per released aggregate; at least the job's ``min_aggregate``
            (the key holder refuses fewer).
        name: what the aggregate is (recorded with each value).
        sample_bound: a bound on one sample's |value|; ``count * sample_bound`` bounds an
            aggregate and sizes the mask of the refresh that precedes its release
            (default: the scheme's tracked bound).
        term_scale: the public factor each added term carries (the released mean is the
            sum over ``term_scale * count``); passed with the release, so the owner's log
            reads the same mean.

    Attributes:
        records: one dict per release: ``samples`` seen so far, ``count`` in this
            aggregate, and ``name`` -> the released mean (``None`` when the owner alone sees it).
    """

    def __init__(self, keyholder: Any, k: int, name: str = "loss", *, sample_bound: float | None = None,
                 term_scale: float = 1.0):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"cannot monitor: k must be a positive integer, got {k!r}")
        if sample_bound is not None and not sample_bound > 0:
            raise ValueError(f"cannot monitor: sample_bound must be positive, got {sample_bound!r}")
        self.keyholder, self.k, self.name, self.sample_bound = keyholder, k, name, sample_bound
        self.term_scale = check_scale(term_scale)
        self.records: list[dict] = []
        self._sum: Any = None
        self._count = 0
        self._seen = 0

    def add(self, term: EncTensor | Ciphertext, count: int = 1) -> dict | None:
        """Add an encrypted term covering ``count`` samples; release when ``k`` are gathered.

        Returns:
            The new record when this addition completed an aggregate, else ``None``.
        """
        term = term.ct if isinstance(term, EncTensor) else term
        self._sum = term if self._sum is None else self.keyholder.scheme.add(self._sum, term)
        self._count += count
        self._seen += count
        return self._release() if self._count >= self.k else None

    def flush(self) -> dict | None:
        """Release what is gathered if it covers ``k`` samples; a smaller tail stays unreleased."""
        return self._release() if self._count >= self.k else None

    def end_pass(self) -> None:
        """Drop the unreleased tail at the end of a pass over the data.

        Every aggregate then covers one fixed block of a pass: aggregates that straddled
        two passes would cover shifted windows of the same samples, and their differences
        would approach single samples' values.
        """
        self._sum, self._count = None, 0

    def _release(self) -> dict:
        bound = None if self.sample_bound is None else self.sample_bound * self._count
        total = self.keyholder.release_aggregate(self._sum, self._count, value_bound=bound, scale=self.term_scale)
        record = {"samples": self._seen, "count": self._count,
                  self.name: None if total is None else float(total) / (self.term_scale * self._count)}
        self.records.append(record)
        self._sum, self._count = None, 0
        return record
