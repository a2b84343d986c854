"""scikit-learn estimators whose weights are trained encrypted.

:class:`EncryptedMLPClassifier` and :class:`EncryptedLogisticRegression` follow the
scikit-learn contract (``fit``, ``predict``, ``predict_proba``, ``score``,
``get_params``/``set_params``, ``classes_`` of any label values), so they work in a
``Pipeline`` and in ``cross_val_score``. ``fit`` trains with every layer's weights
encrypted (:func:`henn.training.fit.fit`), refreshing through the key holder.

``predict(X, fhe=...)`` answers on the same fitted model three ways, as Concrete-ML's
estimators do:

* ``"disable"``: numpy with the weights the key holder decrypted for the owner
  (noise-flooded releases): the clear model;
* ``"simulate"``: the same computation on the ``plain`` twin, rounded at every
  operation to the precision the scheme's answers carry (its release grid, or its
  fixed-point unit), which bounds how far ``"execute"`` can land;
* ``"execute"``: the encrypted forward pass on the encrypted weights, the outputs
  refreshed and released by the key holder.

Without ``keyholder`` the keys live in the estimator's process (one party: the
:class:`~henn.training.fit.SinglePartyWarning` says so). Inputs are standardised
(mean 0, standard deviation ``1 / input_scale``) and clipped to ``±input_clip``
inside ``fit`` and ``predict``: encrypted arithmetic needs a stated bound on every
value, and refresh masks and parameter sets are sized from it.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

import he_core

from . import activations
from .circuit import Circuit
from .keyholder import RefreshTerms
from .layers import Linear
from .losses import MSELoss, PolyLogisticLoss, PolySoftmaxCrossEntropy, one_hot
from .module import Sequential
from .tensor import EncTensor
from .training.fit import fit as fit_model
from .training.fit import TrainingDiverged, in_process_keyholder, predict, release_outputs
from .training.bootstrap import BootstrapRefresh, bootstrap_slots
from .training.predict import DEFAULT_VALUE_BOUND

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
        Xs = self._inputs(X)
        n_out = self._outputs()
        targets = index[:, None].astype(np.float64) if n_out == 1 else one_hot(index, n_out)
        rng = np.random.default_rng(self.random_state) if self.random_state is not None else None
        shape = self._build(_twin()[0], self.n_features_in_, n_out, np.random.default_rng(0))  # depth and sizes
        booting = self.refresh == "bootstrap"
        if self.keyholder is None:
            terms = RefreshTerms(min_aggregate=min(500, X.shape[0]))
            scheme, keyholder = in_process_keyholder(self.scheme, shape, terms=terms, rng=self._key_rng(),
                                                     bootstrap_batch=self.batch_size if booting else None,
                                                     ring=self.insecure_ring)
        else:
            keyholder, scheme = self.keyholder, self.keyholder.scheme
        self.keyholder_ = keyholder
        self.model_ = self._build(scheme, self.n_features_in_, n_out, rng)
        self.history_ = fit_model(self.model_, Xs, targets, keyholder=keyholder, lr=self.lr, epochs=self.epochs,
                                  batch_size=self.batch_size, loss=self._loss(n_out), random_state=self.random_state,
                                  weight_decay=self.weight_decay, progress=self.progress, monitor=self.monitor,
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

    def _inputs(self, X: np.ndarray) -> np.ndarray:
        z = (np.asarray(X, dtype=np.float64) - self.mean_) / (self.scale_ * self.input_scale)
        return np.clip(z, -self.input_clip, self.input_clip)

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
        return Circuit(circuit.layers, self.mean_, self.scale_ * self.input_scale, self.input_clip)

    def _clear_weights(self) -> list[np.ndarray]:
        if self.weights_ is None:
            raise ValueError("cannot predict with fhe='disable' or 'simulate': the weights are under another "
                             "party's key (a key service); use fhe='execute'")
        return self.weights_

    def _numpy_forward(self, x: np.ndarray, weights: list[np.ndarray]) -> np.ndarray:
        it = iter(weights)
        for layer in self.model_.layers:
            if isinstance(layer, Linear):
                w, b = next(it), next(it)
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
                w, b = next(it), next(it)
                layers.append(Linear(EncTensor.encrypt(twin, w), EncTensor.encrypt(twin, b),
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


class EncryptedLogisticRegression(_EncryptedClassifier):
    """Logistic regression trained with encrypted weights.

    Two classes: one output through a polynomial sigmoid (:class:`~henn.losses.PolyLogisticLoss`);
    more: one output per class with the polynomial softmax cross-entropy. A cubic
    sigmoid turns back beyond its interval, so a logit that leaves it pulls the
    weights further out: the default weight decay keeps the logits inside.
    Arguments as :class:`EncryptedMLPClassifier` (no hidden layers; ``sigmoid_interval``
    is the half-width the sigmoid is fitted on).
    """

    def __init__(self, scheme: str = "ckks", *, epochs: int = 6, batch_size: int = 128, lr: float = 0.5,
                 weight_decay: float = 0.1, sigmoid_interval: float = 8.0, input_scale: float = 2.0,
                 input_clip: float = 2.0, random_state: int | None = None, keyholder: Any = None,
                 monitor: bool = True, progress: bool = False, checkpoint: str | None = None,
                 refresh: str = "masked", insecure_ring: int | None = None):
        self.refresh = refresh
        self.insecure_ring = insecure_ring
        self.checkpoint = checkpoint
        self.scheme = scheme
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.sigmoid_interval = sigmoid_interval
        self.input_scale = input_scale
        self.input_clip = input_clip
        self.random_state = random_state
        self.keyholder = keyholder
        self.monitor = monitor
        self.progress = progress

    def _outputs(self) -> int:
        return 1 if self.classes_.size == 2 else self.classes_.size

    def _sigmoid(self) -> activations.PolyActivation:
        return activations.sigmoid_lsq(3, self.sigmoid_interval)

    def _build(self, scheme: Any, n_in: int, n_out: int, rng: Any) -> Sequential:
        return Sequential(Linear.init(scheme, n_in, n_out, init_scale=0.0, rng=rng))

    def _loss(self, n_out: int) -> Any:
        return PolyLogisticLoss(self._sigmoid()) if n_out == 1 else PolySoftmaxCrossEntropy(n_out)

    def _probabilities(self, out: np.ndarray) -> np.ndarray:
        if out.shape[1] == 1:
            return self._sigmoid().value(out)
        return PolySoftmaxCrossEntropy(out.shape[1]).approx_softmax(out)

    def predict(self, X: Any, fhe: str = "disable") -> np.ndarray:
        out = self.decision_function(X, fhe)
        index = (out[:, 0] > 0.0).astype(int) if out.shape[1] == 1 else out.argmax(axis=1)
        return self.classes_[index]
