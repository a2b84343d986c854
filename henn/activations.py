"""Polynomial activations: the only non-linearities a homomorphic scheme evaluates.

Each :class:`PolyActivation` is a polynomial ``p`` (power-basis coefficients, lowest
degree first) approximating a function ``f`` on an interval ``[-a, a]``, together
with its derivative polynomial ``p'`` (used by backward), its multiplicative depth
and its measured maximum error ``max |p - f|`` on the interval. Outside the interval
a polynomial fit diverges quickly, so models must keep pre-activations inside it
(that is what the init scale and learning rate of the XOR model are chosen for).

Provided:

* :func:`taylor_sigmoid` — the 2017 tutorial's ``1/2 + x/4 - x^3/48 + x^5/480``;
* :func:`sigmoid_lsq`, :func:`tanh_lsq` — least-squares fits on a uniform grid;
* :func:`sigmoid_chebyshev`, :func:`tanh_chebyshev` — interpolation at Chebyshev
  nodes (near-minimax);
* :func:`square` — ``x^2`` (exact, the CryptoNets activation).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
from numpy.polynomial import chebyshev as C
from numpy.polynomial import polynomial as P

from .module import Module
from .tensor import EncTensor

_GRID_POINTS = 4001


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, computed without overflow warnings."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class PolyActivation(Module):
    """Element-wise polynomial activation with a cached backward.

    Args:
        name: short identifier (used in saved models and reports).
        coeffs: power-basis coefficients, lowest degree first.
        interval: the half-width ``a`` of the interval ``[-a, a]`` the fit targets.
        reference: the function approximated (``None`` when the polynomial is exact).

    Attributes:
        derivative: coefficients of ``p'``.
        degree: degree of ``p``.
        depth: multiplicative depth of one evaluation: ``ceil(log2(degree))``
            ciphertext products plus one plaintext scaling (``he_core.circuits.polyval``).
        max_error: ``max |p - f|`` over a dense grid of the interval (0 for exact ones).
    """

    def __init__(self, name: str, coeffs: Sequence[float], interval: float,
                 reference: Callable[[np.ndarray], np.ndarray] | None = None):
        c = np.trim_zeros(np.asarray(coeffs, dtype=np.float64), "b")
        if c.size == 0 or not np.all(np.isfinite(c)):
            raise ValueError(f"cannot build activation {name!r}: coefficients must be finite and not all zero")
        self.name = name
        self.coeffs = tuple(float(v) for v in c)
        self.derivative = tuple(float(v) for v in P.polyder(c)) or (0.0,)
        self.interval = float(interval)
        self.reference = reference
        self.degree = len(self.coeffs) - 1
        self.depth = (math.ceil(math.log2(self.degree)) if self.degree > 1 else 0) + 1
        self.max_error = self._max_error()
        # Encrypted evaluation works on t = x / a: the powers t^k stay near 1 on the
        # interval, where x^k would reach a^k (343 for x = 7) and eat magnitude budget.
        powers = self.interval ** np.arange(self.degree + 1)
        self._t_coeffs = tuple(float(v) for v in c * powers)
        self._t_derivative = tuple(float(v) for v in np.asarray(self.derivative) * powers[:len(self.derivative)])

    def __repr__(self) -> str:
        return (f"PolyActivation({self.name!r}, degree={self.degree}, interval=±{self.interval:g}, "
                f"max_error={self.max_error:.3g})")

    def _max_error(self) -> float:
        if self.reference is None:
            return 0.0
        grid = np.linspace(-self.interval, self.interval, _GRID_POINTS)
        return float(np.max(np.abs(P.polyval(grid, self.coeffs) - self.reference(grid))))

    # numpy evaluation (reference and plaintext inspection)
    def value(self, x: np.ndarray) -> np.ndarray:
        """``p(x)`` on plaintext numbers."""
        return P.polyval(np.asarray(x, dtype=np.float64), self.coeffs)

    def grad_value(self, x: np.ndarray) -> np.ndarray:
        """``p'(x)`` on plaintext numbers."""
        return P.polyval(np.asarray(x, dtype=np.float64), self.derivative)

    #: The fit is only meaningful on [-a, a]; inputs are declared to stay within twice that
    #: (he_core.Scheme.declare_bound), which keeps a scheme's analytic noise and value
    #: bounds (and so its refresh masks and flooding) from compounding layer after layer.
    INPUT_MARGIN = 2.0

    # encrypted evaluation (stateless: the context is returned, see henn.module.Module)
    def forward_train(self, x: EncTensor) -> tuple[EncTensor, EncTensor]:
        """``(p(x), t)`` where ``t = x / a`` is what backward evaluates ``p'`` on."""
        if not isinstance(x, EncTensor):
            raise TypeError(f"cannot apply {self.name}: expected an EncTensor, got {type(x).__name__}")
        t = self._scaled(x).declare_bound(self.INPUT_MARGIN)
        return t.polyval(self._t_coeffs), t

    def apply(self, x: EncTensor, factor: float = 1.0) -> EncTensor:
        """``factor * p(x)``, the factor folded into the coefficients (no extra product)."""
        t = self._scaled(x).declare_bound(self.INPUT_MARGIN)
        return t.polyval([factor * c for c in self._t_coeffs])

    def _scaled(self, x: EncTensor) -> EncTensor:
        return x if self.interval == 1.0 else x * (1.0 / self.interval)

    def backward_train(self, t: EncTensor, grad: EncTensor) -> EncTensor:
        """``grad * p'(x)`` for the forward's ``t = x / a``."""
        if self.degree <= 1:
            return grad * self.derivative[0]
        return grad * t.polyval(self._t_derivative)

    @property
    def forward_depth(self) -> int:  # type: ignore[override]
        return self.depth + (self.interval != 1.0)

    @property
    def op_depth(self) -> int:  # type: ignore[override]
        # One scheme operation at a time is guarded: the deepest is the polynomial (with
        # its coefficient scaling), plus the scaling of its input or the gradient product.
        return self.depth + 1


def _odd_power_basis(coeffs: np.ndarray, odd_about: float | None) -> np.ndarray:
    """Drop the even terms a symmetric fit of an odd function only gets as round-off.

    ``sigmoid(x) - 1/2`` and ``tanh`` are odd: their fits on a symmetric interval have
    zero even coefficients except the constant; rounding noise there would only cost
    extra ciphertext products.
    """
    if odd_about is None:
        return coeffs
    out = coeffs.copy()
    out[2::2] = 0.0
    out[0] = odd_about
    return out


def _lsq(f, degree: int, interval: float) -> np.ndarray:
    grid = np.linspace(-interval, interval, _GRID_POINTS)
    return P.polyfit(grid, f(grid), degree)


def _chebyshev(f, degree: int, interval: float) -> np.ndarray:
    cheb = C.chebinterpolate(lambda t: f(t * interval), degree)  # on [-1, 1]
    power = C.cheb2poly(cheb)
    return power / interval ** np.arange(power.size)  # substitute t = x / a


def _check_fit_args(degree: int, interval: float) -> None:
    if not isinstance(degree, (int, np.integer)) or degree < 1:
        raise ValueError(f"cannot fit: degree must be a positive integer, got {degree!r}")
    if not interval > 0 or not math.isfinite(interval):
        raise ValueError(f"cannot fit: interval half-width must be positive and finite, got {interval!r}")


def taylor_sigmoid() -> PolyActivation:
    """The 2017 tutorial's degree-5 Taylor series of sigmoid at 0 (accurate only near 0)."""
    return PolyActivation("taylor_sigmoid", (0.5, 0.25, 0.0, -1.0 / 48, 0.0, 1.0 / 480), 2.0, sigmoid)


def sigmoid_lsq(degree: int = 3, interval: float = 4.0) -> PolyActivation:
    """Least-squares fit of sigmoid on ``[-interval, interval]`` (odd part only)."""
    _check_fit_args(degree, interval)
    c = _odd_power_basis(_lsq(sigmoid, degree, interval), 0.5)
    return PolyActivation(f"sigmoid_lsq{degree}", c, interval, sigmoid)


def sigmoid_chebyshev(degree: int = 3, interval: float = 4.0) -> PolyActivation:
    """Chebyshev-node interpolant of sigmoid on ``[-interval, interval]``."""
    _check_fit_args(degree, interval)
    c = _odd_power_basis(_chebyshev(sigmoid, degree, interval), 0.5)
    return PolyActivation(f"sigmoid_cheb{degree}", c, interval, sigmoid)


def tanh_lsq(degree: int = 3, interval: float = 2.0) -> PolyActivation:
    """Least-squares fit of tanh on ``[-interval, interval]``."""
    _check_fit_args(degree, interval)
    c = _odd_power_basis(_lsq(np.tanh, degree, interval), 0.0)
    return PolyActivation(f"tanh_lsq{degree}", c, interval, np.tanh)


def tanh_chebyshev(degree: int = 3, interval: float = 2.0) -> PolyActivation:
    """Chebyshev-node interpolant of tanh on ``[-interval, interval]``."""
    _check_fit_args(degree, interval)
    c = _odd_power_basis(_chebyshev(np.tanh, degree, interval), 0.0)
    return PolyActivation(f"tanh_cheb{degree}", c, interval, np.tanh)


def square() -> PolyActivation:
    """``x^2``: exact, depth 1 product."""
    return PolyActivation("square", (0.0, 0.0, 1.0), 1.0, None)


_FACTORIES = {
    "taylor_sigmoid": lambda degree, interval: taylor_sigmoid(),
    "sigmoid_lsq": sigmoid_lsq,
    "sigmoid_cheb": sigmoid_chebyshev,
    "tanh_lsq": tanh_lsq,
    "tanh_cheb": tanh_chebyshev,
    "square": lambda degree, interval: square(),
}


def make(kind: str, degree: int = 3, interval: float = 4.0) -> PolyActivation:
    """Build an activation by kind name (``sigmoid_lsq``, ``sigmoid_cheb``, ...).

    Raises:
        ValueError: unknown kind.
    """
    if kind not in _FACTORIES:
        raise ValueError(f"cannot make activation: unknown kind {kind!r}; known: {', '.join(sorted(_FACTORIES))}")
    return _FACTORIES[kind](degree, interval)
