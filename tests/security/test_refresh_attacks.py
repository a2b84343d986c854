"""Attacks on the refresh protocol: key oracles, scale games, masks, and what a ciphertext's randomness shows.

Each test runs the attack twice: against a deliberately unprotected configuration
(the old behaviour: the scheme's re-encryption called without a job's checks, masks
a few bits wide, no re-randomisation, an unflooded release) where it succeeds, and
against the real one (the job-bound key service, job-wide masks, sanitised requests,
flooded releases) where it recovers nothing.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import he_core
from he_core import serialization as ser
from he_core.refresh import Mask
from he_core.schemes.ckks import CkksParams
from henn import jobs
from henn.keyholder import KeyHolder, RefreshTerms
from henn.keyservice import REENCRYPT, KeyService, KeyServiceError
from henn.keyservice import protocol

from .attacks import agreement

PARAMS = CkksParams(poly_degree=2048, levels=3, first_bits=60, scale_bits=45, special_bits=60, allow_insecure=True)
ROWS = PARAMS.poly_degree // 8


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The owner's key, a job on it (table-row refreshes at the job's scale), and the service."""
    scheme = he_core.get_scheme("ckks", PARAMS)
    keys = scheme.keygen(he_core.KeyRequirements(sizes=(1, 8)), rng=he_core.SeededRandom(21))
    secret = np.asarray(keys.secret.data["s"], dtype=np.int64)
    table = scheme.encrypt(np.zeros((ROWS, 8)), layout="table")
    row = scheme.row_sum(table, [0])  # a gathered row at the table's level
    target = scheme.layout_of(scheme.encrypt(np.zeros((1, 8)), layout="table"))
    low = scheme.level_drop(scheme.encrypt(np.zeros((1, 8)), layout="table"), 1)
    spec = jobs.JobSpec(job_id=jobs.new_job_id(), key_id=keys.secret.key_id, scheme="ckks",
                        params_id=scheme.params_id, terms=RefreshTerms(refreshes=100, entries_per_refresh=8),
                        targets=[scheme.refresh_target_signature(low, target)], scale_log2=math.log2(row.scale),
                        model={"task": "test"})
    path = tmp_path_factory.mktemp("job")
    jobs.write_spec(path, spec)
    service = KeyService(scheme, keys.secret, spec, jobs.Journal(path))
    return scheme, keys.secret, secret, service, target, low


def _crafted(scheme, like, mask_poly: np.ndarray, scale: float | None = None, c1_const: int = 1):
    """A request (c0, c1) = (mask, c1_const) in NTT form: its phase is mask + c1_const * s, nothing else."""
    ring = scheme.ring
    nl = like.data.shape[2]
    c0 = ring.ntt(ring.from_signed(np.asarray(mask_poly, dtype=np.int64), nl))
    c1 = np.zeros((nl, ring.n), dtype=np.uint64)
    c1[:, 0] = [c1_const % q for q in ring.q[:nl]]
    ring.ntt(c1)
    data = np.stack([c0, c1])[None, ...]
    return like.replace(data=np.ascontiguousarray(data), scale=like.scale if scale is None else scale)


def _old_reencrypt(scheme, key, masked, target):
    """The key holder before this protocol: decrypt at the request's own scale, encrypt at the target's."""
    return scheme.encrypt(scheme.decrypt_exact_local(masked, key), key, layout=target)


def test_the_old_reencryption_was_a_key_oracle_and_the_job_service_refuses_it(world):
    """(c0, c1) = (0, 1) at scale 1: decrypted at that scale, the values are the secret's coefficients; the
    old key holder re-encrypted them at the job's scale, handing back a usable encryption of s itself."""
    scheme, key, s, service, target, low = world
    crafted = _crafted(scheme, low, np.zeros(scheme.ring.n, dtype=np.int64), scale=1.0)
    enc_s = _old_reencrypt(scheme, key, crafted, target)
    # fold it into a model and release it as the old decrypt-model did (exactly): s, in the clear
    weights = he_core.SeededRandom(4).normal((ROWS, 8)) * 0.3
    model = scheme.encrypt(weights, layout="table")
    scheme.index_add_(model, [0], enc_s)
    leaked = scheme.decrypt_exact_local(model, key)[0] - weights[0]
    assert agreement(np.rint(leaked), s[:8]) == 1.0
    # the job-bound service refuses the scale game before decrypting anything
    payload = protocol.pack({"request_id": "c0" * 16, "target": target}, ser.dumps(crafted))
    with pytest.raises(KeyServiceError, match="job's scale"):
        service.handle(REENCRYPT, payload)
    # and the scheme's own map refuses to scale a masked value up 2^45-fold
    with pytest.raises(he_core.HEError, match="scale"):
        scheme.reencrypt_masked(crafted, target, key)


def test_a_folded_encryption_of_the_key_does_not_survive_the_released_model(world):
    """The fold at the job's scale: (0, 1) through the service is an encryption of s / scale (2^-45), plus
    the key holder's fresh noise. Added into the weights and released, flooded and rounded, it is gone."""
    scheme, key, s, service, target, low = world
    weights = he_core.SeededRandom(4).normal((ROWS, 8)) * 0.3
    model = scheme.encrypt(weights, layout="table")
    for k in range(8):  # eight folds, as an attacker would to average the noise down
        crafted = _crafted(scheme, low, np.zeros(scheme.ring.n, dtype=np.int64))
        reply = service.handle(REENCRYPT, protocol.pack({"request_id": f"f{k:031x}", "target": target},
                                                        ser.dumps(crafted)))[1]
        scheme.index_add_(model, [0], ser.loads(reply, allow_insecure=True))
    honest = scheme.encrypt(weights, layout="table")
    released = scheme.decrypt(model, key, flooding=he_core.Flooding(queries=1))[0]
    released_honest = scheme.decrypt(honest, key, flooding=he_core.Flooding(queries=1))[0]
    grid = scheme.release_report(model, he_core.Flooding(queries=1))["grid"]
    assert grid > 2.0**-30  # the release keeps ~20 bits; s / scale sits 2^15 below its last one
    guess = np.rint((released - released_honest) * target["scale"] / 8)
    assert agreement(guess, s[:8]) <= 0.5  # 8 coefficients: nothing beyond chance


@pytest.mark.parametrize("scale", [0.0, -2.0**45, float("nan"), float("inf"), 2.0**70])
def test_scale_games_are_refused(world, scale):
    scheme, _key, _s, service, target, low = world
    crafted = _crafted(scheme, low, np.zeros(scheme.ring.n, dtype=np.int64))
    blob = ser.dumps(crafted.replace(scale=2.0**45)) if not math.isfinite(scale) else \
        ser.dumps(crafted.replace(scale=scale))
    if not math.isfinite(scale):  # the file format cannot even hold it: forge the header field
        blob = blob.replace(b'"scale":35184372088832.0', b'"scale":1e999')
    with pytest.raises((KeyServiceError, he_core.HEError, ValueError)):
        service.handle(REENCRYPT, protocol.pack({"request_id": f"{abs(hash(scale)) % 16**32:032x}",
                                                 "target": target}, blob))


def test_residues_above_their_prime_are_refused(world):
    scheme, _key, _s, service, target, low = world
    crafted = _crafted(scheme, low, np.zeros(scheme.ring.n, dtype=np.int64))
    data = crafted.data.copy()
    data[0, 0, 0, 5] = np.uint64(scheme.ring.q[0] + 3)  # not a residue modulo q_0
    with pytest.raises(he_core.MismatchError, match="residue"):
        service.handle(REENCRYPT, protocol.pack({"request_id": "e1" * 16, "target": target},
                                                ser.dumps(crafted.replace(data=data))))


class _NarrowMasks(KeyHolder):
    """The old masks: a few bits above the value (the unprotected configuration)."""

    def _width(self, plan):
        return math.ceil(plan.bound_bits) + 4


def _views(holder, scheme, key, value: float, n: int) -> np.ndarray:
    """What the key holder decrypts in n refreshes of a row holding ``value``: the masked phase at the read positions."""
    seen = []
    real = holder.reencrypt

    def spy(masked, layout=None):
        phase = scheme._phase_limbs(masked, scheme._s_full(key))[0]
        seen.append(scheme._lift(phase)[:8].astype(object))
        return real(masked, layout)

    holder.reencrypt = spy
    # Both rows declare the same bound (the masks' width may not differ between the two models).
    row = scheme.level_drop(scheme.encrypt(np.full((1, 8), value), layout="table", bound=1.0), 1)
    target = scheme.layout_of(scheme.encrypt(np.zeros((1, 8)), layout="table"))
    for _ in range(n):
        holder.refresh(row, layout=target)
    return np.concatenate(seen)


def _midrange(views: np.ndarray) -> float:
    """The attack on uniform masks: the value is the middle of the range the masked views cover."""
    return (float(max(views)) + float(min(views))) / 2


def test_masks_hide_the_values_over_real_refresh_traffic(world):
    """Min/max of k masked views pins a uniformly masked value to about 4M/k: two models whose weights differ
    by 1 are told apart at once with the old masks, and not to within 2^20 times that with the job's."""
    scheme, key, _s, _service, _target, _low = world
    terms = RefreshTerms(refreshes=1000, entries_per_refresh=8)
    scale = float(scheme.level_drop(scheme.encrypt(np.zeros((1, 8)), layout="table"), 1).scale)
    narrow = [_midrange(_views(_NarrowMasks(scheme, key, terms=terms), scheme, key, v, 150)) for v in (0.0, 1.0)]
    wide = [_midrange(_views(KeyHolder(scheme, key, terms=terms), scheme, key, v, 150)) for v in (0.0, 1.0)]
    assert abs((narrow[1] - narrow[0]) / scale - 1.0) < 0.2  # the difference of the two values, read off
    assert abs(wide[1] - wide[0]) / scale > 2.0**20  # dominated by the masks: nothing to read
    holder = KeyHolder(scheme, key, terms=terms)
    row = scheme.level_drop(scheme.encrypt(np.zeros((1, 8)), layout="table"), 1)
    holder.refresh(row, layout=scheme.layout_of(scheme.encrypt(np.zeros((1, 8)), layout="table")), value_bound=2.0)
    assert holder.hiding()["statistical_distance_log2"] <= -30


def test_the_randomness_of_a_request_does_not_show_which_rows_were_gathered(world):
    """Without re-randomisation, c1 of a gathered row is a_W * (sum of X^-8r): the key holder, who made the
    table's encryption, divides and reads the word set. apply_mask re-randomises c1 first."""
    scheme, key, _s, _service, _target, _low = world
    table = scheme.encrypt(np.zeros((ROWS, 8)), layout="table")
    words = [3, 17, 40]
    row = scheme.row_sum(table, words)
    ring = scheme.ring

    def words_from_c1(c1_ntt: np.ndarray) -> list[int]:
        q = ring.q[0]
        quotient = np.array([int(x) * pow(int(a), -1, q) % q for x, a in zip(c1_ntt, table.data[0, 1, 0])],
                            dtype=np.uint64).reshape(1, -1)
        ring.intt(quotient)
        coeffs = np.where(quotient[0] > q // 2, quotient[0].astype(object) - q, quotient[0].astype(object))
        hits = np.flatnonzero(np.abs(coeffs.astype(np.float64)) == 1)
        return sorted({(ring.n - int(k)) // 8 % ROWS for k in hits})

    assert words_from_c1(row.data[0, 1, 0]) == words  # the unprotected request: the review is readable
    plan = scheme.refresh_plan(row, scheme.layout_of(scheme.encrypt(np.zeros((1, 8)), layout="table")))
    holder = KeyHolder(scheme, key, terms=RefreshTerms(entries_per_refresh=8))
    masked = scheme.apply_mask(row, holder.draw_mask(plan))
    assert words_from_c1(masked.data[0, 1, 0]) != words  # the real request: c1 is fresh randomness


def test_a_mask_is_only_usable_with_its_own_plan(world):
    scheme, key, _s, _service, _target, low = world
    plan = scheme.refresh_plan(low, None)
    other = scheme.refresh_plan(low, None)
    mask = KeyHolder(scheme, key).draw_mask(plan)
    bad = Mask(other, mask.width_bits, mask.high, mask.low, mask.residues)
    with pytest.raises(ValueError):
        scheme.apply_mask(low, Mask(plan, mask.width_bits, mask.high[:1], mask.low[:1], mask.residues))
    assert bad.plan is other


def test_a_malicious_trainer_who_receives_a_release_reads_the_jobs_key_and_no_other(world):
    """The boundary of the claim, run as an attack: releases are decryptions of ciphertexts the trainer made.

    A malicious trainer returns its model with ``c1 += 16 * scale`` (a public edit; or asks the service to
    re-encrypt ``(pk-zero, 16 * scale)``, which validation cannot refuse): every released weight is then
    ``w + 16 s_k``, and no flooding that keeps the weights usable hides a shift of 16. So whoever may
    receive a release must be trusted with the job's key (``docs/threat_model.md``). What per-job keys
    bound is the damage: that key decrypts this job's ciphertexts and nothing under any other key.
    """
    scheme, key, s, _service, _target, _low = world
    ring = scheme.ring
    weights = he_core.SeededRandom(6).normal((ROWS, 8)) * 0.3
    model = scheme.encrypt(weights, layout="table")
    data = model.data.copy()
    shift = np.zeros(ring.n, dtype=np.int64)
    shift[0] = 16 * int(model.scale)
    ring.add(data[0, 1], ring.ntt(ring.from_signed(shift, data.shape[2])), data[0, 1])
    flooding = he_core.Flooding(30, 48, min_precision_bits=16)  # a job's release of its model
    released = scheme.decrypt(model.replace(data=data), key, flooding=flooding)
    _which, pos = scheme._coeff_positions(model)
    assert agreement(np.rint(released / 16).reshape(-1), s[pos.reshape(-1)]) == 1.0  # the whole key
    # Another job's key is another key: what this one decrypts there is noise.
    other = he_core.get_scheme("ckks", PARAMS)
    other_keys = other.keygen(he_core.KeyRequirements(sizes=(1, 8)), rng=he_core.SeededRandom(22))
    theirs = other.encrypt(weights, layout="table")
    stolen = dataclasses.replace(key, key_id=other_keys.secret.key_id)  # this job's s, posing as theirs
    seen = he_core.get_scheme("ckks", PARAMS).decrypt_exact_local(theirs, stolen)
    assert np.mean(np.abs(seen - weights) < 0.1) < 0.1
