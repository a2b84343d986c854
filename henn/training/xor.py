"""Training the encrypted XOR network: encrypted weights, plaintext data, full batch.

Roles: the *trainer* holds the encrypted model and the plaintext XOR rows and
computes forward, backward and SGD on ciphertexts using public material only; the
:class:`~henn.keyholder.KeyHolder` decrypts the four predictions each epoch (the
monitored loss and accuracy — the only thing it learns besides masked values) and
refreshes ciphertexts through the masked protocol.

When to refresh is decided by :class:`~henn.training.refresh.RefreshPolicy` from each
operand's ``scheme.budget`` before every operation (the default), so the same model
code trains on ``plain`` (never refreshes), ``vhe`` (noise bits) and ``ckks``
(levels: with the default 2-level set the activations are refreshed mid-forward). A
fixed schedule (``refresh_every=N``: the weights after every N-th step) is kept for
comparison; ``refresh_every=0`` never refreshes.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

import he_core

from ..keyholder import KeyHolder
from ..losses import MSELoss
from ..models.xor import X, Y, XorConfig, build_xor, correct
from ..module import Sequential
from ..optim import SGD
from ..tensor import EncTensor
from .refresh import GuardedScheme, RefreshPolicy


@dataclasses.dataclass
class XorResult:
    """What a training run produced.

    Attributes:
        model: the trained (still encrypted) model.
        history: one dict per epoch: ``epoch``, ``loss`` and ``correct`` measured
            before that epoch's update; a last record after the final update.
        seconds: wall time of the training loop (key generation excluded).
        predictions: decrypted outputs of the trained model on the four rows.
        policy: the refresh policy used (``None`` for a fixed schedule).
    """

    model: Sequential
    history: list[dict]
    seconds: float
    predictions: np.ndarray
    policy: RefreshPolicy | None = None

    @property
    def final_loss(self) -> float:
        return self.history[-1]["loss"]

    @property
    def correct(self) -> int:
        return self.history[-1]["correct"]

    @property
    def epochs(self) -> int:
        return len(self.history) - 1


def setup(scheme_name: str, hidden: int = 4, **scheme_params) -> tuple[he_core.Scheme, KeyHolder]:
    """Create the scheme, generate keys for sizes ``(1, hidden)`` and hand the secret to a key holder.

    Returns:
        ``(scheme, keyholder)``: the scheme has only the public keys installed.
    """
    scheme = he_core.get_scheme(scheme_name, **scheme_params)
    secret, _public = scheme.keygen(he_core.KeyRequirements(sizes=(1, hidden)))
    return scheme, KeyHolder(scheme, secret)


def evaluate(model: Sequential, keyholder: KeyHolder) -> tuple[np.ndarray, float, int]:
    """Forward the four rows; the key holder decrypts. Returns ``(predictions, loss, correct)``."""
    pred = keyholder.decrypt(model(X))
    return pred, MSELoss().value(pred, Y), correct(pred)


def train_xor(scheme: he_core.Scheme, keyholder: KeyHolder, config: XorConfig = XorConfig(), *,
              model: Sequential | None = None, refresh_every: int | None = None,
              policy: RefreshPolicy | None = None,
              on_epoch: Callable[[dict], None] | None = None) -> XorResult:
    """Train the XOR network for ``config.epochs`` full-batch epochs.

    Args:
        scheme: scheme with public keys for sizes ``(1, config.hidden)``.
        keyholder: the party holding the secret key.
        config: hyper-parameters (seed, learning rate, activation, ...).
        model: continue training this model instead of building a fresh one.
        refresh_every: ``None`` (default): refresh by budget through ``policy``;
            ``N > 0``: refresh the weights after every N-th step; ``0``: never.
        policy: the budget policy (default: ``RefreshPolicy(keyholder)``); only
            used when ``refresh_every`` is ``None``.
        on_epoch: called with each history record (progress bars).

    Returns:
        The trained model, its history and timing.
    """
    run = prepare(scheme, keyholder, config, model=model, refresh_every=refresh_every, policy=policy)
    history: list[dict] = []
    start = time.perf_counter()
    for epoch in range(config.epochs):
        pred = run.epoch()
        record = {"epoch": epoch, "loss": MSELoss().value(pred, Y), "correct": correct(pred)}
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    pred, loss, right = evaluate(run.model, keyholder)
    seconds = time.perf_counter() - start
    history.append({"epoch": config.epochs, "loss": loss, "correct": right})
    return XorResult(run.model, history, seconds, pred, run.policy)


@dataclasses.dataclass
class XorRun:
    """A model ready to train: its optimiser and (when refreshing by budget) the policy.

    Attributes:
        model: the encrypted model; its tensors live on the guarded scheme view when
            ``policy`` is set.
        opt: SGD over the model's parameters.
        keyholder: the party decrypting the predictions and serving refreshes.
        policy: the budget policy, or ``None`` for a fixed schedule.
    """

    model: Sequential
    opt: SGD
    keyholder: KeyHolder
    policy: RefreshPolicy | None

    def epoch(self) -> np.ndarray:
        """One full-batch step: forward, decrypt the predictions, backward, update.

        Returns:
            The decrypted predictions *before* the update (what the history records).
        """
        loss_fn = MSELoss()
        out = self.model(X)
        pred = self.keyholder.decrypt(out)
        self.model.backward(loss_fn.grad(out, Y))
        self.opt.step()
        if self.policy is not None:
            self.policy.new_step()
        return pred


def prepare(scheme: he_core.Scheme, keyholder: KeyHolder, config: XorConfig = XorConfig(), *,
            model: Sequential | None = None, refresh_every: int | None = None,
            policy: RefreshPolicy | None = None) -> XorRun:
    """Build (or rebind) the model, its optimiser and refresh policy; arguments as :func:`train_xor`."""
    if refresh_every is None:
        policy = policy if policy is not None else RefreshPolicy(keyholder)
        scheme = GuardedScheme(scheme, policy)
    else:
        policy = None
        scheme = getattr(scheme, "inner_scheme", scheme)
    model = _bind(model, scheme) if model is not None else build_xor(scheme, config)
    opt = SGD(model.parameters(), config.lr, refresh=keyholder.refresh, refresh_every=refresh_every or 0)
    return XorRun(model, opt, keyholder, policy)


def _bind(model: Sequential, scheme) -> Sequential:
    """Point every parameter of a model at ``scheme`` (the guarded view or the bare scheme)."""
    for p in model.parameters():
        p.value = EncTensor(scheme, p.value.ct)
    return model
