"""Released CKKS decryptions (noise-flooded, rounded) and sanitised ciphertexts.

The release role of :class:`~he_core.schemes.ckks.scheme.CkksScheme`; see :mod:`he_core.flooding`
for why and how much. A released decryption:

1. computes the phase ``c0 + c1 s`` exactly, as RNS limbs;
2. adds integer Gaussian noise of standard deviation ``flooding.sigma(B)`` to every
   coefficient, where ``B`` is the analytic bound on the ciphertext's noise
   coefficients (:meth:`noise_estimate`);
3. decodes (slots or coefficient positions) and rounds every value to the power-of-two
   grid at or below the flooding's standard deviation in value units (for slots,
   ``sigma * sqrt(N / 2) / scale``: a slot's real part sums N coefficients);
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
from ...errors import PrecisionError
from ...flooding import Flooding, precision_bits, release_grid
from . import encoder, layout, noise
from .arith import Evaluator
from .coeff_layout import coeff_positions, is_coeff, is_constant
from .context import CkksContext
from .decryption import Decryptor
from .encryption import Encryptor
from .keyset import KeySet
from .noise_records import NoiseRecords


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

    def flood_sigma(self, ct: Ciphertext, flooding: Flooding) -> float:
        """Flooding sized from the key-dependent noise (a sanitising flood, independent of the key, is not)."""
        return flooding.sigma(float(self.records.estimate(ct)["key_coeff_bound"]))

    def value_sigma(self, ct: Ciphertext, sigma: float) -> float:
        """Standard deviation of the released values' error in value units, for this layout.

        A value read from one coefficient (a table entry, or a constant polynomial's
        coefficient 0) carries one coefficient's flooding; a slot sums N of them.
        """
        spread = 1.0 if is_coeff(ct) or is_constant(ct) else math.sqrt(self.ring.n / 2.0)
        return sigma * spread / float(ct.scale)

    def report(self, ct: Ciphertext, flooding: Flooding) -> dict:
        """What a release of ``ct`` under ``flooding`` would add and keep (sigma, grid, precision)."""
        sigma = self.flood_sigma(ct, flooding)
        value_sigma = self.value_sigma(ct, math.sqrt(sigma**2 + float(self.records.estimate(ct)["variance"])))
        est = self.records.estimate(ct)
        return {"flooded": True, **flooding.describe(), "noise_bound_log2": math.log2(max(est["key_coeff_bound"], 1.0)),
                "sigma_log2": math.log2(sigma), "value_sigma": value_sigma, "grid": release_grid(value_sigma),
                "level": layout.level(ct), "log2_scale": math.log2(ct.scale),
                "precision_bits_at_value_bound": precision_bits(float(est["value_bound"]), value_sigma)}

    def decrypt(self, ct: Ciphertext, key, flooding: Flooding, rng) -> np.ndarray:
        """A flooded, rounded decryption of ``ct`` for release.

        Raises:
            PrecisionError: fewer than ``flooding.min_precision_bits`` bits would remain.
        """
        sigma = self.flood_sigma(ct, flooding)
        phases = self.decryptor.phase_limbs(ct, self.keyset.s_full(key))
        nl = layout.level(ct) + 1
        flooded = []
        for m in phases:
            noise = self.ring.from_signed(rng.gaussian(sigma, self.ring.n, bound=12.0 * sigma), nl)
            flooded.append(self.decryptor.lift(self.ring.add(m, noise)))
        if is_coeff(ct):
            which, pos = coeff_positions(ct, self.ring.n)
            values = np.array(flooded)[which, pos] / ct.scale
        elif is_constant(ct):  # one value in every slot: the polynomial's constant coefficient
            values = np.array([[flooded[0][0] / ct.scale]])
        else:
            slots = np.array([encoder.decode(c, ct.scale) for c in flooded])
            values = np.ascontiguousarray(layout.unpack(slots, ct.rows, ct.size, ct.meta["stride"]).real)
        # The released error: the flood, plus the noise already in the ciphertext (for a
        # sanitised one, its own flood).
        total = math.sqrt(sigma**2 + float(self.records.estimate(ct)["variance"]))
        value_sigma = self.value_sigma(ct, total)
        grid = release_grid(value_sigma)
        released = np.round(values / grid) * grid
        largest = float(np.max(np.abs(values))) if values.size else 0.0  # before rounding: never 0 by rounding
        bits = precision_bits(largest, value_sigma)
        if flooding.min_precision_bits > 0 and values.size and bits < flooding.min_precision_bits:
            raise PrecisionError(f"cannot release {ct.describe()}: flooding for {flooding.queries} released "
                                 f"decryption(s) at {flooding.statistical_bits}-bit statistical security leaves "
                                 f"{bits:.1f} bits of precision (need {flooding.min_precision_bits}); use a larger "
                                 f"scale at level {nl - 1} (now 2^{math.log2(ct.scale):.1f}) or fewer queries")
        return released

    def declare_bound(self, ct: Ciphertext, bound: float) -> Ciphertext:
        """``ct`` with its value bound lowered to a declared ``bound`` (the noise record kept)."""
        var, vmax = self.records.nv(ct)
        return self.records.noisy(ct, var, min(vmax, bound), keep_flood=True)

    def sanitize(self, ct: Ciphertext, flooding: Flooding, rng) -> Ciphertext:
        """``ct`` plus a fresh public-key encryption of zero and a flood that hides its own noise."""
        ct = self.evaluator.relin(ct)
        sigma = self.flood_sigma(ct, flooding)  # hides this party's own noise (an earlier flood needs no hiding)
        nl = layout.level(ct) + 1
        public = self.keyset.installed().data["pk"]
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
