"""Standard implementations of the optional scheme protocols (:mod:`he_core.protocols`).

A scheme implements a protocol by taking the matching base class (and declaring the
capability): the public methods validate, the scheme supplies the ``_``-prefixed hooks.
"""
from .coeff_answers import CoeffAnswering
from .products import LinearMapping, Products
from .refresh import MaskedRefreshing, Sanitization
from .rekeying import Rekeying

__all__ = ["CoeffAnswering", "LinearMapping", "MaskedRefreshing", "Products", "Rekeying", "Sanitization"]
