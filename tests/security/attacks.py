"""The attacker's code, shared by the attack tests: what a party could do with what it sees.

Nothing here is part of henn. Each function is an attack from the issue that set up
henn's protocol (Li and Micciancio's key recovery from released CKKS decryptions, the
fold of an encryption of the key into a released model, distinguishing refresh masks,
reading a computation from a ciphertext's randomness), written as an attacker would,
so the tests can show it succeed against a deliberately unprotected configuration and
fail against the real one.
"""
from __future__ import annotations

import numpy as np

import he_core
from he_core.schemes.ckks import encoder
from henn.keyholder import KeyHolder


def centred(values: np.ndarray, q: int) -> np.ndarray:
    v = np.asarray(values, dtype=object) % q
    return np.where(v > q // 2, v - q, v)


def secret_from_phase(scheme, ct: he_core.Ciphertext, phase: np.ndarray, index: int = 0) -> np.ndarray:
    """Li-Micciancio: with the exact phase c0 + c1 s of one ciphertext, s = (phase - c0) / c1 in NTT form.

    Works modulo the first prime alone: the secret is ternary, so its residues mod q_0
    determine it.
    """
    ring = scheme.ring
    q = ring.q[0]
    limb = np.array([int(v) % q for v in phase], dtype=np.uint64).reshape(1, -1)
    ring.ntt(limb)
    c0 = ct.data[index, 0, 0].astype(object)
    c1 = ct.data[index, 1, 0].astype(object)
    s_hat = [(int(p) - int(a)) * pow(int(b), -1, q) % q if int(b) % q else 0
             for p, a, b in zip(limb[0], c0, c1)]
    s = np.array(s_hat, dtype=np.uint64).reshape(1, -1)
    ring.intt(s)
    return centred(s[0], q).astype(np.int64)


def phase_from_coefficients(scheme, ct: he_core.Ciphertext, values: np.ndarray) -> np.ndarray:
    """The phase of a full coefficient-packed table from its released values (value * scale, rounded)."""
    which, pos = scheme._coeff_positions(ct)
    phase = np.zeros(scheme.ring.n, dtype=np.float64)
    sel = which == 0
    phase[pos[sel]] = np.asarray(values)[sel] * ct.scale
    return np.rint(phase)


def phase_from_slots(scheme, real_parts: np.ndarray, rotated_real_parts: np.ndarray, scale: float) -> np.ndarray:
    """The phase of a slot-packed ciphertext from the real parts released for ct and for ct * X^(N/2).

    Multiplying by X^(N/2) multiplies every slot by i, so the second release's real
    parts are minus the first one's imaginary parts: together, the full slot vector,
    whose encoding is the phase.
    """
    slots = np.asarray(real_parts) - 1j * np.asarray(rotated_real_parts)
    return encoder.encode(slots, scheme.ring.n, scale).astype(np.float64)


def times_monomial(scheme, ct: he_core.Ciphertext, power: int) -> he_core.Ciphertext:
    """ct * X^power (a public operation: any party can compute it)."""
    ring = scheme.ring
    nl = ct.data.shape[2]
    mono = np.zeros((nl, ring.n), dtype=np.uint64)
    mono[:, power % ring.n] = 1 if (power // ring.n) % 2 == 0 else 0
    ring.ntt(mono)
    data = ct.data.copy()
    for i in range(data.shape[0]):
        for p in range(data.shape[1]):
            ring.mul(np.ascontiguousarray(ct.data[i, p]), mono, data[i, p])
    return ct.replace(data=data)


def agreement(guess: np.ndarray, secret: np.ndarray) -> float:
    """Fraction of coefficients an attacker's guess gets right."""
    return float(np.mean(np.asarray(guess) == np.asarray(secret)))


class SpyKeyHolder(KeyHolder):
    """A key holder that counts every call that could carry something out of the trainer."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: dict[str, int] = {}

    def _count(self, name):
        self.calls[name] = self.calls.get(name, 0) + 1

    def reencrypt(self, masked, layout=None):
        self._count("reencrypt")
        return super().reencrypt(masked, layout)

    def release(self, x):
        self._count("release")
        return super().release(x)

    def release_result(self, x):  # a release too (it re-encrypts, then floods, without calling release)
        self._count("release")
        return super().release_result(x)

    def export_secret_key(self):
        self._count("export_secret_key")
        return super().export_secret_key()
