"""XOR as a configuration of :func:`henn.fit`: 2 inputs, a hidden layer, 1 output, polynomial sigmoids.

The 2017 "encrypted deep learning" tutorial trained this network with the
degree-5 Taylor series of sigmoid at 0. That series is only accurate for
``|x| < 2`` and its ``x^5/480`` term (``x^7`` in the squared derivative path)
grows fast: pre-activations left the accurate range, the int64 fixed-point
values overflowed and training diverged. Here:

* the activation is the **least-squares cubic fit of sigmoid on [-4, 4]**
  (``0.5 + 0.2166 x - 0.00660 x^3``, max error 0.038 on the interval): degree 3
  costs two ciphertext products, and the powers are taken of ``x / 4`` so they
  stay near 1 even when a pre-activation reaches 7;
* weights start uniform on ``[-2, 2]`` (the cubic fit is nearly linear near 0, so
  a small init leaves the hidden units in the linear regime where XOR is not
  learnable; ``[-1, 1]`` fails on more seeds);
* full-batch SGD with learning rate 4 on the MSE (the gradient of an MSE through a
  sigmoid is small: ``|dL/dz| <= 0.11``), the same rate for both layers — the
  tutorial's inputs were effectively scaled so its first layer learned 1000x
  faster than intended.

With these choices a float64 simulation reaches 4/4 on 100 of seeds 0-99
within 300 epochs (median 39 epochs), with a monotonically decreasing loss and
every pre-activation below 7.5 and every weight below 7.1 in magnitude. On
``vhe`` (fixed point 2^-16) seeds 0-29 all reach 4/4 with a monotonically
decreasing loss, at about 5-7 ms per epoch on 2 cores. For comparison, the
tutorial's Taylor sigmoid with the same init and rate diverges on every seed
0-9 (pre-activations reach 1e195 in float64) and reaches 4/4 on 1 of 10 with
lr 1 and init [-1, 1].

One training step costs about 11 bits of ``vhe`` noise headroom and far more than
the 2 levels of the default CKKS set (one layer alone needs 4), so the trainer
refreshes ciphertexts through the key holder (:class:`henn.keyholder.KeyHolder`)
whenever their budget is too low for the next operation
(:mod:`henn.training.refresh`, inside :func:`henn.training.fit.fit`): about 2 refreshes per step on ``vhe``, 12-14 per
step on ``ckks`` (activations mid-forward included), none on ``plain``. The model
code is the same on every scheme. Without refreshes ``vhe`` stops with
``NoiseBudgetExhausted`` within a few steps and ``ckks`` with ``LevelExhaustedError``
in the first forward pass (never a wrong result).

With ``XorConfig(refresh="bootstrap")`` on a scheme that bootstraps (``ckks``), the
trainer refreshes nothing through the key holder: ciphertexts low on levels are
bootstrapped with public keys (:mod:`henn.training.bootstrap`), no loss is released
while training, and the key holder's only work is the release of the final
predictions (one masked refresh, then the flooded release: the noise record a
bootstrap leaves is too loose for a flood of useful width, docs/bootstrapping.md).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

import he_core
from he_core import OsRandom, Scheme

from .. import activations
from ..keyholder import KeyHolder, RefreshTerms
from ..layers import Linear
from ..losses import MSELoss
from ..module import Sequential
from ..training.bootstrap import BootstrapRefresh, bootstrap_keys, bootstrap_slots
from ..training.fit import REFRESH_KINDS, TrainingDiverged, fit, predict, release_outputs
from ..training.refresh import RefreshPolicy

#: The four XOR rows and their labels.
X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
Y = np.array([[0.0], [1.0], [1.0], [0.0]])

#: Levels the network's deepest operation chain needs between refreshes (a cubic activation: 3).
STEP_DEPTH = 4
#: Refreshes one epoch may ask for at most (the forward, backward and loss of a 2-4-1 network).
REFRESHES_PER_EPOCH = 48


@dataclasses.dataclass(frozen=True)
class XorConfig:
    """Hyper-parameters of the XOR model and its training (defaults explained in the module docstring)."""

    hidden: int = 4
    activation: str = "sigmoid_lsq"
    degree: int = 3
    interval: float = 4.0
    init_scale: float = 2.0
    lr: float = 4.0
    epochs: int = 300
    seed: int | None = None
    #: Weights and pre-activations stay below this (measured: 7.1 and 7.5): refreshes are masked for it.
    value_bound: float = 16.0
    #: ``"masked"`` (refreshes through the key holder) or ``"bootstrap"`` (none while training).
    refresh: str = "masked"

    def __post_init__(self) -> None:
        if self.hidden < 1:
            raise ValueError(f"cannot configure XOR: hidden must be >= 1, got {self.hidden}")
        if not self.init_scale > 0:
            raise ValueError(f"cannot configure XOR: init_scale must be positive, got {self.init_scale}")
        if not self.lr > 0:
            raise ValueError(f"cannot configure XOR: lr must be positive, got {self.lr}")
        if self.epochs < 0:
            raise ValueError(f"cannot configure XOR: epochs must be >= 0, got {self.epochs}")
        if self.refresh not in REFRESH_KINDS:
            raise ValueError(f"cannot configure XOR: refresh must be one of {REFRESH_KINDS}, got {self.refresh!r}")

    def make_activation(self) -> activations.PolyActivation:
        return activations.make(self.activation, self.degree, self.interval)


def build_xor(scheme: Scheme, config: XorConfig = XorConfig()) -> Sequential:
    """The XOR network with freshly initialised weights, encrypted under the scheme's public key.

    Args:
        scheme: scheme with public keys covering vector sizes 1 and ``config.hidden``.
        config: hyper-parameters. ``config.seed`` ``None`` (the default) draws the
            initial weights from the OS CSPRNG; an explicit seed makes them
            reproducible for experiments (and by anyone who knows it).

    Returns:
        ``Sequential(Linear(2, hidden), act, Linear(hidden, 1, encrypted input), act)``.
    """
    seed = config.seed if config.seed is not None else int.from_bytes(OsRandom().bytes(16), "little")
    rng = np.random.default_rng(seed)
    return Sequential(
        Linear.init(scheme, 2, config.hidden, rng=rng, init_scale=config.init_scale),
        config.make_activation(),
        Linear.init(scheme, config.hidden, 1, rng=rng, init_scale=config.init_scale, encrypted_input=True),
        config.make_activation(),
    )


def correct(pred: np.ndarray, y: np.ndarray = Y) -> int:
    """How many decrypted outputs lie on the right side of 0.5."""
    return int(np.sum((np.asarray(pred) > 0.5) == (np.asarray(y) > 0.5)))


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
        policy: the refresh policies' counters (:meth:`henn.training.refresh.RefreshPolicy.counters`),
            training's and the final evaluation's summed.
        train_refreshes: refresh rounds made while training (the final evaluation's excluded).
    """

    model: Sequential
    history: list[dict]
    seconds: float
    predictions: np.ndarray
    policy: dict
    train_refreshes: int = 0

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


def setup(scheme_name: str, hidden: int = 4, config: XorConfig | None = None, *, ring: int | None = None,
          **scheme_params) -> tuple[he_core.Scheme, KeyHolder]:
    """Create the scheme, generate keys for sizes ``(1, hidden)`` and hand the secret to a key holder.

    Without ``scheme_params`` a leveled scheme gets its cheapest set for the network's
    depth between refreshes (:meth:`he_core.Scheme.params_for_depth`); under
    ``config.refresh == "bootstrap"`` a set that bootstraps and leaves that depth
    (:meth:`he_core.Scheme.params_for_bootstrapping`; ``ring``: a smaller, insecure ring
    for trials), with bootstrapping's keys in the key set.

    Returns:
        ``(scheme, keyholder)``: the scheme has only the public keys installed.

    Raises:
        CapabilityError: bootstrapping asked of a scheme that cannot.
    """
    config = config or XorConfig(hidden=hidden)
    requirements = he_core.KeyRequirements(sizes=(1, hidden))
    if config.refresh == "bootstrap":
        slots = bootstrap_slots_for(config)
        params = he_core.scheme_class(scheme_name).params_for_bootstrapping(STEP_DEPTH, slots=slots, ring=ring)
        if params is None:
            raise he_core.CapabilityError(scheme_name, "bootstrapping", "train with refresh='masked'")
        scheme = he_core.get_scheme(scheme_name, params)
        secret = bootstrap_keys(scheme, requirements, slots).secret
    else:
        if scheme_params:
            scheme = he_core.get_scheme(scheme_name, **scheme_params)
        else:
            chosen = he_core.scheme_class(scheme_name).params_for_depth(STEP_DEPTH)
            scheme = he_core.get_scheme(scheme_name, chosen) if chosen is not None else he_core.get_scheme(scheme_name)
        secret, _public = scheme.keygen(requirements)
    entries = 1
    if scheme.supports(he_core.Capability.REFRESH):
        probe = scheme.encrypt(np.zeros((len(X), max(hidden, X.shape[1]))))
        entries = max(1, scheme.refresh_plan(probe).n_read)
    return scheme, KeyHolder(scheme, secret, terms=terms_for(config, entries))


def bootstrap_slots_for(config: XorConfig) -> int:
    """The slots every bootstrap of an XOR run packs: :func:`~henn.training.bootstrap.bootstrap_slots` of its model.

    The four rows at the widest layer's padded width, or the four parameters side by side
    (the larger: 32 for 4 hidden units). The shapes decide, so a model on the plaintext
    twin (public zero seed) stands in for the encrypted one.
    """
    plain = he_core.get_scheme("plain")
    plain.keygen(he_core.KeyRequirements(sizes=(1, config.hidden)))
    return bootstrap_slots(build_xor(plain, dataclasses.replace(config, seed=0)), len(X))


def evaluate(model: Sequential, keyholder: KeyHolder, value_bound: float = 16.0,
             policy: RefreshPolicy | None = None) -> tuple[np.ndarray, float, int]:
    """Forward the four rows; the key holder releases the predictions. Returns ``(predictions, loss, correct)``.

    The key holder re-encrypts the output before its flooded release
    (:func:`henn.training.fit.release_outputs`): the flooding then only has to hide a fresh
    encryption's noise, not the whole network's, and no refresh goes back to the trainer.
    ``policy`` refreshes the forward pass (default a new one, or one that bootstraps).
    """
    out = predict(model, X, keyholder=keyholder, value_bound=value_bound, policy=policy)
    pred = release_outputs(keyholder, out)
    return pred, MSELoss().value(pred, Y), correct(pred)


def train_xor(scheme: he_core.Scheme, keyholder: KeyHolder, config: XorConfig = XorConfig(), *,
              model: Sequential | None = None, on_epoch: Callable[[dict], None] | None = None) -> XorResult:
    """Train the XOR network for ``config.epochs`` full-batch epochs with :func:`henn.training.fit.fit`.

    Args:
        scheme: scheme with public keys for sizes ``(1, config.hidden)``.
        keyholder: the party holding the secret key (its ``min_aggregate`` is the four rows).
        config: hyper-parameters (learning rate, activation, ...).
        model: continue training this model instead of building a fresh one.
        on_epoch: called with each history record (progress bars).

    Returns:
        The trained model, its history and timing.
    """
    model = model if model is not None else build_xor(scheme, config)
    callbacks = [] if on_epoch is None else [lambda r: on_epoch({"epoch": r["epoch"], "loss": r["loss"]})]
    start, rounds = time.perf_counter(), keyholder.refresh_rounds
    history = fit(model, X, Y, keyholder=keyholder, lr=config.lr, epochs=config.epochs, batch_size=len(X),
                  loss=MSELoss(), shuffle=False, value_bound=config.value_bound, callbacks=callbacks,
                  refresh=config.refresh) if config.epochs else None
    rounds = keyholder.refresh_rounds - rounds
    # Under bootstrapping the forward pass bootstraps too: the only key-holder round is the release's.
    refresher = BootstrapRefresh(scheme, bootstrap_slots_for(config)) \
        if config.refresh == "bootstrap" else keyholder
    eval_policy = RefreshPolicy(refresher, value_bound=config.value_bound)
    pred, loss, right = evaluate(model, keyholder, config.value_bound, eval_policy)
    if config.refresh == "bootstrap" and float(np.max(np.abs(pred))) > config.value_bound:
        # Bootstrapping trusts the declared bound: a run past it is wrong without a sign the trainer sees.
        raise TrainingDiverged(f"cannot train XOR: an output reached {float(np.max(np.abs(pred))):.4g}, past the "
                               f"declared bound {config.value_bound} that bootstrapping relies on; lower lr")
    seconds = time.perf_counter() - start
    records = [{"epoch": r["epoch"], "loss": r["loss"]} for r in history.records] if history else []
    records.append({"epoch": config.epochs, "loss": loss, "correct": right})
    policy = eval_policy.counters()
    if isinstance(refresher, BootstrapRefresh):
        policy["bootstraps"] = refresher.bootstraps
    if history:  # the evaluation's counters on top of training's, and training's own (parameter bootstraps)
        policy = {**history.policy, **{k: v + history.policy.get(k, 0) for k, v in policy.items()}}
    return XorResult(model, records, seconds, pred, policy, rounds)
