"""Roles: code running for a party without the secret key says so, and cannot reach one.

A trainer computes on an encrypted model with public material only. Its code runs
inside :func:`public_only`; every function of :mod:`henn.lifecycle` that would read,
make or destroy a secret key calls :func:`refuse_secret_if_public_only` first, so a
slip on the trainer's side fails loudly instead of finding a key on disk.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from he_core import KeyMissingError

# The role is per thread: public_only marks the calling thread only.
_guard = threading.local()


@contextlib.contextmanager
def public_only(role: str = "trainer") -> Iterator[None]:
    """Within this block, any attempt to read a secret key raises :class:`KeyMissingError`.

    Args:
        role: named in the error message.
    """
    previous = getattr(_guard, "role", None)
    _guard.role = role
    try:
        yield
    finally:
        _guard.role = previous


def refuse_secret_if_public_only(what: str) -> None:
    """Called first by every function that reads, makes or destroys a secret key.

    Args:
        what: the refused operation, for the message ("cannot <what>: ...").

    Raises:
        KeyMissingError: the calling thread is inside :func:`public_only`.
    """
    role = getattr(_guard, "role", None)
    if role is not None:
        raise KeyMissingError(f"cannot {what}: refusing to look for a secret key on the {role} side "
                              "(only the owner holds it)")
