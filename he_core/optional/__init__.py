"""Standard implementations of the optional scheme protocols (:mod:`he_core.protocols`).

A scheme implements a protocol by taking the matching base class (and declaring the
capability): the public methods validate, the scheme supplies the ``_``-prefixed hooks.
"""
from .products import LinearMapping, Products
from .refresh import MaskedRefreshing, Sanitization
from .rekeying import Rekeying

__all__ = ["LinearMapping", "MaskedRefreshing", "Products", "Rekeying", "Sanitization"]
