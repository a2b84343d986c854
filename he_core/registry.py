"""Finding schemes by name: built-ins, explicit registrations and the ``he_core.schemes`` entry points.

This module holds the one list of built-in schemes (:data:`BUILTIN_SCHEMES`); every
other place that needs the names asks :func:`available_schemes` or
:func:`builtin_schemes`.

A third-party package makes its scheme available to every henn user by declaring, in
its own packaging metadata::

    [project.entry-points."he_core.schemes"]
    myscheme = "my_package.module:MyScheme"

where ``MyScheme`` subclasses :class:`he_core.scheme.Scheme`. The registry accepts
nothing else: a factory function or any other class is refused when registered or
loaded, so every name resolves to a class whose class methods (``create``,
``params_class``, ``params_for_depth``) callers may use without probing.
"""
from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

from .errors import HEError
from .scheme import Scheme

ENTRY_POINT_GROUP = "he_core.schemes"

#: The built-in schemes, by name: where each class lives (``module:attribute``).
BUILTIN_SCHEMES: dict[str, str] = {
    "plain": "he_core.schemes.plain:PlainScheme",
    "vhe": "he_core.schemes.vhe:VheScheme",
    "ckks": "he_core.schemes.ckks:CkksScheme",
}
_registered: dict[str, type[Scheme]] = {}


class UnknownSchemeError(HEError, KeyError):
    """No scheme of that name is installed, or it cannot be loaded."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def _check_class(name: str, cls: Any) -> type[Scheme]:
    """``cls`` if it is a :class:`Scheme` subclass; otherwise a ``TypeError`` naming what it is."""
    if not (isinstance(cls, type) and issubclass(cls, Scheme)):
        what = cls.__name__ if isinstance(cls, type) else type(cls).__name__
        raise TypeError(f"cannot register scheme {name!r}: {what} is not a he_core Scheme subclass")
    return cls


def register_scheme(name: str, cls: type[Scheme], *, replace: bool = False) -> None:
    """Register a scheme class under ``name``.

    Args:
        name: the name :func:`get_scheme` will take.
        cls: a subclass of :class:`he_core.Scheme`.
        replace: allow replacing an earlier registration of ``name``.

    Raises:
        ValueError: an empty name, or one already registered (without ``replace``).
        TypeError: ``cls`` is not a ``Scheme`` subclass.
    """
    if not name or not isinstance(name, str):
        raise ValueError("cannot register a scheme: its name must be a non-empty string")
    if name in _registered and not replace:
        raise ValueError(f"cannot register scheme {name!r}: already registered (pass replace=True)")
    _registered[name] = _check_class(name, cls)


def unregister_scheme(name: str) -> None:
    """Forget a scheme registered with :func:`register_scheme` (no-op for unknown names)."""
    _registered.pop(name, None)


def builtin_schemes() -> list[str]:
    """The names of the built-in schemes, whether or not they load here, sorted."""
    return sorted(BUILTIN_SCHEMES)


def _load_builtin(name: str) -> type[Scheme]:
    module, _, attr = BUILTIN_SCHEMES[name].partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownSchemeError(f"cannot load scheme {name!r}: it is built in but did not load: {exc}") from exc
    return _check_class(name, cls)


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _loads(name: str) -> bool:
    try:
        _load_builtin(name)
    except UnknownSchemeError:  # a half-built scheme must not take the whole registry down
        return False
    return True


def available_schemes() -> list[str]:
    """Names of the schemes that can be created here, sorted.

    A built-in whose module does not load is left out (:func:`scheme_class` says why);
    registered schemes and entry points are listed without loading them.
    """
    names = {n for n in BUILTIN_SCHEMES if _loads(n)}
    names |= set(_registered)
    names |= set(_entry_points())
    return sorted(names)


def scheme_class(name: str) -> type[Scheme]:
    """The scheme class registered under ``name``.

    Raises:
        UnknownSchemeError: no such scheme, or a built-in that does not load.
        TypeError: an entry point that names something other than a ``Scheme`` subclass.
    """
    if name in _registered:
        return _registered[name]
    if name in BUILTIN_SCHEMES:
        return _load_builtin(name)
    eps = _entry_points()
    if name in eps:
        return _check_class(name, eps[name].load())
    raise UnknownSchemeError(f"unknown scheme {name!r}; available: {', '.join(available_schemes())}")


def get_scheme(name: str, params: Any = None, **kwargs: Any) -> Scheme:
    """Create the scheme ``name`` with a parameter object or keyword parameters.

    Example::

        scheme = he_core.get_scheme("ckks")          # 128-bit; "vhe" only when asked for by name
        keys = scheme.keygen(he_core.KeyRequirements(sizes=(1, 8)))
        ct = scheme.encrypt([1.5, -2.0, 0.0])

    Raises:
        UnknownSchemeError: see :func:`scheme_class`.
        TypeError: both ``params`` and keyword parameters, or unknown keywords.
        he_core.ParameterError: invalid parameter values.
    """
    return scheme_class(name).create(params, **kwargs)
