"""The RNS-CKKS scheme behind the he_core interface, composed of one object per role.

A logical ``(rows, size)`` batch is packed row-major into the N/2 slots (:mod:`.layout`):
element-wise operations cost one native call per ciphertext, row operations are masks and
rotations. Multiplications rescale by default; operands' levels and scales are aligned
automatically (:mod:`.alignment`). The scheme holds one object per role (the table in
:mod:`he_core.schemes.ckks`, bootstrapping's ``booter`` included) and implements the he_core
hooks and protocols by delegating to them. A few tests call the private names at the end of
the class, thin aliases of role methods.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from ...capabilities import Capability
from ...ciphertext import Ciphertext
from ...circuits import PolyStyle
from ...keys import KeyPair, KeyRequirements, SecretKey
from ...optional import CoeffAnswering, LinearMapping, MaskedRefreshing, Products, Rekeying, Sanitization
from ...randomness import RandomSource, resolve
from ...scheme import Budget, Scheme
from . import layout, seeded, seeded_keys
from .alignment import LevelAligner
from .arith import Evaluator
from .batch import BatchOps
from .bootstrap.packing import check_packable
from .bootstrap.role import BootstrapRole
from .checks import CiphertextChecks
from .coeff import CoeffTables
from .coeff_answer import CoeffAnswerer
from .coeff_layout import coeff_positions, is_coeff
from .context import CkksContext
from .decryption import Decryptor
from .encoder import PlaintextEncoder
from .encryption import Encryptor
from .keyset import KeySet, key_id_material
from .linear import DiagonalMatVec
from .noise_records import NoiseRecords
from .param_choice import CkksParameterChoice
from .params import CkksParams
from .refresh import MaskedRefresher
from .release import Releaser
from .role_alias import RoleMethod
from .coeff_moves import CoeffMover
from .rotation import Rotator
from .row_moves import RowMover
from .scales import scales_match
from .targets import LayoutTargets


class CkksScheme(CkksParameterChoice, Products, LinearMapping, Rekeying, MaskedRefreshing, Sanitization,
                 CoeffAnswering, Scheme):
    """Approximate arithmetic on packed real vectors (Cheon-Kim-Kim-Song, RNS variant)."""

    name = "ckks"
    params_class = CkksParams
    capabilities = frozenset({
        Capability.PUBLIC_KEY_ENCRYPT, Capability.CIPHER_MULTIPLY, Capability.INNER_PRODUCT,
        Capability.LINEAR_TRANSFORM, Capability.RESCALE, Capability.REKEY, Capability.ROTATE,
        Capability.PACKING, Capability.APPROXIMATE, Capability.REFRESH, Capability.SANITIZE,
        Capability.LEVELS, Capability.SERIALIZE, Capability.BOOTSTRAP, Capability.COEFF_ANSWER,
    })
    #: A plaintext product costs a level here, so each coefficient rides on a product its
    #: power needs anyway; odd fits (sigmoid - 1/2, tanh) of degree >= 5 take c0 + x q(x^2).
    polyval_style = PolyStyle(fold=True, odd_split=True)

    def __init__(self, params: CkksParams | None = None):
        super().__init__(params if params is not None else CkksParams())
        ctx = CkksContext.for_params(self.name, self.params)
        self.switcher, self.ring = ctx.switcher, ctx.ring  # key switching over the ring (see .keyswitch)
        self.records = NoiseRecords(ctx)
        # The one back reference: keys are installed (and replaced) after construction, so the key set
        # reads the scheme's installed public keys when asked (and gets its error when there are none).
        self.keyset = KeySet(ctx, lambda: self.public_keys)
        self.encoder = PlaintextEncoder(ctx.ring, ctx.scales)
        self.targets = LayoutTargets(ctx)
        self.encryptor = Encryptor(ctx, self.encoder, self.records, self.keyset, self.targets)
        self.decryptor = Decryptor(ctx)
        self.evaluator = Evaluator(ctx, self.encoder, self.records, self.keyset)
        self.aligner = LevelAligner(ctx, self.records, self.evaluator)
        self.rotator = Rotator(ctx, self.keyset, self.records, self.evaluator)
        self.mover = RowMover(ctx, self.keyset, self.records, self.evaluator, self.rotator)
        self.linear = DiagonalMatVec(ctx, self.records, self.evaluator, self.rotator, self.mover, self.targets)
        self.tables = CoeffTables(ctx, self.encoder, self.records, self.evaluator, self.aligner, self.targets)
        self.batch = BatchOps(ctx, self.encoder, self.records, self.evaluator, self.aligner, self.rotator, self.mover,
                              self.tables, self.targets)
        self.checks = CiphertextChecks(ctx)
        roles = (ctx, self.keyset, self.records, self.evaluator, self.encryptor, self.decryptor)
        self.refresher, self.releaser = MaskedRefresher(*roles), Releaser(*roles)
        self.answerer = CoeffAnswerer(*roles, self.releaser)  # coefficient answers (its module)
        self.booter = BootstrapRole(ctx, self.keyset, self.records, self.encoder, self.evaluator, self.aligner,
                                    self.rotator, self.mover, self.batch)
        self.coeff_mover = CoeffMover(ctx, self.keyset, self.records, self.rotator)
        self.scales = ctx.scales

    # Wire forms: a fresh secret-key encryption as c0 and its seeds, switching keys as b and one seed each.
    wire_form, from_wire_form = staticmethod(seeded.wire_form), staticmethod(seeded.from_wire_form)
    key_wire_form, key_from_wire_form = staticmethod(seeded_keys.wire_form), staticmethod(seeded_keys.from_wire_form)

    @classmethod
    def key_id_material(cls, public_data) -> list[np.ndarray]:
        """The public key (b, a) (:func:`.keyset.key_id_material`)."""
        return key_id_material(public_data)

    @staticmethod
    def level(ct: Ciphertext) -> int:
        return layout.level(ct)

    @property
    def natural_size(self) -> int:
        """A row of all N/2 slots is one whole ciphertext: row operations need no rotation."""
        return self.params.slots

    # ------------------------------------------------------------------ he_core hooks: keys, encryption, checks
    def _keygen(self, requirements, rng):
        return self.keyset.generate(requirements, rng)

    def _check_public_keys(self, public) -> None:
        self.keyset.check_public(public)

    def _as_received(self, ct: Ciphertext, bound: float) -> Ciphertext:
        fresh, _ = self.encryptor.fresh_noise(np.zeros((1, 1)), ct.scale, self.public_keys.data["pk"])
        var, _ = self.records.nv(ct)
        out = self.records.noisy(ct, np.maximum(var, fresh), bound)
        out.meta.pop("flood", None)  # a sender's claim that part of its noise is a flood is not taken either
        return out

    def _record_bound(self, ct: Ciphertext, bound: float) -> Ciphertext:
        """A fresh ciphertext records ``meta["vmax"]``, the power of two >= max |values|: with a caller's
        public bound (1 for normalised data, say) it records that and reveals nothing about the values' size."""
        ct.meta["vmax"] = bound
        return ct

    def _encrypt_secret(self, values, key, scale, rng) -> Ciphertext:
        return self.encryptor.encrypt(values, key.key_id, scale, rng, secret=self.keyset.s_full(key))

    def _encrypt_public(self, values, public, scale, rng) -> Ciphertext:
        return self.encryptor.encrypt(values, public.key_id, scale, rng, public=public.data["pk"])

    def _encrypt_layout(self, values, key, public, scale, rng, target):
        return self.encryptor.encrypt_layout(values, key, public, scale, rng, target)

    def _decrypt(self, ct: Ciphertext, key: SecretKey) -> np.ndarray:
        return self.decryptor.decrypt(ct, self.keyset.s_full(key))

    def _check_ct(self, a: Ciphertext) -> None:
        """Membership (as every scheme) plus the structure the kernels rely on (:class:`CiphertextChecks`)."""
        super()._check_ct(a)
        self.checks.structure(a)

    def _validate_values(self, ct: Ciphertext) -> None:
        self.checks.validate_values(ct)

    def _in_default_layout(self, ct: Ciphertext) -> bool:
        return self.targets.in_default_layout(ct)

    def _layout_of(self, ct: Ciphertext):
        return self.targets.layout_of(ct)

    def coeff_target(self, like: Ciphertext, *, rev: bool | None = None, level: int | None = None) -> dict:
        """Re-encryption target: clean, coefficient-packed like ``like`` (optionally reversed / at a level)."""
        return self.targets.coeff_target(like, rev=rev, level=level)

    # ------------------------------------------------------------------ he_core hooks: operations
    def _add(self, a, b):
        return self.batch.add(a, b)

    def _sub(self, a, b):
        return self.batch.sub(a, b)

    def _neg(self, a):
        return self.evaluator.neg(a)

    def _add_plain(self, a, values):
        return self.batch.add_plain(a, values)

    def _mul_plain(self, a, values, rescale):
        return self.batch.mul_plain(a, values, rescale)

    def _mul(self, a, b, rescale):
        return self.batch.mul(a, b, rescale)

    def _inner(self, a, b, rescale):
        return self.batch.inner(a, b, rescale)

    def _rescale(self, a):
        return self.evaluator.rescale(a)

    def _matvec(self, a, matrix, key):
        return self.linear.matvec(a, matrix, key)

    def _take_rows(self, a, rows):
        return self.batch.take_rows(a, rows)

    def _concat_rows(self, parts):
        return self.batch.concat_rows(parts)

    def _row_sum(self, a, rows):
        return self.batch.row_sum(a, rows)

    def _lincomb(self, weights, a, rescale):
        return self.batch.lincomb(weights, a, rescale)

    def _index_add_(self, a, rows, b):
        self.batch.index_add_(a, rows, b)

    def _check_index_add(self, a, rows, b) -> None:
        self.tables.check_index_add(a, rows, b)

    _make_switch_key, _rekey = RoleMethod("keyset", "make_switch_key"), RoleMethod("evaluator", "rekey")

    def _budget(self, a) -> Budget:
        level = self.level(a)
        return Budget(kind="levels", remaining=level, level=level, scale=a.scale,
                      log2_scale=math.log2(a.scale), max_value=self.scales.max_value(a.scale, level))

    # ------------------------------------------------------------------ he_core hooks: refresh and release
    def _refresh_plan(self, ct, target, value_bound):
        return self.refresher.plan(ct, target, value_bound)

    def _apply_mask(self, ct, mask, rng):
        return self.refresher.apply_mask(ct, mask, rng)

    def _reencrypt_masked(self, masked, target, key, rng):
        return self.refresher.reencrypt_masked(masked, target, key, rng)

    def _remove_mask(self, fresh, mask, target, source, value_bound):
        return self.refresher.remove_mask(fresh, mask, target, source, value_bound)

    def _refresh_answer_shape(self, ct, target) -> tuple[int, ...]:
        return self.refresher.answer_shape(ct, target)

    def _refresh_target_signature(self, ct, target) -> dict:
        return self.refresher.target_signature(ct, target)

    def _release_report(self, ct, flooding) -> dict:
        return self.releaser.report(ct, flooding)

    def _decrypt_release(self, ct, key, flooding, rng) -> np.ndarray:
        return self.releaser.decrypt(ct, key, flooding, rng)

    def _declare_bound(self, ct, bound):
        return self.releaser.declare_bound(ct, bound)

    def _sanitize(self, ct, flooding, rng):
        return self.releaser.sanitize(ct, flooding, rng)

    # ------------------------------------------------------------------ CKKS-specific public methods
    def noise_estimate(self, ct: Ciphertext) -> dict:
        """The analytic noise estimate of ``ct`` (:mod:`.noise`; nothing is decrypted or measured).

        Returns:
            A dict: ``variance`` (rho^2, bounding the variance of every phase-error
            coefficient, integer units at the current modulus); ``coeff_bound`` (max |e_i|
            over all N coefficients of every ciphertext of the batch, except with
            probability ``epsilon`` = 2^-40 if the model holds); ``slot_variance`` and
            ``slot_bound`` (the error of a decrypted value in value units: the real part
            of a slot, N nslot / (2 Delta^2), bounded over every slot of the batch; for
            coefficient layouts a coefficient's, rho^2 / Delta^2; a slot's tail is that of
            a product of Gaussians, see ``noise.slot_tail_factor``); ``value_bound`` (vmax);
            ``log2_scale``; ``level``; ``epsilon``.

        Raises:
            MismatchError: ``ct`` does not belong to this scheme or is malformed.
        """
        self._check_ct(ct)
        return self.records.estimate(ct)

    def rotate(self, ct: Ciphertext, steps: int) -> Ciphertext:
        """Rotate the slot vector of each ciphertext left by ``steps`` (slot j gets slot j + steps).

        For a one-row batch this is ``np.roll`` of the row zero-padded to N/2 slots,
        truncated to ``size``. The result is marked as holding garbage outside its values.
        """
        self._check_ct(ct)
        if is_coeff(ct):
            raise self.targets.need_slots("rotate", ct)
        out = self.rotator.rotate(ct, int(steps))
        return out.replace(meta={**out.meta, "dirty": out.meta["dirty"] or steps % self.params.slots != 0})

    def conjugate(self, ct: Ciphertext) -> Ciphertext:
        """Complex conjugation of every slot (the identity on real data)."""
        self._check_ct(ct)
        if is_coeff(ct):
            raise self.targets.need_slots("conjugate", ct)
        return self.rotator.apply_galois(ct, 2 * self.params.poly_degree - 1)

    def pack_constants(self, cts: list[Ciphertext], position: int = 0) -> Ciphertext:
        """One clean ``(B, 1)`` coefficient batch (stride N / B) of coefficient ``position`` of each of ``cts``.

        The rest of each input may hold anything (a gathered table's other rows, say); it is
        cleared. ``B = len(cts)`` is a power of two; ``B - 1 + log2(N / B)`` key switches, no level
        (:mod:`.coeff_moves`; keys: ``KeyRequirements(coefficient_moves=True)``).
        """
        cts = list(cts)
        for ct in cts:
            self._check_ct(ct)
        return self.coeff_mover.pack([self.coeff_mover.shift(ct, -int(position)) for ct in cts])

    def expand_constants(self, ct: Ciphertext, count: int) -> list[Ciphertext]:
        """``count`` constants (``(1, 1)``, one value in every slot) from a clean batch at coefficients 0 .. count - 1.

        ``count - 1`` key switches, no level (:mod:`.coeff_moves`).
        """
        self._check_ct(ct)
        return self.coeff_mover.expand(ct, count)

    def sum_slots(self, ct: Ciphertext) -> Ciphertext:
        """The sum of every entry of the batch, as a (1, 1) ciphertext."""
        self._check_ct(ct)
        if is_coeff(ct):
            raise self.targets.need_slots("sum_slots", ct)
        total = self.mover.clean(self.batch.row_sum(ct, None))  # block 0 only
        out = self.rotator.sum_within(total, layout.next_pow2(ct.size), 1)
        return out.replace(shape=(1, 1), meta={**out.meta, "dirty": True, "rep": False})

    def level_drop(self, ct: Ciphertext, level: int) -> Ciphertext:
        """The same ciphertext at a lower level (drops primes; scale unchanged)."""
        self._check_ct(ct)
        return self.aligner.drop(ct, int(level))

    def polyval(self, a, coeffs: Sequence[float]):
        """``sum(c_i * a**i)`` by :func:`he_core.circuits.polyval` in :attr:`polyval_style` (slot packing only)."""
        self._check_ct(a)
        if a.meta.get("coeff"):
            raise self.targets.need_slots("polyval", a)
        return super().polyval(a, coeffs)

    def op_cost(self, op, *operands, rows=None, coeffs=None, values=None):
        """As :meth:`OperationCosts.op_cost`, plus a level for ``polyval`` on an operand off its working scale.

        A scalar absorbed into the scale (an activation's ``1/a``) leaves the operand off
        the working scale; the circuit's terms then reach one level at different scales
        and adding them spends a level to realign (``LevelAligner.align_add``).
        """
        cost = super().op_cost(op, *operands, rows=rows, coeffs=coeffs, values=values)
        if op == "polyval" and operands and not scales_match(operands[0].scale, self.scales.at(self.level(operands[0]))):
            return dataclasses.replace(cost, depth=cost.depth + 1)
        return cost

    # ------------------------------------------------------------------ Bootstrapping: the booter (BootstrapRole)
    def bootstrap(self, ct: Ciphertext, *, slots: int | None = None, clean: bool = False,
                  value_bound: float | None = None) -> Ciphertext:
        """The same values at a higher level, with public keys only (:meth:`BootstrapRole.bootstrap`)."""
        self._check_ct(ct)
        return self.booter.bootstrap(ct, slots=slots, clean=clean, value_bound=value_bound)

    def bootstrap_many(self, cts: list[Ciphertext], *, slots: int, clean: bool = False,
                       value_bound: float | None = None) -> list[Ciphertext]:
        """Several ciphertexts, one bootstrap (inputs: ``check_packable``; :meth:`BootstrapRole.bootstrap_many`)."""
        check_packable(cts, self._check_ct)
        return self.booter.bootstrap_many(cts, slots=slots, clean=clean, value_bound=value_bound)

    def bootstrap_packs(self, cts: list[Ciphertext], *, slots: int) -> list[list[int]]:
        """The indices each :meth:`bootstrap_many` call would take (:meth:`BootstrapRole.packs`)."""
        check_packable(cts, self._check_ct)
        return self.booter.packs(cts, slots)

    def bootstrap_plan(self, slots: int, *, clean: bool = False) -> dict:
        """Keys, levels consumed and left for n slots (:meth:`BootstrapRole.plan`)."""
        return self.booter.plan(slots, clean=clean)

    def bootstrap_keygen(self, slots: int, *, rng: RandomSource | None = None,
                         requirements: KeyRequirements | None = None, packing: bool = False) -> KeyPair:
        """The plan's keys and ``requirements``' in one set, installed here (:meth:`BootstrapRole.key_requirements`)."""
        wanted = self.booter.key_requirements(slots, packing=packing)
        rng = resolve(rng)
        pair = self.keygen(wanted if requirements is None else requirements.merge(wanted), rng=rng)
        self.booter.add_conjugation_key(pair, rng)
        return pair

    # ------------------------------------------------------------------ private names: role methods (tests, hooks)
    _scale_at, _max_value = RoleMethod("scales", "at"), RoleMethod("scales", "max_value")
    _s_full, _galois_element = RoleMethod("keyset", "s_full"), RoleMethod("keyset", "galois_element")
    _galois_key, _relin_key = RoleMethod("keyset", "galois_key"), RoleMethod("keyset", "relin_key")
    _matvec_rotations, encode_pts = RoleMethod("keyset", "matvec_rotations"), RoleMethod("encoder", "encode_many")
    _encrypt_pts, _public_zero = RoleMethod("encryptor", "encrypt_pts"), RoleMethod("encryptor", "public_zero")
    _decrypt_slots, _phases = RoleMethod("decryptor", "decrypt_slots"), RoleMethod("decryptor", "phases")
    _phase_limbs, _lift = RoleMethod("decryptor", "phase_limbs"), RoleMethod("decryptor", "lift")
    _plain_factors, _relin = RoleMethod("evaluator", "plain_factors"), RoleMethod("evaluator", "relin")
    _add_slots, _rotation_plan = RoleMethod("evaluator", "add_slots"), RoleMethod("rotator", "plan")
    _rotate_ct, _rotate_many = RoleMethod("rotator", "rotate"), RoleMethod("rotator", "rotate_many")
    _sum_within, _clean = RoleMethod("rotator", "sum_within"), RoleMethod("mover", "clean")
    _gather, _flood_sigma = RoleMethod("mover", "gather"), RoleMethod("releaser", "flood_sigma")
    _release_sigma = RoleMethod("releaser", "release_sigma")
    _coeff_answer_params, _coeff_capacity = RoleMethod("answerer", "candidate"), RoleMethod("answerer", "capacity")
    _encrypt_coeff_query, _answer_coeff_query = RoleMethod("answerer", "encrypt_query"), RoleMethod("answerer", "answer")

    def _coeff_positions(self, ct: Ciphertext) -> tuple[np.ndarray, np.ndarray]:
        return coeff_positions(ct, self.ring.n)
