"""Helpers the vector-kernel tests share: the paths this CPU has, a switch to one, NTT-friendly primes."""
from __future__ import annotations

import contextlib

from he_core import native
from he_core.schemes.ckks.primes import is_prime


def _available() -> tuple[str, ...]:
    """Every path this CPU and build have (asking for "ifma" gives the best of them; AVX2 included)."""
    before = native.vector_path()
    best = native.vector_path("ifma")
    native.vector_path(before)
    return native.VECTOR_PATHS[: native.VECTOR_PATHS.index(best) + 1]


AVAILABLE = _available()


@contextlib.contextmanager
def using_path(name: str):
    """Run on vector path ``name`` (which must be available), then restore the previous one."""
    before = native.vector_path()
    try:
        assert native.vector_path(name) == name
        yield name
    finally:
        native.vector_path(before)


def first_prime(start: int, n: int, step: int) -> int:
    """The first prime = 1 mod 2n from ``start`` (itself = 1 mod 2n), moving by ``step`` * 2n."""
    while not is_prime(start):
        start += step * 2 * n
    return start
