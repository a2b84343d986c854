"""Refreshing by bootstrapping: training with no key holder in the loop.

Under ``refresh="bootstrap"`` the :class:`~henn.training.refresh.RefreshPolicy` sends a
ciphertext whose levels run low through the scheme's bootstrapping
(:class:`he_core.protocols.Bootstrapping`) instead of the key holder's masked refresh:
the trainer computes with public keys only and nothing leaves it until the owner
decrypts the final model. :class:`BootstrapRefresh` stands where the key holder's
refresh half (:class:`~henn.keyholder.MaskedRefresh`) stands for the policy: same
``refresh`` and ``levels_reserved``, and ``refresh_rounds`` stays 0.

Every bootstrap of a run packs the same n slots (:func:`bootstrap_slots`: the largest
batch of rows a step holds in one ciphertext), so one key set serves all of them
(:func:`bootstrap_keys`, which :func:`slots_for` sizes).
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import he_core
from he_core import Ciphertext, KeyPair, KeyRequirements, RandomSource, Scheme, protocols

from ..depth import key_requirements, training_depth
from ..layers import Linear
from ..module import Sequential
from ..tensor import EncTensor

#: A bootstrap takes its input one level above 0, where the scale can be set for the sine.
LEVELS_RESERVED = 1


def bootstrap_slots(model: Sequential, batch_size: int) -> int:
    """The slots n every bootstrap of a step packs: the most one encrypted tensor of the step fills.

    Per :class:`~henn.layers.Linear`: its weight and bias (their rows times their padded
    width, either way round: a gradient may be laid out transposed), its outputs
    (``batch_size`` rows of its output width) and, when encrypted, its inputs. Other
    layers count every width the model's keys cover.

    Raises:
        ValueError: a batch size below 1.
    """
    if batch_size < 1:
        raise ValueError(f"cannot size bootstrapping: batch_size must be >= 1, got {batch_size}")
    need = 2
    for layer in model.layers:
        if not isinstance(layer, Linear):
            if layer.parameters():
                need = max(need, slots_for(key_requirements(model).sizes, batch_size))
            continue
        rows, width = layer.weight.value.shape
        out_width = width if not layer.encrypted_input else rows
        in_width = rows if not layer.encrypted_input else width
        need = max(need, _padded(rows, width), _padded(width, rows), slots_for((out_width,), batch_size))
        if layer.encrypted_input:
            need = max(need, slots_for((in_width,), batch_size))
    return need


def _padded(rows: int, width: int) -> int:
    return slots_for((width,), rows)


def slots_for(widths: Iterable[int], batch_size: int) -> int:
    """n for batches of ``batch_size`` rows of vectors of the given widths (each padded to a power of two)."""
    if batch_size < 1:
        raise ValueError(f"cannot size bootstrapping: batch_size must be >= 1, got {batch_size}")
    stride = 1 << max(0, math.ceil(math.log2(max(widths))))
    return max(2, 1 << math.ceil(math.log2(batch_size * stride)))


def bootstrap_keys(scheme: Scheme, requirements: KeyRequirements, slots: int, *,
                   rng: RandomSource | None = None) -> KeyPair:
    """The key holder's part: the computation's keys and bootstrapping's for n slots, in one set.

    Installs the public keys on ``scheme``.

    Raises:
        CapabilityError: the scheme cannot bootstrap.
        ParameterError: its parameters cannot bootstrap that many slots.
    """
    boot = protocols.view(scheme, protocols.Bootstrapping)
    return boot.bootstrap_keygen(slots, rng=rng, requirements=requirements)


def bootstrapping_scheme(name: str, model: Sequential, batch_size: int, *, ring: int | None = None) -> Scheme:
    """The scheme ``name`` with a set that bootstraps the model's step and leaves its training depth.

    Raises:
        CapabilityError: the scheme cannot bootstrap.
    """
    slots = bootstrap_slots(model, batch_size)
    params = he_core.scheme_class(name).params_for_bootstrapping(training_depth(model), slots=slots, ring=ring)
    if params is None:
        raise he_core.CapabilityError(name, "bootstrapping", "train with refresh='masked'")
    return he_core.get_scheme(name, params)


class BootstrapRefresh:
    """The policy's refresher under ``refresh="bootstrap"``: public keys only.

    Args:
        scheme: the raw scheme, its public keys holding bootstrapping's (:func:`bootstrap_keys`, which :func:`slots_for` sizes).
        slots: the packing n of every bootstrap.

    Attributes:
        refresh_rounds: round trips to a key holder: always 0.
        bootstraps: bootstraps made.

    Raises:
        CapabilityError: the scheme cannot bootstrap.
        ParameterError: it cannot bootstrap ``slots`` slots (the plan's reason).
    """

    def __init__(self, scheme: Scheme, slots: int):
        self._boot = protocols.view(scheme, protocols.Bootstrapping)
        plan = self._boot.bootstrap_plan(slots, clean=True)
        if not plan["possible"]:
            raise he_core.ParameterError(f"cannot train with bootstrapping: {plan['reason']}")
        self.scheme = scheme
        self.slots = int(slots)
        self.output_level = int(plan["output_level"])
        self.refresh_rounds = 0
        self.bootstraps = 0

    def refresh(self, x: EncTensor | Ciphertext, *, layout: Any = None,
                value_bound: float | None = None) -> EncTensor | Ciphertext:
        """``x`` bootstrapped (its other slots zeroed), at :attr:`output_level`.

        Raises:
            CapabilityError: a layout change, which only the key holder's refresh makes.
            EncodingError: a tensor that is not one clean ciphertext within the n slots.
        """
        if layout is not None:
            raise he_core.CapabilityError(self.scheme.name, "layout changes by bootstrapping",
                                          "a bootstrap keeps the layout: train with refresh='masked'",
                                          op=f"move a ciphertext into {layout!r}")
        ct = x.ct if isinstance(x, EncTensor) else x
        fresh = self._boot.bootstrap(ct, slots=self.slots, clean=True, value_bound=value_bound)
        self.bootstraps += 1
        return EncTensor(x.scheme, fresh) if isinstance(x, EncTensor) else fresh

    def levels_reserved(self, ct: Ciphertext, value_bound: float | None = None) -> int:
        """Levels a ciphertext keeps for its bootstrap (one: the scale is set there for the sine)."""
        return LEVELS_RESERVED

    def counters(self) -> dict[str, int]:
        return {"refresh_rounds": 0, "bootstraps": self.bootstraps, "bootstrap_slots": self.slots}
