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
from .base import FHE_MODES, simulation_bits
from .logistic import EncryptedLogisticRegression, newton_whitening
from .mlp import EncryptedMLPClassifier

__all__ = ["EncryptedLogisticRegression", "EncryptedMLPClassifier", "FHE_MODES", "newton_whitening", "simulation_bits"]
