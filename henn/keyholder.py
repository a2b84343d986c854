"""The key holder: the only party that owns the secret key.

The trainer computes on ciphertexts with public material only. It calls the key
holder for two things: decrypting what the owner is allowed to see (predictions,
the monitored loss) and *refreshing* ciphertexts whose noise or magnitude budget
is running low. The refresh is the classic masked re-encryption protocol:

1. trainer: ``masked = ct + r`` with a fresh uniform plaintext mask ``r``
   (drawn from the OS CSPRNG, never numpy's global RNG);
2. key holder: decrypts ``masked`` and encrypts the result afresh (its noise
   is back to the fresh-encryption level);
3. trainer: ``fresh = enc(masked) - r``.

The key holder only ever sees ``value + r``. With ``r`` uniform on ``[-M, M]``
(``M = mask_bound``) and ``|value| <= B`` that hides the value up to a statistical
distance of about ``B / M`` — the mask cannot be made arbitrarily wide because the
masked value must still fit the scheme's magnitude range, so this is a
*range-limited* hiding, documented rather than overstated.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from he_core import Ciphertext, OsRandom, RandomSource, Scheme, SecretKey

from .tensor import EncTensor


class MaskedRefresh:
    """The trainer's half of the masked refresh; subclasses provide :meth:`reencrypt`.

    :class:`KeyHolder` re-encrypts in the same process;
    :class:`henn.keyservice.RemoteKeyHolder` sends the masked ciphertext to the owner's
    key service in another process. Both need ``scheme`` and ``mask_bound``.
    """

    scheme: Scheme
    mask_bound: float

    def refresh(self, x: EncTensor | Ciphertext, *, rng: RandomSource | None = None,
                layout: Any = None) -> EncTensor | Ciphertext:
        """Masked re-encryption: a fresh ciphertext of the same values.

        Only :meth:`reencrypt` touches the secret key, and it only receives the masked
        ciphertext; masking (:meth:`he_core.Scheme.mask_for_refresh`, which also hides
        any garbage a packed ciphertext carries) and unmasking happen on the trainer's side.

        Args:
            x: the tensor or ciphertext to refresh.
            rng: mask randomness (default: the OS CSPRNG).
            layout: the layout to re-encrypt into (``None``: the scheme's default), e.g.
                the target of a :class:`he_core.RefreshRequired` error.

        Returns:
            The same type as ``x``: a fresh encryption of the same values.
        """
        ct = _as_ct(x, "refresh")
        rng = rng or OsRandom()
        mask = self.draw_mask(ct, rng)
        masked = self.scheme.mask_for_refresh(ct, mask, rng)     # trainer side
        fresh_masked = self.reencrypt(masked, layout)            # key holder side
        fresh = self.scheme.sub_plain(fresh_masked, mask)        # trainer side
        # A tensor keeps the scheme view it was bound to (e.g. a refresh-guarded view).
        return EncTensor(x.scheme, fresh) if isinstance(x, EncTensor) else fresh

    def draw_mask(self, ct: Ciphertext, rng: RandomSource) -> np.ndarray:
        """A uniform mask on ``[-M, M]`` lying on the ciphertext's fixed-point grid.

        Staying on the grid (multiples of ``1/scale``) makes mask-then-unmask exact
        for integer schemes; a scheme with scale 1 (the float twin) gets a 2^-30 grid.
        """
        grid = float(ct.scale) if ct.scale >= 2 else 2.0**30
        # The masked value must stay encodable: a scheme with a magnitude limit at this
        # scale caps the mask (narrower hiding, stated in SECURITY.md).
        limit = self.scheme.refresh_mask_limit(ct)
        bound = self.mask_bound if limit is None else min(self.mask_bound, limit)
        half = max(1, int(bound * grid))
        return rng.integers(-half, half, ct.shape).astype(np.float64) / grid

    def reencrypt(self, masked: Ciphertext, layout: Any = None) -> Ciphertext:
        raise NotImplementedError


class KeyHolder(MaskedRefresh):
    """Holds the secret key; decrypts and refreshes on request, counting the traffic.

    Args:
        scheme: the scheme (with public keys installed) both parties use.
        secret_key: the secret key; it never leaves this object.
        mask_bound: half-width ``M`` of the uniform refresh mask.

    Attributes:
        refresh_rounds: number of refresh round trips served.
        decrypt_calls: number of decryption requests served.
        bytes_exchanged: payload bytes sent to and from the key holder (ciphertexts).
    """

    def __init__(self, scheme: Scheme, secret_key: SecretKey, *, mask_bound: float = 16.0):
        if not isinstance(secret_key, SecretKey):
            raise TypeError(f"cannot create a KeyHolder: expected a SecretKey, got {type(secret_key).__name__}")
        if not mask_bound > 0:
            raise ValueError(f"cannot create a KeyHolder: mask_bound must be positive, got {mask_bound}")
        self.scheme = scheme
        self._secret = secret_key
        self.mask_bound = float(mask_bound)
        self.refresh_rounds = 0
        self.decrypt_calls = 0
        self.bytes_exchanged = 0

    def __repr__(self) -> str:  # never print the key
        return (f"KeyHolder(scheme={self.scheme.name!r}, key_id={self._secret.key_id[:12]!r}, "
                f"refreshes={self.refresh_rounds})")

    @property
    def key_id(self) -> str:
        return self._secret.key_id

    def export_secret_key(self) -> SecretKey:
        """The secret key itself, for the owner to save (``henn.io.save_model(..., secret=...)``).

        Only the key holder's own process calls this; the trainer side never does.
        """
        return self._secret

    # ------------------------------------------------------------------ decryption
    def decrypt(self, x: EncTensor | Ciphertext) -> np.ndarray:
        """Decrypt a tensor or ciphertext to a float64 ``(rows, size)`` array.

        Raises:
            he_core.MismatchError: ``x`` is under another key or scheme.
        """
        ct = _as_ct(x, "decrypt")
        self.decrypt_calls += 1
        self.bytes_exchanged += ct.nbytes
        return self.scheme.decrypt(ct, self._secret)

    # ------------------------------------------------------------------ refresh
    def reencrypt(self, masked: Ciphertext, layout: Any = None) -> Ciphertext:
        """Key holder: decrypt the masked values and encrypt them afresh (in ``layout``, if given)."""
        self.refresh_rounds += 1
        self.bytes_exchanged += masked.nbytes
        values = self.scheme.decrypt(masked, self._secret)
        fresh = self.scheme.encrypt(values, self._secret, layout=layout)
        self.bytes_exchanged += fresh.nbytes
        return fresh

    def encrypt_zeros(self, shape: tuple[int, int], layout: Any = None) -> Ciphertext:
        """A fresh encryption of zeros (the key service's answer to values it cannot re-encrypt)."""
        return self.scheme.encrypt(np.zeros(shape), self._secret, layout=layout)

    def counters(self) -> dict[str, int]:
        """The traffic counters as a JSON-ready dict."""
        return {"refresh_rounds": self.refresh_rounds, "decrypt_calls": self.decrypt_calls,
                "bytes_exchanged": self.bytes_exchanged}


def _as_ct(x: Any, op: str) -> Ciphertext:
    if isinstance(x, EncTensor):
        return x.ct
    if isinstance(x, Ciphertext):
        return x
    raise TypeError(f"cannot {op}: expected an EncTensor or Ciphertext, got {type(x).__name__}")
