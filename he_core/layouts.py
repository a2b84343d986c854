"""Layouts and declared bounds: how a scheme lays ciphertexts out, and what callers vouch for.

A base of :class:`he_core.Scheme`. Every scheme has a default layout (and may ignore
the ``"table"`` hint); a packing scheme keeps some ciphertexts in other layouts, named
by the ``layout`` values it accepts in ``encrypt`` and returns from :meth:`Layouts.layout_of`.
A scheme that tracks value bounds (CKKS) records the bounds callers vouch for;
every other scheme keeps nothing, and these methods cost nothing there. A scheme may also
give a ciphertext a smaller form on the wire (CKKS: a fresh secret-key encryption's uniform
half as a seed): :meth:`Layouts.wire_form` and :meth:`Layouts.from_wire_form`; and key
material likewise (CKKS: each switching key's uniform halves as a seed):
:meth:`Layouts.key_wire_form` and :meth:`Layouts.key_from_wire_form`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .ciphertext import Ciphertext
from .errors import EncodingError, FormatError
from .keys import PublicKeys, SecretKey
from .randomness import RandomSource


class Layouts:
    """Layout queries and declared bounds, with the defaults of a scheme that has one layout and keeps no bounds."""

    @classmethod
    def wire_form(cls, ct: Ciphertext, *, check: bool = True) -> tuple[np.ndarray, dict] | None:
        """``(data, metadata)`` to store in place of ``ct``'s, when smaller; ``None``: it travels whole.

        ``check=False`` trusts what ``ct``'s metadata claims (for counting bytes of a ciphertext
        just made); ``dumps`` always checks.
        """
        return None

    @classmethod
    def from_wire_form(cls, params: Any, data: np.ndarray, meta: dict) -> np.ndarray:
        """The whole data back from :meth:`wire_form`'s.

        Raises:
            FormatError: this scheme has no smaller form, or the stored one is malformed.
        """
        raise FormatError(f"cannot load: {cls.__name__} stores no ciphertext in a smaller form")

    @classmethod
    def key_wire_form(cls, data: Any, params: Any) -> tuple[Any, bool]:
        """``(key data to store, whether it is in a smaller form)`` for a key set's or a switch key's ``data``.

        ``params`` is the parameter set the file records. Default: the data as it is, whole.
        """
        return data, False

    @classmethod
    def key_from_wire_form(cls, params: Any, data: Any, seeded: bool) -> Any:
        """The whole key data back from :meth:`key_wire_form`'s (``seeded``: the file says it is smaller).

        Raises:
            FormatError: this scheme has no smaller form of keys, or the stored one is malformed.
        """
        if seeded:
            raise FormatError(f"cannot load: {cls.__name__} stores no keys in a smaller form")
        return data

    @property
    def natural_size(self) -> int | None:
        """The vector size one ciphertext holds whole, for a packing scheme (``None``: cost is per entry).

        A batch whose rows have this size keeps one row per ciphertext, so row
        operations (``lincomb``, ``take_rows``, ``row_sum``) move whole ciphertexts
        and need no rotation: the layout of choice for many samples at once.
        """
        return None

    def layout_of(self, ct: Ciphertext) -> Any:
        """The ``layout`` that re-encrypts ``ct`` as it is laid out now (``None``: the default).

        A refresh that should keep a tensor's layout (a coefficient-packed table stays a
        table) passes this to ``encrypt``.
        """
        self._check_ct(ct)
        return self._layout_of(ct)

    def in_default_layout(self, ct: Ciphertext) -> bool:
        """Whether ``ct`` sits in the scheme's default layout.

        A ciphertext in another packing (a CKKS table, or a row gathered from one) is
        never refreshed in place: an operation that cannot read it raises
        :class:`RefreshRequired` naming the layout to move it into, before computing anything.
        """
        self._check_ct(ct)
        return self._in_default_layout(ct)

    def _in_default_layout(self, ct: Ciphertext) -> bool:
        return True

    def _layout_of(self, ct: Ciphertext) -> Any:
        return None

    def _encrypt_layout(self, values: np.ndarray, key: SecretKey | None, public: PublicKeys | None,
                        scale: float | None, rng: RandomSource, layout: Any) -> Ciphertext:
        if layout != "table":
            raise EncodingError(f"cannot encrypt: scheme {self.name!r} has no layout {layout!r} "
                                "(None, or the 'table' hint)")
        if key is not None:
            return self._encrypt_secret(values, key, scale, rng)
        return self._encrypt_public(values, public, scale, rng)

    def declare_bound(self, a: Ciphertext, bound: float) -> Ciphertext:
        """``a`` with the caller's bound on its values, when tighter than the scheme's analytic one.

        A scheme that tracks value bounds (CKKS: for its noise estimate and the refresh
        masks) propagates worst cases, which over a long training run grow far beyond
        the real values (every update adds its bound to a weight's). A model that knows
        its weights stay below some size says so here; estimates sized from the bound
        (flooding, masks) rely on it from then on. Schemes without value bounds return
        ``a`` unchanged.

        Raises:
            ValueError: a bound that is not a positive finite number.
        """
        self._check_ct(a)
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not (0 < bound < float("inf")):
            raise ValueError(f"cannot declare a bound: need a positive finite number, got {bound!r}")
        return self._declare_bound(a, float(bound))

    def _declare_bound(self, a: Ciphertext, bound: float) -> Ciphertext:
        return a

    def _record_bound(self, ct: Ciphertext, bound: float) -> Ciphertext:
        """Scheme hook: record a caller's public bound in place of one derived from the values (default: none kept)."""
        return ct
