"""Keys and a key holder in the trainer's own process: experiments and tests (one party).

:func:`in_process_keyholder` makes a scheme's keys (for a model's depth and sizes, or, for
``fit(refresh="bootstrap")``, with bootstrapping's keys) and hands the secret to a
:class:`~henn.keyholder.KeyHolder` in this process. The trainer and the key holder are
then **one party** and the weights are hidden from nobody: it warns with
:class:`SinglePartyWarning`. Keeping them apart takes the owner's key service
(``fit(keyholder="unix:PATH")``).
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import he_core

from ..depth import key_requirements, make_scheme
from ..keyholder import KeyHolder, RefreshTerms
from ..module import Sequential
from .bootstrap import bootstrap_keys, bootstrap_slots, bootstrapping_scheme


class SinglePartyWarning(UserWarning):
    """The key holder lives in the trainer's process: nothing is hidden from the trainer."""


def in_process_keyholder(scheme: str | he_core.Scheme, model_or_sizes: Any, *,
                         terms: RefreshTerms | Callable[[he_core.Scheme], RefreshTerms] | None = None,
                         purpose: str = "train", rng: he_core.RandomSource | None = None,
                         bootstrap_batch: int | None = None, ring: int | None = None
                         ) -> tuple[he_core.Scheme, KeyHolder]:
    """Keys and a key holder in this process (one party: warns with :class:`SinglePartyWarning`).

    Args:
        scheme: a scheme name (parameters chosen from the model's depth) or an
            instance without keys.
        model_or_sizes: a model whose depth and key sizes decide, or an iterable of
            vector sizes (then a named scheme keeps its defaults).
        terms: the job's terms (default :class:`RefreshTerms`), or a function of the keyed
            scheme that makes them (terms that depend on the parameters chosen).
        purpose: ``"train"`` or ``"infer"`` (see :func:`henn.depth.choose_parameters`).
        rng: key-generation randomness (default the OS CSPRNG; tests may seed).
        bootstrap_batch: for ``fit(refresh="bootstrap")`` with this batch size: a set that
            bootstraps the model's step, and bootstrapping's keys (``scheme`` a name, the
            model given); ``ring`` then picks a smaller, insecure ring for trials.

    Returns:
        ``(scheme, keyholder)``; the scheme has the public keys installed.
    """
    warnings.warn("the key holder runs in the trainer's process: the trainer and the key holder are one party and "
                  "the weights are hidden from nobody; pass keyholder= the owner's key service to keep them apart",
                  SinglePartyWarning, stacklevel=2)
    if bootstrap_batch is not None:
        if not isinstance(scheme, str) or not isinstance(model_or_sizes, Sequential):
            raise ValueError("cannot make bootstrapping keys: pass the scheme's name and the model")
        booting = bootstrapping_scheme(scheme, model_or_sizes, bootstrap_batch, ring=ring)
        slots = bootstrap_slots(model_or_sizes, bootstrap_batch)
        secret = bootstrap_keys(booting, key_requirements(model_or_sizes), slots, rng=rng).secret
        return booting, KeyHolder(booting, secret, terms=terms(booting) if callable(terms) else terms)
    if isinstance(model_or_sizes, Sequential):
        requirements = key_requirements(model_or_sizes)
        if isinstance(scheme, str):
            scheme = make_scheme(scheme, model_or_sizes, purpose=purpose)
    else:
        requirements = he_core.KeyRequirements(sizes=tuple({1, *model_or_sizes}))
        if isinstance(scheme, str):
            scheme = he_core.get_scheme(scheme)
    secret, _public = scheme.keygen(requirements, rng=rng)
    return scheme, KeyHolder(scheme, secret, terms=terms(scheme) if callable(terms) else terms)
