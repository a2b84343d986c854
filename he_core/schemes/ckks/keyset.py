"""Which keys a CKKS key set holds, how they are made and checked, and the key switches that use them.

The key set role of :class:`~he_core.schemes.ckks.scheme.CkksScheme`. A requirement set names
vector sizes (and, for a client's minimal set, the linear transforms it will run); the
Galois keys follow from the rotations of the baby-step / giant-step transforms, the
row moves and restrides those sizes need, and the powers of two, within a memory budget.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ...errors import FormatError, KeyMissingError, MismatchError
from ...keys import KeyPair, KeyRequirements, PublicKeys, SecretKey, SwitchKey, derive_key_id
from ...randomness import RandomSource
from . import keys as keygen, layout
from .context import CkksContext
from .seeded_keys import check_seeds

# Upper bound on the default Galois keys' memory (explicitly requested rotations always get keys).
KEY_BUDGET_BYTES = 1 << 30
# Rows per ciphertext whose moves get direct Galois keys (see _restride_rotations, _row_move_rotations):
# about 4 sqrt(MOVE_ROWS) keys per declared size; rows further apart compose their rotations.
MOVE_ROWS = 64


def bsgs_giant(n_diag: int) -> int:
    """Giant step of the baby-step / giant-step split of ``n_diag`` diagonals (about their square root)."""
    return max(1, math.isqrt(n_diag - 1) + 1)


def key_id_material(public_data: Any) -> list[np.ndarray]:
    """The public key (b, a): it determines the secret; evaluation keys are bound by the file signature."""
    return [public_data["pk"]]


class KeySet:
    """Key generation and checks, the Galois elements a requirement set gets, and the installed keys' parts.

    Args:
        ctx: the parameter set's objects.
        installed: the scheme's installed public keys (they are set, and replaced, after the
            scheme is built, so this reads them when asked; it raises when none are installed).
    """

    def __init__(self, ctx: CkksContext, installed: Callable[[], PublicKeys]) -> None:
        self.ctx, self.params, self.ring = ctx, ctx.params, ctx.ring
        self.installed = installed
        self._secret_cache: dict[str, np.ndarray] = {}  # key id -> the secret in NTT form over Q*P

    def galois_element(self, steps: int) -> int:
        """The Galois element of a rotation left by ``steps`` slots: 5^steps mod 2N."""
        return pow(5, steps % self.params.slots, 2 * self.params.poly_degree)

    def s_full(self, key: SecretKey) -> np.ndarray:
        """The secret of ``key`` in NTT form over Q*P (kept per key id)."""
        if key.key_id not in self._secret_cache:
            self._secret_cache[key.key_id] = keygen.full_ntt(self.ring, np.asarray(key.data["s"], dtype=np.int64))
        return self._secret_cache[key.key_id]

    def default_rotations(self, requirements: KeyRequirements) -> list[int]:
        """Rotations that get Galois keys: those asked for, powers of two (left, then right), then matvec steps.

        With ``requirements.minimal``: the asked rotations and the matvec steps of ``requirements.transforms``.

        Powers of two are added smallest first while the keys stay within
        ``KEY_BUDGET_BYTES`` (at N = 32768 one key is ~200 MB, so only the first few
        fit); rotations without their own key are composed from the power-of-two keys.
        """
        slots = self.params.slots
        asked = [r % slots for r in requirements.rotations if r % slots]
        if requirements.minimal:
            steps = [r % slots for size in requirements.transforms for r in self.matvec_rotations(size)]
            return sorted(set(asked) | {r for r in steps if r})
        powers = [1 << k for k in range(slots.bit_length() - 1)]
        steps = [r % slots for size in requirements.sizes for r in self.matvec_rotations(size)]
        steps += [r % slots for a in requirements.sizes for b in requirements.sizes
                  for r in self.restride_rotations(a, b)]
        steps += [r % slots for size in requirements.sizes for r in self.row_move_rotations(size)]
        steps = [r for r in steps if r]
        wanted = list(dict.fromkeys(asked + powers + [slots - p for p in powers] + steps))
        per_key = self.params.digits * 2 * (len(self.ring.q) + len(self.ring.p)) * self.ring.n * 8
        budget = max(len(asked) + 1, KEY_BUDGET_BYTES // per_key - 1)  # - 1: the conjugation key
        return sorted(wanted[:budget])

    def matvec_rotations(self, size: int) -> list[int]:
        """The rotations of a baby-step / giant-step ``matvec`` on vectors of ``size`` (see :mod:`.linear`).

        Giving each its own Galois key makes every step one key switch instead of a
        composition of power-of-two rotations (two to four key switches).
        """
        stride = layout.next_pow2(size)
        if stride < 2 or stride > self.params.slots:
            return []
        g = bsgs_giant(2 * stride - 1)
        return [-(stride - 1)] + list(range(1, g)) + [g * j for j in range(1, -(-(2 * stride - 1) // g))]

    def restride_rotations(self, size_from: int, size_to: int) -> list[int]:
        """Baby- and giant-step rotations that move rows of ``size_from`` into the layout of ``size_to``.

        Row r moves from slot r * t1 to r * t2 (strides t1 < t2), a shift of -r * (t2 - t1);
        e.g. a fresh (n, 1) batch joining the (n, 1) output of ``inner`` on size-8 rows.
        Covers the first ``MOVE_ROWS`` rows; later rows compose their rotations.
        """
        t1, t2 = layout.next_pow2(size_from), layout.next_pow2(size_to)
        if t1 >= t2 or t2 > self.params.slots:
            return []
        rows = min(MOVE_ROWS, self.params.slots // t2)
        d, g = t2 - t1, bsgs_giant(rows)
        return [d * i for i in range(1, g)] + [-d * g * j for j in range(1, -(-rows // g) + 1)]

    def row_move_rotations(self, size: int) -> list[int]:
        """Baby- and giant-step rotations that move rows of ``size`` to other rows (take_rows, index_add_...).

        A move from row a to row b is a shift of (a - b) * stride, between -MOVE_ROWS and
        MOVE_ROWS rows: babies stride * i (0 < i < g) and giants +-stride * g * j.
        """
        stride = layout.next_pow2(size)
        rows = min(MOVE_ROWS, self.params.slots // stride)
        if rows < 2:
            return []
        g = bsgs_giant(rows)
        giants = [stride * g * j for j in range(1, -(-rows // g) + 1)]
        return [stride * i for i in range(1, g)] + giants + [-r for r in giants]

    def generate(self, requirements: KeyRequirements, rng: RandomSource) -> KeyPair:
        """A fresh key pair with the evaluation keys ``requirements`` call for (each switching key with its seed)."""
        r = self.ring
        s = keygen.sample_secret(self.params, rng)
        s_full = keygen.full_ntt(r, s)
        pk, seed = keygen.public_key(r, self.params, s_full, rng)
        data: dict[str, Any] = {"pk": pk, "pk_seed": _seed_array(seed), "galois": {}, "galois_seeds": {}}
        if requirements.multiply:
            data["relin"], data["relin_seed"] = self._switch(r.mul(s_full, s_full), s_full, rng)
        elements = {self.galois_element(k) for k in self.default_rotations(requirements)}
        if not requirements.minimal:
            elements.add(2 * self.params.poly_degree - 1)  # conjugation
        if requirements.coefficient_moves:  # packing and expanding constants (coeff_moves.py)
            elements.update((1 << k) + 1 for k in range(1, self.params.poly_degree.bit_length()))
        for g in sorted(elements):
            self.add_galois(data, g, s_full, rng)
        key_id = derive_key_id(self.ctx.name, self.ctx.params_id, key_id_material(data))
        self._secret_cache[key_id] = s_full
        name, params_id = self.ctx.name, self.ctx.params_id
        secret = SecretKey(name, params_id, key_id, {"s": s.astype(np.int8)}, requirements, self.params)
        return KeyPair(secret, PublicKeys(name, params_id, key_id, data, requirements, self.params))

    def add_galois(self, data: dict, g: int, s_full: np.ndarray, rng: RandomSource) -> None:
        """Put the Galois key of element ``g`` (from the secret ``s_full``) and its seed into key set ``data``."""
        r = self.ring
        key, seed = self._switch(r.permute(s_full, r.galois_perm(g)), s_full, rng)
        data["galois"][str(g)] = key
        data.setdefault("galois_seeds", {})[str(g)] = seed

    def _switch(self, s_from: np.ndarray, s_to: np.ndarray, rng: RandomSource) -> tuple[np.ndarray, np.ndarray]:
        """A switching key and the seed of its uniform halves, drawn from ``rng`` (the OS CSPRNG by default)."""
        seed = rng.bytes(keygen.SWITCH_SEED_BYTES)
        return keygen.switch_key(self.ring, self.params, s_from, s_to, rng, seed), _seed_array(seed)

    def check_public(self, public: PublicKeys) -> None:
        """Refuse public keys whose arrays or seed are malformed (:class:`~he_core.FormatError`)."""
        data, r = public.data, self.ring
        if not isinstance(data, dict) or not isinstance(data.get("galois", {}), dict):
            raise FormatError("cannot use these public keys: malformed key material")
        primes = np.array(r.q + r.p, dtype=np.uint64)[:, None]
        ltot = len(primes)

        def check(name: str, key: Any, shape: tuple) -> None:
            if not isinstance(key, np.ndarray) or key.dtype != np.uint64 or key.shape != shape:
                raise FormatError(f"cannot use these public keys: {name} is not a uint64 array of shape {shape}")
            if np.any(key.reshape(-1, ltot, r.n) >= primes):
                raise FormatError(f"cannot use these public keys: {name} has residues not below their primes")

        check("the public key", data.get("pk"), (2, ltot, r.n))
        seed = data.get("pk_seed")
        if not isinstance(seed, np.ndarray) or seed.dtype != np.uint8 or seed.shape != (keygen.PK_SEED_BYTES,):
            raise FormatError("cannot use these public keys: the public key has no seed for its uniform part "
                              "(keys from before seeds were published: make new keys)")
        if not np.array_equal(data["pk"][1], keygen.public_a(r, seed.tobytes())):
            raise FormatError("cannot use these public keys: the public key's uniform part is not the one its "
                              "seed expands to (it was chosen, not drawn)")
        switch = (keygen.key_digits(self.params), 2, ltot, r.n)  # not dnum: fewer digits when dnum does not divide L+1
        if "relin" in data:
            check("the relinearisation key", data["relin"], switch)
        for g, key in data.get("galois", {}).items():
            check(f"Galois key {g}", key, switch)
        check_seeds(data, "cannot use these public keys")

    def for_key(self, key_id: str, what: str) -> PublicKeys:
        """The installed public keys, checked to be those of ``key_id``.

        Switching (relinearising, rotating) or encrypting zero under another key's keys gives
        a ciphertext that decrypts to garbage; a scheme holds one installed key set at a time.

        Raises:
            MismatchError: the installed keys are another key's.
        """
        installed = self.installed()
        if installed.key_id != key_id:
            raise MismatchError(f"cannot {what}: the ciphertext is under key {key_id[:12]}, the installed public keys "
                                f"are key {installed.key_id[:12]}'s (install its public keys first)")
        return installed

    def relin_key(self, key_id: str) -> np.ndarray:
        """The installed relinearisation key, checked to be ``key_id``'s (see :meth:`for_key`).

        Raises:
            KeyMissingError: the installed keys have none.
            MismatchError: they are another key's.
        """
        key = self.for_key(key_id, "relinearise").data.get("relin")
        if key is None:
            raise KeyMissingError("cannot multiply ciphertexts: no relinearisation key "
                                  "(generate keys with KeyRequirements(multiply=True))")
        return key

    def galois_key(self, g: int) -> np.ndarray | None:
        """The installed key for Galois element ``g``, or None."""
        return self.installed().data["galois"].get(str(g))

    def make_switch_key(self, old: SecretKey, new: SecretKey, rng: RandomSource) -> SwitchKey:
        """A key switching ciphertexts under ``old`` to ``new``, with the seed of its uniform halves."""
        key, seed = self._switch(self.s_full(old), self.s_full(new), rng)
        return SwitchKey(self.ctx.name, self.ctx.params_id, old.key_id, new.key_id, {"key": key, "key_seed": seed},
                         self.params)


def _seed_array(seed: bytes) -> np.ndarray:
    return np.frombuffer(seed, dtype=np.uint8).copy()
