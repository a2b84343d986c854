"""RNS-CKKS: approximate homomorphic arithmetic on packed real vectors, native core in C.

Example::

    from he_core.schemes.ckks import CkksScheme, named, choose_parameters
    scheme = CkksScheme(named("N16384"))            # 128-bit, 7 levels, scale 2^40
    keys = scheme.keygen()
    ct = scheme.encrypt([[0.5, -1.0, 2.0]])
    out = scheme.polyval(scheme.mul(ct, ct), [0.5, 0.25])
    scheme.decrypt(out, keys.secret)                 # ~ [[0.5625, 0.75, 1.5]], noise-flooded for release

Modules: ``primes`` (NTT-friendly primes), ``params`` (parameter sets and security),
``ring`` (the native ring kernels), ``keyswitch`` (hybrid key switching over the ring),
``reference`` (their Python-int definitions), ``encoder`` (canonical embedding),
``keys`` (key generation), ``layout`` (rows in slots), ``arith`` / ``rotation`` /
``linear`` (the evaluator, split by concern) and ``scheme`` (the he_core interface).
"""
from .params import CkksParams, choose_parameters, named
from .scheme import CkksScheme

__all__ = ["CkksParams", "CkksScheme", "choose_parameters", "named"]
