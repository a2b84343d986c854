"""RNS-CKKS: approximate homomorphic arithmetic on packed real vectors, native core in C."""
from .params import CkksParams, choose_parameters, named
from .scheme import CkksScheme

__all__ = ["CkksParams", "CkksScheme", "choose_parameters", "named"]
