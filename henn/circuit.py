"""A trained network in the clear, as encrypted inference evaluates it.

A :class:`Circuit` is what the owner hands a server: linear layers (weights in the
clear) and polynomial activations, with the inputs' standardisation that the client
applies before encrypting. Two encrypted layouts: :meth:`Circuit.run` takes a batch laid
out as ``X^T`` (one row per feature, one slot per query: plaintext linear combinations
of whole rows, no rotation, as cheap for thousands of queries as for one);
:meth:`Circuit.run_rows` takes one row per query, its features in slots (one
``matvec`` per layer: rotations, but a single query costs one small ciphertext).
:meth:`Circuit.evaluate` is the clear reference.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Iterator

import numpy as np

import he_core

from . import activations
from .layers import Linear
from .module import Sequential
from .tensor import EncTensor


class DeployError(he_core.HEError, ValueError):
    """A bundle, key or query that does not fit the circuit (named in the message)."""


@dataclasses.dataclass
class Circuit:
    """A trained network in the clear: linear layers and polynomial activations.

    Attributes:
        layers: ``("linear", W (in, out), b (out,))`` or ``("poly", PolyActivation)``.
        shift, scale, clip: the inputs' standardisation, ``clip((x - shift) / scale, ±clip)``,
            applied by the client before encrypting (``None``: raw features).
    """

    layers: list[tuple]
    shift: np.ndarray | None = None
    scale: np.ndarray | None = None
    clip: float | None = None

    def __post_init__(self) -> None:
        width = None
        for i, layer in enumerate(self.layers):
            if layer[0] == "linear":
                w, b = layer[1], layer[2]
                if w.ndim != 2 or b.shape != (w.shape[1],) or not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                    raise DeployError(f"cannot build the circuit: layer {i} needs a finite (in, out) weight and an "
                                      f"(out,) bias, got {w.shape} and {b.shape}")
                if width is not None and w.shape[0] != width:
                    raise DeployError(f"cannot build the circuit: layer {i} takes {w.shape[0]} inputs, the previous "
                                      f"layer gives {width}")
                width = w.shape[1]
            elif layer[0] != "poly" or not isinstance(layer[1], activations.PolyActivation):
                raise DeployError(f"cannot build the circuit: layer {i} is neither linear nor a polynomial")
        if width is None:
            raise DeployError("cannot build the circuit: it has no linear layer")
        n = self.n_features
        for name in ("shift", "scale"):
            value = getattr(self, name)
            if value is not None and (np.shape(value) != (n,) or not np.all(np.isfinite(value))):
                raise DeployError(f"cannot build the circuit: {name} must be {n} finite numbers")
        if self.scale is not None and np.any(np.asarray(self.scale) <= 0):
            raise DeployError("cannot build the circuit: scale must be positive")
        if self.clip is not None and not (self.clip > 0 and np.isfinite(self.clip)):
            raise DeployError("cannot build the circuit: clip must be positive and finite")

    def prepare(self, X: Any) -> np.ndarray:
        """The inputs as the first layer takes them (standardised and clipped, as the owner trained)."""
        x = np.asarray(X, dtype=np.float64)
        if self.shift is not None:
            x = x - self.shift
        if self.scale is not None:
            x = x / self.scale
        return x if self.clip is None else np.clip(x, -self.clip, self.clip)

    @classmethod
    def from_model(cls, model: Sequential, weights: list[np.ndarray]) -> "Circuit":
        """The circuit of a henn model, given its weights in the clear (``model.parameters()`` order)."""
        it = iter(weights)
        layers: list[tuple] = []
        for layer in model.layers:
            if isinstance(layer, Linear):
                w = np.asarray(next(it), dtype=np.float64)
                width = w.shape[0] if layer.encrypted_input else w.shape[1]
                b = np.asarray(next(it), dtype=np.float64) if layer.bias is not None else np.zeros(width)
                layers.append(("linear", w.T if layer.encrypted_input else w, b.reshape(-1)))
            elif isinstance(layer, activations.PolyActivation):
                layers.append(("poly", layer))
            else:
                raise DeployError(f"cannot export {type(layer).__name__}: only Linear and PolyActivation layers")
        return cls(layers)

    @property
    def n_features(self) -> int:
        return next(layer[1].shape[0] for layer in self.layers if layer[0] == "linear")

    @property
    def n_outputs(self) -> int:
        return [layer[1].shape[1] for layer in self.layers if layer[0] == "linear"][-1]

    @property
    def width(self) -> int:
        """The widest vector the circuit holds (inputs, hidden layers, outputs): a row's size in ``run_rows``."""
        return max(max(layer[1].shape) for layer in self.layers if layer[0] == "linear")

    @property
    def sizes(self) -> tuple[int, ...]:
        """Every vector size the circuit holds (a scheme that keys per size needs them all)."""
        return tuple(sorted({n for layer in self.layers if layer[0] == "linear" for n in layer[1].shape}))

    @property
    def depth(self) -> int:
        """A bound on the levels of one evaluation: a level per linear layer, each activation's, the answer's mask.

        A scheme may spend fewer (CKKS absorbs small constant factors into the scale):
        :meth:`ServerBundle.create` measures on a trial run.
        """
        return sum(1 if layer[0] == "linear" else layer[1].forward_depth for layer in self.layers) + 1

    def output_bound(self, bound: float) -> float:
        """A bound on ``|outputs|`` for any inputs in ``±bound`` (interval arithmetic in the clear).

        Row sums of ``|W|`` and the activations' ``sum |c_i| B^i`` hold however far an input
        lies outside an activation's fitted interval, where a scheme's own value tracking
        (which takes the interval's word) does not.
        """
        b = np.full(self.n_features, float(bound))
        for layer in self.layers:
            if layer[0] == "linear":
                b = np.abs(layer[1]).T @ b + np.abs(layer[2])
            else:
                b = sum(abs(c) * b**i for i, c in enumerate(layer[1].coeffs))
        return float(np.max(b))

    def run(self, x: EncTensor, count: int) -> EncTensor:
        """The encrypted evaluation on ``X^T`` rows (features x batch); slots past ``count`` are zeroed.

        Raises:
            DeployError: a layer's weights the scheme's parameters cannot encode (named).
        """
        for i, layer in enumerate(self.layers):
            with _encodable(i, layer, x.scheme):
                x = layer[1].T @ x + layer[2][:, None] if layer[0] == "linear" else layer[1].forward(x)
        if count >= x.size:
            return x  # every slot was asked for (each row is whole: no slot outside the batch)
        mask = np.zeros((1, x.size))
        mask[0, :count] = 1.0
        return x * mask  # the slots nobody asked about would answer a zero query

    def run_rows(self, x: EncTensor) -> EncTensor:
        """The encrypted evaluation on ``(queries, width)`` rows: features first, zeros after them.

        Each linear layer is one ``matvec`` (``x @ W``); the first layer's weight is
        padded to the row's width. On a packing scheme the product only has blocks for
        the batch's rows, so nothing the query holds outside them reaches the answer
        and no mask level is spent.

        Raises:
            DeployError: a layer's weights the scheme's parameters cannot encode (named).
        """
        first = True
        for i, layer in enumerate(self.layers):
            with _encodable(i, layer, x.scheme):
                if layer[0] == "linear":
                    w = layer[1]
                    if first and w.shape[0] != x.size:
                        w = np.vstack([w, np.zeros((x.size - w.shape[0], w.shape[1]))])
                    first = False
                    x = x @ w + layer[2]
                else:
                    x = layer[1].forward(x)
        return x

    def evaluate(self, X: np.ndarray) -> np.ndarray:
        """The clear model on ``(n, features)`` raw rows: ``(n, outputs)``."""
        return self.evaluate_prepared(self.prepare(X))

    def evaluate_prepared(self, x: np.ndarray) -> np.ndarray:
        """The clear model on rows already standardised and clipped (what the client encrypts)."""
        for layer in self.layers:
            x = x @ layer[1] + layer[2] if layer[0] == "linear" else layer[1].value(x)
        return x


@contextlib.contextmanager
def _encodable(index: int, layer: tuple, scheme: he_core.Scheme) -> Iterator[None]:
    """Name the layer whose constants the scheme cannot encode (its EncodingError names only the value).

    Raises:
        DeployError: in place of the scheme's EncodingError, naming the layer and what to do.
    """
    try:
        yield
    except he_core.EncodingError as exc:
        if layer[0] == "linear":
            w, b = layer[1], layer[2]
            what = (f"weights and bias (linear {w.shape[0]} -> {w.shape[1]}; largest |w| {np.max(np.abs(w)):.3g}, "
                    f"|b| {np.max(np.abs(b)):.3g})")
            fix = "refit the model with smaller weights (standardise the inputs with the circuit's shift and scale, " \
                  "add weight decay)"
        else:
            what = f"activation coefficients ({layer[1].name}; largest {max(map(abs, layer[1].coeffs)):.3g})"
            fix = "fit the activation's polynomial on a narrower interval"
        raise DeployError(f"cannot run the circuit on {scheme.name}: layer {index}'s {what} are too large for its "
                          f"parameters ({exc}); {fix}") from None
