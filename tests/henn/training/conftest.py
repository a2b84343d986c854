"""Shared pieces of the henn.training tests: a fake leveled scheme and guarded environments.

A fake *leveled* scheme (the plaintext twin plus a level counter: every product uses
one level, a product at level 0 raises ``LevelExhaustedError``) is registered through
``he_core.register_scheme`` so the tests are fast and the counts are exact.
"""
from __future__ import annotations

import numpy as np
import pytest

import he_core
from he_core.scheme import Budget
from henn.tasks.xor import setup
from henn.training.guarded import GuardedScheme
from henn.training.refresh import RefreshPolicy

LEVELS = 3


class LeveledPlain(he_core.scheme_class("plain")):
    """The plaintext twin with CKKS-like level accounting (fresh ciphertexts have ``LEVELS``)."""

    name = "leveled_plain"

    def _wrap(self, like, data, level=None):
        ct = super()._wrap(like, data)
        if level is None:
            level = LEVELS if isinstance(like, str) else like.meta["level"]
        ct.meta["level"] = level
        return ct

    @staticmethod
    def _use(*cts):
        level = min(c.meta["level"] for c in cts)
        if level == 0:
            raise he_core.LevelExhaustedError("cannot multiply: level 0, no level left to rescale")
        return level - 1

    def _add(self, a, b):
        return self._wrap(a, a.data + b.data, min(a.meta["level"], b.meta["level"]))

    def _sub(self, a, b):
        return self._wrap(a, a.data - b.data, min(a.meta["level"], b.meta["level"]))

    def _mul_plain(self, a, values, rescale):
        return self._wrap(a, a.data * values, self._use(a))

    def _mul(self, a, b, rescale):
        return self._wrap(a, a.data * b.data, self._use(a, b))

    def _inner(self, a, b, rescale):
        return self._wrap(a, np.sum(a.data * b.data, axis=1, keepdims=True), self._use(a, b))

    def _lincomb(self, weights, a, rescale):
        return self._wrap(a, weights @ a.data, self._use(a))

    def _budget(self, a):
        return Budget(kind="levels", remaining=a.meta["level"], level=a.meta["level"])

    def _reencrypt_masked(self, masked, target, key, rng):
        return self._wrap(masked, masked.data.copy(), LEVELS)  # a refresh restores every level


@pytest.fixture(scope="module")
def leveled():
    he_core.register_scheme(LeveledPlain.name, LeveledPlain, replace=True)
    yield LeveledPlain.name
    he_core.unregister_scheme(LeveledPlain.name)


def guarded_env(name):
    """``(scheme, key holder, policy, guarded view)`` for the scheme ``name``."""
    scheme, kh = setup(name)
    policy = RefreshPolicy(kh)
    return scheme, kh, policy, GuardedScheme(scheme, policy)


def plain_pair():
    """A plain scheme and its secret key."""
    scheme, kh = setup("plain")
    return scheme, kh.export_secret_key()
