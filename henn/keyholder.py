"""The masked refresh every trainer uses, and the in-process key holder.

The trainer computes on ciphertexts with public material only. Two things need the
secret key, and both go through this module:

* a **refresh** (:meth:`MaskedRefresh.refresh`): a ciphertext whose noise or levels run
  low, or that must change layout, is masked, re-encrypted by the key holder and
  unmasked. :meth:`MaskedRefresh.draw_mask` is the only code in henn that builds a
  mask (:mod:`he_core.refresh` explains the plan it follows). Masks are uniform
  integers in the scheme's plaintext domain (CKKS: coefficients of the decrypted
  polynomial), ``statistical_bits + log2(entries budget)`` bits above the bound of
  what they hide, so everything the key holder sees in a whole job is within
  statistical distance ``2^-statistical_bits`` of a view independent of the values;
* a **release** (:meth:`KeyHolder.release`): a decryption that leaves the key holder,
  noise-flooded for the job's release budget (:mod:`he_core.flooding`).

:class:`KeyHolder` is the key holder in the trainer's own process (owner and trainer
are then one party: nothing is hidden from anybody, but the protocol and its
accounting are the same as across processes). :class:`henn.keyservice.RemoteKeyHolder`
is the trainer's handle on the owner's key service in another process.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np

from he_core import Capability, Ciphertext, Flooding, OsRandom, RandomSource, Scheme, SecretKey, serialization
from he_core.errors import HEError, ParameterError, SecurityWarning
from he_core.refresh import Mask, MaskPlan, hiding_log2, mask_width

from .tensor import EncTensor


class BudgetExhausted(HEError, RuntimeError):
    """A job's refresh or release budget is spent: the key holder answers no more."""


@dataclasses.dataclass(frozen=True)
class RefreshTerms:
    """What a job fixes about refreshes and releases.

    Attributes:
        statistical_bits: lambda, for the masks and the flooding (>= 30).
        refreshes: the most refresh requests the job serves.
        entries_per_refresh: the most masked entries one refresh may read (CKKS: the
            coefficients the target map reads, e.g. N for a slot layout, 8 for a table
            row).
        entries: the masked entries the whole job may read, which sizes every mask
            (0: ``refreshes * entries_per_refresh``).
        releases: the most decryptions released under the key (the flooding's q).
        min_aggregate: the fewest samples a released aggregate may cover (the owner
            never sees a per-sample value).
    """

    statistical_bits: int = 30
    refreshes: int = 1 << 18
    entries_per_refresh: int = 1 << 8  # 2^26 entries: a 56-bit margin, which the refresh floor holds
    releases: int = 1 << 10
    min_aggregate: int = 500
    entries: int = 0

    def __post_init__(self) -> None:
        for name in ("refreshes", "entries_per_refresh", "releases", "min_aggregate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"cannot use refresh terms: {name} must be a positive integer, got {value!r}")
        if isinstance(self.entries, bool) or not isinstance(self.entries, int) or self.entries < 0:
            raise ParameterError(f"cannot use refresh terms: entries must be a non-negative integer, "
                                 f"got {self.entries!r}")
        Flooding(self.statistical_bits)  # validates lambda

    @property
    def entries_budget(self) -> int:
        return self.entries or self.refreshes * self.entries_per_refresh

    @property
    def flooding(self) -> Flooding:
        return Flooding(self.statistical_bits, self.releases)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RefreshTerms":
        return cls(**data)


class MaskedRefresh:
    """The trainer's half of the masked refresh; subclasses provide :meth:`reencrypt`.

    Args:
        scheme: the scheme (public keys installed).
        terms: the job's terms (mask sizing and budgets).
        rng: mask randomness (default: the OS CSPRNG; tests may pass a seeded source).

    Attributes:
        refresh_rounds: refreshes made.
        entries_read: masked entries the key holder's maps read so far.
        worst_margin_bits: the smallest number of bits any mask had above its bound.
    """

    def __init__(self, scheme: Scheme, terms: RefreshTerms, rng: RandomSource | None = None):
        self.scheme = scheme
        self.terms = terms
        self._rng = rng or OsRandom()
        self.refresh_rounds = 0
        self.entries_read = 0
        self.worst_margin_bits = math.inf
        self._best_effort = scheme.params.security_bits == 0

    def refresh(self, x: EncTensor | Ciphertext, *, layout: Any = None,
                value_bound: float | None = None) -> EncTensor | Ciphertext:
        """A fresh ciphertext of the same values (in ``layout``: ``None`` keeps the layout at full budget).

        Args:
            x: the tensor or ciphertext to refresh.
            layout: a target the scheme named in a :class:`he_core.RefreshRequired`.
            value_bound: a bound on |value| the caller vouches for (sizes the mask when
                tighter than the scheme's analytic bound; see :meth:`he_core.Scheme.refresh_plan`).

        Returns:
            The same type as ``x``.

        Raises:
            BudgetExhausted: the job's refresh budget is spent.
            ParameterError: the ciphertext's level leaves no room for the mask.
        """
        ct = _as_ct(x, "refresh")
        if self.refresh_rounds >= self.terms.refreshes:
            raise BudgetExhausted(f"cannot refresh: the job's budget of {self.terms.refreshes} refreshes is spent")
        plan = self.scheme.refresh_plan(ct, layout, value_bound=value_bound)
        mask = self.draw_mask(plan)
        masked = self.scheme.apply_mask(ct, mask, rng=self._rng)                        # trainer side
        fresh_masked = self.reencrypt(masked, layout)                                     # key holder side
        fresh = self.scheme.remove_mask(fresh_masked, mask, layout, ct, value_bound)      # trainer side
        self.refresh_rounds += 1
        return EncTensor(x.scheme, fresh) if isinstance(x, EncTensor) else fresh

    def fresh_for_owner(self, x: EncTensor | Ciphertext, value_bound: float | None = None, *,
                        layout: Any = None) -> EncTensor | Ciphertext:
        """``x`` re-encrypted by the key holder (into ``layout``) before the owner decrypts it (approximate schemes).

        An approximate scheme's noise follows the computation, hence the data: decrypting
        a trainer's ciphertext exactly would show the owner more than its value. After a
        masked refresh the noise is the key holder's own fresh noise, so a decryption shows
        the value and nothing of how it was computed. Exact schemes decrypt exactly: ``x``.
        """
        if not self.scheme.supports(Capability.APPROXIMATE):
            return x
        return self.refresh(x, layout=layout, value_bound=value_bound)

    def draw_mask(self, plan: MaskPlan) -> Mask:
        """Draw the mask for a plan: bounded entries where the key holder reads, uniform residues elsewhere."""
        if self.entries_read + plan.n_read > self.terms.entries_budget:
            raise BudgetExhausted(f"cannot refresh: the job's masks were sized for {self.terms.entries_budget} "
                                  "masked entries in all, and this refresh would read more")
        width = self._width(plan)
        n = plan.n_read
        value = self._rng.integers(-(2 ** min(width, 62)), 2 ** min(width, 62) - 1, n) if width <= 62 else None
        if value is not None:
            high, low = value >> 63, value & np.int64(2**63 - 1)
        else:  # width > 62: the high word carries the rest
            span = 2 ** (width - 63)
            high = self._rng.integers(-span, span - 1, n)
            low = self._rng.integers(0, 2**63 - 1, n)
        residues = None
        if plan.moduli:
            residues = np.stack([np.stack([self._rng.uniform_mod(q, plan.n_entries) for q in plan.moduli])
                                 for _ in range(plan.n_cts)])
        self.entries_read += n
        self.worst_margin_bits = min(self.worst_margin_bits, width - plan.bound_bits)
        return Mask(plan, width, np.ascontiguousarray(high, dtype=np.int64), np.ascontiguousarray(low, dtype=np.int64),
                    residues)

    def _width(self, plan: MaskPlan) -> int:
        try:
            return mask_width(plan, self.terms.statistical_bits, self.terms.entries_budget)
        except ParameterError:
            if not self._best_effort:
                raise
            # A scheme insecure by design (vhe): as wide as its range allows, and the report says what that hides.
            return max(1, math.floor(plan.max_width()))

    def levels_reserved(self, ct: Ciphertext, layout: Any = None, value_bound: float | None = None) -> int:
        """The lowest level at which ``ct`` can still be masked (0 for schemes without a modulus chain).

        A leveled scheme can refresh a ciphertext only while its modulus has room for
        the mask (its bound plus the hiding margin): a refresh policy keeps that many
        levels in reserve. ``value_bound`` as for :meth:`refresh`.
        """
        plan = self.scheme.refresh_plan(ct, layout, value_bound=value_bound)
        if not plan.moduli:
            return 0
        try:
            width = self._width(plan)
        except ParameterError:
            return len(plan.moduli)  # no room even at this level: everything is reserved
        total = 0.0
        for level, q in enumerate(plan.moduli):
            total += math.log2(q)
            if total - 3.0 >= width:  # room_bits - 2 = log2(Q) - 3 (see MaskPlan.max_width)
                return level
        return len(plan.moduli)

    def hiding(self) -> dict:
        """The key holder's view of the job so far: masked entries read and the statistical distance bound."""
        margin = self.worst_margin_bits
        return {"refresh_rounds": self.refresh_rounds, "masked_entries": self.entries_read,
                "entries_budget": self.terms.entries_budget, "statistical_bits": self.terms.statistical_bits,
                "worst_mask_margin_bits": None if margin == math.inf else round(margin, 2),
                "statistical_distance_log2": None if margin == math.inf
                else round(hiding_log2(self.entries_read, margin), 2)}

    def reencrypt(self, masked: Ciphertext, layout: Any = None) -> Ciphertext:
        raise NotImplementedError


class KeyHolder(MaskedRefresh):
    """The key holder in the trainer's process: refreshes and releases under one secret key.

    Args:
        scheme: the scheme (with public keys installed).
        secret_key: the secret key; it never leaves this object.
        terms: the job's terms (default :class:`RefreshTerms`).
        rng: randomness for masks, flooding and fresh encryptions (default the OS CSPRNG).

    Attributes:
        releases: released decryptions so far (against ``terms.releases``).
        bytes_exchanged: ciphertext bytes that crossed the boundary (as across processes).
        reports: the flooding report of every release (precision, sigma), in order.
    """

    def __init__(self, scheme: Scheme, secret_key: SecretKey, *, terms: RefreshTerms | None = None,
                 rng: RandomSource | None = None):
        if not isinstance(secret_key, SecretKey):
            raise TypeError(f"cannot create a KeyHolder: expected a SecretKey, got {type(secret_key).__name__}")
        super().__init__(scheme, terms or RefreshTerms(), rng)
        if not self._rng.secure:
            # Its masks, floods and fresh encryptions (their seeds, too) all come from it: a guessable
            # source (SeededRandom) gives the secret away to whoever guesses the seed.
            warnings.warn("the key holder's randomness is not cryptographically secure (tests and experiments "
                          "only): whoever guesses its seed predicts every mask, flood and encryption",
                          SecurityWarning, stacklevel=2)
        self._secret = secret_key
        self.releases = 0
        self.bytes_exchanged = 0
        self.reports: list[dict] = []

    def __repr__(self) -> str:  # never print the key
        return (f"KeyHolder(scheme={self.scheme.name!r}, key_id={self._secret.key_id[:12]!r}, "
                f"refreshes={self.refresh_rounds}, releases={self.releases})")

    @property
    def key_id(self) -> str:
        return self._secret.key_id

    def export_secret_key(self) -> SecretKey:
        """The secret key itself, for the owner to save; only the owner's own process calls this."""
        return self._secret

    def reencrypt(self, masked: Ciphertext, layout: Any = None) -> Ciphertext:
        """Key holder: a fresh encryption of the target's map of the masked plaintext."""
        self.bytes_exchanged += masked.nbytes
        fresh = self.scheme.reencrypt_masked(masked, layout, self._secret, rng=self._rng)
        self.bytes_exchanged += serialization.wire_nbytes(fresh)  # what the wire carries (a seeded answer: half)
        return fresh

    def release(self, x: EncTensor | Ciphertext) -> np.ndarray:
        """A decryption that may leave the key holder: noise-flooded for the job's release budget.

        Raises:
            BudgetExhausted: the job's release budget is spent.
            he_core.MismatchError: ``ct`` is malformed (e.g. a residue not below its prime, a
                scale that is not finite and positive) or under another key.
            he_core.PrecisionError: the flooding would leave too few bits (see :mod:`he_core.flooding`).
        """
        ct = self._received(x)
        return self._flooded(ct, ct.nbytes)

    def _received(self, x: EncTensor | Ciphertext) -> Ciphertext:
        """A ciphertext sent for release, checked before anything is decrypted: budget, form, encoding."""
        ct = _as_ct(x, "release")
        if self.releases >= self.terms.releases:
            raise BudgetExhausted(f"cannot release: the job's budget of {self.terms.releases} released "
                                  "decryptions is spent (the flooding was sized for that many)")
        self.scheme.validate(ct)  # a received ciphertext: checked as the key service checks one, before decrypting
        self._check_encoding(ct)
        return ct

    def _flooded(self, ct: Ciphertext, nbytes: int) -> np.ndarray:
        """The release of a checked ciphertext (``nbytes``: what crossed the boundary for it)."""
        self.releases += 1
        self.bytes_exchanged += nbytes
        values = self.scheme.decrypt(ct, self._secret, flooding=self.terms.flooding, rng=self._rng)
        if self.scheme.supports(Capability.APPROXIMATE):
            report = self.scheme.release_report(ct, self.terms.flooding)
            largest = float(np.max(np.abs(values))) if values.size else 0.0
            report["precision_bits"] = (math.log2(largest / report["value_sigma"])
                                        if largest > 0 and report["value_sigma"] > 0 else None)
            self.reports.append(report)
        return values

    def release_result(self, x: EncTensor | Ciphertext) -> np.ndarray:
        """A result for the owner (a trained model, predictions): re-encrypted here, then released flooded.

        An approximate scheme's flood is sized from the decrypted ciphertext's noise, and a
        trainer's ciphertext carries the computation's (after a bootstrap, far more than a
        flood could hide and keep the values). The key holder therefore decrypts ``x``
        itself, encrypts the result afresh and releases that: the flood then hides a fresh
        encryption's noise. The released values are those of a masked refresh followed by
        :meth:`release` (the masked refresh's mask only hides the value from the key holder,
        which this release shows it anyway), without the round trip: no refresh is
        counted and nothing goes back to the trainer. Exact schemes: :meth:`release`.

        Raises:
            BudgetExhausted: the job's release budget is spent.
            he_core.MismatchError: ``ct`` is malformed or under another key (as :meth:`release`).
            he_core.PrecisionError: the flooding would leave too few bits.
        """
        ct = self._received(x)
        if not self.scheme.supports(Capability.APPROXIMATE):
            return self._flooded(ct, ct.nbytes)
        # The fresh encryption is the key holder's own: nothing about it needs checking again.
        return self._flooded(self.scheme.reencrypt_masked(ct, None, self._secret, rng=self._rng), ct.nbytes)

    def _check_encoding(self, ct: Ciphertext) -> None:
        """Refuse what an exact decryption refuses (``HEOverflowError``: not a valid encoding, values past
        the modulus) instead of releasing garbage; the exact values never leave this method."""
        if self.scheme.supports(Capability.APPROXIMATE):
            self.scheme.decrypt_exact_local(ct, self._secret)

    def release_aggregate(self, x: EncTensor | Ciphertext, count: int, *, value_bound: float | None = None,
                          scale: float = 1.0) -> float:
        """Release the sum of a quantity over ``count`` samples (a ``(1, 1)`` ciphertext): refreshed, flooded.

        Args:
            x: the encrypted sum, times ``scale``.
            count: samples it covers (at least the job's ``min_aggregate``).
            value_bound: a bound on |x| (sizes the refresh's mask; default the tracked one).
            scale: the public factor every summed term carries (a trainer scales terms
                down so the sum stays small enough to mask at a low level); the per-sample
                mean is the released value over ``scale * count``.

        Returns:
            The released value of ``x`` (the scaled sum).

        Raises:
            ValueError: ``count`` below the job's ``min_aggregate`` (no per-sample values),
                not a one-value ciphertext, or a ``scale`` outside ``(0, 1]``.
        """
        check_scale(scale)
        ct = check_aggregate(_as_ct(x, "release an aggregate"), count, self.terms)
        return float(self.release(self.fresh_for_owner(ct, value_bound))[0, 0])

    def counters(self) -> dict[str, Any]:
        """Traffic and hiding as a JSON-ready dict."""
        out = {"refresh_rounds": self.refresh_rounds, "releases": self.releases,
               "bytes_exchanged": self.bytes_exchanged, "hiding": self.hiding()}
        if self.reports:
            bits = [r["precision_bits"] for r in self.reports if r.get("precision_bits") is not None]
            out["release"] = {**{k: v for k, v in self.reports[-1].items() if k != "precision_bits"},
                              "min_precision_bits": round(min(bits), 2) if bits else None}
        return out


def check_scale(scale: Any) -> float:
    """An aggregate's term scale: a number in ``(0, 1]`` (a factor that shrinks the sum).

    Raises:
        ValueError: anything else.
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (0.0 < scale <= 1.0):
        raise ValueError(f"cannot release an aggregate: its scale must be a number in (0, 1], got {scale!r}")
    return float(scale)


def check_aggregate(ct: Ciphertext, count: int, terms: RefreshTerms) -> Ciphertext:
    """``ct`` if it may be released as an aggregate over ``count`` samples under ``terms``.

    Raises:
        ValueError: ``count`` below ``terms.min_aggregate`` or not a one-value ciphertext.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < terms.min_aggregate:
        raise ValueError(f"cannot release an aggregate of {count!r} samples: the job releases sums over at "
                         f"least {terms.min_aggregate} (never a per-sample value)")
    if tuple(ct.shape) != (1, 1):
        raise ValueError(f"cannot release an aggregate: expected one value, got shape {ct.shape}")
    return ct


def _as_ct(x: Any, op: str) -> Ciphertext:
    if isinstance(x, EncTensor):
        return x.ct
    if isinstance(x, Ciphertext):
        return x
    raise TypeError(f"cannot {op}: expected an EncTensor or Ciphertext, got {type(x).__name__}")
