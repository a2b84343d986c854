"""Seeded switching keys: each key's uniform halves travel as its 32-byte seed.

Every digit of a switching key (relinearisation, Galois, re-keying) is an RLWE sample
``(b, a)`` whose ``a`` is public and expanded from one seed per key
(:func:`.keys.switch_a`). A key file (and a bundle's or a Dask frame's public keys,
which are the same ``dumps`` bytes) carries ``b`` and the seed; the reader expands ``a``
again: half the bytes, for SHAKE time on loading.

Key data names the seeds beside the keys: ``relin_seed`` for ``relin``, ``key_seed`` for a
:class:`~he_core.keys.SwitchKey`'s ``key``, and ``galois_seeds[g]`` for ``galois[g]``, each
a uint8 array of 32 bytes. A key travels seeded only while its seed still expands to its
``a`` halves (:func:`wire_form` checks); any other key travels whole and without its seed,
so in a file a seed always stands in place of an ``a`` half, and a file holds seeds exactly
when it says its keys are seeded (``"wire": "seeded"``, flag ``SEEDED_KEYS``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import FormatError
from . import keys as keygen
from .params import CkksParams

#: Keys at the top of the key data, with what a message calls them; each has its seed at ``<name>_seed``.
_TOP = {"relin": "the relinearisation key", "key": "the switching key"}
SEED_FIELDS = ("relin_seed", "key_seed", "galois_seeds")


def is_seed(seed: Any) -> bool:
    """Whether ``seed`` is a switching key's seed: a uint8 array of 32 bytes."""
    return isinstance(seed, np.ndarray) and seed.dtype == np.uint8 and seed.shape == (keygen.SWITCH_SEED_BYTES,)


def check_seeds(data: dict, why: str) -> None:
    """Refuse switching-key seeds that are not 32 bytes (uint8) or not one per key present.

    Whether a seed still expands to its key's ``a`` halves is not checked here: that only
    decides how the key travels, and :func:`wire_form` checks it before writing a file.

    Raises:
        FormatError: named after ``why`` ("cannot use these public keys", say).
    """
    for name, what in _TOP.items():
        if f"{name}_seed" in data:
            if name not in data:
                raise FormatError(f"{why}: a seed for {what}, which the data does not hold (one seed per key)")
            if not is_seed(data[f"{name}_seed"]):
                raise FormatError(f"{why}: the seed of {what} is not {keygen.SWITCH_SEED_BYTES} bytes (uint8)")
    seeds, galois = data.get("galois_seeds", {}), data.get("galois", {})
    if not isinstance(seeds, dict) or not isinstance(galois, dict) or set(seeds) - set(galois):
        raise FormatError(f"{why}: Galois key seeds that are not one per Galois key")
    bad = [g for g, seed in seeds.items() if not is_seed(seed)]
    if bad:
        raise FormatError(f"{why}: the seed of Galois key {bad[0]} is not {keygen.SWITCH_SEED_BYTES} bytes (uint8)")


def wire_form(data: Any, params: Any) -> tuple[Any, bool]:
    """``(key data to store, whether any key in it is seeded)``: the CKKS scheme's ``key_wire_form``.

    A key whose seed expands to its ``a`` halves keeps its ``b`` halves (digits, 1, L+1+k, N)
    and its seed; any other key is stored whole, its seed left behind.
    """
    if not isinstance(data, dict) or not isinstance(params, CkksParams):
        return data, False
    out = dict(data)  # the same fields in the same order: a loaded key set reads back as it was written
    for name in _TOP:
        small = _b_halves(data.get(name), data.get(f"{name}_seed"), params)
        if small is None:
            out.pop(f"{name}_seed", None)
        else:
            out[name] = small
    galois, seeds = data.get("galois"), data.get("galois_seeds")
    if isinstance(galois, dict) and isinstance(seeds, dict):
        out["galois"], halved = dict(galois), set()
        for g, key in galois.items():
            small = _b_halves(key, seeds.get(g), params)
            if small is not None:
                out["galois"][g] = small
                halved.add(g)
        out["galois_seeds"] = {g: seed for g, seed in seeds.items() if g in halved}
    else:
        out.pop("galois_seeds", None)  # malformed seeds travel nowhere
    seeded = any(f in out for f in SEED_FIELDS[:2]) or bool(out.get("galois_seeds"))
    return (out, True) if seeded else ({k: v for k, v in out.items() if k not in SEED_FIELDS}, False)


def _b_halves(key: Any, seed: Any, params: CkksParams) -> np.ndarray | None:
    """The key's ``b`` halves when ``seed`` expands to every digit's ``a``, else None."""
    primes, n = params.q_primes + params.p_primes, params.poly_degree
    if not is_seed(seed) or not isinstance(key, np.ndarray) or key.dtype != np.uint64:
        return None
    if key.shape != (keygen.key_digits(params), 2, len(primes), n):
        return None
    raw = seed.tobytes()
    if not all(np.array_equal(keygen.switch_a(primes, n, raw, j), key[j, 1]) for j in range(key.shape[0])):
        return None
    return np.ascontiguousarray(key[:, :1])


def from_wire_form(params: CkksParams, data: Any, seeded: bool) -> Any:
    """Key data read from a file, its seeded keys whole again: the CKKS scheme's ``key_from_wire_form``.

    Each seed's expansion costs as many words as the ``b`` halves beside it hold: ``b`` must
    have the full shape (digits, 1, L+1+k, N) before anything is expanded.

    Raises:
        FormatError: seeds in a file not marked seeded, a seeded file without seeds, a seed
            that is not 32 bytes or not one per key, ``b`` halves of the wrong shape or dtype,
            or residues not below their primes.
    """
    why = "cannot load seeded keys"
    if not seeded:
        if isinstance(data, dict) and any(f in data for f in SEED_FIELDS):
            raise FormatError("cannot load: the key data holds seeds, but the file does not say its keys are seeded")
        return data
    if not isinstance(data, dict):
        raise FormatError(f"{why}: the key data is not a dict")
    check_seeds(data, why)
    out, count = dict(data), 0
    for name, what in _TOP.items():
        if f"{name}_seed" in data:
            out[name] = _whole(data[name], data[f"{name}_seed"], params, f"{why}: {what}")
            count += 1
    seeds = data.get("galois_seeds", {})
    if seeds:
        out["galois"] = {g: _whole(key, seeds[g], params, f"{why}: Galois key {g}") if g in seeds else key
                         for g, key in data["galois"].items()}
        count += len(seeds)
    if not count:
        raise FormatError(f"{why}: the file says its keys are seeded, but no key has a seed")
    return out


def _whole(b: Any, seed: np.ndarray, params: CkksParams, what: str) -> np.ndarray:
    """The key (digits, 2, L+1+k, N) from its ``b`` halves and the seed of its ``a`` halves."""
    primes, n = params.q_primes + params.p_primes, params.poly_degree
    digits = keygen.key_digits(params)
    shape = (digits, 1, len(primes), n)
    if not isinstance(b, np.ndarray) or b.dtype != np.uint64 or b.shape != shape:
        raise FormatError(f"{what} is not a uint64 array of b halves of shape {shape}")
    if np.any(b.reshape(-1, len(primes), n) >= np.array(primes, dtype=np.uint64)[:, None]):
        raise FormatError(f"{what} has residues not below their primes")
    key = np.empty((digits, 2, len(primes), n), dtype=np.uint64)
    key[:, 0] = b[:, 0]
    raw = seed.tobytes()
    for j in range(digits):
        keygen.switch_a(primes, n, raw, j, out=key[j, 1])
    return key
