"""Achieved modular multiplications per second of real NTTs and ciphertext products.

Each workload is a library operation with its analytic modmul count
(:mod:`benchmarks.limits.counts`); the workloads and the machine-limit loops are timed
interleaved (median over rounds, one thread) and the count divided by the median.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from henn.bench.timing import Budget, interleaved

from . import counts, kernel


@dataclasses.dataclass
class Workload:
    """One operation to time: what it is, how many modmuls one call does, and the call."""

    library: str
    op: str
    n: int
    limbs: int
    modmuls: int
    call: Callable[[], object]


@dataclasses.dataclass
class Achieved:
    """A timed workload."""

    library: str
    op: str
    n: int
    limbs: int
    modmuls: int
    median_s: float

    @property
    def per_second(self) -> float:
        return self.modmuls / self.median_s


def measure_interleaved(workloads: list[Workload], budget: Budget) -> list[Achieved]:
    """Time the workloads round-robin, so that machine load falls on all of them alike."""
    timings = interleaved({str(i): w.call for i, w in enumerate(workloads)}, budget)
    return [Achieved(w.library, w.op, w.n, w.limbs, w.modmuls, timings[str(i)].median_s)
            for i, w in enumerate(workloads)]


def kernel_workload(kind: str, reps: int = 64) -> Workload:
    """The machine-limit loop as a workload (``reps`` passes over 1024 elements)."""
    acc, a, b = kernel.inputs(q=kernel.Q50 if kind == "shoup_ifma" else kernel.Q)
    w = int(b[0])
    call = {"shoup": lambda: kernel.shoup(acc, a, w, reps=reps),
            "shoup_ifma": lambda: kernel.shoup_ifma(acc, a, w, reps=reps),
            "barrett": lambda: kernel.barrett(acc, a, b, reps=reps)}[kind]
    return Workload("machine", f"{kind} loop", 0, 1, reps * a.size, call)


# --------------------------------------------------------------------------- primes for the native NTT
# The same NTT-friendly primes and roots the ckks scheme uses (benchmarks may use concrete schemes).
from he_core.schemes.ckks.primes import primitive_root_2n  # noqa: E402
from he_core.schemes.ckks.primes import ntt_primes as _ckks_ntt_primes  # noqa: E402


def ntt_primes(n: int, bits: int, count: int) -> list[int]:
    """The ``count`` largest primes below 2^bits that are 1 mod 2n."""
    return _ckks_ntt_primes(bits, n, count)


def henn_native_ntt(n: int, limbs: int) -> Workload:
    """Forward NTT of ``limbs`` limbs with henn's C kernel (``he_core.native._ckks``).

    Raises:
        ImportError: the ckks native module is not built.
    """
    from he_core.native import check, load

    mod = load("ckks")
    ffi, lib = mod.ffi, mod.lib
    primes = ntt_primes(n, 50, limbs)
    moduli = ffi.new("ckks_modulus[]", limbs)
    tables = [np.zeros(4 * n, dtype=np.uint64) for _ in primes]  # kept alive with the moduli
    for i, q in enumerate(primes):
        check(lib.ckks_modulus_init(moduli + i, q, primitive_root_2n(q, n), n,
                                    ffi.cast("uint64_t *", ffi.from_buffer(tables[i])), tables[i].size),
              "modulus init")
    gen = np.random.default_rng(0)
    data = np.stack([gen.integers(0, q, n, dtype=np.uint64) for q in primes])
    ptr = ffi.cast("uint64_t *", ffi.from_buffer(data))

    def both() -> None:
        # Forward then inverse keeps the data in range round after round; both are counted.
        lib.ckks_ntt(moduli, limbs, n, ptr)
        lib.ckks_intt(moduli, limbs, n, ptr)

    both.keep_alive = (moduli, tables, data)  # the C side holds pointers into these
    return Workload("henn", "NTT+INTT", n, limbs, 2 * counts.ntt(n, limbs), both)


def seal_ntt(n: int, bits: tuple[int, ...]) -> Workload:
    """SEAL's inverse + forward NTT of a fresh ciphertext (2 polynomials x data limbs)."""
    import tenseal.sealapi as s

    parms = s.EncryptionParameters(s.SCHEME_TYPE.CKKS)
    parms.set_poly_modulus_degree(n)
    parms.set_coeff_modulus(s.CoeffModulus.Create(n, list(bits)))
    ctx = s.SEALContext(parms, True, s.SEC_LEVEL_TYPE.TC128)
    keygen = s.KeyGenerator(ctx)
    pk = s.PublicKey()
    keygen.create_public_key(pk)
    pt = s.Plaintext()
    s.CKKSEncoder(ctx).encode([0.5] * (n // 2), 2.0**40, pt)
    ct = s.Ciphertext(ctx)
    s.Encryptor(ctx, pk).encrypt(pt, ct)
    ev = s.Evaluator(ctx)
    limbs = ct.coeff_modulus_size()

    def both() -> None:
        ev.transform_from_ntt_inplace(ct)
        ev.transform_to_ntt_inplace(ct)

    return Workload("SEAL", "NTT+INTT", n, 2 * limbs, 2 * counts.ntt(n, 2 * limbs), both)


def ct_ct_multiply(adapter, n: int, limbs: int, special: int = 1, dnum: int | None = None) -> Workload:
    """Multiply + relinearise through a peer adapter (already set up)."""
    gen = np.random.default_rng(0)
    a = adapter.encrypt(gen.uniform(-1, 1, n // 2))
    b = adapter.encrypt(gen.uniform(-1, 1, n // 2))
    return Workload(adapter.name, "mul+relin", n, limbs, counts.ct_ct_multiply(n, limbs, special, dnum),
                    lambda: adapter.mul(a, b))
