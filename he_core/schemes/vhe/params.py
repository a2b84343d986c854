"""Parameters of the vhe scheme, with the arithmetic that makes them safe to use."""
from __future__ import annotations

import dataclasses
import math

from ...errors import ParameterError
from ...params import Parameters

INT64_MAX = 2**63 - 1


def digits_needed(digit_bits: int, magnitude_bits: int) -> int:
    """Signed base-2^b digits (each in [-2^(b-1), 2^(b-1))) needed for every |x| <= 2^magnitude_bits."""
    base, half = 1 << digit_bits, 1 << (digit_bits - 1)
    ell, top = 1, half - 1  # top: largest positive value ell digits reach
    while top < 2**magnitude_bits:
        ell += 1
        top = top * base + half - 1
    return ell


@dataclasses.dataclass(frozen=True)
class VheParams(Parameters):
    """Parameter set of the vhe scheme (no modulus: every integer is exact).

    Attributes:
        w_bits: the message multiplier is w = 2^w_bits; decryption is correct while the
            noise stays below w / 2.
        scale_bits: fixed-point bits f; a real v is encoded as round(v * 2^f).
        k: columns of the secret T (the key is S = [I | T]).
        t_bound: entries of T are uniform in [-t_bound, t_bound].
        a_bound: entries of the public random block A of key-switch matrices.
        e_bound: entries of the noise block E of key-switch matrices.
        enc_noise: fresh encryption noise is uniform in [-enc_noise, enc_noise].
        tail_bound: the key columns of a secret-key encryption are uniform in
            [-tail_bound, tail_bound].
        digit_bits: key switching decomposes entries into signed base-2^digit_bits digits.
        magnitude_bits: every ciphertext entry is kept within 2^magnitude_bits, the range
            the digit decomposition covers (at most 62, so sums of two still fit int64).
    """

    scheme = "vhe"
    w_bits: int = 33
    scale_bits: int = 16
    k: int = 1
    t_bound: int = 1
    a_bound: int = 1
    e_bound: int = 1
    enc_noise: int = 16
    tail_bound: int = 2**16
    digit_bits: int = 4
    magnitude_bits: int = 62

    def __post_init__(self) -> None:
        for name in ("w_bits", "scale_bits", "k", "t_bound", "a_bound", "e_bound", "enc_noise", "tail_bound",
                     "digit_bits", "magnitude_bits"):
            value = getattr(self, name)
            if type(value) is not int:
                raise ParameterError(f"vhe parameter {name} must be an int, got {value!r}")
        self._check_range("w_bits", 8, 60)
        self._check_range("scale_bits", 0, 30)
        self._check_range("k", 1, 8)
        self._check_range("t_bound", 1, 2**8)
        self._check_range("a_bound", 0, 2**8)
        self._check_range("e_bound", 0, 2**8)
        self._check_range("enc_noise", 0, 2**20)
        self._check_range("tail_bound", 0, 2**40)
        self._check_range("digit_bits", 2, 16)
        self._check_range("magnitude_bits", 16, 62)
        if self.w_bits + self.scale_bits > self.magnitude_bits - 2:
            raise ParameterError(f"w_bits + scale_bits = {self.w_bits + self.scale_bits} leaves no room for values "
                                 f"below 2^magnitude_bits = 2^{self.magnitude_bits}; lower w_bits or scale_bits")
        if self.max_key_entry > INT64_MAX:
            raise ParameterError(
                f"key-switch matrices would need entries up to ~2^{math.log2(self.max_key_entry):.1f}, "
                f"beyond int64: lower t_bound (top digit weight 2^{self.digit_bits * (self.ell - 1)} "
                f"times t_bound^2) or magnitude_bits")

    def _check_range(self, name: str, lo: int, hi: int) -> None:
        value = getattr(self, name)
        if not lo <= value <= hi:
            raise ParameterError(f"vhe parameter {name} must lie in [{lo}, {hi}], got {value}")

    # ------------------------------------------------------------------ derived values
    @property
    def w(self) -> int:
        return 1 << self.w_bits

    @property
    def scale(self) -> int:
        return 1 << self.scale_bits

    @property
    def ell(self) -> int:
        """Digits per entry in the key-switch decomposition."""
        return digits_needed(self.digit_bits, self.magnitude_bits)

    @property
    def limit(self) -> int:
        """Largest |entry| a ciphertext may hold."""
        return 1 << self.magnitude_bits

    @property
    def key_l1(self) -> int:
        """Bound on the L1 norm of a secret-key row [e_i | T_i]."""
        return 1 + self.k * self.t_bound

    @property
    def max_key_entry(self) -> int:
        """Bound on |entries| of a product key-switch matrix (tensor key times the top digit weight)."""
        top = 1 << (self.digit_bits * (self.ell - 1))
        return max(1, self.t_bound) ** 2 * top + self.k * self.t_bound * self.a_bound + self.e_bound

    def switch_noise(self, n: int) -> int:
        """Worst-case noise one key switch adds to an input of ``n`` entries: |E c*|."""
        return n * self.ell * self.e_bound * (1 << (self.digit_bits - 1))

    def switch_tail(self, n: int) -> int:
        """Worst-case |key columns| after a key switch of ``n`` entries: |A c*|."""
        return n * self.ell * self.a_bound * (1 << (self.digit_bits - 1))

    @property
    def max_value(self) -> float:
        """Largest |real value| a ciphertext at the working scale can hold (about 2^(62 - w_bits - f))."""
        return (self.limit - self.w // 2) / (self.w * self.scale)
