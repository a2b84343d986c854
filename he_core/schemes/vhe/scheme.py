"""The vhe scheme: Zhou-Wornell integer-vector homomorphic encryption, exact and NOT secure.

A vector of m fixed-point values is encoded as integers X = round(v * 2^f) and
encrypted as c in Z^(m+k) with S c = w X + e under the secret S = [I | T]; decryption
is round(S c / w) / 2^f. There is no modulus: every integer is exact, stored in int64,
accumulated in 128 bits, and every result that would leave the parameters' range
raises instead of wrapping. Key switching (digit decomposition times a public matrix)
gives public-key encryption, ciphertext products, inner products, linear maps,
re-randomisation and re-keying. See ``SECURITY.md``: the public key switch matrices
give the secret away by least squares, so this scheme is for teaching and testing.

Its noise rules, ranges, error per operation and costs at the default parameters are
in ``docs/noise.md`` ("The vhe scheme"), with the measurements behind them.
"""
from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from ...capabilities import Capability
from ...ciphertext import Ciphertext
from ...errors import (EncodingError, HEOverflowError, KeyMissingError, MismatchError, NoiseBudgetExhausted,
                       SecurityWarning)
from ...keys import KeyPair, KeyRequirements, PublicKeys, SecretKey, SwitchKey, derive_key_id
from ...optional import LinearMapping, MaskedRefreshing, Products, Rekeying, Sanitization
from ...randomness import RandomSource, resolve
from ...scheme import Budget, Scheme
from . import kernels, keygen
from .forecast import NoiseForecast
from .params import VheParams
from .products import VheProductsMixin
from .refresh import VheRefreshMixin

_warned = False


def _security_warning() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn("the vhe scheme is NOT secure: it has no modulus, so least squares on any public "
                      "key-switch matrix recovers the secret key, and rounding a ciphertext by w leaks the "
                      "plaintext (Bogos, Gaspoz & Vaudenay 2018). Use it for teaching and tests only; "
                      "see SECURITY.md.", SecurityWarning, stacklevel=3)


class VheScheme(VheProductsMixin, VheRefreshMixin, Products, LinearMapping, Rekeying, MaskedRefreshing, Sanitization, Scheme):
    """Integer-vector HE of Zhou and Wornell (see the module docstring for bounds)."""

    name = "vhe"
    params_class = VheParams
    capabilities = frozenset({
        Capability.PUBLIC_KEY_ENCRYPT, Capability.CIPHER_MULTIPLY, Capability.INNER_PRODUCT,
        Capability.LINEAR_TRANSFORM, Capability.RESCALE, Capability.REKEY, Capability.EXACT,
        Capability.REFRESH, Capability.SANITIZE, Capability.SERIALIZE,
    })

    def __init__(self, params: VheParams):
        super().__init__(params)
        p = params
        # Plain Python ints cached once: the per-call bookkeeping reads them on every op.
        self._w, self._half_w, self._f = p.w, p.w // 2, p.scale
        self._k, self._kt, self._limit = p.k, p.k * p.t_bound, p.limit
        self._b, self._ell = p.digit_bits, p.ell
        self._swn, self._swt = p.switch_noise(1), p.switch_tail(1)  # per input entry of a key switch
        self._e_bound = p.e_bound  # a key switch adds at most e_bound * (sum of |digits| switched) noise
        self._round_l1 = (p.key_l1 + 1) // 2          # rounding one ciphertext: |S delta| <= L1(S)/2
        self._round_l1sq = (p.key_l1 ** 2 + 1) // 2   # rounding one tensor: L1 of a tensor-key row squared
        self._ones = np.ones(1, dtype=np.int64)
        self._xmax = (self._limit - self._half_w) // self._w  # largest encodable |integer|
        self._neg1 = -self._ones
        self._forecast = NoiseForecast(self)

    # ------------------------------------------------------------------ bookkeeping
    def _make(self, key_id: str, rows: int, m: int, scale: float, data: np.ndarray, noise: int,
              stats) -> Ciphertext:
        return Ciphertext("vhe", self.params_id, key_id, (rows, m), scale, data,
                          {"noise": noise, "head": int(stats[0]), "tail": int(stats[1])}, self.params)

    def _value_bound(self, ct: Ciphertext) -> int:
        """Bound on |X| (the scaled message): |w X| <= |S c| + noise <= head + k t tail + noise."""
        meta = ct.meta
        return (meta["head"] + self._kt * meta["tail"] + meta["noise"]) // self._w + 1

    def _check_noise(self, noise: int, op: str) -> int:
        if noise >= self._half_w:
            raise NoiseBudgetExhausted(
                f"cannot {op}: the result's noise bound 2^{math.log2(noise):.1f} would reach w/2 = "
                f"2^{self.params.w_bits - 1}; decrypt and re-encrypt (refresh) first, or use larger w_bits")
        return noise

    def _check_range(self, value_bound: int, noise: int, tail: int, op: str, scale: float | None = None) -> None:
        """Refuse a result whose entries could pass 2^magnitude_bits; ``value_bound`` is in units of the
        result's ``scale`` (default the working scale), which the message converts back to values."""
        if self._w * value_bound + noise + self._kt * tail > self._limit:
            s = float(self._f if scale is None else scale)
            raise HEOverflowError(
                f"cannot {op}: values up to ~{value_bound / s:.4g} (at scale 2^{math.log2(s):g}) would exceed the "
                f"largest representable entry 2^{self.params.magnitude_bits} (|v| < "
                f"{self.params.max_value * self._f / s:.4g} at that scale); rescale, shrink the values "
                "or lower w_bits")

    @staticmethod
    def _same_scale(a: Ciphertext, b: Ciphertext, op: str) -> None:
        if a.scale != b.scale:
            raise MismatchError(f"cannot {op}: scales differ (2^{math.log2(a.scale):g} and 2^{math.log2(b.scale):g}); "
                                f"rescale the product first")

    def _key(self, kind: str, m: int, op: str) -> np.ndarray:
        public = self.public_keys
        try:
            return public.data[kind][str(m)]
        except KeyError:
            raise KeyMissingError(
                f"cannot {op}: the public keys have no {_KINDS[kind]} key for vectors of size {m}; list {m} in "
                f"KeyRequirements(sizes=...) when the key holder runs keygen") from None

    @staticmethod
    def _secret_t(key: SecretKey, m: int, op: str) -> np.ndarray:
        try:
            return key.data["T"][str(m)]
        except KeyError:
            raise KeyMissingError(f"cannot {op}: the secret key has no part for vectors of size {m}; list {m} in "
                                  f"KeyRequirements(sizes=...) at keygen") from None

    def _encode(self, values: np.ndarray, scale: float, op: str) -> np.ndarray:
        """Integers round(values * scale), refused (EncodingError) beyond the representable range."""
        return self._encode_with_max(values, scale, op)[0]

    def _encode_with_max(self, values: np.ndarray, scale: float, op: str) -> tuple[np.ndarray, int]:
        """:meth:`_encode` and the largest |integer| it produced."""
        if values.size == 1:  # one number (a refreshed scalar): plain Python is cheaper
            x = self._encode_scalar(float(values.flat[0]), scale, op)
            return np.full(values.shape, x, dtype=np.int64), abs(x)
        scaled = np.rint(values * scale)
        top = float(np.abs(scaled).max()) if scaled.size else 0.0
        if top > self._xmax:
            self._too_large(float(np.abs(values).max()), scale, op)
        return scaled.astype(np.int64), int(top)

    def _encode_scalar(self, value: float, scale: float, op: str) -> int:
        """The scalar case of :meth:`_encode`, in plain Python (the hot path of mul_plain / add_plain)."""
        x = round(value * scale)  # half-to-even, like np.rint
        if abs(x) > self._xmax:
            self._too_large(abs(value), scale, op)
        return x

    def _too_large(self, value: float, scale: float, op: str) -> None:
        raise EncodingError(f"cannot {op}: |value| up to {value:.4g} exceeds the range of the parameters "
                            f"({self._xmax / scale:.4g} at scale 2^{math.log2(scale):g})")

    def _scale_of(self, scale: float | None) -> float:
        if scale is None:
            return float(self._f)
        s = float(scale)
        if not (s >= 1 and math.log2(s).is_integer() and s <= self._f ** 2):
            raise EncodingError(f"vhe scales are powers of two between 1 and 2^{2 * self.params.scale_bits}, "
                                f"got {scale}")
        return s

    # ------------------------------------------------------------------ keys
    def _keygen(self, requirements: KeyRequirements, rng: RandomSource) -> KeyPair:
        _security_warning()
        sizes = sorted(set(requirements.sizes) | {1})
        secrets = {m: keygen.new_secret(self.params, m, rng) for m in sizes}
        material = keygen.public_material(self.params, secrets, rng)
        key_id = derive_key_id(self.name, self.params_id, self.key_id_material(material))
        secret = SecretKey(self.name, self.params_id, key_id, {"T": {str(m): t for m, t in secrets.items()}},
                           requirements, self.params)
        public = PublicKeys(self.name, self.params_id, key_id, material, requirements, self.params)
        return KeyPair(secret, public)

    def _make_switch_key(self, old: SecretKey, new: SecretKey, rng: RandomSource) -> SwitchKey:
        mats = {}
        for size, t_old in old.data["T"].items():
            if size in new.data["T"]:
                mats[size] = keygen.switch_matrix(keygen.full_key(t_old), new.data["T"][size], self.params, rng)
        return SwitchKey(self.name, self.params_id, old.key_id, new.key_id, {"kind": "rekey", "mt": mats}, self.params)

    # ------------------------------------------------------------------ encryption
    def _encrypt_secret(self, values, key, scale, rng) -> Ciphertext:
        s = self._scale_of(scale)
        x, xmax = self._encode_with_max(values, s, "encrypt")
        rows, m = x.shape
        t = self._secret_t(key, m, "encrypt")
        p = self.params
        # One draw for the key columns and the noise: each CSPRNG draw has a fixed cost that
        # dominates small encryptions. The noise is folded into its range from the same words.
        data = rng.integers(-p.tail_bound, p.tail_bound, (rows, m + p.k))
        kernels.encrypt_secret(x, t, self._w, p.enc_noise, data)  # head = w x + noise - T tail, in place
        # Magnitude bounds from the construction instead of two reductions over the result:
        # |head| <= w |x| + noise + k t_bound tail_bound and |tail| <= tail_bound.
        stats = (xmax * self._w + p.enc_noise + self._kt * p.tail_bound, p.tail_bound)
        return self._make(key.key_id, rows, m, s, data, p.enc_noise, stats)

    def _encrypt_public(self, values, public, scale, rng) -> Ciphertext:
        s = self._scale_of(scale)
        x = self._encode(values, s, "encrypt")
        rows, m = x.shape
        mt = self._key("pub", m, "encrypt with the public key")
        noise = self.params.enc_noise
        c0 = self._w * x + rng.integers(-noise, noise, (rows, m))  # under the identity key
        data, stats = kernels.keyswitch(c0, mt, self._b, self._ell, m, self._limit)
        return self._make(public.key_id, rows, m, s, data, noise + self._e_bound * int(stats[2]), stats)

    def _check_ct(self, a: Ciphertext) -> None:
        super()._check_ct(a)
        data, (rows, size) = a.data, a.shape
        if (not isinstance(data, np.ndarray) or (data.dtype is not _INT64 and data.dtype != _INT64)
                or data.shape != (rows, size + self._k) or not data.flags.c_contiguous):
            raise MismatchError(f"{a.describe()} is malformed: expected a C-contiguous int64 array of shape "
                                f"({rows}, {size + self._k})")
        meta = a.meta  # every operand of every operation passes here: plain comparisons, no generator
        n, h, t = (meta.get("noise"), meta.get("head"), meta.get("tail")) if isinstance(meta, dict) else (None,) * 3
        if not (type(n) is int and type(h) is int and type(t) is int
                and 0 <= n < _META_LIMIT and 0 <= h < _META_LIMIT and 0 <= t < _META_LIMIT):
            raise MismatchError(f"{a.describe()} has malformed bounds metadata (noise, head, tail must be "
                                "non-negative integers)")

    def _decrypt(self, ct: Ciphertext, key: SecretKey) -> np.ndarray:
        x = kernels.decrypt(ct.data, ct.size, self._k, self._secret_t(key, ct.size, "decrypt"), self._w)
        return x / ct.scale

    def refresh(self, ct: Ciphertext, key: SecretKey, *, rng: RandomSource | int | None = None) -> Ciphertext:
        """Key holder: decrypt and re-encrypt, resetting the noise (the REFRESH capability).

        The re-encrypted values are rounded to the working scale, so the error is at most
        one unit of 2^-f on top of the input's.
        """
        values = self.decrypt_exact_local(ct, key)
        return self._encrypt_secret(values, key, ct.scale if ct.scale <= self._f else None, resolve(rng))

    def rerandomize(self, ct: Ciphertext) -> Ciphertext:
        """Key switch to the same key with public material: key columns shrink to ~128 (m+k).

        Adds 128 (m + k) to the noise bound; useful to shrink ciphertexts whose key columns
        grew through many additions before a product.
        """
        self._check_ct(ct)
        m = ct.size
        # Worst case first (128 (m+k)), so a ciphertext without that much headroom is refused
        # before any work; the bound kept is the measured one (e_bound times the digits' L1).
        self._check_noise(ct.meta["noise"] + (m + self._k) * self._swn, "rerandomize")
        data, stats = kernels.keyswitch(ct.data, self._key("rr", m, "rerandomize"), self._b, self._ell, m,
                                        self._limit)
        return self._make(ct.key_id, ct.rows, m, ct.scale, data, ct.meta["noise"] + self._e_bound * int(stats[2]),
                          stats)

    # ------------------------------------------------------------------ additive ops
    def _add(self, a, b, sign=1):
        if a.scale != b.scale:
            self._same_scale(a, b, "add")
        noise = self._check_noise(a.meta["noise"] + b.meta["noise"], "add")
        data, stats = kernels.add(a.data, b.data, sign, a.shape[1], self._limit)
        return self._make(a.key_id, data.shape[0], a.shape[1], a.scale, data, noise, stats)

    def _sub(self, a, b):
        return self._add(a, b, -1)

    def _neg(self, a):
        data, stats = kernels.scale(a.data, self._neg1, 1, a.shape[1], self._limit)
        return self._make(a.key_id, a.shape[0], a.shape[1], a.scale, data, a.meta["noise"], (stats[0], stats[1]))

    def _add_plain(self, a, values):
        m = a.shape[1]
        if values.size == 1:  # a scalar, or a one-entry array (which broadcasts like one)
            delta = np.zeros((1, m + self._k), dtype=np.int64)
            delta[0, :m] = self._encode_scalar(float(values.flat[0]), a.scale, "add_plain") * self._w
        else:
            wx = self._encode(values, a.scale, "add_plain") * self._w
            wx = wx.reshape(1, m) if wx.ndim == 1 else wx
            delta = np.zeros((wx.shape[0], m + self._k), dtype=np.int64)
            delta[:, :m] = wx
        data, stats = kernels.add(a.data, delta, 1, m, self._limit)
        return self._make(a.key_id, data.shape[0], m, a.scale, data, a.meta["noise"], stats)

    # ------------------------------------------------------------------ products
    def _row_factors(self, values: np.ndarray) -> np.ndarray | None:
        """Per-row plaintext factors when ``values`` is constant along the vector; else None."""
        if values.ndim == 0:
            return values.reshape(1)
        if values.shape[-1] != 1 and not np.all(values == values[..., :1]):
            return None
        return np.ascontiguousarray(values[..., 0]).reshape(-1)

    def _mul_plain(self, a, values, rescale):
        if values.ndim == 0:  # the common case, kept free of array work
            p = self._encode_scalar(float(values), self._f, "mul_plain")
            f, pmax = np.array((p,), dtype=np.int64), abs(p)
            return self._scaled(a, f, pmax, rescale)
        factors = self._row_factors(values)
        if factors is None:
            # A per-slot factor cannot act on the shared key columns: encrypt it with the
            # public key and multiply ciphertexts instead (needs the product key of this size).
            b = self._encrypt_public(np.broadcast_to(values, np.broadcast_shapes(values.shape, (1, a.size))),
                                     self.public_keys, None, resolve(None))
            return self._mul(a, b, rescale)
        f = self._encode(factors, self._f, "mul_plain")
        return self._scaled(a, f, int(np.abs(f).max()), rescale)

    def _scaled(self, a, f: np.ndarray, pmax: int, rescale: bool) -> Ciphertext:
        """round(a * f / 2^f) (or a * f without rescaling) with per-row integer factors f."""
        div = self._f if rescale else 1
        noise = self._check_noise(-(-a.meta["noise"] * pmax // div) + (self._round_l1 if rescale else 0), "mul_plain")
        self._check_range(-(-self._value_bound(a) * pmax // div), noise, a.meta["tail"] * pmax // div + 1,
                          "mul_plain", a.scale if rescale else a.scale * self._f)
        data, stats = kernels.scale(a.data, f, div, a.shape[1], self._limit)
        return self._make(a.key_id, data.shape[0], a.shape[1], a.scale if rescale else a.scale * self._f, data,
                          noise, stats)

    def _rescale(self, a):
        if a.scale <= self._f:
            raise EncodingError(f"cannot rescale: the ciphertext is at scale 2^{math.log2(a.scale):g}, not above "
                                f"the working scale 2^{self.params.scale_bits}")
        noise = -(-a.meta["noise"] // self._f) + self._round_l1
        data, stats = kernels.scale(a.data, self._ones, self._f, a.shape[1], self._limit)
        return self._make(a.key_id, a.shape[0], a.shape[1], a.scale / self._f, data, noise, stats)

    # ------------------------------------------------------------------ rows
    def _take_rows(self, a, rows):
        return a.replace(shape=(int(rows.shape[0]), a.shape[1]), data=a.data[rows])

    def _concat_rows(self, parts):
        first = parts[0]
        for p in parts[1:]:
            self._same_scale(first, p, "concat_rows")
        data = np.concatenate([p.data for p in parts], axis=0)
        meta = {name: max(p.meta[name] for p in parts) for name in ("noise", "head", "tail")}
        return Ciphertext("vhe", self.params_id, first.key_id, (data.shape[0], first.size), first.scale, data, meta,
                          self.params)

    def _row_sum(self, a, rows):
        count = a.shape[0] if rows is None else int(rows.shape[0])
        noise = self._check_noise(a.meta["noise"] * count, "row_sum")
        data, stats = kernels.gather_sum(a.data, rows, a.shape[1], self._limit)
        return self._make(a.key_id, 1, a.shape[1], a.scale, data, noise, stats)

    def _bag_sum(self, a, bags):
        # One kernel call per bag into one batch (the default builds a ciphertext per bag and joins them).
        longest = max(int(bag.shape[0]) for bag in bags)
        noise = self._check_noise(a.meta["noise"] * longest, "bag_sum")
        data = np.zeros((len(bags), a.data.shape[1]), dtype=np.int64)  # an empty bag: the exact zero row
        head = tail = 0
        for b, bag in enumerate(bags):
            if bag.shape[0]:
                row, stats = kernels.gather_sum(a.data, bag, a.shape[1], self._limit)
                data[b] = row[0]
                head, tail = max(head, int(stats[0])), max(tail, int(stats[1]))
        return self._make(a.key_id, len(bags), a.shape[1], a.scale, data, noise, (head, tail))

    def _check_bag_add(self, a, flat, owner, b):
        # The scale here, before a caller spends a refresh on b; _index_add_ checks rows and noise
        # itself before any row changes.
        if a.scale != b.scale:
            self._same_scale(a, b, "bag_add_")

    def _lincomb(self, weights, a, rescale):
        w = self._encode(weights, self._f, "lincomb")
        l1 = int(np.abs(w).sum(axis=1).max(initial=0))
        if l1 * self._limit >= 2**125:
            raise HEOverflowError("cannot lincomb: the weights are too large to accumulate exactly")
        div = self._f if rescale else 1
        noise = self._check_noise(-(-a.meta["noise"] * l1 // div) + (self._round_l1 if rescale else 0), "lincomb")
        self._check_range(-(-self._value_bound(a) * l1 // div), noise, a.meta["tail"] * l1 // div + 1, "lincomb",
                          a.scale if rescale else a.scale * self._f)
        data, stats = kernels.lincomb(w, a.data, div, a.shape[1], self._limit)
        return self._make(a.key_id, data.shape[0], a.shape[1], a.scale if rescale else a.scale * self._f, data,
                          noise, stats)

    def _index_add_(self, a, rows, b):
        if a.scale != b.scale:
            self._same_scale(a, b, "index_add_")
        if b.data.shape[0] != 1 and b.data.shape[0] != rows.shape[0]:
            raise MismatchError(f"cannot index_add_: {b.rows} rows given for {rows.shape[0]} indices")
        meta = a.meta
        nb = b.meta["noise"]
        if meta["noise"] + nb * rows.shape[0] >= self._half_w:  # cheap bound first; exact multiplicity if needed
            mult = int(np.bincount(rows).max(initial=0))
            self._check_noise(meta["noise"] + nb * mult, "index_add_")
        mh, mt, mult = kernels.scatter_add(a.data, rows, b.data, a.shape[1], self._limit)
        meta["noise"] = meta["noise"] + nb * int(mult)
        meta["head"] = max(meta["head"], int(mh))
        meta["tail"] = max(meta["tail"], int(mt))

    # ------------------------------------------------------------------ budget
    def op_cost(self, op, *operands, rows=None, coeffs=None, values=None):
        """As :meth:`OperationCosts.op_cost`, with ``noise_bits`` worked out from the operands' bounds
        (:class:`~he_core.schemes.vhe.forecast.NoiseForecast`) for products, sums, scalings and ``polyval``."""
        cost = super().op_cost(op, *operands, rows=rows, coeffs=coeffs, values=values)
        bits = self._forecast.bits(op, operands, coeffs, values) if operands else None
        return cost if bits is None else dataclasses.replace(cost, noise_bits=bits)

    def _budget(self, a) -> Budget:
        meta = a.meta
        noise = max(meta["noise"], 1)
        mag = max(meta["head"], meta["tail"], 1)
        return Budget(kind="noise", remaining=math.log2(self._half_w / noise),
                      noise_bits=math.log2(noise), magnitude_bits=math.log2(mag),
                      magnitude_remaining=math.log2(self._limit / mag),
                      max_value=self._value_bound(a) / a.scale)


#: Bounds metadata above this is malformed (no honest computation gets near it).
_META_LIMIT = 2**126
#: numpy's int64 dtype: compared by identity first on the hot path (equality when that fails).
_INT64 = np.dtype(np.int64)

_KINDS = {"pub": "public-key encryption", "rr": "re-randomisation", "ew": "element-wise product",
          "sv": "scalar-times-vector product", "ip": "inner-product"}
