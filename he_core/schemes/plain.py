"""The plaintext twin: the scheme interface computing in the clear.

Every henn model runs on it unchanged, which makes it the debugging back end and
the baseline that measures what encryption costs. It gives **no** privacy.

With ``precision_bits=None`` it computes in float64. With ``precision_bits=f`` every
encoded value and every rescaled product is rounded to a multiple of ``2**-f``, which
mimics the fixed-point arithmetic of the integer schemes.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..capabilities import Capability
from ..ciphertext import Ciphertext
from ..errors import HEOverflowError, MismatchError, ParameterError
from ..kernels import rows as row_kernels
from ..keys import KeyPair, KeyRequirements, PublicKeys, SecretKey, SwitchKey, derive_key_id
from ..optional import LinearMapping, MaskedRefreshing, Products, Rekeying, Sanitization
from ..params import Parameters
from ..randomness import RandomSource
from ..refresh import MaskPlan
from ..scheme import Budget, Scheme


@dataclasses.dataclass(frozen=True)
class PlainParams(Parameters):
    """Parameters of the plaintext twin.

    Attributes:
        precision_bits: round to multiples of 2**-precision_bits, or ``None`` for float64.
    """

    scheme = "plain"
    precision_bits: int | None = None

    def __post_init__(self) -> None:
        if self.precision_bits is not None and not (0 <= int(self.precision_bits) <= 52):
            raise ParameterError(f"precision_bits must lie in [0, 52] or be None, got {self.precision_bits}")


class PlainScheme(Products, LinearMapping, Rekeying, MaskedRefreshing, Sanitization, Scheme):
    """Computes on cleartext float64 arrays behind the scheme interface."""

    name = "plain"
    params_class = PlainParams
    capabilities = frozenset({
        Capability.PUBLIC_KEY_ENCRYPT, Capability.CIPHER_MULTIPLY, Capability.INNER_PRODUCT,
        Capability.LINEAR_TRANSFORM, Capability.RESCALE, Capability.REKEY, Capability.REFRESH,
        Capability.SANITIZE, Capability.SERIALIZE,
    })

    def _round(self, x: np.ndarray) -> np.ndarray:
        bits = self.params.precision_bits
        if bits is None:
            return x
        return np.rint(x * 2.0**bits) / 2.0**bits

    def _wrap(self, like: Ciphertext | str, data: np.ndarray) -> Ciphertext:
        key_id = like if isinstance(like, str) else like.key_id
        return Ciphertext(self.name, self.params_id, key_id, data.shape, 1.0, data, None, self.params)

    # keys
    def _keygen(self, requirements: KeyRequirements, rng: RandomSource) -> KeyPair:
        # No key material: a random nonce stands in for it, so ids are derived the same way.
        data = {"nonce": np.frombuffer(rng.bytes(32), dtype=np.uint8).copy()}
        key_id = derive_key_id(self.name, self.params_id, self.key_id_material(data))
        secret = SecretKey(self.name, self.params_id, key_id, None, requirements, self.params)
        public = PublicKeys(self.name, self.params_id, key_id, data, requirements, self.params)
        return KeyPair(secret, public)

    def _make_switch_key(self, old: SecretKey, new: SecretKey, rng: RandomSource) -> SwitchKey:
        return SwitchKey(self.name, self.params_id, old.key_id, new.key_id, None, self.params)

    def _rekey(self, ct: Ciphertext, switch_key: SwitchKey) -> Ciphertext:
        return ct.replace(key_id=switch_key.to_key_id, data=ct.data.copy())

    # encryption
    def _encrypt_secret(self, values, key, scale, rng) -> Ciphertext:
        return self._wrap(key.key_id, self._round(values.copy()))

    def _encrypt_public(self, values, public, scale, rng) -> Ciphertext:
        return self._wrap(public.key_id, self._round(values.copy()))

    def _check_ct(self, a: Ciphertext) -> None:
        super()._check_ct(a)
        data = a.data
        if not isinstance(data, np.ndarray) or data.dtype != np.float64 or data.shape != tuple(a.shape):
            raise MismatchError(f"{a.describe()} is malformed: expected a float64 array of its shape {a.shape}")

    def _decrypt(self, ct: Ciphertext, key: SecretKey) -> np.ndarray:
        # The twin computes in float64 without checks (it is the fast reference); a
        # computation that diverged shows here, as an encrypted one's would overflow.
        if not np.all(np.isfinite(ct.data)):
            raise HEOverflowError(f"cannot decrypt {ct.describe()}: its values overflowed float64 (the computation "
                                  "diverged)")
        return ct.data.copy()

    # arithmetic
    def _add(self, a, b):
        return self._wrap(a, a.data + b.data)

    def _sub(self, a, b):
        return self._wrap(a, a.data - b.data)

    def _neg(self, a):
        return self._wrap(a, -a.data)

    def _add_plain(self, a, values):
        return self._wrap(a, a.data + self._round(values))

    def _mul_plain(self, a, values, rescale):
        return self._wrap(a, self._round(a.data * self._round(values)))

    def _mul(self, a, b, rescale):
        return self._wrap(a, self._round(a.data * b.data))

    def _inner(self, a, b, rescale):
        return self._wrap(a, self._round(np.sum(a.data * b.data, axis=1, keepdims=True)))

    def _rescale(self, a):
        return a

    def _matvec(self, a, matrix, key):
        return self._wrap(a, self._round(a.data @ matrix.T))

    # rows
    def _take_rows(self, a, rows):
        return self._wrap(a, a.data[rows])

    def _concat_rows(self, parts):
        return self._wrap(parts[0], np.concatenate([p.data for p in parts], axis=0))

    def _row_sum(self, a, rows):
        if rows is None:
            return self._wrap(a, a.data.sum(axis=0, keepdims=True))
        return self._wrap(a, row_kernels.gather_sum(a.data, rows))

    def _lincomb(self, weights, a, rescale):
        return self._wrap(a, self._round(self._round(weights) @ a.data))

    def _index_add_(self, a, rows, b):
        row_kernels.scatter_add(a.data, rows, b.data)

    # refresh: the twin holds plaintext, so there is nothing to mask; the protocol's steps are copies
    def _refresh_plan(self, ct, target, value_bound) -> MaskPlan:
        empty = np.zeros(0, dtype=np.int64)
        return MaskPlan(read=(empty, empty), bound_bits=0.0, room_bits=math.inf, moduli=(), n_cts=ct.rows,
                        n_entries=ct.size)

    def _apply_mask(self, ct, mask, rng) -> Ciphertext:
        return self.copy(ct)

    def _reencrypt_masked(self, masked, target, key, rng) -> Ciphertext:
        return self.copy(masked)

    def _remove_mask(self, fresh, mask, target, source, value_bound) -> Ciphertext:
        return fresh

    def _sanitize(self, ct, flooding, rng) -> Ciphertext:
        return self.copy(ct)

    def _budget(self, a) -> Budget:
        return Budget(kind="unbounded", remaining=float("inf"))
