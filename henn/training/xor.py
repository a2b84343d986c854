"""Training the encrypted XOR network: encrypted weights, plaintext data, full batch.

Roles: the *trainer* holds the encrypted model and the plaintext XOR rows and
computes forward, backward and SGD on ciphertexts using public material only; the
:class:`~henn.keyholder.KeyHolder` refreshes ciphertexts through the masked protocol
and *releases* (noise-flooded) one aggregate per epoch, the summed squared error over
the four rows (the whole data set: the job's ``min_aggregate`` is 4 for this toy), and
the trained model's four predictions at the end.

When to refresh is decided by :class:`~henn.training.refresh.RefreshPolicy` from each
operand's ``scheme.budget`` before every operation, so the same model code trains on
``plain`` (never refreshes), ``vhe`` (noise bits) and ``ckks`` (levels, keeping enough
in reserve that every refreshed ciphertext still has room for its mask).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

import he_core

from ..keyholder import KeyHolder, RefreshTerms
from ..losses import MSELoss
from ..models.xor import X, Y, XorConfig, build_xor, correct
from ..module import Sequential
from ..optim import SGD
from ..tensor import EncTensor
from .fit import release_outputs
from .refresh import GuardedScheme, RefreshPolicy

#: Refreshes one epoch may ask for at most (the forward, backward and loss of a 2-4-1 network).
REFRESHES_PER_EPOCH = 48


@dataclasses.dataclass
class XorResult:
    """What a training run produced.

    Attributes:
        model: the trained (still encrypted) model.
        history: one dict per epoch: ``epoch`` and ``loss`` (the released mean squared
            error before that epoch's update); a last record after the final update
            with ``loss`` and ``correct`` from the released predictions.
        seconds: wall time of the training loop (key generation excluded).
        predictions: the released outputs of the trained model on the four rows.
        policy: the refresh policy used.
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


def terms_for(config: XorConfig, entries_per_refresh: int, statistical_bits: int = 30) -> RefreshTerms:
    """The job terms of an XOR run: refreshes and releases for ``config.epochs``, aggregates of 4 rows."""
    return RefreshTerms(statistical_bits=statistical_bits, refreshes=REFRESHES_PER_EPOCH * (config.epochs + 1),
                        entries_per_refresh=entries_per_refresh, releases=config.epochs + 2,
                        min_aggregate=len(X))


def setup(scheme_name: str, hidden: int = 4, config: XorConfig | None = None,
          **scheme_params) -> tuple[he_core.Scheme, KeyHolder]:
    """Create the scheme, generate keys for sizes ``(1, hidden)`` and hand the secret to a key holder.

    Without ``scheme_params`` a leveled scheme gets its cheapest set for the network's
    depth between refreshes (:meth:`he_core.Scheme.params_for_depth`).

    Returns:
        ``(scheme, keyholder)``: the scheme has only the public keys installed.
    """
    config = config or XorConfig(hidden=hidden)
    if scheme_params:
        scheme = he_core.get_scheme(scheme_name, **scheme_params)
    else:
        chosen = he_core.scheme_class(scheme_name).params_for_depth(STEP_DEPTH)
        scheme = he_core.get_scheme(scheme_name, chosen) if chosen is not None else he_core.get_scheme(scheme_name)
    secret, _public = scheme.keygen(he_core.KeyRequirements(sizes=(1, hidden)))
    entries = 1
    if scheme.supports(he_core.Capability.REFRESH):
        probe = scheme.encrypt(np.zeros((len(X), max(hidden, X.shape[1]))))
        entries = max(1, scheme.refresh_plan(probe).n_read)
    return scheme, KeyHolder(scheme, secret, terms=terms_for(config, entries))


#: Levels the network's deepest operation chain needs between refreshes (a cubic activation: 3).
STEP_DEPTH = 4


def evaluate(model: Sequential, keyholder: KeyHolder, value_bound: float = 16.0) -> tuple[np.ndarray, float, int]:
    """Forward the four rows; the key holder releases the predictions. Returns ``(predictions, loss, correct)``.

    The output is refreshed before its release: the flooding then only has to hide a
    fresh encryption's noise, not the whole network's (a far smaller bound, so far
    more precise released values).
    """
    pred = release_outputs(keyholder, model(X), value_bound)
    return pred, MSELoss().value(pred, Y), correct(pred)


def train_xor(scheme: he_core.Scheme, keyholder: KeyHolder, config: XorConfig = XorConfig(), *,
              model: Sequential | None = None, policy: RefreshPolicy | None = None,
              on_epoch: Callable[[dict], None] | None = None) -> XorResult:
    """Train the XOR network for ``config.epochs`` full-batch epochs.

    Args:
        scheme: scheme with public keys for sizes ``(1, config.hidden)``.
        keyholder: the party holding the secret key.
        config: hyper-parameters (learning rate, activation, ...).
        model: continue training this model instead of building a fresh one.
        policy: the refresh policy (default: ``RefreshPolicy(keyholder)``).
        on_epoch: called with each history record (progress bars).

    Returns:
        The trained model, its history and timing.
    """
    run = prepare(scheme, keyholder, config, model=model, policy=policy)
    history: list[dict] = []
    start = time.perf_counter()
    for epoch in range(config.epochs):
        record = {"epoch": epoch, "loss": run.epoch()}
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    pred, loss, right = evaluate(run.model, keyholder, config.value_bound)
    seconds = time.perf_counter() - start
    history.append({"epoch": config.epochs, "loss": loss, "correct": right})
    return XorResult(run.model, history, seconds, pred, run.policy)


@dataclasses.dataclass
class XorRun:
    """A model ready to train: its optimiser and refresh policy.

    Attributes:
        model: the encrypted model; its tensors live on the guarded scheme view.
        opt: SGD over the model's parameters.
        keyholder: the party releasing the aggregates and serving refreshes.
        policy: the refresh policy.
    """

    model: Sequential
    opt: SGD
    keyholder: KeyHolder
    policy: RefreshPolicy

    def epoch(self) -> float:
        """One full-batch step: forward, release the aggregate loss, backward, update.

        Returns:
            The released mean squared error of the predictions *before* the update.
        """
        loss_fn = MSELoss()
        out = self.model(X)
        # The key holder refreshes it before the release: its flooding then hides a fresh noise only.
        total = squared_error(out, Y)
        loss = self.keyholder.release_aggregate(total, len(X), value_bound=self.policy.value_bound) / len(X)
        self.model.backward(loss_fn.grad(out, Y))
        self.opt.step()
        self.policy.new_step()
        return loss


def squared_error(out: EncTensor, y: np.ndarray) -> EncTensor:
    """The encrypted sum of squared errors of a one-output network: a ``(1, 1)`` tensor (nothing decrypted)."""
    if out.size != 1:
        raise ValueError(f"cannot sum squared errors: expected one output per row, got shape {out.shape}")
    diff = out - np.asarray(y, dtype=np.float64).reshape(out.shape)
    return (diff * diff).row_sum()


def prepare(scheme: he_core.Scheme, keyholder: KeyHolder, config: XorConfig = XorConfig(), *,
            model: Sequential | None = None, policy: RefreshPolicy | None = None) -> XorRun:
    """Build (or rebind) the model, its optimiser and refresh policy; arguments as :func:`train_xor`."""
    policy = policy if policy is not None else RefreshPolicy(keyholder, value_bound=config.value_bound)
    guarded = GuardedScheme(scheme, policy)
    model = _bind(model, guarded) if model is not None else build_xor(guarded, config)
    return XorRun(model, SGD(model.parameters(), config.lr), keyholder, policy)


def _bind(model: Sequential, scheme) -> Sequential:
    """Point every parameter of a model at ``scheme`` (the guarded view)."""
    for p in model.parameters():
        p.value = EncTensor(scheme, p.value.ct)
    return model
