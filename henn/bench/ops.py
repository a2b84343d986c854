"""The operations ``henn bench`` times, one entry per op of the scheme interface.

Each op has a *prepare* function that does everything that must stay out of the timed
region (key generation is done once per scheme and size by :func:`make_context`,
encryption of the inputs and the expected plaintext result here) and returns a
:class:`Prepared`: the zero-argument call to time, the ciphertext it yields for the
correctness check, and the plaintext answer. Timing something that computes the
wrong thing is worse than useless, so the runner checks every op once before timing it.

Only the ``he_core`` interface is used: schemes appear here as soon as the registry
knows them, and ``scheme.supports(...)`` decides which ops they get.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from he_core import Capability, Ciphertext, KeyRequirements, Scheme
from he_core.keys import KeyPair


@dataclasses.dataclass
class Context:
    """One scheme with keys for one vector size, and the inputs every op draws from.

    Attributes:
        scheme: the scheme, with public keys installed.
        keys: the key pair the inputs are encrypted under.
        size: vector length of the ciphertexts.
        rows: rows of the batched inputs (``row_sum``, ``index_add_``).
        gen: numpy generator for *input values* only (never for key material).
    """

    scheme: Scheme
    keys: KeyPair
    size: int
    rows: int
    gen: np.random.Generator

    def values(self, rows: int = 1, size: int | None = None) -> np.ndarray:
        """Uniform reals in [-1, 1] of shape ``(rows, size)``."""
        return self.gen.uniform(-1.0, 1.0, size=(rows, self.size if size is None else size))

    def encrypt(self, values: np.ndarray) -> Ciphertext:
        """Encrypt with the public key when the scheme has one, else with the secret key."""
        if self.scheme.supports(Capability.PUBLIC_KEY_ENCRYPT):
            return self.scheme.encrypt(values)
        return self.scheme.encrypt(values, self.keys.secret)


@dataclasses.dataclass
class Prepared:
    """An op ready to time.

    Attributes:
        run: the call to time.
        output: runs the op once and returns ``(ciphertext, secret key)`` to decrypt the
            result with, or a plaintext array for ops whose result is plaintext (decrypt).
        expected: the plaintext answer ``output`` must match, or a tuple of answers any one
            of which is accepted (an op whose convention legitimately differs between schemes).
        terms: how many rounded products add up in one output entry (sets the check's tolerance).
        reset: restores an in-place op's target before each timed round.
        inplace: the op accumulates into its target, so rounds stay short.
    """

    run: Callable[[], Any]
    output: Callable[[], Any]
    expected: np.ndarray | tuple[np.ndarray, ...]
    terms: int = 1
    reset: Callable[[], Any] | None = None
    inplace: bool = False


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """One benchmarked operation.

    Attributes:
        name: op name as shown in tables and JSON.
        prepare: builds a :class:`Prepared` from a :class:`Context`.
        needs: capabilities the scheme must declare, all of them (an op of an optional
            protocol needs that protocol's capability: the scheme then defines the op).
    """

    name: str
    prepare: Callable[[Context], Prepared]
    needs: tuple[Capability, ...] = ()

    def unsupported_reason(self, scheme: Scheme) -> str | None:
        """Why ``scheme`` cannot run this op, or ``None`` when it can."""
        missing = [c.value for c in self.needs if not scheme.supports(c)]
        if missing:
            return f"{scheme.name} does not support {', '.join(missing)}"
        return None


def make_context(scheme: Scheme, size: int, rows: int, seed: int = 0) -> Context:
    """Generate keys for ``size``-vectors (and the size-1 results of inner products)."""
    requirements = KeyRequirements(sizes=(size, 1), rotations=(1, -1),
                                   multiply=scheme.supports(Capability.CIPHER_MULTIPLY))
    keys = scheme.keygen(requirements)
    return Context(scheme, keys, size, rows, np.random.default_rng(seed))


def _with_key(ctx: Context, make: Callable[[], Ciphertext]) -> Callable[[], tuple[Ciphertext, Any]]:
    return lambda: (make(), ctx.keys.secret)


# --------------------------------------------------------------------------- ops
def _encrypt(ctx: Context) -> Prepared:
    x = ctx.values()
    return Prepared(lambda: ctx.encrypt(x), _with_key(ctx, lambda: ctx.encrypt(x)), x)


def _decrypt(ctx: Context) -> Prepared:
    x = ctx.values()
    ct = ctx.encrypt(x)
    sk = ctx.keys.secret
    return Prepared(lambda: ctx.scheme.decrypt_exact_local(ct, sk), lambda: ctx.scheme.decrypt_exact_local(ct, sk), x)


def _add(ctx: Context) -> Prepared:
    x, y = ctx.values(), ctx.values()
    a, b = ctx.encrypt(x), ctx.encrypt(y)
    op = lambda: ctx.scheme.add(a, b)  # noqa: E731
    return Prepared(op, _with_key(ctx, op), x + y)


def _mul_plain(ctx: Context) -> Prepared:
    x, p = ctx.values(), ctx.values()
    a = ctx.encrypt(x)
    op = lambda: ctx.scheme.mul_plain(a, p)  # noqa: E731
    return Prepared(op, _with_key(ctx, op), x * p)


def _mul(ctx: Context) -> Prepared:
    x, y = ctx.values(), ctx.values()
    a, b = ctx.encrypt(x), ctx.encrypt(y)
    op = lambda: ctx.scheme.mul(a, b)  # noqa: E731
    return Prepared(op, _with_key(ctx, op), x * y)


def _inner(ctx: Context) -> Prepared:
    x, y = ctx.values(), ctx.values()
    a, b = ctx.encrypt(x), ctx.encrypt(y)
    op = lambda: ctx.scheme.inner(a, b)  # noqa: E731
    return Prepared(op, _with_key(ctx, op), np.sum(x * y, axis=1, keepdims=True), terms=ctx.size)


def _rescale(ctx: Context) -> Prepared:
    x = ctx.values()
    # A small per-row factor: an unrescaled product carries twice the scale, and a
    # fixed-point scheme without a modulus (vhe) holds that only for small values.
    c = ctx.values(size=1) / 16
    unscaled = ctx.scheme.mul_plain(ctx.encrypt(x), c, rescale=False)
    op = lambda: ctx.scheme.rescale(unscaled)  # noqa: E731
    return Prepared(op, _with_key(ctx, op), x * c)


def _rotate(ctx: Context) -> Prepared:
    x = ctx.values()
    a = ctx.encrypt(x)
    op = lambda: ctx.scheme.rotate(a, 1)  # noqa: E731
    # Left rotation by one slot (SEAL, OpenFHE, Lattigo). A vector shorter than the slot
    # vector is either rolled within itself or shifted with the zero padding moving in.
    shifted = np.zeros_like(x)
    shifted[:, :-1] = x[:, 1:]
    return Prepared(op, _with_key(ctx, op), (np.roll(x, -1, axis=1), shifted))


def _matvec(ctx: Context) -> Prepared:
    x = ctx.values()
    m = ctx.values(rows=ctx.size) / np.sqrt(ctx.size)
    a = ctx.encrypt(x)
    # Schemes that switch keys through the matrix itself (vhe) want a key made for it by
    # the key holder (others get None); that is key material, so it is made here, untimed.
    key = ctx.scheme.make_linear_key(ctx.keys.secret, m)
    op = lambda: ctx.scheme.matvec(a, m, key=key)  # noqa: E731
    return Prepared(op, _with_key(ctx, op), x @ m.T, terms=ctx.size)


def _row_sum(ctx: Context) -> Prepared:
    table = ctx.values(rows=ctx.rows)
    a = ctx.encrypt(table)
    idx = ctx.gen.integers(0, ctx.rows, size=max(1, ctx.rows // 2))
    op = lambda: ctx.scheme.row_sum(a, idx)  # noqa: E731
    return Prepared(op, _with_key(ctx, op), table[idx].sum(axis=0, keepdims=True), terms=idx.size)


def _index_add(ctx: Context) -> Prepared:
    table = ctx.values(rows=ctx.rows)
    delta = ctx.values()
    idx = ctx.gen.integers(0, ctx.rows, size=max(1, ctx.rows // 2))
    fresh = ctx.encrypt(table)
    b = ctx.encrypt(delta)
    target = {"ct": ctx.scheme.copy(fresh)}

    def reset() -> None:
        target["ct"] = ctx.scheme.copy(fresh)

    def output() -> tuple[Ciphertext, Any]:
        ct = ctx.scheme.copy(fresh)
        ctx.scheme.index_add_(ct, idx, b)
        return ct, ctx.keys.secret

    expected = table.copy()
    np.add.at(expected, idx, delta[0])
    return Prepared(lambda: ctx.scheme.index_add_(target["ct"], idx, b), output, expected,
                    reset=reset, inplace=True)


def _rekey(ctx: Context) -> Prepared:
    x = ctx.values()
    a = ctx.encrypt(x)
    public = ctx.keys.public
    other = ctx.scheme.keygen(public.requirements)
    ctx.scheme.set_public_keys(public)  # keygen installed the new key's public part
    switch = ctx.scheme.make_switch_key(ctx.keys.secret, other.secret)
    op = lambda: ctx.scheme.rekey(a, switch)  # noqa: E731
    return Prepared(op, lambda: (op(), other.secret), x)


OPS: tuple[OpSpec, ...] = (
    OpSpec("encrypt", _encrypt),
    OpSpec("decrypt", _decrypt),
    OpSpec("add", _add),
    OpSpec("mul_plain", _mul_plain),
    OpSpec("mul", _mul, (Capability.CIPHER_MULTIPLY,)),
    OpSpec("inner", _inner, (Capability.INNER_PRODUCT,)),
    OpSpec("rescale", _rescale, (Capability.RESCALE,)),
    OpSpec("rotate", _rotate, (Capability.ROTATE,)),
    OpSpec("matvec", _matvec, (Capability.LINEAR_TRANSFORM,)),
    OpSpec("row_sum", _row_sum),
    OpSpec("index_add_", _index_add),
    OpSpec("rekey", _rekey, (Capability.REKEY,)),
)

OP_NAMES = tuple(op.name for op in OPS)


def get_op(name: str) -> OpSpec:
    """The op called ``name``; raises ``KeyError`` listing the known ones."""
    for op in OPS:
        if op.name == name:
            return op
    raise KeyError(f"unknown op {name!r}; known: {', '.join(OP_NAMES)}")
