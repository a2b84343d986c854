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
``keys`` (key generation), ``layout`` (rows in slots), ``coeff_layout`` (rows in
coefficients), ``noise`` / ``noise_model`` (the noise formulas), ``scales`` (the scale
ladder), ``context`` (what a parameter set fixes), ``role_alias`` and ``scheme`` (the he_core
interface).

A :class:`CkksScheme` holds one object per role and implements the he_core hooks by
delegating to them (SEAL's shape: an encoder, an encryptor, a decryptor, an evaluator,
a key generator; Lattigo's evaluators built from smaller ones). Every role is built from
the parameter set's :class:`~.context.CkksContext` plus the roles it uses, named in its
constructor; none holds the scheme itself (the key set reads the installed public keys
through an accessor, as they are replaced after construction):

========== ================================ ==================================================
attribute  class (module)                   holds
========== ================================ ==================================================
records    NoiseRecords (.noise_records)    ciphertexts' noise fields, the noise estimate
keyset     KeySet (.keyset)                 key generation and checks, secrets, installed keys
encoder    PlaintextEncoder (.encoder)      slot vectors to plaintexts, range checks
targets    LayoutTargets (.targets)         re-encryption targets and their errors
encryptor  Encryptor (.encryption)          fresh ciphertexts in any layout
decryptor  Decryptor (.decryption)          exact phases and decoded values
evaluator  Evaluator (.arith)               sums, products, rescaling, factors, re-keying
aligner    LevelAligner (.alignment)        level drops, scale alignment of operand pairs
rotator    Rotator (.rotation)              Galois automorphisms, hoisted rotations
mover      RowMover (.row_moves)            masks, gathers, replication of rows
linear     DiagonalMatVec (.linear)         matvec
tables     CoeffTables (.coeff)             coefficient-packed batches
batch      BatchOps (.batch)                element-wise and row operations in any layout
checks     CiphertextChecks (.checks)       structure, layout and noise checks
refresher  MaskedRefresher (.refresh)       the masked refresh's scheme side
releaser   Releaser (.release)              flooded decryptions, sanitising
booter     BootstrapRole (.bootstrap.role)  bootstrapping: plans, pipelines, packing, its keys
========== ================================ ==================================================

The bootstrapping pipeline (:mod:`.bootstrap`) computes with the scheme's roles, passed as
one :class:`~.bootstrap.pipeline_roles.PipelineRoles`.
"""
from .params import CkksParams, choose_parameters, named
from .scheme import CkksScheme

__all__ = ["CkksParams", "CkksScheme", "choose_parameters", "named"]
