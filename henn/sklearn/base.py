"""The shared fit/predict of henn's scikit-learn estimators (see :mod:`henn.sklearn`)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

import he_core

from ..circuit import Circuit
from ..keyholder import RefreshTerms
from ..layers import Linear
from ..losses import one_hot
from ..module import Sequential
from ..tensor import EncTensor
from ..training.fit import fit as fit_model
from ..training.fit import TrainingDiverged, in_process_keyholder, predict, release_outputs
from ..training.bootstrap import BootstrapRefresh, bootstrap_slots
from ..training.predict import DEFAULT_VALUE_BOUND

FHE_MODES = ("disable", "simulate", "execute")
#: Bits kept by "simulate" on a scheme whose answers are exact reals (the plain twin).
EXACT_BITS = 52


class _EncryptedClassifier(ClassifierMixin, BaseEstimator):
    """Shared fit/predict of the encrypted estimators; subclasses build the network and its loss."""

    def _build(self, scheme: Any, n_in: int, n_out: int, rng: Any) -> Sequential:  # pragma: no cover
        raise NotImplementedError

    def _loss(self, n_out: int) -> Any:  # pragma: no cover
        raise NotImplementedError

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any) -> "_EncryptedClassifier":
        """Train with encrypted weights on ``(X, y)``; returns ``self``.

        Raises:
            ValueError: fewer than two classes, or bad input (from scikit-learn's checks).
        """
        X, y = check_X_y(X, y, dtype=np.float64)
        if self.checkpoint is not None and self.keyholder is None:
            raise ValueError("cannot fit with a checkpoint: it is under the key holder's key, so pass keyholder= "
                             "(keys made in this process are new at every fit)")
        self.classes_ = unique_labels(y)
        if self.classes_.size < 2:
            raise ValueError(f"cannot fit: need at least two classes, got {self.classes_.size}")
        self.n_features_in_ = X.shape[1]
        index = np.searchsorted(self.classes_, y)
        self.mean_, self.scale_ = X.mean(axis=0), X.std(axis=0)
        self.scale_[self.scale_ == 0] = 1.0
        self._fit_inputs(self._standardised(X))
        Xs = self._inputs(X)
        n_out = self._outputs()
        targets = index[:, None].astype(np.float64) if n_out == 1 else one_hot(index, n_out)
        rng = np.random.default_rng(self.random_state) if self.random_state is not None else None
        shape = self._build(_twin()[0], Xs.shape[1], n_out, np.random.default_rng(0))  # depth and sizes
        booting = self.refresh == "bootstrap"
        if self.keyholder is None:
            terms = RefreshTerms(min_aggregate=min(500, X.shape[0]))
            scheme, keyholder = in_process_keyholder(self.scheme, shape, terms=terms, rng=self._key_rng(),
                                                     bootstrap_batch=self.batch_size if booting else None,
                                                     ring=self.insecure_ring)
        else:
            keyholder, scheme = self.keyholder, self.keyholder.scheme
        self.keyholder_ = keyholder
        self.model_ = self._build(scheme, Xs.shape[1], n_out, rng)
        step = self._step_scale()
        self.history_ = fit_model(self.model_, Xs, targets, keyholder=keyholder, lr=self.lr * step, epochs=self.epochs,
                                  batch_size=self.batch_size, loss=self._loss(n_out), random_state=self.random_state,
                                  weight_decay=self.weight_decay / step, progress=self.progress, monitor=self.monitor,
                                  checkpoint=self.checkpoint, resume=self.checkpoint is not None,
                                  refresh=self.refresh)
        self.weights_ = self._release_weights() if self.keyholder is None else None
        return self

    def _release_weights(self) -> list[np.ndarray]:
        """The trained weights, decrypted for the owner (flooded releases): what ``fhe="disable"`` runs."""
        try:  # refreshed first: the flooding then hides a fresh encryption's noise, not the training's
            if self.refresh == "bootstrap":
                # The trained weights' tracked noise restarts (so a refresh's mask, here or in a later
                # fhe="execute" pass, can cover it): the model keeps the bootstrapped copies.
                booting = BootstrapRefresh(self.keyholder_.scheme, bootstrap_slots(self.model_, self.batch_size))
                for p in self.model_.parameters():
                    p.value = booting.refresh(p.value, value_bound=DEFAULT_VALUE_BOUND)
            weights = [release_outputs(self.keyholder_, p.value) for p in self.model_.parameters()]
        except he_core.HEOverflowError as exc:
            raise TrainingDiverged(f"cannot fit: the trained weights overflowed ({exc}); lower lr (now {self.lr})") \
                from exc
        top = max(float(np.max(np.abs(w))) for w in weights)
        if self.refresh == "bootstrap" and top > DEFAULT_VALUE_BOUND:
            # Bootstrapping sets its scale from the declared bound: far past it the sine wraps without a
            # sign the trainer could see; the owner sees it here, in the clear.
            raise TrainingDiverged(f"cannot fit: a trained weight reached {top:.4g}, past the declared bound "
                                   f"{DEFAULT_VALUE_BOUND} that bootstrapping relies on; lower lr (now {self.lr})")
        return weights

    def _key_rng(self) -> Any:
        # Keys always come from the OS CSPRNG: a seeded estimator reproduces its weights, not its keys.
        return None

    def _outputs(self) -> int:
        return self.classes_.size

    def _step_scale(self) -> float:
        """The factor between ``lr`` and the optimiser's learning rate (see the Newton solver)."""
        return 1.0

    def _standardised(self, X: np.ndarray) -> np.ndarray:
        z = (np.asarray(X, dtype=np.float64) - self.mean_) / (self.scale_ * self.input_scale)
        return np.clip(z, -self.input_clip, self.input_clip)

    def _fit_inputs(self, Xs: np.ndarray) -> None:
        """Learn any further input transform from the standardised training rows (none here)."""

    def _inputs(self, X: np.ndarray) -> np.ndarray:
        """The network's inputs for raw rows ``X``: standardised and clipped."""
        return self._standardised(X)

    # ------------------------------------------------------------------ predict
    def decision_function(self, X: Any, fhe: str = "disable") -> np.ndarray:
        """The network's outputs (``(n, outputs)``) on ``X``, computed as ``fhe`` says."""
        check_is_fitted(self, "model_")
        if fhe not in FHE_MODES:
            raise ValueError(f"cannot predict: fhe must be one of {FHE_MODES}, got {fhe!r}")
        X = check_array(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"cannot predict: expected {self.n_features_in_} features, got shape {X.shape}")
        Xs = self._inputs(X)
        if fhe == "execute":
            out = predict(self.model_, Xs, keyholder=self.keyholder_)
            return release_outputs(self.keyholder_, out)
        weights = self._clear_weights()
        if fhe == "disable":
            return self._numpy_forward(Xs, weights)
        return self._simulate(Xs, weights)

    def predict(self, X: Any, fhe: str = "disable") -> np.ndarray:
        """Class labels for ``X`` (see the module docstring for ``fhe``)."""
        out = self.decision_function(X, fhe)
        index = (out[:, 0] > 0.5).astype(int) if out.shape[1] == 1 else out.argmax(axis=1)
        return self.classes_[index]

    def predict_proba(self, X: Any, fhe: str = "disable") -> np.ndarray:
        """Class probabilities: the outputs read by the loss, clipped to [0, 1] and normalised per row."""
        out = self._probabilities(self.decision_function(X, fhe))
        p = np.clip(out, 0.0, 1.0)
        if p.shape[1] == 1:
            p = np.hstack([1.0 - p, p])
        total = p.sum(axis=1, keepdims=True)
        return np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / p.shape[1])

    def _probabilities(self, out: np.ndarray) -> np.ndarray:
        return out

    def export_circuit(self) -> Circuit:
        """The trained network in the clear for a :class:`~henn.deploy.ServerBundle`, with its standardisation."""
        circuit = Circuit.from_model(self.model_, self._clear_weights())
        return Circuit(self._exported_layers(circuit.layers), self.mean_, self.scale_ * self.input_scale,
                       self.input_clip)

    def _exported_layers(self, layers: list[tuple]) -> list[tuple]:
        """The circuit's layers on standardised inputs (a subclass folds its further input transform in)."""
        return layers

    def _clear_weights(self) -> list[np.ndarray]:
        if self.weights_ is None:
            raise ValueError("cannot predict with fhe='disable' or 'simulate': the weights are under another "
                             "party's key (a key service); use fhe='execute'")
        return self.weights_

    def _numpy_forward(self, x: np.ndarray, weights: list[np.ndarray]) -> np.ndarray:
        it = iter(weights)
        for layer in self.model_.layers:
            if isinstance(layer, Linear):
                w, b = next(it), (next(it) if layer.bias is not None else 0.0)
                x = x @ (w if not layer.encrypted_input else w.T) + b
            else:
                x = layer.value(x)
        return x

    def _simulate(self, x: np.ndarray, weights: list[np.ndarray]) -> np.ndarray:
        twin, secret = _twin(simulation_bits(self.keyholder_.scheme))
        it = iter(weights)
        layers = []
        for layer in self.model_.layers:
            if isinstance(layer, Linear):
                w, b = next(it), (next(it) if layer.bias is not None else None)
                layers.append(Linear(EncTensor.encrypt(twin, w), None if b is None else EncTensor.encrypt(twin, b),
                                     encrypted_input=layer.encrypted_input))
            else:
                layers.append(layer)
        return twin.decrypt_exact_local(Sequential(*layers).forward(x).ct, secret)


def _twin(precision_bits: int | None = None) -> tuple[he_core.Scheme, he_core.SecretKey]:
    """The plain twin and its secret (rounding to ``precision_bits`` fractional bits when given)."""
    twin = he_core.get_scheme("plain", **({} if precision_bits is None else {"precision_bits": precision_bits}))
    secret, _ = twin.keygen(he_core.KeyRequirements(sizes=(1,)))
    return twin, secret


def simulation_bits(scheme: he_core.Scheme) -> int:
    """Fractional bits the scheme's answers carry: its release grid, or its fixed-point unit."""
    probe = scheme.encrypt(np.zeros((1, 1)))
    report = scheme.release_report(probe)
    if report.get("flooded"):
        return max(1, int(-math.floor(math.log2(report["grid"]))))
    return int(round(math.log2(probe.scale))) if probe.scale > 1 else EXACT_BITS

