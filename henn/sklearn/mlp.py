"""The multi-layer perceptron classifier trained with encrypted weights."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import activations
from ..layers import Linear
from ..losses import MSELoss, PolySoftmaxCrossEntropy
from ..module import Sequential
from ..training.predict import DEFAULT_VALUE_BOUND
from .base import _EncryptedClassifier

class EncryptedMLPClassifier(_EncryptedClassifier):
    """A multi-layer perceptron classifier trained with encrypted weights.

    Args:
        hidden_layer_sizes: widths of the hidden layers.
        scheme: ``"ckks"`` (128-bit), ``"vhe"`` (exact, insecure: teaching), ``"plain"``
            (the twin), or a plug-in's name.
        activation: a kind of :func:`henn.activations.make` (``"square"`` is exact).
        loss: ``"mse"`` on one-hot targets (summed over outputs, averaged over rows),
            or ``"softmax"`` (the polynomial softmax
            cross-entropy of :class:`~henn.losses.PolySoftmaxCrossEntropy`).
        epochs, batch_size, lr, weight_decay: SGD settings (see :class:`~henn.optim.SGD`).
        init_scale: weights start uniform on ``±init_scale * sqrt(3 / fan_in)``.
        input_scale, input_clip: the inputs' standardisation (see the module docstring).
        random_state: seed of the initial weights and the visiting order (``None``:
            the OS CSPRNG, so nobody can replay the initial model).
        keyholder: the key holder (an in-process :class:`~henn.keyholder.KeyHolder`
            or the owner's key service client); ``None`` makes keys in this process.
        monitor: release a flooded aggregate loss every ``min_aggregate`` samples.
        progress: show a progress bar.
        checkpoint: a file the training run rewrites after every epoch and resumes
            from when it exists (:func:`henn.training.fit.fit`); it is under the key
            holder's key, so it needs ``keyholder`` (keys made in this process are new
            at every ``fit``).
        refresh: ``"masked"`` (through the key holder) or ``"bootstrap"`` (no key holder
            while training: ``ckks`` bootstraps with public keys; no loss is monitored; the
            key holder only releases the trained weights at the end).
        insecure_ring: with ``refresh="bootstrap"``, a smaller ring degree for trials
            (NOT secure); default the 128-bit N = 2^16 set.
    """

    def __init__(self, hidden_layer_sizes: tuple[int, ...] = (32,), scheme: str = "ckks", *,
                 activation: str = "square", loss: str = "mse", epochs: int = 6, batch_size: int = 128,
                 lr: float = 0.3, weight_decay: float = 0.0, init_scale: float = 1.0, input_scale: float = 3.0,
                 input_clip: float = 2.0, random_state: int | None = None, keyholder: Any = None,
                 monitor: bool = True, progress: bool = False, checkpoint: str | None = None,
                 refresh: str = "masked", insecure_ring: int | None = None):
        self.refresh = refresh
        self.insecure_ring = insecure_ring
        self.checkpoint = checkpoint
        self.hidden_layer_sizes = hidden_layer_sizes
        self.weight_decay = weight_decay
        self.scheme = scheme
        self.activation = activation
        self.loss = loss
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.init_scale = init_scale
        self.input_scale = input_scale
        self.input_clip = input_clip
        self.random_state = random_state
        self.keyholder = keyholder
        self.monitor = monitor
        self.progress = progress

    def _build(self, scheme: Any, n_in: int, n_out: int, rng: Any) -> Sequential:
        sizes = [n_in, *[int(h) for h in self.hidden_layer_sizes], n_out]
        if any(s < 1 for s in sizes):
            raise ValueError(f"cannot build the network: layer sizes must be positive, got {sizes}")
        act = activations.make(self.activation)
        layers: list = []
        last = len(sizes) - 2
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            # The scores are vouched to stay within the trainer's value bound (hidden layers'
            # outputs are, by the activation that reads them): a tracked worst case of
            # sum |h| |w| would otherwise swamp the noise estimate the monitor's mask reads.
            layers.append(Linear.init(scheme, a, b, init_scale=self.init_scale * math.sqrt(3.0 / a), rng=rng,
                                      encrypted_input=i > 0, output_bound=DEFAULT_VALUE_BOUND if i == last else None))
            if i < len(sizes) - 2:
                layers.append(act)
        return Sequential(*layers)

    def _loss(self, n_out: int) -> Any:
        if self.loss == "mse":
            return MSELoss(reduction="row")
        if self.loss == "softmax":
            return PolySoftmaxCrossEntropy(n_out)
        raise ValueError(f"cannot fit: loss must be 'mse' or 'softmax', got {self.loss!r}")

    def _probabilities(self, out: np.ndarray) -> np.ndarray:
        return PolySoftmaxCrossEntropy(out.shape[1]).approx_softmax(out) if self.loss == "softmax" else out


