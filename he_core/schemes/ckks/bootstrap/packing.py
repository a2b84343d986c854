"""Several ciphertexts through one bootstrap: pack them into n slots, bootstrap once, unpack.

A bootstrap costs the same for 2 slots as for n, so a model's parameters (a few small
tensors) are refreshed together: each is masked to its own values and brought to level 0
at one common scale (the product a single bootstrap makes anyway), moved to its own block
of the n slots, and the sum is bootstrapped. Each output is the bootstrap rotated back to
slot 0 and masked to its tensor's values: that mask is the level a clean bootstrap spends
anyway, so packing costs no level, only rotations (a few, at level 0 and after the pipeline).

Blocks: each tensor takes the power of two covering its rows (:func:`extent`), largest
first, so every block starts at a multiple of its own size (:func:`pack_offsets`).

Moving a block to offset o is a rotation *left* by n - o: the pipeline's first step, the
subring trace, folds every slot j of the ciphertext onto j mod n, so that lands the block
at o without a key for a rotation to the right. Every rotation used, n - o and o, is below
n: the power-of-two rotations below n (:func:`packing_rotations`) compose all of them.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from ....ciphertext import Ciphertext
from ....errors import EncodingError, ParameterError
from .. import layout, noise
from .pipeline_roles import PipelineRoles


def extent(rows: int, stride: int) -> int:
    """Slots a tensor of ``rows`` rows at ``stride`` takes in a pack: the power of two covering them."""
    return layout.next_pow2(max(1, rows * stride))


def pack_offsets(extents: Sequence[int], slots: int) -> list[int]:
    """Each block's first slot: largest first, so each starts at a multiple of its (power-of-two) size.

    Raises:
        ParameterError: an extent that is not a power of two, or blocks that do not fit n slots.
    """
    if any(e < 1 or e & (e - 1) for e in extents):
        raise ParameterError(f"cannot pack {list(extents)}: every extent must be a power of two")
    offsets, at = [0] * len(extents), 0
    for i in sorted(range(len(extents)), key=lambda i: -extents[i]):
        offsets[i], at = at, at + extents[i]
    if at > slots:
        raise ParameterError(f"cannot pack tensors of {sorted(extents, reverse=True)} slots into one bootstrap of "
                             f"{slots} slots: they need {layout.next_pow2(at)}")
    return offsets


def groups(extents: Sequence[int], slots: int) -> list[list[int]]:
    """Indices of the blocks each bootstrap takes: largest first, each into the first pack it fits.

    Blocks that fit n slots together make one group; more groups only when they do not.

    Raises:
        ParameterError: a block larger than n.
    """
    packs: list[tuple[int, list[int]]] = []
    for i in sorted(range(len(extents)), key=lambda i: -extents[i]):
        if extents[i] > slots:
            raise ParameterError(f"cannot pack a tensor of {extents[i]} slots into a bootstrap of {slots}")
        for k, (used, members) in enumerate(packs):
            if used + extents[i] <= slots:
                packs[k] = (used + extents[i], members + [i])
                break
        else:
            packs.append((extents[i], [i]))
    return [sorted(members) for _, members in packs]


def packing_rotations(slots: int) -> tuple[int, ...]:
    """The power-of-two rotations below n: every packing and unpacking move composes from them."""
    return tuple(1 << b for b in range(max(0, int(math.log2(slots)))))


def value_mask(roles: PipelineRoles, ct: Ciphertext) -> np.ndarray:
    """(1, slots): 1 where the batch's values sit, else 0."""
    return roles.mover.valid_mask(ct.rows, ct.size, ct.meta["stride"])


def clean_batch(roles: PipelineRoles, ct: Ciphertext) -> Ciphertext:
    """ct with every slot outside its values zeroed (one level)."""
    out = roles.evaluator.mul_slots(ct, value_mask(roles, ct), True, True)
    return out.replace(meta={**out.meta, "dirty": False})


def to_level_zero(roles: PipelineRoles, ct: Ciphertext, target: float) -> Ciphertext:
    """ct at level 0, zero outside its values, at scale ``target``: one product by its 0/1 value mask.

    The plaintext's scale is chosen so that the rescaled product lands on ``target``
    (the bootstrap's input scale); dropping the remaining primes keeps it there.

    Raises:
        ParameterError: ct at level 0, where no product is left to clean it and set its scale.
    """
    level = layout.level(ct)
    if level == 0:
        raise ParameterError(f"cannot pack {ct.describe()} for a bootstrap: it is at level 0; "
                             "bootstrap it while one level is left")
    mask = value_mask(roles, ct)
    pt_scale = target * roles.ring.q[level] / ct.scale
    pts = roles.encoder.encode_many(mask, pt_scale, level + 1)
    out = roles.evaluator.mul_pts(ct, pts, pt_scale, True, *noise.plain_stats(mask))
    out = roles.aligner.drop(roles.evaluator.rescale(out), 0)
    return out.replace(meta={**out.meta, "dirty": False, "rep": False})


def pack(roles: PipelineRoles, cts: Sequence[Ciphertext], offsets: Sequence[int], slots: int,
         target: float) -> Ciphertext:
    """One clean level-0 ciphertext of n slots holding every ct's values from its offset on.

    Its value record is the largest of the inputs' (their values sit in disjoint slots);
    the noise records add, as for independently masked terms.
    """
    half = roles.params.slots
    packed = None
    for ct, offset in zip(cts, offsets):
        low = to_level_zero(roles, ct, target)
        if offset:
            low = roles.rotator.rotate(low, (slots - offset) % half)  # lands at offset after the trace's fold
        packed = low if packed is None else roles.evaluator.add(packed, low, rule="independent")
    var = roles.records.nv(packed)[0]
    vmax = max(float(roles.records.nv(ct)[1]) for ct in cts)
    meta = {**packed.meta, "stride": slots, "dirty": False, "rep": False}
    return roles.records.noisy(packed.replace(shape=(1, slots), meta=meta), var, vmax)


def unpack(roles: PipelineRoles, out: Ciphertext, like: Sequence[Ciphertext], offsets: Sequence[int],
           clean: bool) -> list[Ciphertext]:
    """Each tensor's values back at slot 0 with its own shape and stride (hoisted rotations).

    Without ``clean`` the other tensors' values stay in the slots beyond each one's (dirty).
    """
    moved = roles.rotator.rotate_many(out, [o for o in offsets if o])
    moved[0] = out
    results = []
    for ct, offset in zip(like, offsets):
        got = moved[offset]
        meta = {**got.meta, "stride": ct.meta["stride"], "dirty": True, "rep": False}
        got = got.replace(shape=ct.shape, meta=meta)
        results.append(clean_batch(roles, got) if clean else got)
    return results


def check_packable(cts: Sequence[Ciphertext], check_ct: Callable[[Ciphertext], None]) -> None:
    """Raises EncodingError unless every ct is one ciphertext of slot values under one key.

    ``check_ct`` is the scheme's own check of each (membership, structure), made in turn with these.
    """
    if not cts:
        raise EncodingError("cannot bootstrap an empty list of ciphertexts")
    for ct in cts:
        check_ct(ct)
        if ct.meta.get("coeff") or ct.data.shape[0] != 1:
            raise EncodingError(f"cannot pack {ct.describe()} for a bootstrap: it must be one ciphertext of slots")
    keys = {ct.key_id for ct in cts}
    if len(keys) > 1:
        raise EncodingError(f"cannot pack ciphertexts under {len(keys)} different keys into one bootstrap")


def common_target(roles: PipelineRoles, cts: Sequence[Ciphertext], input_delta: float,
                  value_bound: float | None) -> float:
    """The one level-0 scale every packed tensor is brought to: set by the largest value among them."""
    vmax = max(float(roles.records.nv(ct)[1]) for ct in cts)
    if value_bound is not None:
        vmax = min(vmax, float(value_bound))
    return min(roles.scales.at(0), roles.ring.q[0] * input_delta / max(vmax, 2.0**-20))


def record_value(roles: PipelineRoles, src: Ciphertext, value_bound: float | None) -> float:
    """The value bound a bootstrap's output records: the caller's, or the input's plus its noise."""
    var, vmax = roles.records.nv(src)
    if value_bound is not None:
        return float(value_bound)
    return vmax + 8.0 * math.sqrt(float(np.max(var))) / src.scale
