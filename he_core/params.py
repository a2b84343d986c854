"""Common behaviour of parameter sets: immutable, validated, identified, serialisable."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from typing import Any, ClassVar


@dataclasses.dataclass(frozen=True)
class Parameters:
    """Base class for a scheme's parameter set (subclasses are frozen dataclasses).

    Subclasses validate in ``__post_init__`` and report their security level through
    :attr:`security_bits` (``0`` for a set that gives no security at all).
    """

    scheme: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Parameters":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown {cls.scheme} parameters: {sorted(unknown)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()})

    @functools.cached_property
    def param_id(self) -> str:
        """Short stable identifier: scheme name plus a hash of every field (computed once: the set is frozen)."""
        canon = json.dumps({"scheme": self.scheme, **self.to_dict()}, sort_keys=True, default=str)
        return f"{self.scheme}-{hashlib.sha256(canon.encode()).hexdigest()[:12]}"

    @property
    def security_bits(self) -> int:
        return 0
