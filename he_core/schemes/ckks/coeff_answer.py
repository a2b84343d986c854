"""One linear layer on coefficient-packed queries: a plaintext-polynomial product, a pad, a sanitisation.

The coefficient-answer role of :class:`~he_core.schemes.ckks.scheme.CkksScheme`
(:class:`he_core.protocols.CoeffAnswers`). For F features and K outputs, a block is
``S = next_pow2(F K)`` coefficients; query ``q`` is block ``q`` with feature ``i`` at
coefficient ``q S + i K`` (a clean table of ``(count, F K)`` values, zeros between the
features). The weight polynomial holds ``w[i, k]`` at ``X^(S - 1 - i K - k)``, so in the
product coefficient ``q S + S - 1 - k`` is ``sum_i x[q, i] w[i, k]`` exactly: a reversed
table of shape ``(count, K)``. The convolution of block ``q`` reaches at most ``(F - 1) K``
coefficients into block ``q + 1`` (negated into block 0 for the last block), below that
block's outputs since ``F K <= S``: no query's products reach another's outputs.

Every other coefficient holds a shifted partial correlation of ``x`` and ``w``; decrypted,
they would give the weights away. Before the sanitisation (re-randomisation with the
client's public key and a flood) a one-time pad, uniform modulo every limb, is added at
each of them (zero at the outputs), so the client's decryption there is uniform whatever
the weights. The flood then need hide only the noise the client can read: the vector of
the ``count K`` output coefficients (its L2 norm, :mod:`he_core.flooding`).

Scales: the query is encrypted at ``2^(log2 Q - WEIGHT_ROOM_BITS)`` at the top level; the
weights at the largest power of two ``Delta_w`` for which the outputs' bound and the
flood fit the lowest level that holds ``Delta_w >= 2^MIN_WEIGHT_BITS`` (and the flood's
sigma, proportional to ``Delta_w``, stays within the Gaussian sampler's range). The
answer's error is about ``sigma / (Delta_x Delta_w)``, which does not depend on ``Delta_w``. The answer is
left there (no rescale: the product's scale is ``Delta_x Delta_w``).
"""
from __future__ import annotations

import math

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import EncodingError, MismatchError
from ...flooding import Flooding
from ...keys import SecretKey
from ...randomness import MAX_GAUSSIAN_LOG2
from . import encoder, layout, noise
from .coeff_layout import coeff_meta, coeff_polys, is_coeff
from .context import CkksContext
from .encryption import Encryptor
from .keyset import KeySet
from .noise_records import NoiseRecords
from .params import CkksParams
from .release import Releaser

#: Bits of the top modulus left above the query's scale: the weights' scale and the outputs' bound live there.
WEIGHT_ROOM_BITS = 26
#: The weights' scale is at least this (their rounding then errs by at most 2^-(MIN_WEIGHT_BITS + 1) each).
MIN_WEIGHT_BITS = 10
#: Margin, in bits, kept between the answer's bound (outputs plus 13 flood sigmas) and Q_level / 2.
ANSWER_MARGIN_BITS = 2
#: The sets tried, smallest ring first. No key switching happens, but the public key lives over
#: Q * P, so the special prime counts toward the HomomorphicEncryption.org bound (4096: 109, 8192: 218).
CANDIDATES = ({"poly_degree": 4096, "levels": 1, "first_bits": 37, "scale_bits": 35, "special_bits": 37},
              {"poly_degree": 8192, "levels": 1, "first_bits": 60, "scale_bits": 58, "special_bits": 60})


def block(features: int, outputs: int) -> int:
    """A query's block of coefficients: F K to a power of two."""
    return 1 << max(0, features * outputs - 1).bit_length()


class CoeffAnswerer:
    """Query layout, weight polynomial, pad and sanitisation of a coefficient answer.

    Args:
        ctx: the parameter set's objects; keyset: the secret's NTT form; records: noise records;
        evaluator: unused (the scheme's role tuple); encryptor: secret-key encryptions; decryptor:
        unused; releaser: the sanitisation.
    """

    def __init__(self, ctx: CkksContext, keyset: KeySet, records: NoiseRecords, evaluator, encryptor: Encryptor,
                 decryptor, releaser: Releaser) -> None:
        self.ctx, self.params, self.ring, self.keyset = ctx, ctx.params, ctx.ring, keyset
        self.records, self.encryptor, self.releaser = records, encryptor, releaser

    @staticmethod
    def candidate(step: int) -> CkksParams | None:
        return CkksParams(**CANDIDATES[step]) if step < len(CANDIDATES) else None

    def capacity(self, features: int, outputs: int) -> int:
        return max(0, self.ring.n // block(features, outputs))

    def query_scale(self) -> float:
        top = sum(math.log2(q) for q in self.ring.q)
        return 2.0 ** (math.floor(top) - WEIGHT_ROOM_BITS)

    def encrypt_query(self, x: np.ndarray, outputs: int, key: SecretKey, bound: float, rng) -> Ciphertext:
        """The spread values (feature i at column i K) under ``key``, a clean table at the top level.

        Not through ``encrypt``'s range check: that one keeps room for rescaling to q_0, and
        this ciphertext is never rescaled (its range is the whole top modulus).

        Raises:
            EncodingError: ``bound`` at the query's scale does not leave the weights their room.
        """
        count, features = x.shape
        spread = np.zeros((count, features * outputs))
        spread[:, ::outputs] = x
        scale, s, level = self.query_scale(), block(features, outputs), self.params.levels
        if bound > 2.0 ** (WEIGHT_ROOM_BITS // 2):
            raise EncodingError(f"cannot encrypt a coefficient query: bound {bound:.4g} leaves the weights too "
                                f"little of the modulus (at most 2^{WEIGHT_ROOM_BITS // 2})")
        pts = [self.ring.ntt(self.ring.from_signed(c, level + 1)) for c in coeff_polys(spread, s, False, scale,
                                                                                         self.ring.n)]
        seeds: list[bytes] = []
        data = self.encryptor.encrypt_pts(pts, level + 1, rng, secret=self.keyset.s_full(key), seeds_out=seeds)
        meta = self.records.meta(coeff_meta(level, s, False, dirty=False), level,
                                 *self.encryptor.fresh_noise(spread, scale, None))
        meta["vmax"] = float(bound)  # the public bound, not the values' size
        return self.encryptor.seeded(self.ctx.ciphertext(key.key_id, spread.shape, scale, data, meta), seeds)

    def check_query(self, query: Ciphertext, features: int, outputs: int) -> None:
        """Refuse anything but a fresh, clean query of this layout (the server's word on its noise follows)."""
        s = block(features, outputs)
        fresh = (is_coeff(query) and not query.meta["rev"] and not query.meta["dirty"] and query.meta["stride"] == s
                 and query.shape[1] == features * outputs and 1 <= query.rows <= self.capacity(features, outputs)
                 and query.data.shape[:2] == (1, 2) and layout.level(query) == self.params.levels
                 and query.scale == self.query_scale())
        if not fresh:
            raise MismatchError(f"cannot answer: {query.describe()} is not a fresh coefficient-packed query of "
                                f"{features} features for {outputs} outputs (stride {s}, top level, scale "
                                f"2^{math.log2(self.query_scale()):.0f})")

    def answer(self, query: Ciphertext, w: np.ndarray, b: np.ndarray, flooding: Flooding, rng) -> Ciphertext:
        """The sanitised answer to a received query (see the module): product, bias, pad, sanitisation."""
        features, outputs = w.shape
        self.check_query(query, features, outputs)
        level, wbits = self.weight_scale(query, w, b, flooding)
        nl, n, s = level + 1, self.ring.n, block(features, outputs)
        wscale = 2.0**wbits
        poly = self.weight_poly(w, wscale)
        pt = self.ring.ntt(self.ring.from_signed(poly, nl))
        data = np.empty((1, 2, nl, n), dtype=np.uint64)
        for p in range(2):
            self.ring.mul(np.ascontiguousarray(query.data[0, p, :nl]), pt, data[0, p])
        scale = float(query.scale) * wscale
        self.ring.add(data[0, 0], self.ring.ntt(self.pad_and_bias(query.rows, s, b, scale, nl, rng)), data[0, 0])
        meta = self.records.meta(coeff_meta(level, s, True, dirty=True), level,
                                 self.product_var(self.records.nv(query)[0], poly), self.output_bound(query, w, b))
        out = query.replace(data=data, shape=(query.rows, outputs), scale=scale, meta=meta)
        # the pad hides every other coefficient whatever its noise: the flood hides the outputs' noise vector
        return self.releaser.sanitize(out, flooding, rng, count=query.rows * outputs)

    def weight_poly(self, w: np.ndarray, wscale: float) -> np.ndarray:
        """The weight polynomial (integer coefficients): ``rint(w[i, k] wscale)`` at ``X^(S - 1 - i K - k)``."""
        features, outputs = w.shape
        poly = np.zeros(self.ring.n, dtype=np.int64)
        i, k = np.meshgrid(np.arange(features), np.arange(outputs), indexing="ij")
        poly[block(features, outputs) - 1 - i * outputs - k] = np.rint(w * wscale).astype(np.int64)
        return poly

    @staticmethod
    def product_var(nv: np.ndarray, poly: np.ndarray) -> np.ndarray:
        """(nvar, nslot, nspec) of a query times the integer polynomial ``poly`` (:mod:`.noise`'s rules): a
        coefficient's variance is at most nspec ||poly||^2, the slots' and the spectral bound scale by the
        largest |poly(zeta)|^2 (identical output columns add coherently there); plus the rounding."""
        norm2 = float(np.sum(poly.astype(np.float64) ** 2))
        peak = float(np.max(np.abs(encoder.decode(poly.astype(np.float64), 1.0)) ** 2, initial=0.0))
        nvar, nslot, nspec = (float(v) for v in nv)
        return np.array([nspec * norm2, nslot * peak, nspec * peak]) + noise.ROUND_VAR

    def pad_and_bias(self, count: int, s: int, b: np.ndarray, scale: float, nl: int, rng) -> np.ndarray:
        """Coefficient form, per limb: the bias at the outputs, a uniform residue at every other coefficient."""
        n, outputs = self.ring.n, b.size
        at = (np.arange(count)[:, None] * s + s - 1 - np.arange(outputs)[None, :]).ravel()
        # scale is a power of two times the query's: b * scale is exact in floating point, its rint an integer
        values = [int(v) for v in np.tile(np.rint(b * scale), count)]
        out = np.empty((nl, n), dtype=np.uint64)
        for limb, q in enumerate(self.ring.q[:nl]):
            out[limb] = self.uniform(q, n, rng)
            out[limb, at] = np.array([v % q for v in values], dtype=np.uint64)
        return out

    @staticmethod
    def uniform(q: int, n: int, rng) -> np.ndarray:
        """The pad of one limb: n residues uniform modulo q."""
        return rng.uniform_mod(q, n)

    def output_bound(self, query: Ciphertext, w: np.ndarray, b: np.ndarray) -> float:
        """Bound on |output| for inputs in the query's (received) value bound."""
        return float(np.max(float(query.meta["vmax"]) * np.sum(np.abs(w), axis=0) + np.abs(b)))

    def weight_scale(self, query: Ciphertext, w: np.ndarray, b: np.ndarray, flooding: Flooding) -> tuple[int, int]:
        """(level, log2 Delta_w): the lowest level holding Delta_w >= 2^MIN_WEIGHT_BITS, the largest that fits it.

        Raises:
            MismatchError: no level holds the outputs and the flood (weights too large for the set).
        """
        bound, nvar = self.output_bound(query, w, b), self.records.nv(query)[0]

        def fits(bits: int, room: float) -> bool:
            key = self.product_var(nvar, self.weight_poly(w, 2.0**bits))
            # as the sanitisation sizes it: over the outputs the client reads (the pad hides the rest)
            sigma = flooding.sigma(noise.l2_bound(key[0], key[2], query.rows * w.shape[1]))
            # the flood's sampler holds 2^MAX_GAUSSIAN_LOG2 (a power of two less: the sanitisation's own bound)
            return sigma < 2.0 ** (MAX_GAUSSIAN_LOG2 - 1) and \
                math.log2(query.scale * 2.0**bits * bound + 13.0 * sigma) <= room

        for level in range(self.params.levels + 1):
            room = sum(math.log2(q) for q in self.ring.q[:level + 1]) - 1 - ANSWER_MARGIN_BITS
            low, high = MIN_WEIGHT_BITS, int(room - math.log2(query.scale))
            if high < low or not fits(low, room):
                continue
            # the outputs and the flood grow with Delta_w: bisect for the largest that fits (an FFT a try)
            while low < high:
                mid = (low + high + 1) // 2
                low, high = (mid, high) if fits(mid, room) else (low, mid - 1)
            return level, low
        raise MismatchError(f"cannot answer: outputs up to {bound:.4g} and their flood do not fit "
                            f"{query.describe()} with weights at 2^{MIN_WEIGHT_BITS} or more")
