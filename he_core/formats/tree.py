"""Payload trees (key material, ciphertext data, metadata) to JSON plus named arrays, and back.

A tree is ``None``, a bool, an int (any size), a float, a str, a numpy array, or a
list / tuple / str-keyed dict of trees. JSON cannot tell a dict from our tags, a
tuple from a list or hold raw arrays, so containers are tagged:

* ``{"$d": {...}}`` a dict, ``{"$t": [...]}`` a tuple, ``{"$a": "name"}`` an array;
* lists, strings, numbers, booleans and ``null`` are stored as themselves.

Decoding accepts exactly that grammar and nothing else.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FormatError

MAX_DEPTH = 64


class TreeEncoder:
    """Collects the arrays of one or more trees under unique names while encoding them."""

    def __init__(self) -> None:
        self.arrays: list[tuple[str, np.ndarray]] = []

    def encode(self, value: Any, path: str, depth: int = 0) -> Any:
        """The JSON form of ``value``; arrays are appended to :attr:`arrays`.

        Raises:
            TypeError: a value of a type the format does not hold, or a non-str dict key.
            ValueError: a tree nested deeper than ``MAX_DEPTH``.
        """
        if depth > MAX_DEPTH:
            raise ValueError(f"cannot serialise: {path} is nested deeper than {MAX_DEPTH} levels")
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            return float(value)
        if isinstance(value, np.ndarray):
            # The index keeps names unique; the path only helps a human reading a dump.
            name = f"{len(self.arrays)}:{path}"[:200]
            self.arrays.append((name, value))
            return {"$a": name}
        if isinstance(value, list):
            return [self.encode(v, f"{path}/{i}", depth + 1) for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {"$t": [self.encode(v, f"{path}/{i}", depth + 1) for i, v in enumerate(value)]}
        if isinstance(value, dict):
            return {"$d": {self._key(k, path): self.encode(v, f"{path}/{k}", depth + 1) for k, v in value.items()}}
        raise TypeError(f"cannot serialise: {path} holds a {type(value).__name__}; allowed are numpy arrays, "
                        "ints, floats, str, bool, None and lists/tuples/str-keyed dicts of those")

    @staticmethod
    def _key(key: Any, path: str) -> str:
        if not isinstance(key, str):
            raise TypeError(f"cannot serialise: {path} is a dict with a non-str key {key!r}")
        return key


class TreeDecoder:
    """Rebuilds trees from their JSON form, using each stored array exactly once."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.used: set[str] = set()

    def decode(self, node: Any, where: str, depth: int = 0) -> Any:
        """The tree encoded as ``node``.

        Raises:
            FormatError: an unknown tag, a missing or reused array, or a bad value.
        """
        if depth > MAX_DEPTH:
            raise FormatError(f"cannot load: {where} is nested deeper than {MAX_DEPTH} levels")
        if node is None or isinstance(node, (bool, int, str)):
            return node
        if isinstance(node, float):
            return node
        if isinstance(node, list):
            return [self.decode(v, where, depth + 1) for v in node]
        if isinstance(node, dict) and len(node) == 1:
            (tag, body), = node.items()
            if tag == "$a" and isinstance(body, str):
                return self._array(body, where)
            if tag == "$t" and isinstance(body, list):
                return tuple(self.decode(v, where, depth + 1) for v in body)
            if tag == "$d" and isinstance(body, dict):
                return {k: self.decode(v, where, depth + 1) for k, v in body.items()}
        raise FormatError(f"cannot load: {where} holds a malformed entry {_short(node)}")

    def _array(self, name: str, where: str) -> np.ndarray:
        if name not in self.arrays:
            raise FormatError(f"cannot load: {where} refers to array {name!r}, which the file does not hold")
        if name in self.used:
            raise FormatError(f"cannot load: {where} refers to array {name!r} twice")
        self.used.add(name)
        return self.arrays[name]

    def check_all_used(self) -> None:
        """Every stored array must belong to the object: stray payload means a forged file."""
        stray = sorted(set(self.arrays) - self.used)
        if stray:
            raise FormatError(f"cannot load: the file holds arrays no field refers to: {stray[:5]}")


def _short(node: Any) -> str:
    text = repr(node)
    return text if len(text) <= 60 else text[:57] + "..."

