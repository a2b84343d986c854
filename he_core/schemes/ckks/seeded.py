"""Seeded secret-key ciphertexts: the uniform half ``a`` travels as a 32-byte seed.

A secret-key encryption is ``(c0, a) = (-a s + m + e, a)`` with ``a`` uniform and public, so
``a`` may come from a public seed expanded by an extendable-output function: the sender
keeps the seed, the wire carries ``c0`` and the seed, and the receiver expands ``a`` again.
That halves a fresh encryption on the wire: the key holder's refreshes going back to the
trainer. (SEAL and OpenFHE do the same; the expansion here is this project's own, below.)

Expansion: SHAKE-256 of a domain tag, the seed and the prime's index gives 64-bit words;
a word below ``floor(2^64 / q) q`` is kept and reduced mod ``q`` (rejection sampling:
uniform, no bias). The seed itself comes from the encryption's
randomness source (the OS CSPRNG by default).

Only a ciphertext whose second half still *is* the expansion of its seeds travels
seeded (:func:`wire_data` checks a prefix of every limb): an operation that changes ``a`` (any product,
rotation or rescale) leaves a ciphertext that travels whole.
"""
from __future__ import annotations

import hashlib

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import FormatError
from .params import CkksParams

#: Bytes of one ciphertext's seed.
SEED_BYTES = 32
#: The metadata key that holds a seeded ciphertext's seeds (hex, one per ciphertext of the batch).
META_KEY = "a_seed"
_DOMAIN = b"henn-ckks-uniform-a-v1"
#: Words per limb the sender compares before sending a ciphertext seeded (see :func:`wire_data`).
CHECK_WORDS = 64


def expand(seed: bytes, primes, n: int, *, domain: bytes = _DOMAIN, label: bytes = b"",
           out: np.ndarray | None = None) -> np.ndarray:
    """The uniform polynomial a seed stands for: (len(primes), n) residues, each below its prime.

    The words are used as NTT-form residues (a uniform polynomial is uniform in either form).
    ``domain`` and ``label`` separate the streams of different uses of one expansion (a
    switching key's digits: :func:`.keys.switch_a`); the defaults are a ciphertext's.
    Written to ``out`` when given (keys fill their own arrays, without a temporary per digit).
    """
    if len(seed) != SEED_BYTES:
        raise FormatError(f"cannot expand a seed of {len(seed)} bytes (need {SEED_BYTES})")
    out = np.empty((len(primes), n), dtype=np.uint64) if out is None else out
    prefix = domain + bytes(seed) + label
    for i, q in enumerate(primes):
        out[i] = _uniform_words(prefix, i, int(q), n)
    return out


def _uniform_words(prefix: bytes, index: int, q: int, n: int) -> np.ndarray:
    limit = np.uint64((2**64 // q) * q - 1)  # the largest word kept: below it every residue is equally likely
    xof = hashlib.shake_256(prefix + index.to_bytes(4, "little"))
    want = n + n // 8 + 64
    while True:  # an XOF's longer output starts with its shorter one: retrying only extends the same stream
        words = np.frombuffer(xof.digest(8 * want), dtype="<u8")
        kept = words[words <= limit]
        if kept.size >= n:
            return (kept[:n] % np.uint64(q)).astype(np.uint64)
        want *= 2


def wire_form(ct: Ciphertext, *, check: bool = True) -> tuple[np.ndarray, dict] | None:
    """The CKKS scheme's :meth:`~he_core.layouts.Layouts.wire_form`: c0 and 32 bytes per fresh encryption."""
    return wire_data(ct, ct.params.q_primes, check) if isinstance(ct.params, CkksParams) else None


def from_wire_form(params: CkksParams, data: np.ndarray, meta: dict) -> np.ndarray:
    """The CKKS scheme's :meth:`~he_core.layouts.Layouts.from_wire_form` (see :func:`from_wire`)."""
    return from_wire(data, meta, params.q_primes, params.poly_degree)


def seeds_of(ct: Ciphertext) -> list[bytes] | None:
    """The seeds a ciphertext's metadata names (one per ciphertext of the batch), or None."""
    seeds = ct.meta.get(META_KEY)
    if not isinstance(seeds, list) or len(seeds) != ct.data.shape[0]:
        return None
    try:
        return [bytes.fromhex(s) for s in seeds]
    except (TypeError, ValueError):
        return None


def wire_data(ct: Ciphertext, primes, check: bool = True) -> tuple[np.ndarray, dict] | None:
    """``(c0 of every ciphertext, metadata)`` when the seeds still expand to the second halves, else None.

    The check compares the first :data:`CHECK_WORDS` words of every limb with the seed's
    stream (a prefix of the whole expansion, ~1/250 of its cost at N = 16384): every
    operation that changes ``a`` (products, rotations, rescales, sums) rewrites all its
    coefficients, and metadata copied onto another ciphertext names another stream. It
    is the sender's guard against sending a ciphertext other than the one it holds, not
    a check on a received one (the receiver expands the seed, whatever the sender held).
    ``check=False`` skips it (the seeds of an encryption just made hold by construction).
    """
    seeds = seeds_of(ct)
    if seeds is None or ct.data.ndim != 4 or ct.data.shape[1] != 2:
        return None
    nl, n = ct.data.shape[2], ct.data.shape[3]
    for i, seed in enumerate(seeds if check else ()):
        if len(seed) != SEED_BYTES or not _starts_as(seed, primes[:nl], ct.data[i, 1], min(n, CHECK_WORDS)):
            return None
    return np.ascontiguousarray(ct.data[:, :1]), ct.meta


def _starts_as(seed: bytes, primes, a: np.ndarray, words: int) -> bool:
    """Whether every limb of ``a`` starts with its stream's first ``words`` residues (see :func:`expand`)."""
    prefix = _DOMAIN + bytes(seed)
    return all(np.array_equal(_uniform_words(prefix, i, int(q), words), a[i, :words]) for i, q in enumerate(primes))


def from_wire(c0: np.ndarray, meta: dict, primes, n: int | None = None) -> np.ndarray:
    """The whole ciphertext data from ``c0`` and the seeds in ``meta``.

    ``n`` (the ring degree) ties the expansion's cost to the bytes ``c0`` declares: without
    it a file of empty polynomials would buy a SHAKE call per seed and prime for free.

    Raises:
        FormatError: seeds that are missing, malformed or not one per ciphertext, or c0 of the
            wrong shape (no limb, or polynomials not of ``n`` coefficients).
    """
    seeds = meta.get(META_KEY)
    if not isinstance(c0, np.ndarray) or c0.dtype != np.uint64 or c0.ndim != 4 or c0.shape[1] != 1:
        raise FormatError("cannot load a seeded ciphertext: its data is not (count, 1, limbs, n) words")
    if not isinstance(seeds, list) or len(seeds) != c0.shape[0] or not all(isinstance(s, str) for s in seeds):
        raise FormatError("cannot load a seeded ciphertext: it needs one seed per ciphertext")
    nl, degree = c0.shape[2], c0.shape[3]
    if not 1 <= nl <= len(primes):
        raise FormatError(f"cannot load a seeded ciphertext: {nl} limbs, the parameters have 1 .. {len(primes)}")
    if n is not None and degree != n:
        raise FormatError(f"cannot load a seeded ciphertext: polynomials of {degree} coefficients, the ring has {n}")
    data = np.empty((c0.shape[0], 2, nl, degree), dtype=np.uint64)
    data[:, 0] = c0[:, 0]
    for i, s in enumerate(seeds):
        try:
            seed = bytes.fromhex(s)
        except ValueError:
            raise FormatError("cannot load a seeded ciphertext: a seed is not hex") from None
        data[i, 1] = expand(seed, primes[:nl], degree)
    return data


def with_seeds(meta: dict, seeds: list[bytes]) -> dict:
    """``meta`` naming the seeds of a fresh secret-key encryption."""
    return {**meta, META_KEY: [s.hex() for s in seeds]}
