"""The masked refresh, as far as a scheme takes part in it: mask plans and masks.

A refresh brings a ciphertext back to full budget without the trainer ever seeing a
decryption and without the key holder seeing the values:

1. trainer: ``plan = scheme.refresh_plan(ct, target)`` says which entries of the
   ciphertext's plaintext (for CKKS: which *coefficients* of the decrypted integer
   polynomial) the key holder's re-encryption into ``target`` reads, how large those
   entries can be, and how many bits the modulus leaves; henn's ``MaskedRefresh``
   (the one place that draws masks) draws a :class:`Mask` from the OS CSPRNG and
   ``masked = scheme.apply_mask(ct, mask)`` adds it and re-randomises the rest of the
   ciphertext (so the key holder learns nothing from its randomness either);
2. key holder: ``fresh = scheme.reencrypt_masked(masked, target, secret)`` decrypts
   the masked polynomial, applies the target's public map to the entries it reads
   and encrypts the result afresh; it never branches on the values;
3. trainer: ``scheme.remove_mask(fresh, mask, target)`` subtracts the same map of
   the mask.

Hiding: entries the target reads carry a uniform integer mask ``width_bits`` wide,
``lambda + log2(entries read in the whole job)`` bits above their bound, so the key
holder's view of a whole job is within statistical distance 2^-lambda of a view that
does not depend on the values (a union over every entry it reads). Entries the target
does not read get a mask uniform modulo the ciphertext modulus: they are hidden
perfectly.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from .errors import ParameterError

#: The bit widths a bounded mask entry may have (two int64 words: high * 2^63 + low).
MAX_MASK_BITS = 124


@dataclasses.dataclass(frozen=True)
class MaskPlan:
    """What a refresh of one ciphertext into one target needs from the mask.

    Attributes:
        read: ``(ciphertext index, entry index)`` arrays (two int64 arrays of equal
            length) of the entries the re-encryption reads: these get bounded masks.
        bound_bits: log2 of a bound on |entry| at the read positions (value plus noise,
            in the integer units of the decrypted polynomial).
        room_bits: log2 of half the modulus at the ciphertext's level: a masked entry
            must stay below it (it is decrypted as a centred integer).
        moduli: for the entries the target does not read, the primes of the
            ciphertext's level (a mask uniform modulo each is uniform modulo their
            product); empty when the scheme has no modulus.
        n_cts, n_entries: the shape of the mask over the whole ciphertext.
    """

    read: tuple[np.ndarray, np.ndarray]
    bound_bits: float
    room_bits: float
    moduli: tuple[int, ...]
    n_cts: int
    n_entries: int

    @property
    def n_read(self) -> int:
        return int(self.read[0].size)

    def max_width(self) -> float:
        """The widest bounded mask the modulus can hold (one bit of margin for the sign and the sum)."""
        return self.room_bits - 2.0


@dataclasses.dataclass
class Mask:
    """A refresh mask drawn for one :class:`MaskPlan`.

    Attributes:
        plan: the plan it was drawn for.
        width_bits: bounded entries are uniform integers in ``[-2^w, 2^w)``.
        high, low: the bounded entries as ``high * 2^63 + low`` (int64 ``high``,
            ``0 <= low < 2^63``), one per read position.
        residues: for the unread entries, ``(n_cts, len(moduli), n_entries)`` uint64
            residues uniform modulo each prime (``None`` when the scheme has no modulus);
            the read positions' residues there are ignored.
    """

    plan: MaskPlan
    width_bits: int
    high: np.ndarray
    low: np.ndarray
    residues: np.ndarray | None

    def as_ints(self) -> list[int]:
        """The bounded entries as Python integers (reference and tests)."""
        return [int(h) * 2**63 + int(lo) for h, lo in zip(self.high, self.low)]

    def as_int64(self) -> np.ndarray:
        """The bounded entries as int64, when every one fits (``high`` is 0 or -1).

        Raises:
            OverflowError: an entry outside [-2^63, 2^63).
        """
        high, low = np.asarray(self.high, dtype=np.int64), np.asarray(self.low, dtype=np.int64)
        if not (np.all((high == 0) | (high == -1)) and np.all(low >= 0)):  # low in [0, 2^63), as drawn
            raise OverflowError("a mask entry does not fit in 64 bits")
        with np.errstate(over="ignore"):  # high * 2^63 wraps to exactly 0 or -2^63
            return (high << np.int64(63)) + low

    def residues_of_bounded(self, modulus: int) -> np.ndarray:
        """Each bounded entry modulo ``modulus`` (< 2^62), as uint64."""
        m = int(modulus)
        two63 = pow(2, 63, m)
        hi = np.mod(self.high, m).astype(object)
        lo = np.mod(self.low, m).astype(object)
        return np.array([(h * two63 + x) % m for h, x in zip(hi, lo)], dtype=np.uint64)

    def mod_2_64(self) -> np.ndarray:
        """Each bounded entry modulo 2^64 (two's complement), as uint64."""
        with np.errstate(over="ignore"):
            return (self.high.astype(np.uint64) << np.uint64(63)) + self.low.astype(np.uint64)


def hiding_log2(entries_read: int, margin_bits: float) -> float:
    """log2 of the statistical distance of a view of ``entries_read`` masked entries.

    Each entry, masked uniformly ``margin_bits`` above its bound, is within
    2^-margin_bits of an entry that does not depend on the value (the two uniform
    ranges overlap except for a sliver of relative size bound / width); a union bound
    over the entries adds their distances.
    """
    if entries_read <= 0:
        return -math.inf
    return math.log2(entries_read) - margin_bits


def mask_width(plan: MaskPlan, statistical_bits: int, entries_budget: int) -> int:
    """The mask width a plan needs for ``2^-lambda`` over a job reading ``entries_budget`` entries.

    Raises:
        ParameterError: the modulus at the ciphertext's level has no room for it
            (refresh earlier, at a higher level).
    """
    margin = statistical_bits + math.log2(max(entries_budget, 1))
    width = math.ceil(plan.bound_bits + margin)
    if width > min(plan.max_width(), MAX_MASK_BITS):
        raise ParameterError(f"cannot mask: a {width}-bit mask (values up to 2^{plan.bound_bits:.1f}, plus "
                             f"{margin:.1f} bits of hiding) does not fit the {plan.room_bits:.0f} bits the "
                             "modulus leaves at this level; refresh at a higher level")
    return width


def check_mask(mask: Any, plan: MaskPlan) -> None:
    """Refuse a mask that was not drawn for this plan (wrong sizes or dtypes)."""
    if not isinstance(mask, Mask) or mask.plan is not plan:
        raise ParameterError("cannot use the mask: it was not drawn for this refresh plan")
    n = plan.n_read
    if mask.high.shape != (n,) or mask.low.shape != (n,) or mask.high.dtype != np.int64 \
            or mask.low.dtype != np.int64:
        raise ParameterError("cannot use the mask: bounded entries must be two int64 arrays, one per read entry")
    if plan.moduli and (mask.residues is None
                        or mask.residues.shape != (plan.n_cts, len(plan.moduli), plan.n_entries)):
        raise ParameterError("cannot use the mask: residues do not match the ciphertext")
