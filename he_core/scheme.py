"""The one scheme interface every he_core scheme implements.

A :class:`Scheme` instance is bound to one parameter set and, once keys are generated
or loaded, to one party's public key material. It is the single front object of a
party: encryption, evaluation and (given the secret key explicitly) decryption all
go through it. The secret key is never stored inside it.

Public methods validate their arguments (types, shapes, finiteness, which key and
parameter set each ciphertext belongs to) and then call the ``_``-prefixed hooks a
concrete scheme implements. A scheme that lacks an optional operation leaves the hook
alone; calling it then raises :class:`~he_core.errors.CapabilityError`.

Data model: a :class:`~he_core.ciphertext.Ciphertext` is a batch of ``rows`` encrypted
vectors of length ``size``. Plaintext operands broadcast like numpy against
``(rows, size)``: a scalar, a ``(size,)`` vector, a ``(rows, 1)`` column or a full
``(rows, size)`` array. Multiplications rescale by default, so results come back at
the parameter set's working scale.
"""
from __future__ import annotations

import abc
import math
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np

from . import circuits
from .capabilities import Capability
from .ciphertext import Ciphertext
from .errors import CapabilityError, EncodingError, KeyMissingError, MismatchError
from .keyholder_protocol import KeyHolderProtocol
from .keys import KeyPair, KeyRequirements, PublicKeys, SecretKey, SwitchKey
from .params import Parameters
from .randomness import RandomSource, resolve


class Budget(dict):
    """What is left before a ciphertext stops decrypting correctly.

    A dict with at least ``kind`` (``"noise"``, ``"levels"`` or ``"unbounded"``) and
    ``remaining`` (bits of noise headroom, or levels left); schemes add detail.
    """

    @property
    def remaining(self) -> float:
        return self["remaining"]


class Scheme(KeyHolderProtocol, abc.ABC):
    """Abstract base of every scheme; see the module docstring for the contract."""

    name: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    params_class: ClassVar[type[Parameters]] = Parameters

    def __init__(self, params: Parameters):
        if not isinstance(params, self.params_class):
            raise TypeError(f"{self.name} needs {self.params_class.__name__}, got {type(params).__name__}")
        self.params = params
        self.params_id = params.param_id
        self._public: PublicKeys | None = None
        # So objects of this parameter set can be saved with serialization.dumps(obj) alone.
        from .serialization import remember_params
        remember_params(params)

    @classmethod
    def create(cls, params: Parameters | None = None, **kwargs: Any) -> "Scheme":
        """Build a scheme from a parameter object or from keyword parameters."""
        if params is None:
            params = cls.params_class(**kwargs)
        elif kwargs:
            raise TypeError("pass either a parameter object or keyword parameters, not both")
        return cls(params)

    @classmethod
    def key_id_material(cls, public_data: Any) -> list[np.ndarray]:
        """The public arrays a key id is derived from (:func:`he_core.keys.derive_key_id`).

        The default takes every array of the public data, walking dicts in sorted key
        order; a scheme with large evaluation keys names the part that determines the
        key pair (CKKS: the public key), since files are signed as a whole anyway.
        """
        out: list[np.ndarray] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for k in sorted(node):
                    walk(node[k])
            elif isinstance(node, (list, tuple)):
                for item in node:
                    walk(item)
            elif isinstance(node, np.ndarray):
                out.append(node)
        walk(public_data)
        return out

    @classmethod
    def params_for_depth(cls, depth: int, *, fill_ring: bool = False) -> Parameters | None:
        """The cheapest parameters giving ``depth`` multiplicative levels, or ``None`` (the defaults).

        Schemes without levels keep their defaults; a leveled scheme picks its
        smallest secure set with that many levels. With ``fill_ring`` it then takes
        every further level the same ring holds at the same security (a computation
        refreshed whenever its levels run out then refreshes less often).
        """
        return None

    @property
    def natural_size(self) -> int | None:
        """The vector size one ciphertext holds whole, for a packing scheme (``None``: cost is per entry).

        A batch whose rows have this size keeps one row per ciphertext, so row
        operations (``lincomb``, ``take_rows``, ``row_sum``) move whole ciphertexts
        and need no rotation: the layout of choice for many samples at once.
        """
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.params_id}>"

    # ------------------------------------------------------------------ capabilities
    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def require(self, capability: Capability, hint: str = "") -> None:
        if capability not in self.capabilities:
            raise CapabilityError(self.name, capability.value, hint)

    # ------------------------------------------------------------------ keys
    def keygen(self, requirements: KeyRequirements | None = None, *,
               rng: RandomSource | int | None = None) -> KeyPair:
        """Generate a secret key and its public material; installs the public part here.

        Args:
            requirements: vector sizes, rotations and products the computation will need.
            rng: randomness (default: the OS CSPRNG). Pass a seed only in tests.
        """
        requirements = requirements or KeyRequirements()
        pair = self._keygen(requirements, resolve(rng))
        self._public = pair.public
        return pair

    def set_public_keys(self, public: PublicKeys) -> None:
        """Install public key material received from the key holder."""
        if not isinstance(public, PublicKeys):
            raise TypeError(f"expected PublicKeys, got {type(public).__name__}")
        self._check_params(public.scheme, public.params_id, "public keys")
        self._public = public

    def check_public_keys(self, public: PublicKeys) -> None:
        """Check public keys received from another party before computing for it.

        Beyond the scheme and parameter set: the shape and range of every array, and
        whatever the scheme can verify of how the keys were made (CKKS: the uniform
        part of the public key recomputed from its published seed). A party that
        re-randomises ciphertexts with someone else's key relies on this.

        Raises:
            he_core.FormatError: keys that are malformed or whose structure does not verify.
        """
        if not isinstance(public, PublicKeys):
            raise TypeError(f"expected PublicKeys, got {type(public).__name__}")
        self._check_params(public.scheme, public.params_id, "public keys")
        self._check_public_keys(public)

    def _check_public_keys(self, public: PublicKeys) -> None:
        """Scheme hook of :meth:`check_public_keys` (default: nothing more to verify)."""

    @property
    def public_keys(self) -> PublicKeys:
        if self._public is None:
            raise KeyMissingError(f"{self.name}: no public keys installed; call keygen() or set_public_keys()")
        return self._public

    @property
    def has_public_keys(self) -> bool:
        return self._public is not None

    def make_switch_key(self, old: SecretKey, new: SecretKey, *,
                        rng: RandomSource | int | None = None) -> SwitchKey:
        """Key holder: make public material that re-keys ciphertexts from ``old`` to ``new``."""
        self.require(Capability.REKEY)
        self._check_secret(old)
        self._check_secret(new)
        return self._make_switch_key(old, new, resolve(rng))

    def rekey(self, ct: Ciphertext, switch_key: SwitchKey) -> Ciphertext:
        """Move ``ct`` to the switch key's target key without decrypting it."""
        self.require(Capability.REKEY)
        self._check_ct(ct)
        if not isinstance(switch_key, SwitchKey):
            raise TypeError(f"expected SwitchKey, got {type(switch_key).__name__}")
        if switch_key.from_key_id != ct.key_id:
            raise MismatchError(f"cannot rekey: switch key starts from key {switch_key.from_key_id[:12]}, "
                                f"but the ciphertext is under key {ct.key_id[:12]}")
        return self._rekey(ct, switch_key)

    # ------------------------------------------------------------------ encryption
    def encrypt(self, values: Any, key: SecretKey | None = None, *, scale: float | None = None,
                rng: RandomSource | int | None = None, layout: Any = None,
                bound: float | None = None) -> Ciphertext:
        """Encrypt a vector (one row) or a ``(rows, size)`` array of reals.

        ``bound`` is a public bound on ``|values|`` the caller vouches for (checked): a
        scheme that records the magnitude of what it encrypts in public metadata (CKKS)
        records this instead, so the ciphertext says nothing about the values' size.

        With ``key=None`` the installed public key is used (one-way encryption: whoever
        holds only public material can encrypt but not decrypt). With a secret key,
        symmetric encryption is used.

        ``layout`` is ``None`` (the scheme's default), ``"table"`` (a hint: the batch
        will be used with ``row_sum`` / ``index_add_``, like an embedding table; schemes
        without a better layout ignore it) or a target named by a
        :class:`~he_core.RefreshRequired` error raised by this scheme.
        """
        array = self._as_plain_matrix(values)
        if bound is not None:
            top = float(np.max(np.abs(array)))
            if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not (math.isfinite(bound)
                                                                                       and bound >= top):
                raise EncodingError(f"cannot encrypt: bound {bound!r} is not a finite number >= max |values| "
                                    f"({top:.4g})")
            return self._record_bound(self.encrypt(array, key, scale=scale, rng=rng, layout=layout), float(bound))
        if key is None:
            self.require(Capability.PUBLIC_KEY_ENCRYPT, "pass the secret key for symmetric encryption")
            public = self.public_keys
            if layout is not None:
                return self._encrypt_layout(array, None, public, scale, resolve(rng), layout)
            return self._encrypt_public(array, public, scale, resolve(rng))
        self._check_secret(key)
        if layout is not None:
            return self._encrypt_layout(array, key, None, scale, resolve(rng), layout)
        return self._encrypt_secret(array, key, scale, resolve(rng))

    def as_received(self, ct: Ciphertext, bound: float) -> Ciphertext:
        """``ct`` as a party computing for someone else must treat it: a fresh encryption of values within ``bound``.

        A received ciphertext's public metadata is its sender's word. Noise estimates
        that size a flood (:meth:`sanitize`) must not rest on it: the estimate is set to
        at least a fresh public-key encryption's and the value bound to ``bound`` (the
        receiver's own, e.g. the inputs' clip), so a sender who understates either gets
        no smaller a flood.

        Raises:
            EncodingError: ``bound`` not positive and finite.
        """
        self._check_ct(ct)
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not (math.isfinite(bound) and bound > 0):
            raise EncodingError(f"cannot treat a received ciphertext: bound {bound!r} is not positive and finite")
        return self._as_received(ct, float(bound))

    def _as_received(self, ct: Ciphertext, bound: float) -> Ciphertext:
        """Scheme hook of :meth:`as_received` (default: no public noise metadata to reset)."""
        return ct

    def _record_bound(self, ct: Ciphertext, bound: float) -> Ciphertext:
        """Scheme hook: record a caller's public bound in place of one derived from the values (default: none kept)."""
        return ct

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

    def add(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        self._check_pair(a, b, "add", allow_size_broadcast=False)
        return self._add(a, b)

    def sub(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        self._check_pair(a, b, "sub", allow_size_broadcast=False)
        return self._sub(a, b)

    def neg(self, a: Ciphertext) -> Ciphertext:
        self._check_ct(a)
        return self._neg(a)

    def add_plain(self, a: Ciphertext, values: Any) -> Ciphertext:
        self._check_ct(a)
        return self._add_plain(a, self._as_plain_operand(values, a.shape, "add_plain"))

    def sub_plain(self, a: Ciphertext, values: Any) -> Ciphertext:
        self._check_ct(a)
        return self._add_plain(a, -self._as_plain_operand(values, a.shape, "sub_plain"))

    def mul_plain(self, a: Ciphertext, values: Any, *, rescale: bool = True) -> Ciphertext:
        """Element-wise product with plaintext reals (broadcast against ``a``)."""
        self._check_ct(a)
        return self._mul_plain(a, self._as_plain_operand(values, a.shape, "mul_plain"), rescale)

    def mul(self, a: Ciphertext, b: Ciphertext, *, rescale: bool = True) -> Ciphertext:
        """Element-wise product of two ciphertexts.

        Rows broadcast (``1`` against ``r``) and so do sizes (a ``size == 1`` ciphertext
        multiplies every entry of the other's vectors).
        """
        self.require(Capability.CIPHER_MULTIPLY)
        self._check_pair(a, b, "mul", allow_size_broadcast=True)
        return self._mul(a, b, rescale)

    def square(self, a: Ciphertext, *, rescale: bool = True) -> Ciphertext:
        return self.mul(a, a, rescale=rescale)

    def inner(self, a: Ciphertext, b: Ciphertext, *, rescale: bool = True) -> Ciphertext:
        """Row-wise inner product of two ciphertexts: result shape ``(rows, 1)``."""
        self.require(Capability.INNER_PRODUCT)
        self._check_pair(a, b, "inner", allow_size_broadcast=False)
        return self._inner(a, b, rescale)

    def rescale(self, a: Ciphertext) -> Ciphertext:
        """Divide by the working scale (after a product made with ``rescale=False``)."""
        self.require(Capability.RESCALE)
        self._check_ct(a)
        return self._rescale(a)

    def matvec(self, a: Ciphertext, matrix: Any, *, key: SwitchKey | None = None) -> Ciphertext:
        """Apply a plaintext ``(out, size)`` matrix to every encrypted vector: ``(rows, out)``."""
        self.require(Capability.LINEAR_TRANSFORM)
        self._check_ct(a)
        m = self._as_finite(matrix, "matrix")
        if m.ndim != 2 or m.shape[1] != a.size:
            raise EncodingError(f"cannot matvec: matrix shape {m.shape} does not take vectors of size {a.size}")
        return self._matvec(a, m, key)

    def polyval(self, a: Ciphertext, coeffs: Sequence[float]) -> Ciphertext:
        """Evaluate ``sum(coeffs[i] * a**i)`` element-wise, with depth ceil(log2(degree)) + 1."""
        self._check_ct(a)
        return circuits.polyval(self, a, coeffs)

    # ------------------------------------------------------------------ rows
    def take_rows(self, a: Ciphertext, rows: Any) -> Ciphertext:
        """The ciphertexts at the given row indices, as a new batch."""
        self._check_ct(a)
        return self._take_rows(a, self._as_rows(rows, a.rows))

    def concat_rows(self, parts: Iterable[Ciphertext]) -> Ciphertext:
        parts = list(parts)
        if not parts:
            raise ValueError("cannot concat_rows: no ciphertexts given")
        for p in parts[1:]:
            self._check_pair(parts[0], p, "concat_rows", allow_size_broadcast=False, allow_row_broadcast=True)
        return self._concat_rows(parts)

    def row_sum(self, a: Ciphertext, rows: Any = None) -> Ciphertext:
        """Sum of the selected rows (all rows by default): shape ``(1, size)``. Repeated indices count twice."""
        self._check_ct(a)
        idx = None if rows is None else self._as_rows(rows, a.rows)
        return self._row_sum(a, idx)

    def lincomb(self, weights: Any, a: Ciphertext, *, rescale: bool = True) -> Ciphertext:
        """Plaintext ``(q, rows)`` matrix times the batch: ``(q, size)`` (``x @ W`` with ``W`` encrypted)."""
        self._check_ct(a)
        w = self._as_finite(weights, "weights")
        if w.ndim == 1:
            w = w[None, :]
        if w.ndim != 2 or w.shape[1] != a.rows:
            raise EncodingError(f"cannot lincomb: weights of shape {np.shape(weights)} do not match {a.rows} rows")
        return self._lincomb(w, a, rescale)

    def index_add_(self, a: Ciphertext, rows: Any, b: Ciphertext) -> None:
        """In place: add ``b`` (one row, or one row per index) to the selected rows of ``a``.

        Repeated indices accumulate, as ``numpy.add.at`` does.
        """
        self._index_add_(a, self._index_add_rows(a, rows, b), b)

    def check_index_add(self, a: Ciphertext, rows: Any, b: Ciphertext) -> None:
        """Raise what :meth:`index_add_` would raise for these operands, without changing ``a``.

        Lets a caller that updates several tensors get every operand ready (say,
        re-encrypted after a :class:`~he_core.RefreshRequired`) before the first update.
        """
        self._check_index_add(a, self._index_add_rows(a, rows, b), b)

    def _index_add_rows(self, a: Ciphertext, rows: Any, b: Ciphertext) -> np.ndarray:
        """The validated row indices of an ``index_add_`` (operands checked too)."""
        self._check_ct(a)
        self._check_ct(b)
        idx = self._as_rows(rows, a.rows)
        if b.rows not in (1, idx.size):
            raise MismatchError(f"cannot index_add_: {b.rows} rows given for {idx.size} indices")
        self._check_pair(a, b, "index_add_", allow_size_broadcast=False, allow_row_broadcast=True)
        return idx

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

    def copy(self, a: Ciphertext) -> Ciphertext:
        self._check_ct(a)
        data = a.data.copy() if isinstance(a.data, np.ndarray) else tuple(x.copy() for x in a.data)
        return a.replace(data=data)

    # ------------------------------------------------------------------ budget
    def budget(self, a: Ciphertext) -> Budget:
        """How much noise / magnitude / level headroom ``a`` has left."""
        self._check_ct(a)
        return self._budget(a)

    # ------------------------------------------------------------------ hooks (schemes implement)
    @abc.abstractmethod
    def _keygen(self, requirements: KeyRequirements, rng: RandomSource) -> KeyPair: ...

    @abc.abstractmethod
    def _encrypt_secret(self, values: np.ndarray, key: SecretKey, scale: float | None,
                        rng: RandomSource) -> Ciphertext: ...

    @abc.abstractmethod
    def _decrypt(self, ct: Ciphertext, key: SecretKey) -> np.ndarray: ...

    @abc.abstractmethod
    def _add(self, a: Ciphertext, b: Ciphertext) -> Ciphertext: ...

    @abc.abstractmethod
    def _neg(self, a: Ciphertext) -> Ciphertext: ...

    @abc.abstractmethod
    def _add_plain(self, a: Ciphertext, values: np.ndarray) -> Ciphertext: ...

    @abc.abstractmethod
    def _mul_plain(self, a: Ciphertext, values: np.ndarray, rescale: bool) -> Ciphertext: ...

    @abc.abstractmethod
    def _take_rows(self, a: Ciphertext, rows: np.ndarray) -> Ciphertext: ...

    @abc.abstractmethod
    def _concat_rows(self, parts: list[Ciphertext]) -> Ciphertext: ...

    @abc.abstractmethod
    def _row_sum(self, a: Ciphertext, rows: np.ndarray | None) -> Ciphertext: ...

    @abc.abstractmethod
    def _index_add_(self, a: Ciphertext, rows: np.ndarray, b: Ciphertext) -> None: ...

    @abc.abstractmethod
    def _budget(self, a: Ciphertext) -> Budget: ...

    def _encrypt_layout(self, values: np.ndarray, key: SecretKey | None, public: PublicKeys | None,
                        scale: float | None, rng: RandomSource, layout: Any) -> Ciphertext:
        if layout != "table":
            raise EncodingError(f"cannot encrypt: scheme {self.name!r} has no layout {layout!r} "
                                "(None, or the 'table' hint)")
        if key is not None:
            return self._encrypt_secret(values, key, scale, rng)
        return self._encrypt_public(values, public, scale, rng)

    def _layout_of(self, ct: Ciphertext) -> Any:
        return None

    def _check_index_add(self, a: Ciphertext, rows: np.ndarray, b: Ciphertext) -> None:
        return None

    def _sub(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        return self._add(a, self._neg(b))

    def _lincomb(self, weights: np.ndarray, a: Ciphertext, rescale: bool) -> Ciphertext:
        # Generic fallback: one scaled row sum per output row.
        out = []
        for w in weights:
            scaled = self._mul_plain(a, w[:, None], rescale)
            out.append(self._row_sum(scaled, None))
        return self._concat_rows(out)

    # Optional hooks: reaching the defaults means the capability was declared but not implemented.
    def _encrypt_public(self, values, public, scale, rng):
        raise CapabilityError(self.name, Capability.PUBLIC_KEY_ENCRYPT.value)

    def _mul(self, a, b, rescale):
        raise CapabilityError(self.name, Capability.CIPHER_MULTIPLY.value)

    def _inner(self, a, b, rescale):
        raise CapabilityError(self.name, Capability.INNER_PRODUCT.value)

    def _rescale(self, a):
        raise CapabilityError(self.name, Capability.RESCALE.value)

    def _matvec(self, a, matrix, key):
        raise CapabilityError(self.name, Capability.LINEAR_TRANSFORM.value)

    def _make_switch_key(self, old, new, rng):
        raise CapabilityError(self.name, Capability.REKEY.value)

    def _rekey(self, ct, switch_key):
        raise CapabilityError(self.name, Capability.REKEY.value)

    # ------------------------------------------------------------------ validation helpers
    def _check_params(self, scheme: str, params_id: str, what: str) -> None:
        if scheme != self.name:
            raise MismatchError(f"{what} belong to scheme {scheme!r}, this is {self.name!r}")
        if params_id != self.params_id:
            raise MismatchError(f"{what} use parameter set {params_id}, this scheme uses {self.params_id}")

    def _check_secret(self, key: SecretKey) -> None:
        if not isinstance(key, SecretKey):
            raise TypeError(f"expected a SecretKey, got {type(key).__name__}")
        self._check_params(key.scheme, key.params_id, "the secret key")

    def validate(self, ct: Ciphertext) -> None:
        """Every check a ciphertext received from another party (or a file) must pass before use.

        Membership and structure (as every operation checks), a finite positive scale,
        and the scheme's own checks on the numbers themselves (e.g. CKKS residues below
        their primes), so no kernel ever sees a malformed operand.

        Raises:
            MismatchError: the ciphertext is malformed or does not belong here.
        """
        self._check_ct(ct)
        scale = ct.scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating)) or not np.isfinite(scale) \
                or not scale > 0:
            raise MismatchError(f"{ct.describe()} has an invalid scale {scale!r}: it must be finite and positive")
        self._validate_values(ct)

    def _validate_values(self, ct: Ciphertext) -> None:
        return None

    def _check_ct(self, a: Ciphertext) -> None:
        if not isinstance(a, Ciphertext):
            raise TypeError(f"expected a Ciphertext, got {type(a).__name__}")
        if a.scheme != self.name or a.params_id != self.params_id:
            raise MismatchError(f"{a.describe()} does not belong to this scheme ({self.name}, params {self.params_id})")

    def _check_pair(self, a: Ciphertext, b: Ciphertext, op: str, *, allow_size_broadcast: bool,
                    allow_row_broadcast: bool = True) -> None:
        self._check_ct(a)
        self._check_ct(b)
        if a.key_id != b.key_id:
            raise MismatchError(f"cannot {op}: operands are under different keys:\n  left:  {a.describe()}\n"
                                f"  right: {b.describe()}")
        rows_ok = a.rows == b.rows or (allow_row_broadcast and 1 in (a.rows, b.rows))
        size_ok = a.size == b.size or (allow_size_broadcast and 1 in (a.size, b.size))
        if op in ("concat_rows", "index_add_"):  # index_add_ checked rows against the indices already
            rows_ok = True
        if not (rows_ok and size_ok):
            raise MismatchError(f"cannot {op}: shapes {a.shape} and {b.shape} do not broadcast")

    @staticmethod
    def _as_finite(values: Any, what: str) -> np.ndarray:
        if isinstance(values, Ciphertext):
            raise TypeError(f"{what} must be plaintext numbers, got a Ciphertext")
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{what} must be real numbers, got {type(values).__name__}") from exc
        if np.iscomplexobj(values):
            raise TypeError(f"{what} must be real numbers, got complex values")
        if not np.all(np.isfinite(array)):
            raise EncodingError(f"{what} contains NaN or infinity")
        return np.ascontiguousarray(array)

    def _as_plain_matrix(self, values: Any) -> np.ndarray:
        array = self._as_finite(values, "values to encrypt")
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] == 0 or array.shape[0] == 0:
            raise EncodingError(f"values to encrypt must be a non-empty vector or 2-D array, got shape {array.shape}")
        return array

    def _as_plain_operand(self, values: Any, shape: tuple[int, int], op: str) -> np.ndarray:
        if type(values) is float or type(values) is int:  # fast path: the common scalar operand
            if values - values != 0:  # NaN or infinity
                raise EncodingError(f"{op} operand contains NaN or infinity")
            return np.array(float(values))
        array = self._as_finite(values, f"{op} operand")
        if array.ndim == 0:
            return array
        try:
            np.broadcast_shapes(array.shape, shape)
        except ValueError:
            raise EncodingError(f"cannot {op}: plaintext of shape {array.shape} does not broadcast "
                                f"to the ciphertext shape {shape}") from None
        if array.ndim > 2 or np.broadcast_shapes(array.shape, shape) != tuple(shape):
            raise EncodingError(f"cannot {op}: plaintext of shape {array.shape} would grow the ciphertext "
                                f"shape {shape}")
        return array

    @staticmethod
    def _as_rows(rows: Any, nrows: int) -> np.ndarray:
        idx = np.asarray(rows)
        if idx.dtype == np.int64 and idx.ndim == 1 and idx.size and idx.flags.c_contiguous:
            # Fast path for the common case (pre-tokenised index arrays): one min/max pass.
            lo, hi = int(idx.min()), int(idx.max())
            if lo >= 0 and hi < nrows:
                return idx
        if idx.dtype == bool:
            if idx.shape != (nrows,):
                raise ValueError(f"boolean row mask has shape {idx.shape}, expected ({nrows},)")
            return np.flatnonzero(idx).astype(np.int64)
        if idx.size == 0:
            return np.zeros(0, dtype=np.int64)
        if not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"row indices must be integers, got dtype {idx.dtype}")
        idx = np.ascontiguousarray(idx.reshape(-1), dtype=np.int64)
        if idx.min() < -nrows or idx.max() >= nrows:
            raise IndexError(f"row index out of range for {nrows} rows")
        return np.where(idx < 0, idx + nrows, idx)
