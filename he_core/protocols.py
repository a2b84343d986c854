"""The optional parts of the scheme interface: one protocol per capability.

:class:`he_core.Scheme` is the core every scheme implements (encryption, decryption,
additions, plaintext products, row operations, budgets). Everything else is a
protocol here, tied to the :class:`~he_core.capabilities.Capability` a scheme
declares when it implements it:

=======================  ==============================  ==========================================
protocol                 capability                      operations
=======================  ==============================  ==========================================
:class:`Multiplication`  ``CIPHER_MULTIPLY``             ``mul``, ``square``, ``polyval``
:class:`InnerProducts`   ``INNER_PRODUCT``               ``inner``
:class:`Rescaling`       ``RESCALE``                     ``rescale``
:class:`LinearMaps`      ``LINEAR_TRANSFORM``            ``matvec``, ``make_linear_key``
:class:`Rekeying`        ``REKEY``                       ``make_switch_key``, ``rekey``
:class:`Refreshable`     ``REFRESH``                     the masked refresh's five steps
:class:`Sanitizing`      ``SANITIZE``                    ``sanitize``, ``as_received``
:class:`Rotations`       ``ROTATE``                      ``rotate``, ``conjugate``, ``sum_slots``
:class:`Leveled`         ``LEVELS``                      ``level``, ``level_drop``, ``noise_estimate``
:class:`ExactIntegers`   ``EXACT``                       ``refresh``, ``rerandomize``
:class:`Bootstrapping`   ``BOOTSTRAP``                   ``bootstrap``, ``bootstrap_plan``, ``bootstrap_keygen``
:class:`CoeffAnswers`    ``COEFF_ANSWER``                ``coeff_answer_params``, ``encrypt_coeff_query``,
                                                         ``answer_coeff_query``
=======================  ==============================  ==========================================

A caller asks ``scheme.supports(Capability.ROTATE)``, or takes a typed view with
:func:`view` (``view(scheme, Rotations).rotate(ct, 1)``), which raises
:class:`~he_core.errors.CapabilityError` when the scheme lacks the protocol. Calling a
protocol's operation on a scheme that lacks it raises the same error, not an
``AttributeError`` (see ``Scheme.__getattr__``). A scheme class that declares a
capability must define every operation of its protocol; this is checked when the
class is defined.

This module only describes; it imports nothing of the schemes, so every layer may use it.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence, TypeVar

from .capabilities import Capability
from .ciphertext import Ciphertext
from .errors import CapabilityError
from .flooding import Flooding
from .keys import KeyPair, KeyRequirements, SecretKey, SwitchKey
from .randomness import RandomSource
from .refresh import Mask, MaskPlan


class Multiplication(Protocol):
    """Products of two ciphertexts, and the polynomials built from them."""

    def mul(self, a: Ciphertext, b: Ciphertext, *, rescale: bool = True) -> Ciphertext: ...

    def square(self, a: Ciphertext, *, rescale: bool = True) -> Ciphertext: ...

    def polyval(self, a: Ciphertext, coeffs: Sequence[float]) -> Ciphertext: ...


class InnerProducts(Protocol):
    """Row-wise inner products of two ciphertexts."""

    def inner(self, a: Ciphertext, b: Ciphertext, *, rescale: bool = True) -> Ciphertext: ...


class Rescaling(Protocol):
    """Dividing by the working scale after a product made with ``rescale=False``."""

    def rescale(self, a: Ciphertext) -> Ciphertext: ...


class LinearMaps(Protocol):
    """A plaintext matrix applied to every encrypted vector.

    ``make_linear_key`` is the key holder's part: public material for one matrix, or
    ``None`` when the scheme needs none (its ``matvec`` then takes ``key=None``).
    """

    def matvec(self, a: Ciphertext, matrix: Any, *, key: SwitchKey | None = None) -> Ciphertext: ...

    def make_linear_key(self, secret: SecretKey, matrix: Any, *,
                        rng: RandomSource | int | None = None) -> SwitchKey | None: ...


class Rekeying(Protocol):
    """Moving ciphertexts from one secret key to another without decrypting them."""

    def make_switch_key(self, old: SecretKey, new: SecretKey, *,
                        rng: RandomSource | int | None = None) -> SwitchKey: ...

    def rekey(self, ct: Ciphertext, switch_key: SwitchKey) -> Ciphertext: ...


class Refreshable(Protocol):
    """The scheme's side of the masked refresh (:mod:`he_core.refresh`)."""

    def refresh_plan(self, ct: Ciphertext, target: Any = None, *, value_bound: float | None = None) -> MaskPlan: ...

    def apply_mask(self, ct: Ciphertext, mask: Mask, *, rng: RandomSource | int | None = None) -> Ciphertext: ...

    def reencrypt_masked(self, masked: Ciphertext, target: Any, key: SecretKey, *,
                         rng: RandomSource | int | None = None) -> Ciphertext: ...

    def remove_mask(self, fresh: Ciphertext, mask: Mask, target: Any, source: Ciphertext,
                    value_bound: float | None = None) -> Ciphertext: ...

    def refresh_target_signature(self, ct: Ciphertext, target: Any = None) -> dict: ...


class Sanitizing(Protocol):
    """Circuit privacy: what a party computing for the key holder does before handing a ciphertext back."""

    def sanitize(self, ct: Ciphertext, *, flooding: Flooding | None = None,
                 rng: RandomSource | int | None = None) -> Ciphertext: ...

    def as_received(self, ct: Ciphertext, bound: float) -> Ciphertext: ...


class Rotations(Protocol):
    """Moving values between the slots of a packed ciphertext."""

    def rotate(self, ct: Ciphertext, steps: int) -> Ciphertext: ...

    def conjugate(self, ct: Ciphertext) -> Ciphertext: ...

    def sum_slots(self, ct: Ciphertext) -> Ciphertext: ...


class Leveled(Protocol):
    """A modulus chain: levels to read and drop, and the analytic noise estimate that goes with them."""

    def level(self, ct: Ciphertext) -> int: ...

    def level_drop(self, ct: Ciphertext, level: int) -> Ciphertext: ...

    def noise_estimate(self, ct: Ciphertext) -> dict: ...


class ExactIntegers(Protocol):
    """Exact integer ciphertexts whose noise the key holder resets and anyone can re-randomise."""

    def refresh(self, ct: Ciphertext, key: SecretKey, *, rng: RandomSource | int | None = None) -> Ciphertext: ...

    def rerandomize(self, ct: Ciphertext) -> Ciphertext: ...


class Bootstrapping(Protocol):
    """Refreshing a ciphertext's levels homomorphically: no key holder in the loop.

    ``bootstrap_plan`` describes what bootstrapping ``slots`` values needs (its keys, their
    bytes) and gives (levels consumed and left); ``bootstrap_keygen`` is the key holder's
    part, a key set with exactly those keys (and, with ``packing``, the rotations that
    ``bootstrap_many`` uses to refresh several ciphertexts with one bootstrap).
    """

    def bootstrap(self, ct: Ciphertext, *, slots: int | None = None, clean: bool = False,
                  value_bound: float | None = None) -> Ciphertext: ...

    def bootstrap_many(self, cts: list[Ciphertext], *, slots: int, clean: bool = False,
                       value_bound: float | None = None) -> list[Ciphertext]: ...

    def bootstrap_packs(self, cts: list[Ciphertext], *, slots: int) -> list[list[int]]: ...

    def bootstrap_plan(self, slots: int, *, clean: bool = False) -> dict: ...

    def bootstrap_keygen(self, slots: int, *, rng: RandomSource | None = None,
                         requirements: KeyRequirements | None = None, packing: bool = False) -> KeyPair: ...


class CoeffAnswers(Protocol):
    """A single linear layer answered on coefficient-packed queries: no rotation, no product key.

    ``coeff_answer_params(step)`` is the ``step``-th parameter set to try (smallest ring first;
    ``None`` past the last); ``coeff_capacity`` the queries one ciphertext holds;
    ``encrypt_coeff_query`` the client's part; ``answer_coeff_query`` the server's: the product,
    the bias, a uniform pad on every coefficient that is not an output, and the sanitisation.
    """

    def coeff_answer_params(self, step: int) -> Any: ...

    def coeff_capacity(self, features: int, outputs: int) -> int: ...

    def encrypt_coeff_query(self, values: Any, outputs: int, key: SecretKey, *, bound: float,
                            rng: RandomSource | int | None = None) -> Ciphertext: ...

    def answer_coeff_query(self, query: Ciphertext, weight: Any, bias: Any, *, bound: float,
                           flooding: Flooding | None = None, rng: RandomSource | int | None = None) -> Ciphertext: ...


#: Each capability that has a protocol, and that protocol.
PROTOCOLS: dict[Capability, type] = {
    Capability.CIPHER_MULTIPLY: Multiplication,
    Capability.INNER_PRODUCT: InnerProducts,
    Capability.RESCALE: Rescaling,
    Capability.LINEAR_TRANSFORM: LinearMaps,
    Capability.REKEY: Rekeying,
    Capability.REFRESH: Refreshable,
    Capability.SANITIZE: Sanitizing,
    Capability.ROTATE: Rotations,
    Capability.LEVELS: Leveled,
    Capability.EXACT: ExactIntegers,
    Capability.BOOTSTRAP: Bootstrapping,
    Capability.COEFF_ANSWER: CoeffAnswers,
}


def operations(protocol: type) -> tuple[str, ...]:
    """The operation names a protocol class declares, in definition order."""
    return tuple(name for name, value in vars(protocol).items() if not name.startswith("_") and callable(value))


def capability_of(protocol: type) -> Capability:
    """The capability a protocol is tied to.

    Raises:
        KeyError: ``protocol`` is not one of :data:`PROTOCOLS`.
    """
    for capability, known in PROTOCOLS.items():
        if known is protocol:
            return capability
    raise KeyError(f"{protocol!r} is not a scheme protocol")


#: Operation name -> the capability whose protocol declares it.
OPTIONAL_OPERATIONS: dict[str, Capability] = {op: cap for cap, proto in PROTOCOLS.items() for op in operations(proto)}


def missing_operations(cls: type, capability: Capability) -> list[str]:
    """The operations of ``capability``'s protocol that class ``cls`` does not define."""
    protocol = PROTOCOLS.get(capability)
    if protocol is None:
        return []
    return [op for op in operations(protocol) if not callable(vars_lookup(cls, op))]


def vars_lookup(cls: type, name: str) -> Any:
    """``name`` as defined on ``cls`` or a base class (``None`` if nowhere), without calling any ``__getattr__``."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return None


P = TypeVar("P")


def view(scheme: Any, protocol: type[P]) -> P:
    """``scheme`` as an implementation of ``protocol``, once it is known to support it.

    Args:
        scheme: a :class:`he_core.Scheme`.
        protocol: one of the protocol classes of this module.

    Returns:
        ``scheme`` itself, typed as ``protocol``.

    Raises:
        CapabilityError: the scheme does not declare the protocol's capability (or, for
            a class built around the checks, does not define its operations).
        KeyError: ``protocol`` is not a scheme protocol.
    """
    capability = capability_of(protocol)
    if not scheme.supports(capability):
        raise CapabilityError(scheme.name, capability.value, f"it does not implement {protocol.__name__}")
    missing = missing_operations(type(scheme), capability)
    if missing:
        raise CapabilityError(scheme.name, capability.value, f"it declares it but lacks {', '.join(missing)}")
    return scheme
