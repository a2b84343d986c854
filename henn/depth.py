"""A model's multiplicative depth, its key sizes, and the parameters chosen from them.

Depth is read from the layers (:attr:`henn.module.Module.forward_depth` and
``op_depth``), never counted by hand:

* **inference** evaluates the whole forward pass without help: the parameter set
  needs ``forward_depth`` levels;
* **training** refreshes ciphertexts through the key holder whenever their budget
  runs low (:class:`henn.training.refresh.RefreshPolicy`): the set needs the deepest
  single operation (``op_depth``, at least the update ``W - lr * dW`` after a
  gradient product) between refreshes; more levels mean fewer refreshes.

A scheme without levels (``plain``, ``vhe``) returns ``None`` from
``params_for_depth`` and keeps its defaults.
"""
from __future__ import annotations

from typing import Literal

import he_core

from .module import Module

#: Levels a training step needs at least between refreshes: a gradient product, then the update.
MIN_TRAIN_DEPTH = 2


def inference_depth(model: Module) -> int:
    """Levels the encrypted forward pass consumes."""
    return int(model.forward_depth)


def training_depth(model: Module) -> int:
    """Levels the deepest operation of a training step consumes (what must fit between refreshes)."""
    return max(int(model.op_depth), MIN_TRAIN_DEPTH)


def key_requirements(model: Module, *, extra_sizes: tuple[int, ...] = ()) -> he_core.KeyRequirements:
    """The vector sizes the model's ciphertexts take, as key requirements."""
    return he_core.KeyRequirements(sizes=tuple(sorted(model.key_sizes() | {1, *extra_sizes})))


def choose_parameters(scheme: str, model: Module, *,
                      purpose: Literal["train", "infer"] = "train") -> he_core.Parameters | None:
    """The scheme's cheapest 128-bit parameter set for the model, or ``None`` (keep the defaults).

    Args:
        scheme: a registered scheme name.
        model: the network.
        purpose: ``"train"`` (refreshed through a key holder) or ``"infer"``
            (the whole forward pass, no refresh).

    Raises:
        ValueError: an unknown purpose.
        he_core.UnknownSchemeError: an unknown scheme (a KeyError).
    """
    cls = he_core.scheme_class(scheme)
    if purpose == "infer":
        return cls.params_for_depth(inference_depth(model))
    if purpose != "train":
        raise ValueError(f"cannot choose parameters: purpose must be 'train' or 'infer', got {purpose!r}")
    # Training refreshes whenever levels run out: every level the ring holds means fewer refreshes.
    return cls.params_for_depth(training_depth(model), fill_ring=True)


def make_scheme(scheme: str, model: Module, *, purpose: Literal["train", "infer"] = "train") -> he_core.Scheme:
    """A scheme instance with :func:`choose_parameters` (no keys yet)."""
    params = choose_parameters(scheme, model, purpose=purpose)
    return he_core.get_scheme(scheme, params) if params is not None else he_core.get_scheme(scheme)
