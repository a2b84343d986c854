"""The one scheme interface every he_core scheme implements.

A :class:`Scheme` instance is bound to one parameter set and, once keys are generated
or loaded, to one party's public key material. It is the single front object of a
party: encryption, evaluation and (given the secret key explicitly) decryption all
go through it. The secret key is never stored inside it.

The interface is a small core every scheme implements -- :data:`CORE_OPERATIONS`:
key generation, encryption, decryption, additions, plaintext products, row operations
and the budget -- plus optional protocols, one per capability (products, rotations,
re-keying, the masked refresh...; see :mod:`he_core.protocols`). A scheme declares
the capabilities it has and defines their operations (usually by taking the base
classes of :mod:`he_core.optional`); asking a scheme for an operation it lacks raises
:class:`~he_core.errors.CapabilityError`, never ``AttributeError``.

Public methods validate their arguments (types, shapes, finiteness, key and parameter
set; :mod:`he_core.validation`), then call the ``_``-prefixed hooks a scheme implements.

Data model: a :class:`~he_core.ciphertext.Ciphertext` is a batch of ``rows`` encrypted
vectors of length ``size``. Plaintext operands broadcast like numpy against
``(rows, size)``: a scalar, a ``(size,)`` vector, a ``(rows, 1)`` column or a full
``(rows, size)`` array. Multiplications rescale by default, so results come back at
the parameter set's working scale.
"""
from __future__ import annotations

import abc
import math
from typing import Any, ClassVar, Iterable, NoReturn

import numpy as np

from .bags import BagRows
from .capabilities import Capability
from .costs import OperationCosts
from .ciphertext import Ciphertext
from .errors import CapabilityError, EncodingError, KeyMissingError, MismatchError
from .keyholder_protocol import KeyHolderProtocol
from .keys import KeyPair, KeyRequirements, PublicKeys, SecretKey
from .layouts import Layouts
from .param_choice import ParameterChoice
from .params import Parameters
from .protocols import OPTIONAL_OPERATIONS, missing_operations
from .randomness import RandomSource, resolve
from .validation import Checks

#: The operations every scheme implements; everything else belongs to a protocol (:mod:`he_core.protocols`).
CORE_OPERATIONS = (
    "keygen", "encrypt", "decrypt", "decrypt_exact_local", "add", "sub", "neg", "add_plain", "sub_plain",
    "mul_plain", "take_rows", "concat_rows", "row_sum", "lincomb", "index_add_", "bag_sum", "bag_add_", "budget",
)


class Budget(dict):
    """What is left before a ciphertext stops decrypting correctly.

    A dict with at least ``kind`` (``"noise"``, ``"levels"`` or ``"unbounded"``) and
    ``remaining`` (bits of noise headroom, or levels left); schemes add detail. Only a
    scheme declaring :attr:`~he_core.Capability.LEVELS` reports ``"levels"``.
    """

    @property
    def remaining(self) -> float:
        return self["remaining"]


class Scheme(Checks, BagRows, Layouts, OperationCosts, ParameterChoice, KeyHolderProtocol, abc.ABC):
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

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.params_id}>"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse a scheme class that declares a capability without defining its protocol's operations."""
        super().__init_subclass__(**kwargs)
        for capability in cls.capabilities:
            missing = missing_operations(cls, capability)
            if missing:
                raise TypeError(f"cannot define scheme {cls.__name__}: it declares {capability.value} but does "
                                f"not define {', '.join(missing)}")

    def __getattr__(self, name: str) -> NoReturn:
        """An optional operation this scheme lacks: a :class:`CapabilityError` naming the capability.

        Called only for attributes the scheme does not have, so defined operations pay nothing.
        """
        capability = OPTIONAL_OPERATIONS.get(name)
        if capability is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        raise CapabilityError(self.name, capability.value, op=name)

    # ------------------------------------------------------------------ capabilities
    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def require(self, capability: Capability, hint: str = "") -> None:
        """Raise :class:`CapabilityError` unless the scheme declares ``capability``."""
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

    # Optional hook: reaching the default means the capability was declared but not implemented.
    def _encrypt_public(self, values, public, scale, rng):
        raise CapabilityError(self.name, Capability.PUBLIC_KEY_ENCRYPT.value)
