"""Trained models from elsewhere, as :class:`~henn.deploy.Circuit` s for encrypted inference.

* :func:`from_sklearn`: ``LogisticRegression`` (its decision function: one output for
  two classes, one per class otherwise) and ``MLPClassifier`` / ``MLPRegressor``;
* :func:`from_torch`: an ``nn.Sequential`` of ``Linear`` layers and activations
  (``torch`` is an optional dependency, imported only here);
* :func:`from_npz`: weights ``W0, b0, W1, b1, ...`` (``W`` as ``(in, out)``) and an
  ``activation`` entry.

Encrypted arithmetic evaluates polynomials only. A hidden activation that is not one
(ReLU, tanh, the logistic function) is refitted as a least-squares polynomial on the
range its pre-activations take on the data given (``X``), widened by a margin; the
output activation (softmax, logistic, identity) is dropped: it is monotone, so the
predicted class is the largest output either way. Each importer returns the circuit
and an :class:`ImportReport` with the accuracy before and after, so the change is
stated, not assumed.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import numpy as np
from numpy.polynomial import polynomial as P

from . import activations
from .circuit import Circuit, DeployError

#: Degree of refitted hidden activations (a cubic costs two levels after the scaling).
DEFAULT_DEGREE = 4
#: The fit covers the observed pre-activation range times this (inputs a little beyond the data).
RANGE_MARGIN = 1.25
#: Observed pre-activations used for a fit at most.
_FIT_SAMPLES = 20000

_REFERENCE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "logistic": activations.sigmoid,
    "sigmoid": activations.sigmoid,
    "identity": lambda x: x,
}


@dataclasses.dataclass
class ImportReport:
    """How the imported circuit compares with the original model on the data given.

    Attributes:
        original_accuracy, circuit_accuracy: on ``(X, y)`` when ``y`` was given, else ``None``.
        agreement: fraction of rows where both predict the same class (or, for a
            regressor, ``None``).
        activations: per hidden layer, the polynomial's interval and its max error there.
    """

    original_accuracy: float | None
    circuit_accuracy: float | None
    agreement: float | None
    activations: list[dict]


def fit_activation(name: str, observed: np.ndarray, degree: int = DEFAULT_DEGREE) -> activations.PolyActivation:
    """A polynomial of the named activation, least squares over the observed pre-activations.

    Weighting the fit by where the data lie (plus a uniform grid over the whole
    observed range with a tenth of the weight, so the polynomial stays tame at the
    extremes) makes it accurate where predictions are decided; its ``max_error`` is
    still stated over the whole interval.

    Raises:
        DeployError: an activation without a reference here.
    """
    if name not in _REFERENCE:
        raise DeployError(f"cannot import: activation {name!r} is not one of {sorted(_REFERENCE)}")
    if name == "identity":
        return activations.PolyActivation("identity", (0.0, 1.0), 1.0, _REFERENCE[name])
    z = np.asarray(observed, dtype=np.float64).ravel()
    if z.size > _FIT_SAMPLES:
        z = np.random.default_rng(0).choice(z, _FIT_SAMPLES, replace=False)  # a subsample, not key material
    half = max(float(np.abs(z).max()), 1e-3) * RANGE_MARGIN
    grid = np.linspace(-half, half, 1001)
    points = np.concatenate([z, grid])
    weights = np.concatenate([np.ones(z.size), np.full(grid.size, 0.1 * z.size / grid.size)])
    coeffs = P.polyfit(points, _REFERENCE[name](points), degree, w=np.sqrt(weights))
    return activations.PolyActivation(f"{name}_fit{degree}", coeffs, half, _REFERENCE[name])


def _build(weights: list[tuple[np.ndarray, np.ndarray]], hidden: str, X: np.ndarray, degree: int
           ) -> tuple[Circuit, list[dict]]:
    layers: list[tuple] = []
    info = []
    h = np.asarray(X, dtype=np.float64)
    for i, (w, b) in enumerate(weights):
        w, b = np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64).reshape(-1)
        layers.append(("linear", w, b))
        z = h @ w + b
        if i < len(weights) - 1:
            act = fit_activation(hidden, z, degree)
            layers.append(("poly", act))
            info.append({"layer": i, "activation": hidden, "interval": act.interval, "max_error": act.max_error})
            h = act.value(z)
    return Circuit(layers), info


def _report(circuit: Circuit, original: Callable[[np.ndarray], np.ndarray], X: np.ndarray, y: Any,
            info: list[dict], classes: np.ndarray | None) -> ImportReport:
    if classes is None:
        return ImportReport(None, None, None, info)
    out = circuit.evaluate(X)
    ours = classes[(out[:, 0] > 0).astype(int)] if out.shape[1] == 1 else classes[out.argmax(1)]
    theirs = original(X)
    acc = (lambda p: None if y is None else float((p == np.asarray(y)).mean()))
    return ImportReport(acc(theirs), acc(ours), float((ours == theirs).mean()), info)


def from_sklearn(model: Any, X: Any, y: Any = None, *, degree: int = DEFAULT_DEGREE) -> tuple[Circuit, ImportReport]:
    """A fitted ``LogisticRegression``, ``MLPClassifier`` or ``MLPRegressor`` as a circuit.

    Args:
        model: the fitted estimator.
        X: rows whose range the hidden activations are refitted on (the training data).
        y: labels, to report accuracies.
        degree: degree of refitted hidden activations.

    Raises:
        DeployError: an unsupported estimator or activation.
    """
    X = np.asarray(X, dtype=np.float64)
    kind = type(model).__name__
    if kind == "LogisticRegression":
        circuit, info = _build([(model.coef_.T, model.intercept_)], "identity", X, degree)
        # two classes: one output, positive for classes_[1] (the sign of the decision function)
        return circuit, _report(circuit, model.predict, X, y, info, model.classes_)
    if kind in ("MLPClassifier", "MLPRegressor"):
        weights = list(zip(model.coefs_, model.intercepts_))
        circuit, info = _build(weights, model.activation, X, degree)
        if kind == "MLPRegressor":
            return circuit, _report(circuit, model.predict, X, y, info, None)
        classes = model.classes_
        return circuit, _report(circuit, model.predict, X, y, info, classes)
    raise DeployError(f"cannot import a {kind}: LogisticRegression, MLPClassifier and MLPRegressor are supported")


def from_torch(module: Any, X: Any, y: Any = None, *, classes: Any = None,
               degree: int = DEFAULT_DEGREE) -> tuple[Circuit, ImportReport]:
    """An ``nn.Sequential`` of ``nn.Linear`` and activations (ReLU, Tanh, Sigmoid; a trailing one dropped).

    Raises:
        DeployError: another kind of layer, or mixed hidden activations.
        ImportError: torch is not installed.
    """
    import torch  # optional dependency

    names = {"ReLU": "relu", "Tanh": "tanh", "Sigmoid": "logistic", "Identity": "identity"}
    weights, hidden = [], set()
    for layer in module:
        kind = type(layer).__name__
        if kind == "Linear":
            weights.append((layer.weight.detach().double().numpy().T, layer.bias.detach().double().numpy()))
        elif kind in names:
            hidden.add((len(weights), names[kind]))
        elif kind not in ("Softmax", "LogSoftmax"):
            raise DeployError(f"cannot import a torch {kind}: only Linear and ReLU/Tanh/Sigmoid/Softmax layers")
    inner = {name for pos, name in hidden if pos < len(weights)}
    if len(inner) > 1:
        raise DeployError(f"cannot import: one hidden activation kind per network, got {sorted(inner)}")
    X = np.asarray(X, dtype=np.float64)
    circuit, info = _build(weights, inner.pop() if inner else "identity", X, degree)

    def original(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = module(torch.as_tensor(x, dtype=torch.float64 if weights[0][0].dtype == np.float64
                                         else torch.float32).to(next(module.parameters()).dtype)).numpy()
        labels = np.asarray(classes) if classes is not None else np.arange(out.shape[1])
        return labels[out.argmax(1)] if out.shape[1] > 1 else labels[(out[:, 0] > 0).astype(int)]

    labels = None if classes is None and y is None else (np.asarray(classes) if classes is not None
                                                         else np.arange(max(circuit.n_outputs, 2)))
    return circuit, _report(circuit, original, X, y, info, labels)


def from_npz(path: str | Path, X: Any = None, *, degree: int = DEFAULT_DEGREE) -> Circuit:
    """Weights ``W0, b0, W1, ...`` (``(in, out)``) and ``activation`` (a name; refitted on ``X`` when not polynomial).

    Raises:
        DeployError: missing or inconsistent arrays, or a non-polynomial activation without ``X``.
    """
    with np.load(path, allow_pickle=False) as data:
        weights, i = [], 0
        while f"W{i}" in data.files:
            if f"b{i}" not in data.files:
                raise DeployError(f"cannot import {path}: W{i} without b{i}")
            weights.append((data[f"W{i}"], data[f"b{i}"]))
            i += 1
        name = str(data["activation"]) if "activation" in data.files else "identity"
    if not weights:
        raise DeployError(f"cannot import {path}: no W0/b0 arrays")
    if len(weights) > 1 and name not in ("identity",) and X is None:
        raise DeployError(f"cannot import {path}: refitting {name!r} needs data X for its range")
    rows = X if X is not None else np.zeros((1, np.asarray(weights[0][0]).shape[0]))
    return _build(weights, name, rows, degree)[0]
