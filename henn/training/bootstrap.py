"""Refreshing by bootstrapping: training with no key holder in the loop.

Under ``refresh="bootstrap"`` the :class:`~henn.training.refresh.RefreshPolicy` sends a
ciphertext whose levels run low through the scheme's bootstrapping
(:class:`he_core.protocols.Bootstrapping`) instead of the key holder's masked refresh:
the trainer computes with public keys only and nothing leaves it until the owner
decrypts the final model. :class:`BootstrapRefresh` stands where the key holder's
refresh half (:class:`~henn.keyholder.MaskedRefresh`) stands for the policy: same
``refresh`` and ``levels_reserved``, and ``refresh_rounds`` stays 0.

Every bootstrap of a run packs the same n slots (:func:`bootstrap_slots`: the largest
batch of rows a step holds in one ciphertext, or all the model's parameters side by side),
so one key set serves all of them (:func:`bootstrap_keys`, which :func:`slots_for` sizes).

The parameters are bootstrapped together, at most once per step
(:meth:`BootstrapRefresh.refresh_parameters`): one packed bootstrap
(:meth:`he_core.protocols.Bootstrapping.bootstrap_many`) brings every parameter that a
step would take below its reserve back up, before the step starts, instead of one
bootstrap per parameter wherever it runs low. Values computed inside a step (activations,
gradients) are still bootstrapped where they run low: a step deeper than the levels a
bootstrap leaves needs them (docs/bootstrapping.md counts them for XOR).
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import he_core
from he_core import Ciphertext, KeyPair, KeyRequirements, RandomSource, Scheme, protocols

from ..depth import key_requirements, training_depth
from ..layers import Linear
from ..module import Parameter, Sequential
from ..tensor import EncTensor

#: A bootstrap takes its input one level above 0, where the scale can be set for the sine.
LEVELS_RESERVED = 1


def bootstrap_slots(model: Sequential, batch_size: int) -> int:
    """The slots n every bootstrap of a step packs: the most one encrypted tensor of the step fills.

    Per :class:`~henn.layers.Linear`: its weight and bias (their rows times their padded
    width, either way round: a gradient may be laid out transposed), its outputs
    (``batch_size`` rows of its output width) and, when encrypted, its inputs. Other
    layers count every width the model's keys cover. All parameters side by side, each
    padded to the widest key size (:func:`parameter_slots`), fit too.

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
    return max(need, parameter_slots(model))


def parameter_slots(model: Sequential) -> int:
    """n for all the model's parameters side by side in one bootstrap (2 for one parameter: nothing to pack).

    Each takes its rows times its padded width, and the layer's widest width for a one-row
    parameter (a bias ends up laid out at its layer's width); the blocks are powers of
    two, so their sum rounded up is n. Should the layouts a run reaches need more, the
    parameters are bootstrapped in as few packs as fit (:meth:`BootstrapRefresh.refresh_parameters`).
    """
    if len(model.parameters()) <= 1:
        return 2
    blocks = []
    for layer in model.layers:
        widest = max(layer.weight.value.shape) if isinstance(layer, Linear) else 1
        for p in layer.parameters():
            rows, width = p.value.shape
            blocks.append(_pow2(rows * _pow2(width if rows > 1 else max(width, widest))))
    return max(2, _pow2(sum(blocks)))


def _pow2(x: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1, x))))


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

    The set includes the rotations that pack several ciphertexts into one bootstrap
    (:meth:`BootstrapRefresh.refresh_parameters`). Installs the public keys on ``scheme``.

    Raises:
        CapabilityError: the scheme cannot bootstrap.
        ParameterError: its parameters cannot bootstrap that many slots.
    """
    boot = protocols.view(scheme, protocols.Bootstrapping)
    return boot.bootstrap_keygen(slots, rng=rng, requirements=requirements, packing=True)


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
        bootstraps: bootstraps made (a packed one counts once).
        parameter_bootstraps: the packed bootstraps of the parameters: at most one per step when
            they fit the n slots side by side (as :func:`parameter_slots` sizes n).

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
        self.parameter_bootstraps = 0
        self._step_start: list[float] | None = None
        self._step_drop: float | None = None

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

    def refresh_parameters(self, params: list[Parameter], value_bound: float | None = None) -> None:
        """Before a step: bootstrap, packed, the parameters the step would take too low.

        A step takes some levels from every parameter (learnt from the previous step: its
        largest drop); when any parameter has fewer than that plus the bootstrap's reserve
        (at most what a bootstrap leaves), every parameter below a bootstrap's output level
        is refreshed, each at :attr:`output_level`: in one bootstrap when they fit the n slots
        side by side, else in as few as fit. Nothing happens before the first step, whose
        parameters are fresh.

        Raises:
            ParameterError: a parameter alone needs more than the n slots.
        """
        remaining = [self._remaining(p) for p in params]
        if self._step_drop is not None:
            need = min(self.output_level, self._step_drop + LEVELS_RESERVED)
            if any(r < need for r in remaining):
                low = [i for i, r in enumerate(remaining) if r < self.output_level]
                cts = [params[i].value.ct for i in low]
                for pack in self._boot.bootstrap_packs(cts, slots=self.slots):
                    fresh = self._boot.bootstrap_many([cts[k] for k in pack], slots=self.slots, clean=True,
                                                      value_bound=value_bound)
                    for k, ct in zip(pack, fresh):
                        params[low[k]].value = EncTensor(params[low[k]].value.scheme, ct)
                    self.bootstraps += 1
                    self.parameter_bootstraps += 1
                remaining = [self._remaining(p) for p in params]
        self._step_start = remaining

    def end_step(self, params: list[Parameter]) -> None:
        """After a step: remember the most levels it took from a parameter (what the next one will need)."""
        if self._step_start is None:
            return
        drops = [start - self._remaining(p) for start, p in zip(self._step_start, params)]
        self._step_drop = max(0.0, *drops)
        self._step_start = None

    def _remaining(self, p: Parameter) -> float:
        return float(self.scheme.budget(p.value.ct)["remaining"])

    def levels_reserved(self, ct: Ciphertext, value_bound: float | None = None) -> int:
        """Levels a ciphertext keeps for its bootstrap (one: the scale is set there for the sine)."""
        return LEVELS_RESERVED

    def counters(self) -> dict[str, int]:
        return {"refresh_rounds": 0, "bootstraps": self.bootstraps,
                "parameter_bootstraps": self.parameter_bootstraps, "bootstrap_slots": self.slots}
