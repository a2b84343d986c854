"""Released CKKS decryptions (noise-flooded, rounded) and sanitised ciphertexts.

The release role of :class:`~he_core.schemes.ckks.scheme.CkksScheme`; see :mod:`he_core.flooding`
for why and how much. A released decryption:

1. computes the phase ``c0 + c1 s`` exactly;
2. adds a Gaussian flood of standard deviation ``flooding.sigma(B)`` to each released
   value, where ``B`` bounds the L2 norm of the key-dependent noise of the released
   values (:func:`.noise.l2_bound`): the coefficients read for a coefficient layout or a
   constant, the slots' real parts for a slot layout, which the key holder decodes before
   flooding, so that only their noise needs hiding (:meth:`Releaser.release_sigma`);
3. rounds every value to the power-of-two grid at or below the released error's standard
   deviation in value units;
4. refuses (:class:`~he_core.PrecisionError`) when fewer than
   ``flooding.min_precision_bits`` bits would remain relative to the largest released
   value: the parameters must then give a larger scale at this level.

Sanitising (circuit privacy) adds a fresh public-key encryption of zero whose noise
floods the ciphertext's own noise, so whoever decrypts it learns the value and not how
it was computed.
"""
from __future__ import annotations

import math

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import HEOverflowError, KeyMissingError, PrecisionError
from ...flooding import Flooding, precision_bits, release_grid
from . import encoder, layout, noise
from .arith import Evaluator
from .coeff_layout import coeff_positions, is_coeff, is_constant
from .context import CkksContext
from .decryption import Decryptor
from .encryption import Encryptor
from .keyset import KeySet
from .noise_records import NoiseRecords


#: The slot flood's resolution: a unit Gaussian drawn as integers of standard deviation 2^this.
FLOOD_RESOLUTION_LOG2 = 40


class Releaser:
    """Noise-flooded decryptions for release, their report, declared bounds, and sanitising.

    Args:
        ctx: the parameter set's objects; keyset: the installed public key and the secret;
        records: noise records and estimates; evaluator: relinearises; encryptor: public
        encryptions of zero; decryptor: exact phases.
    """

    def __init__(self, ctx: CkksContext, keyset: KeySet, records: NoiseRecords, evaluator: Evaluator,
                 encryptor: Encryptor, decryptor: Decryptor) -> None:
        self.ring, self.noise = ctx.ring, ctx.noise
        self.keyset, self.records, self.evaluator = keyset, records, evaluator
        self.encryptor, self.decryptor = encryptor, decryptor
        self._weights: dict[str, np.ndarray] = {}

    def flood_sigma(self, ct: Ciphertext, flooding: Flooding, count: int | None = None) -> float:
        """A coefficient-domain flood sized from the key-dependent noise (a sanitising flood, independent of
        the key, is not), in integer units.

        ``count``: how many coefficients the receiver reads (default: all of them, as a
        sanitised ciphertext's decryption does); the flood hides their noise as one vector.
        """
        est = self.records.estimate(ct)
        if count is None:
            return flooding.sigma(float(est["key_l2_bound"]))
        return flooding.sigma(noise.l2_bound(est["key_variance"], est["key_spectral"], count))

    def released_count(self, ct: Ciphertext) -> int:
        """Values a release of ``ct`` shows: the coefficient positions read, one constant, or the slots' real parts."""
        if is_coeff(ct):
            return int(coeff_positions(ct, self.ring.n)[1].size)
        if is_constant(ct):
            return 1
        return int(ct.rows) * int(ct.size)

    def slot_weights(self, key) -> np.ndarray:
        """Per slot j, max(1, |s(zeta_j)|^2, |e(zeta_j)|^2 over their means across slots) for the public key's
        and every switching key's error e, heaviest first (cached per key).

        The noise model's slot variance is an average over keys; noise that depends on ``s``
        (rescale, key switch, public-key encryption) or on a key's error is heavier
        at a fixed key's heavy slots (up to ~ln(N/2) times the mean). The key holder knows
        both, so a release weights each released slot by them.
        """
        if key.key_id not in self._weights:
            parts = [np.asarray(key.data["s"], dtype=np.float64)]
            try:
                installed = self.keyset.installed()
            except KeyMissingError:  # no public key installed: s alone
                installed = None
            if installed is not None and installed.key_id == key.key_id:
                parts += self.key_errors(installed.data, self.keyset.s_full(key))
            weights = np.ones(self.ring.n // 2)
            for poly in parts:
                power = np.abs(encoder.decode(poly, 1.0)) ** 2
                if power.mean() > 0:
                    weights = np.maximum(weights, power / power.mean())
            self._weights[key.key_id] = np.sort(weights)[::-1].copy()  # heaviest first
        return self._weights[key.key_id]

    def key_errors(self, data: dict, s_full: np.ndarray) -> list[np.ndarray]:
        """The errors of the public key and of every switching key (each digit), centred coefficients.

        ``b + a s`` is the error on the last special prime, where a switching key's gadget
        term ``P g s'`` vanishes (on the first prime for the public key, which has none).
        """
        r, out = self.ring, []
        keys = [("pk", data["pk"][None])] + [("switch", data["relin"])] * ("relin" in data) + \
            [("switch", k) for k in data.get("galois", {}).values()]
        for kind, digits in keys:
            for b, a in digits:
                e = r.add(np.ascontiguousarray(b), r.mul(np.ascontiguousarray(a), s_full))
                # the first prime (and, for a switching key, the special primes: the transform wants them all)
                rows, special = ([0], False) if kind == "pk" else ([0, *range(e.shape[0] - len(r.p), e.shape[0])], True)
                limb = r.intt(np.ascontiguousarray(e[rows]), special=special)[-1].astype(np.int64)
                q = int(r.q[0]) if kind == "pk" else int(r.p[-1])
                out.append(np.where(limb > q // 2, limb - q, limb).astype(np.float64))
        return out

    def release_sigma(self, ct: Ciphertext, flooding: Flooding, phase_bound: float | None = None) -> float:
        """The flood of a release of ``ct``, integer units at its scale, on each released value.

        A coefficient layout (or a constant) releases coefficients: the flood is added to
        them and hides their noise vector. A slot layout releases real parts of slots,
        each a sum over the N coefficients (variance N nslot / 2, and Cov <= N nspec / 2 I:
        distinct slots' real parts are orthogonal rows of the decoding): the key holder
        adds the flood to those values only, so it hides the noise of what is released,
        not of the N coefficients (sqrt(k / N) of the coefficient-domain flood for k values).
        """
        est, count = self.records.estimate(ct), self.released_count(ct)
        if is_coeff(ct) or is_constant(ct):
            return flooding.sigma(noise.l2_bound(est["key_variance"], est["key_spectral"], count))
        half, weights = self.ring.n / 2.0, self._weights.get(ct.key_id)
        # The decode's own error is part of what the released values show of the noise (flooded_slots).
        decode = self.decode_error_bound(ct, phase_bound)
        if weights is None:  # no release under this key yet (a report ahead of one): the model's average
            return flooding.sigma(noise.l2_bound(half * est["key_slot_variance"], half * est["key_spectral"], count)
                                  + decode)
        # Rotations move a slot's noise to another slot, so which slots hold the heavy noise is not known:
        # the k released values are weighted as the k heaviest slots (each ciphertext of a batch alike).
        per_ct = -(-count // ct.data.shape[0])
        top = weights[:min(per_ct, weights.size)]
        trace = float(np.sum(top)) * ct.data.shape[0] + max(0, per_ct - weights.size) * float(top[-1])
        return flooding.sigma(noise.l2_bound(half * est["key_slot_variance"], half * est["key_spectral"],
                                             min(trace, count * float(top[0])), float(top[0])) + decode)

    def value_sigma(self, ct: Ciphertext, sigma: float) -> float:
        """Standard deviation of a released value's error in value units: the flood ``sigma`` (integer units)
        plus the noise already in the value (a coefficient's, or a slot's real part's: N nslot / 2)."""
        est = self.records.estimate(ct)
        own = float(est["variance"]) if is_coeff(ct) or is_constant(ct) else self.ring.n * float(ct.meta["nslot"]) / 2
        return math.sqrt(sigma**2 + own) / float(ct.scale)

    def report(self, ct: Ciphertext, flooding: Flooding) -> dict:
        """What a release of ``ct`` under ``flooding`` would add and keep (sigma, grid, precision)."""
        sigma = self.release_sigma(ct, flooding)
        value_sigma, est = self.value_sigma(ct, sigma), self.records.estimate(ct)
        return {"flooded": True, **flooding.describe(), "noise_bound_log2": math.log2(sigma) - flooding.factor_log2,
                "released_values": self.released_count(ct),
                "sigma_log2": math.log2(sigma), "value_sigma": value_sigma, "grid": release_grid(value_sigma),
                "level": layout.level(ct), "log2_scale": math.log2(ct.scale),
                "precision_bits_at_value_bound": precision_bits(float(est["value_bound"]), value_sigma)}

    def decrypt(self, ct: Ciphertext, key, flooding: Flooding, rng) -> np.ndarray:
        """A flooded, rounded decryption of ``ct`` for release.

        Raises:
            PrecisionError: fewer than ``flooding.min_precision_bits`` bits would remain.
        """
        self.slot_weights(key)
        if is_coeff(ct) or is_constant(ct):
            sigma = self.release_sigma(ct, flooding)
            values = self.flooded_coefficients(ct, key, sigma, rng)
        else:
            phases = self.precise_phases(ct, key)
            sigma = self.release_sigma(ct, flooding, self.phase_bound(ct, phases))
            values = self.flooded_slots(ct, key, sigma, rng, phases)
        value_sigma = self.value_sigma(ct, sigma)
        grid = release_grid(value_sigma)
        released = np.round(values / grid) * grid
        largest = float(np.max(np.abs(values))) if values.size else 0.0  # before rounding: never 0 by rounding
        bits = precision_bits(largest, value_sigma)
        if flooding.min_precision_bits > 0 and values.size and bits < flooding.min_precision_bits:
            raise PrecisionError(f"cannot release {ct.describe()}: flooding for {flooding.queries} released "
                                 f"decryption(s) at {flooding.statistical_bits}-bit statistical security leaves "
                                 f"{bits:.1f} bits of precision (need {flooding.min_precision_bits}); use a larger "
                                 f"scale at level {layout.level(ct)} (now 2^{math.log2(ct.scale):.1f}) or fewer "
                                 "queries")
        return released

    def flooded_coefficients(self, ct: Ciphertext, key, sigma: float, rng) -> np.ndarray:
        """The released coefficients (table positions, or the constant) of ``ct``'s phase plus an integer flood."""
        phases = self.decryptor.phase_limbs(ct, self.keyset.s_full(key))
        nl = layout.level(ct) + 1
        flooded = []
        for m in phases:
            noise_ = self.ring.from_signed(rng.gaussian(sigma, self.ring.n, bound=12.0 * sigma), nl)
            flooded.append(self.decryptor.lift(self.ring.add(m, noise_)))
        if is_constant(ct):  # one value in every slot: the polynomial's constant coefficient
            return np.array([[flooded[0][0] / ct.scale]])
        which, pos = coeff_positions(ct, self.ring.n)
        return np.array(flooded)[which, pos] / ct.scale

    def precise_phases(self, ct: Ciphertext, key) -> list[np.ndarray]:
        """Each ciphertext's phase as centred long-double coefficients (see :meth:`flooded_slots`)."""
        return [self.decryptor.lift_precise(m) for m in self.decryptor.phase_limbs(ct, self.keyset.s_full(key))]

    def flooded_slots(self, ct: Ciphertext, key, sigma: float, rng, phases: list | None = None) -> np.ndarray:
        """The released values (slots' real parts) of ``ct``, each plus a Gaussian of ``sigma`` (integer units).

        The flood is drawn at a resolution of 2^-FLOOD_RESOLUTION_LOG2 sigma, far below the
        release's grid (>= sigma / 2), so it is a Gaussian to the rounding that follows
        whatever sigma's size (no integer sampler's 2^48 limit).
        """
        # In long double: the decode's own error comes before the flood, so it must be small and bounded
        # (decode_error_bound, in release_sigma); everything after the flood is post-processing.
        if phases is None:  # (decrypt passes the phases it has checked)
            phases = self.precise_phases(ct, key)
            self.phase_bound(ct, phases)  # refuses a phase beyond its record
        slots = np.array([encoder.decode_precise(c) for c in phases])
        exact = np.ascontiguousarray(layout.unpack(slots, ct.rows, ct.size, ct.meta["stride"]).real)
        unit = 2.0**FLOOD_RESOLUTION_LOG2
        flood = rng.gaussian(unit, exact.size, bound=12.0 * unit).reshape(exact.shape) * (sigma / unit)
        return np.asarray((exact + flood.astype(np.longdouble)) / np.longdouble(ct.scale), dtype=np.float64)

    def decode_error_bound(self, ct: Ciphertext, phase_bound: float | None = None) -> float:
        """A bound on the L2 norm of the long-double decode's error over every slot of ``ct`` (integer units).

        ``phase_bound`` bounds each ciphertext's phase ||m||_2 (:meth:`phase_bound`); without it, the
        record's (:meth:`_coeff_l2_bound`), or 0 when the record has no value bound (a report only:
        a release always passes the bound it checked).
        """
        bound = self._coeff_l2_bound(ct) if phase_bound is None else float(phase_bound)
        if not math.isfinite(bound):
            return 0.0
        return math.sqrt(ct.data.shape[0]) * encoder.decode_error_bound(self.ring.n, bound)

    def phase_bound(self, ct: Ciphertext, phases: list[np.ndarray]) -> float:
        """The bound on each phase's L2 norm a release's decode term uses.

        The record's (scale vmax + 6 sqrt(N nspec): slots of value at most vmax, noise of
        spectral variance nspec), checked against the phases: the decode's bound, like the
        noise bound B, rests on the record, and a phase beyond it (a declared bound below the
        values, or a ciphertext that lies) is refused. A record without a value bound (a key
        holder's fresh re-encryption of a result) takes the phases' own norm rounded up to a
        power of two: it depends on the noise only where the norm crosses one, a chance of
        about ||e|| / ||m|| (2^-40 and less).

        Raises:
            HEOverflowError: a phase beyond its record's bound.
        """
        actual = max((float(np.sqrt(np.sum(c * c))) for c in phases), default=0.0)
        record = self._coeff_l2_bound(ct)
        if not math.isfinite(record):
            return 2.0 ** math.ceil(math.log2(max(actual, 1.0)))
        if actual > record:
            raise HEOverflowError(f"cannot release {ct.describe()}: its values exceed their recorded bound "
                                  f"(vmax {float(ct.meta['vmax']):.4g} at scale 2^{math.log2(ct.scale):.1f})")
        return record

    def _coeff_l2_bound(self, ct: Ciphertext) -> float:
        """The record's bound on each ciphertext's phase, ||m||_2 (inf when it has no value bound)."""
        with np.errstate(over="ignore"):
            return float(ct.scale) * float(ct.meta["vmax"]) + 6.0 * math.sqrt(self.ring.n * float(ct.meta["nspec"]))

    def declare_bound(self, ct: Ciphertext, bound: float) -> Ciphertext:
        """``ct`` with its value bound lowered to a declared ``bound`` (the noise record kept)."""
        var, vmax = self.records.nv(ct)
        return self.records.noisy(ct, var, min(vmax, bound), keep_flood=True)

    def sanitize(self, ct: Ciphertext, flooding: Flooding, rng, count: int | None = None) -> Ciphertext:
        """``ct`` plus a fresh public-key encryption of zero and a flood that hides its own noise.

        ``count``: the coefficients whose noise the receiver can read (default: all of them;
        fewer where the caller has padded the rest with a one-time pad).
        """
        ct = self.evaluator.relin(ct)
        sigma = self.flood_sigma(ct, flooding, count)  # this party's own noise (an earlier flood needs no hiding)
        nl = layout.level(ct) + 1
        public = self.keyset.for_key(ct.key_id, "sanitise").data["pk"]
        data = ct.data.copy()
        for i in range(data.shape[0]):
            z0, z1 = self.encryptor.public_zero(public, rng, nl)
            flood = self.ring.ntt(self.ring.from_signed(rng.gaussian(sigma, self.ring.n, bound=12.0 * sigma), nl))
            self.ring.add(data[i, 0], np.ascontiguousarray(z0[:nl]), data[i, 0])
            self.ring.add(data[i, 0], flood, data[i, 0])
            self.ring.add(data[i, 1], np.ascontiguousarray(z1[:nl]), data[i, 1])
        zero = self.noise.fresh(True) - noise.ROUND_VAR  # the encryption of zero: its noise involves the key
        var, vmax = self.records.nv(ct)
        flood = float(ct.meta.get("flood", 0.0)) + sigma**2  # earlier floods stay independent of the key too
        out = self.records.noisy(ct.replace(data=data), var + zero + sigma**2, vmax)
        return out.replace(meta={**out.meta, "flood": float(min(flood, out.meta["nvar"]))})
