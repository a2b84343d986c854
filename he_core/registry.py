"""Finding schemes by name: built-ins, explicit registrations and the ``he_core.schemes`` entry points.

A third-party package makes its scheme available to every henn user by declaring, in
its own packaging metadata::

    [project.entry-points."he_core.schemes"]
    myscheme = "my_package.module:MyScheme"

where ``MyScheme`` subclasses :class:`he_core.scheme.Scheme`.
"""
from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any, Callable

from .errors import HEError
from .scheme import Scheme

ENTRY_POINT_GROUP = "he_core.schemes"

_BUILTIN = {
    "plain": "he_core.schemes.plain:PlainScheme",
    "vhe": "he_core.schemes.vhe:VheScheme",
    "ckks": "he_core.schemes.ckks:CkksScheme",
}
_registered: dict[str, Callable[..., Scheme] | type[Scheme]] = {}


class UnknownSchemeError(HEError, KeyError):
    """No scheme of that name is installed."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def register_scheme(name: str, factory: type[Scheme] | Callable[..., Scheme], *, replace: bool = False) -> None:
    """Register a scheme class (or a factory taking keyword parameters) under ``name``."""
    if not name or not isinstance(name, str):
        raise ValueError("a scheme name must be a non-empty string")
    if name in _registered and not replace:
        raise ValueError(f"a scheme named {name!r} is already registered (pass replace=True)")
    _registered[name] = factory


def unregister_scheme(name: str) -> None:
    _registered.pop(name, None)


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _builtin_available(name: str) -> bool:
    try:
        _load(_BUILTIN[name])
    except Exception:  # a half-built scheme must not take the whole registry down
        return False
    return True


def available_schemes() -> list[str]:
    """Names of the schemes that can be created here, sorted."""
    names = {n for n in _BUILTIN if _builtin_available(n)}
    names |= set(_registered)
    names |= set(_entry_points())
    return sorted(names)


def scheme_class(name: str) -> Any:
    """The class (or factory) registered under ``name``."""
    if name in _registered:
        return _registered[name]
    if name in _BUILTIN:
        try:
            return _load(_BUILTIN[name])
        except (ImportError, AttributeError) as exc:
            raise UnknownSchemeError(f"scheme {name!r} is built in but could not be loaded: {exc}") from exc
    eps = _entry_points()
    if name in eps:
        return eps[name].load()
    raise UnknownSchemeError(f"unknown scheme {name!r}; available: {', '.join(available_schemes())}")


def get_scheme(name: str, params: Any = None, **kwargs: Any) -> Scheme:
    """Create the scheme ``name`` with a parameter object or keyword parameters.

    Example::

        scheme = he_core.get_scheme("ckks")          # 128-bit; "vhe" only when asked for by name
        keys = scheme.keygen(he_core.KeyRequirements(sizes=(1, 8)))
        ct = scheme.encrypt([1.5, -2.0, 0.0])
    """
    factory = scheme_class(name)
    if isinstance(factory, type) and issubclass(factory, Scheme):
        scheme = factory.create(params, **kwargs)
    else:
        scheme = factory(params, **kwargs) if params is not None else factory(**kwargs)
    if not isinstance(scheme, Scheme):
        raise TypeError(f"scheme factory {name!r} returned {type(scheme).__name__}, not a he_core Scheme")
    return scheme
