"""henn: neural networks with homomorphically encrypted weights.

Scheme-agnostic: every model runs on any :mod:`he_core` scheme (``plain`` for a fast
plaintext twin, ``vhe``, ``ckks``), found through :func:`he_core.get_scheme`.

Main pieces: :class:`EncTensor` (a ciphertext with numpy-like operators),
:class:`KeyHolder` (the secret-key party), layers (:class:`Linear`,
:class:`EmbeddingBag` over sparse :class:`Bags`) and polynomial activations, losses,
:class:`SGD`, and the one trainer :func:`fit` (:mod:`henn.training.fit`). The
tutorial's XOR and IMDB networks are configurations of it (:mod:`henn.tasks`).
"""
from .embedding import Bags, EmbeddingBag
from .keyholder import KeyHolder
from .layers import Linear
from .losses import MSELoss, PolyLogisticLoss
from .module import Module, Parameter, Sequential
from .optim import SGD
from .tensor import EncTensor
from .training.fit import fit, predict

__version__ = "0.1.0"

__all__ = ["Bags", "EmbeddingBag", "EncTensor", "KeyHolder", "Linear", "MSELoss", "Module", "Parameter",
           "PolyLogisticLoss", "SGD", "Sequential", "fit", "predict"]
