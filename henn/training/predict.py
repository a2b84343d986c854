"""The encrypted forward pass outside training, and releasing its outputs to the owner.

:func:`predict` runs a model on plaintext or encrypted rows, through the key holder's
refreshes when the parameters cannot hold the whole pass; :func:`release_outputs`
floods what the owner reads. :func:`bind_parameters` points a model's
parameters at a scheme or at its guarded view (the trainer uses it too).
"""
from __future__ import annotations

from typing import Any

import numpy as np

import he_core

from ..keyholder import KeyHolder, MaskedRefresh
from ..module import Sequential
from ..tensor import EncTensor
from .guarded import GuardedScheme
from .refresh import RefreshPolicy

#: Bound on every refreshed value the model vouches for by default (weights, pre-activations, gradients).
DEFAULT_VALUE_BOUND = 16.0


def bind_parameters(model: Sequential, scheme: Any) -> None:
    """Point every parameter at ``scheme`` (the guarded view while training, the raw scheme after)."""
    for p in model.parameters():
        p.value = EncTensor(scheme, p.value.ct)
        p.grad = None


def predict(model: Sequential, X: Any, *, keyholder: MaskedRefresh | None = None,
            value_bound: float = DEFAULT_VALUE_BOUND, loss: Any = None,
            policy: RefreshPolicy | None = None) -> EncTensor:
    """The encrypted outputs of ``model`` on ``X`` (plaintext or encrypted rows); nothing is decrypted.

    With a ``keyholder`` the forward pass refreshes through it whenever a budget runs
    low (a model deeper than its parameter set); without, the parameters must hold
    the whole pass (:func:`henn.depth.choose_parameters` with ``purpose="infer"``).
    With a ``loss`` the outputs are its predictions (``loss.prediction``: probabilities
    for the polynomial logistic and softmax losses). ``policy`` is the refresh policy to
    use (default a new one on ``keyholder``), for callers that read its counters, or
    one that bootstraps (:class:`~henn.training.bootstrap.BootstrapRefresh`: no key holder).
    """
    if keyholder is None and policy is None:
        out = model.forward(X)
        return loss.prediction(out) if loss is not None else out
    policy = policy if policy is not None else RefreshPolicy(keyholder, value_bound=value_bound)
    raw = policy.keyholder.scheme
    guarded = GuardedScheme(raw, policy)
    bind_parameters(model, guarded)
    try:
        out = model.forward(EncTensor(guarded, X.ct) if isinstance(X, EncTensor) else X)
        if loss is not None:
            out = loss.prediction(out)
    finally:
        bind_parameters(model, raw)
    return EncTensor(raw, out.ct)


def release_outputs(keyholder: KeyHolder, outputs: EncTensor) -> np.ndarray:
    """Outputs (or trained weights) decrypted for the key holder's owner, flooded.

    One release and no refresh (:meth:`~henn.keyholder.KeyHolder.release_result`): the key
    holder re-encrypts the outputs itself before the flooded decryption, so the flood hides
    a fresh encryption's noise whatever the computation (bootstraps included) left in them.
    """
    if not isinstance(keyholder, KeyHolder):  # e.g. the trainer's handle on the owner's key service
        raise he_core.KeyMissingError(
            f"cannot release: a {type(keyholder).__name__} holds no secret key; only the owner's KeyHolder "
            "releases (a key service answers refreshes and aggregates), so release the outputs in the owner's process")
    return keyholder.release_result(outputs)
