"""EvalMod: the homomorphic reduction modulo 1, by a scaled sine.

After CoeffToSlot a slot holds y = x / K with x = I + delta, I an integer (|I| < K)
and delta = Delta m_k / q_0 small. Bootstrapping needs delta = x - round(x); for small
delta that is (1 / 2 pi) sin(2 pi x) up to a relative error (2 pi delta)^2 / 6
(Cheon-Han-Kim-Kim-Song 2018). The sine is evaluated as in Han-Ki 2020 / Bossuat et
al. 2021: a Chebyshev interpolant of cos(2 pi (K y - 1/4) / 2^r) on [-1, 1], then r
double-angle steps cos(2a) = 2 cos(a)^2 - 1, which give cos(2 pi x - pi / 2) =
sin(2 pi x). The interpolant only has to cover a frequency 2 pi K / 2^r, so a modest
degree suffices; each double angle costs a level and doubles the absolute error
(roughly), the price of the lower degree.

Depth: ceil(log2 (degree + 1)) + 1 for the Chebyshev series (evaluated by baby and
giant steps, :func:`eval_chebyshev`; T_2k = 2 T_k^2 - 1, T_2k+1 = 2 T_k T_k+1 - T_1),
r for the double angles.
:func:`reference` is the same arithmetic on plaintext floats: the ciphertext pipeline
must match it to the noise, and it states the approximation's own error against the
exact reduction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.polynomial import chebyshev

from ....ciphertext import Ciphertext
from ....errors import ParameterError
from .. import layout
from .pipeline_roles import PipelineRoles

#: Chebyshev coefficients below this are dropped (far below any CKKS scale's resolution).
COEFF_FLOOR = 2.0**-55


@dataclass(frozen=True)
class EvalModSpec:
    """The approximation: range K (|x| < K), Chebyshev degree, double-angle steps r."""

    K: int = 12
    degree: int = 31
    double_angles: int = 3

    def __post_init__(self) -> None:
        if self.K < 1 or not 3 <= self.degree <= 255 or not 0 <= self.double_angles <= 8:
            raise ParameterError(f"cannot use EvalMod K={self.K}, degree={self.degree}, r={self.double_angles}")

    @cached_property
    def coefficients(self) -> np.ndarray:
        """Chebyshev coefficients (on [-1, 1]) of cos(2 pi (K y - 1/4) / 2^r)."""
        k, r = self.K, self.double_angles
        c = chebyshev.chebinterpolate(lambda y: np.cos(2 * np.pi * (k * y - 0.25) / 2**r), self.degree)
        return np.where(np.abs(c) < COEFF_FLOOR, 0.0, c)

    @property
    def depth(self) -> int:
        """Levels EvalMod consumes."""
        return math.ceil(math.log2(self.degree + 1)) + 1 + self.double_angles


def interpolation_error(spec: EvalModSpec, points: int = 20001) -> float:
    """max |reference(y) - sin(2 pi K y) / (2 pi)| over y in [-1, 1]: the error of the sine as evaluated."""
    y = np.linspace(-1.0, 1.0, points)
    return float(np.max(np.abs(reference(y, spec) - np.sin(2 * np.pi * spec.K * y) / (2 * np.pi))))


def spec_for_range(k: int, target: float = 2.0**-40) -> EvalModSpec:
    """The shallowest (then lowest-degree) spec for |x| < K whose interpolation error is below ``target``."""
    best = None
    for r in range(9):
        for degree in (15, 23, 31, 47, 63):
            spec = EvalModSpec(K=k, degree=degree, double_angles=r)
            if interpolation_error(spec, 4001) <= target:
                if best is None or (spec.depth, degree) < (best.depth, best.degree):
                    best = spec
                break
    if best is None:
        raise ParameterError(f"cannot approximate the modular reduction on |x| < {k}")
    return best


def reference(y: np.ndarray, spec: EvalModSpec) -> np.ndarray:
    """The plaintext twin of :func:`eval_mod` on y = x / K: (1 / 2 pi) sin(2 pi x), as evaluated."""
    c = chebyshev.chebval(np.asarray(y, dtype=np.float64), spec.coefficients)
    for _ in range(spec.double_angles):
        c = 2 * c * c - 1
    return c / (2 * np.pi)


def approximation_error(spec: EvalModSpec, delta_max: float, points: int = 4001) -> float:
    """max |reference(x / K) - (x - round(x))| over x = I + delta, |I| < K, |delta| <= delta_max (plaintext)."""
    deltas = np.linspace(-delta_max, delta_max, points)
    ints = np.arange(-spec.K + 1, spec.K)
    x = (ints[:, None] + deltas[None, :]).reshape(-1)
    return float(np.max(np.abs(reference(x / spec.K, spec) - (x - np.rint(x)))))


# ---------------------------------------------------------------------- homomorphic evaluation
def chebyshev_basis(roles: PipelineRoles, y: Ciphertext, degrees) -> dict[int, Ciphertext]:
    """T_k(y) slot-wise for every k in ``degrees`` (and what they need), T_k at depth ceil(log2 k) below y."""
    basis = {1: y}

    def get(k: int) -> Ciphertext:
        if k not in basis:
            a = k // 2
            prod = roles.batch.mul(get(a), get(k - a), True)
            double = roles.evaluator.add(prod, prod)
            t = roles.batch.add_plain(double, np.array(-1.0)) if k % 2 == 0 else roles.batch.sub(double, y)
            basis[k] = _bounded(roles, t, 1.0)  # |T_k(y)| <= 1 on [-1, 1], whatever the products' bound says
        return basis[k]

    for k in degrees:
        get(k)
    return basis


def chebyshev_split(coeffs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(q, r) with p = q T_k + r, deg r < k, for p of degree < 2k (T_i = 2 T_k T_{i-k} - T_{2k-i})."""
    q = np.zeros(len(coeffs) - k)
    r = np.array(coeffs[:k], dtype=np.float64)
    q[0] = coeffs[k]
    for i in range(k + 1, len(coeffs)):
        q[i - k] = 2 * coeffs[i]
        r[2 * k - i] -= coeffs[i]
    return q, r


def _combine(roles: PipelineRoles, basis: dict, coeffs: np.ndarray) -> Ciphertext:
    """sum_k c_k T_k over the baby steps: brought to their lowest level, weighted by integers, rescaled once."""
    used = [k for k in range(1, len(coeffs)) if coeffs[k] != 0.0] or [1]
    low = min(layout.level(basis[k]) for k in used)
    acc = None
    for k in used:
        t = roles.aligner.adjust(basis[k], low, roles.scales.at(low))
        term = roles.evaluator.mul_scalar(t, float(coeffs[k]), False)
        acc = term if acc is None else roles.evaluator.add(acc, term, rule="independent")
    return roles.batch.add_plain(roles.evaluator.rescale(acc), np.array(float(coeffs[0])))


def eval_chebyshev(roles: PipelineRoles, y: Ciphertext, coeffs: np.ndarray) -> Ciphertext:
    """sum_k c_k T_k(y) by the baby-step / giant-step split (Han-Ki 2020, section 4; Bossuat et al. 2021).

    Baby steps T_1 .. T_{b-1} (b = 2^ceil(log2(d + 1) / 2)), giant steps T_b, T_2b, T_4b ..:
    p = q T_giant + r recursively until the pieces have degree < b, each then one
    linear combination. About 2 sqrt(d) + log2(d / b) products instead of d, at the same
    depth ceil(log2(d + 1)) + 1.
    """
    coeffs = np.trim_zeros(np.asarray(coeffs, dtype=np.float64), "b")
    degree = len(coeffs) - 1
    baby = 1 << max(1, math.ceil(math.log2(degree + 1) / 2))
    giants = [baby << i for i in range(max(0, math.ceil(math.log2(degree + 1)) - int(math.log2(baby))))]
    basis = chebyshev_basis(roles, y, list(range(2, baby)) + giants)

    def evaluate(c: np.ndarray) -> Ciphertext:
        c = np.trim_zeros(c, "b") if np.any(c) else c[:1]
        if len(c) <= baby:
            return _combine(roles, basis, c)
        k = max(g for g in giants if g < len(c))
        q, r = chebyshev_split(c, k)
        return roles.batch.add(roles.batch.mul(evaluate(q), basis[k], True), evaluate(r))

    return evaluate(coeffs)


def _bounded(roles: PipelineRoles, ct: Ciphertext, bound: float) -> Ciphertext:
    """ct with its recorded value bound set to what the function evaluated guarantees (a cosine, T_k)."""
    return roles.records.noisy(ct, roles.records.nv(ct)[0], bound)


def eval_mod(roles: PipelineRoles, y: Ciphertext, spec: EvalModSpec) -> Ciphertext:
    """(1 / 2 pi) sin(2 pi K y) slot-wise, for slots y in [-1, 1]: ``spec.depth`` levels."""
    c = _bounded(roles, eval_chebyshev(roles, _bounded(roles, y, 1.0), spec.coefficients), 1.0 + 2.0**-20)
    for _ in range(spec.double_angles):
        sq = roles.batch.mul(c, c, True)
        c = _bounded(roles, roles.batch.add_plain(roles.evaluator.add(sq, sq), np.array(-1.0)), 1.0 + 2.0**-20)
    # 1 / (2 pi) only changes the recorded scale (no level, no noise).
    return roles.evaluator.mul_scalar(c, 1.0 / (2 * np.pi), True)
