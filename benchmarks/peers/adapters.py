"""One small API over henn's CKKS and each peer library, for op-level timing.

An adapter is set up with the ring dimension ``n``, the modulus chain's prime bit sizes
(SEAL's convention: the first prime, the middle primes at the scale's size, and the
special key-switching prime last) and the scale. Then it offers the operations below,
each out of place, each doing exactly what its name says and nothing more:

========== ==================================================================
encrypt    encode ``n/2`` reals and encrypt with the *public* key
decrypt    decrypt and decode to ``n/2`` reals
add        ciphertext + ciphertext
mul_plain  encode reals at the ciphertext's level, multiply (no rescale)
mul        ciphertext x ciphertext and relinearise (no rescale)
rescale    drop one prime from a product (divide by the last prime)
rotate     rotate the slots left by one step (Galois key switching)
matvec     a (T, T) matrix times every block of T slots, baby-step / giant-step
           with one rescale (:mod:`.matvec`; henn and SEAL only)
========== ==================================================================

Key generation happens in :meth:`Adapter.setup`, never in a timed op.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Sequence

import numpy as np

OPS = ("encrypt", "decrypt", "add", "mul_plain", "mul", "rescale", "rotate", "matvec")


class PeerMissing(Exception):
    """The library is not installed (or not importable on this Python): report it as skipped."""


@dataclasses.dataclass(frozen=True)
class Setting:
    """The parameters every library is given.

    Attributes:
        n: ring dimension (``n/2`` slots).
        bits: prime bit sizes, special prime last (e.g. ``(60, 40, 40, 60)``).
        scale: encoding scale.
        matvec_size: the matvec op's matrix size T (0 leaves the op out: its T-dependent
            Galois keys grow with N times the chain length squared).
    """

    n: int = 8192
    bits: tuple[int, ...] = (60, 40, 40, 60)
    scale: float = 2.0**40
    matvec_size: int = 64  # T of the matvec op (0: no matvec at this setting)

    @property
    def slots(self) -> int:
        return self.n // 2

    @property
    def depth(self) -> int:
        """Rescales available: the primes between the first and the special one."""
        return len(self.bits) - 2


class Adapter:
    """Base of the adapters; subclasses implement every op in :data:`OPS` and ``_setup``."""

    name = ""
    requires = ""  # module whose absence means "skipped"

    def __init__(self) -> None:
        self.setting: Setting | None = None
        self.notes: list[str] = []

    def available(self) -> str | None:
        """``None`` when the library imports, otherwise why it is skipped."""
        try:
            importlib.import_module(self.requires)
        except Exception as exc:  # ImportError, or a broken binary wheel
            return f"{self.requires} not importable: {type(exc).__name__}: {exc}"
        return None

    def version(self) -> str:
        from importlib import metadata

        dist = self.requires.split(".")[0]
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return str(getattr(importlib.import_module(dist), "__version__", "unknown"))

    def setup(self, setting: Setting) -> None:
        """Build the context and every key the ops need.

        Raises:
            PeerMissing: the library is not installed.
        """
        reason = self.available()
        if reason:
            raise PeerMissing(reason)
        self.setting = setting
        self._setup(setting)

    def _setup(self, setting: Setting) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version(), "notes": list(self.notes)}

    def matvec_of(self, matrix: np.ndarray):
        """The matvec op for ``matrix`` (its keys made here, not timed): an object with
        ``encrypt(values)`` (all slots, in blocks of T), ``decrypt(ct)`` and ``__call__(ct)``.

        Raises:
            PeerMissing: this adapter has no matvec.
        """
        raise PeerMissing(f"{self.name}: no matvec adapter")


# --------------------------------------------------------------------------- SEAL (via TenSEAL)
class SealAdapter(Adapter):
    """Microsoft SEAL through ``tenseal.sealapi``: raw SEAL calls, no TenSEAL tensor layer."""

    name = "SEAL"
    requires = "tenseal.sealapi"

    def version(self) -> str:
        return f"tenseal {super().version()}"

    def _setup(self, setting: Setting) -> None:
        s = self._s = importlib.import_module("tenseal.sealapi")
        parms = s.EncryptionParameters(s.SCHEME_TYPE.CKKS)
        parms.set_poly_modulus_degree(setting.n)
        parms.set_coeff_modulus(s.CoeffModulus.Create(setting.n, list(setting.bits)))
        self.ctx = s.SEALContext(parms, True, s.SEC_LEVEL_TYPE.TC128)
        keygen = s.KeyGenerator(self.ctx)
        self.sk = keygen.secret_key()
        self.pk = s.PublicKey()
        keygen.create_public_key(self.pk)
        self.rk = s.RelinKeys()
        keygen.create_relin_keys(self.rk)
        self.keygen = keygen  # the matvec op makes its own Galois keys
        self.gk = s.GaloisKeys()  # the rotate op's one step; SEAL's default set adds every power of two
        keygen.create_galois_keys([3 % (2 * setting.n)], self.gk)
        self.encoder = s.CKKSEncoder(self.ctx)
        self.encryptor = s.Encryptor(self.ctx, self.pk)
        self.decryptor = s.Decryptor(self.ctx, self.sk)
        self.evaluator = s.Evaluator(self.ctx)
        self.notes.append("SEAL evaluator ops are single-threaded; one special prime (dnum = levels)")

    def _new(self):
        return self._s.Ciphertext(self.ctx)

    def encrypt(self, values: np.ndarray):
        pt = self._s.Plaintext()
        self.encoder.encode(values.tolist(), self.setting.scale, pt)
        ct = self._new()
        self.encryptor.encrypt(pt, ct)
        return ct

    def decrypt(self, ct) -> np.ndarray:
        pt = self._s.Plaintext()
        self.decryptor.decrypt(ct, pt)
        return np.asarray(self.encoder.decode_double(pt))

    def add(self, a, b):
        out = self._new()
        self.evaluator.add(a, b, out)
        return out

    def mul_plain(self, a, values: np.ndarray):
        pt = self._s.Plaintext()
        self.encoder.encode(values.tolist(), a.parms_id(), self.setting.scale, pt)
        out = self._new()
        self.evaluator.multiply_plain(a, pt, out)
        return out

    def mul(self, a, b):
        out = self._new()
        self.evaluator.multiply(a, b, out)
        self.evaluator.relinearize_inplace(out, self.rk)
        return out

    def rescale(self, a):
        out = self._new()
        self.evaluator.rescale_to_next(a, out)
        return out

    def rotate(self, a, steps: int = 1):
        out = self._new()
        self.evaluator.rotate_vector(a, steps, self.gk, out)
        return out

    def matvec_of(self, matrix: np.ndarray):
        from .matvec import SealMatVec, bsgs_plan

        return SealMatVec(self, bsgs_plan(matrix, self.setting.slots))


# --------------------------------------------------------------------------- henn ckks
def ckks_parameters(setting: Setting):
    """henn's CKKS parameter object for ``setting``: same N, same prime sizes, same scale.

    One key-switching digit per prime and one special prime, as SEAL does.

    Raises:
        PeerMissing: henn's ckks scheme is not installed (or cannot be loaded yet).
        ValueError: the middle primes are not of the scale's size (henn ties the two).
    """
    import he_core

    try:
        params_class = he_core.scheme_class("ckks").params_class
    except Exception as exc:  # the scheme is being written: importable but incomplete
        raise PeerMissing(f"henn's ckks scheme cannot be loaded yet ({type(exc).__name__}: {exc})") from exc
    scale_bits = int(round(np.log2(setting.scale)))
    if set(setting.bits[1:-1]) != {scale_bits}:
        raise ValueError(f"cannot map {setting}: henn's middle primes have the scale's size, 2^{scale_bits}")
    return params_class(poly_degree=setting.n, levels=setting.depth, first_bits=setting.bits[0],
                        scale_bits=scale_bits, special_bits=setting.bits[-1], dnum=setting.depth + 1)


class HennCkksAdapter(Adapter):
    """henn's ``ckks`` scheme through the public ``he_core`` interface."""

    name = "henn"
    requires = "he_core"

    def version(self) -> str:
        return f"henn {super().version()}"

    def _setup(self, setting: Setting) -> None:
        import he_core

        params = ckks_parameters(setting)
        self.scheme = he_core.get_scheme("ckks", params)
        # Only what the ops use: the product key, rotation by one, the matvec's own steps.
        size = setting.matvec_size
        requirements = he_core.KeyRequirements(sizes=(setting.slots,) + ((size,) if size else ()), rotations=(1,),
                                               multiply=True, minimal=True, transforms=(size,) if size else ())
        self.keys = self.scheme.keygen(requirements)
        self.notes.append(f"params {self.scheme.params_id}")

    def encrypt(self, values: np.ndarray):
        return self.scheme.encrypt(values)

    def decrypt(self, ct) -> np.ndarray:
        return self.scheme.decrypt_exact_local(ct, self.keys.secret)[0]

    def add(self, a, b):
        return self.scheme.add(a, b)

    def mul_plain(self, a, values: np.ndarray):
        return self.scheme.mul_plain(a, values, rescale=False)

    def mul(self, a, b):
        return self.scheme.mul(a, b, rescale=False)

    def rescale(self, a):
        return self.scheme.rescale(a)

    def rotate(self, a, steps: int = 1):
        return self.scheme.rotate(a, steps)

    def matvec_of(self, matrix: np.ndarray):
        from .matvec import HennMatVec

        return HennMatVec(self, matrix)


# --------------------------------------------------------------------------- OpenFHE
class OpenFheAdapter(Adapter):
    """OpenFHE's Python binding (wheels exist for CPython 3.10 only here)."""

    name = "OpenFHE"
    requires = "openfhe"

    def _setup(self, setting: Setting) -> None:
        o = self._o = importlib.import_module("openfhe")
        p = o.CCParamsCKKSRNS()
        p.SetRingDim(setting.n)
        p.SetMultiplicativeDepth(setting.depth)
        p.SetFirstModSize(setting.bits[0])
        p.SetScalingModSize(int(round(np.log2(setting.scale))))
        p.SetScalingTechnique(o.ScalingTechnique.FIXEDMANUAL)  # rescale only when asked, like SEAL
        p.SetKeySwitchTechnique(o.KeySwitchTechnique.HYBRID)
        p.SetNumLargeDigits(setting.depth + 1)  # one digit per prime, as SEAL does
        p.SetBatchSize(setting.slots)
        p.SetSecurityLevel(o.SecurityLevel.HEStd_NotSet)  # N is fixed by us; the chain fits 128-bit bounds
        cc = self.cc = o.GenCryptoContext(p)
        for feature in (o.PKESchemeFeature.PKE, o.PKESchemeFeature.KEYSWITCH, o.PKESchemeFeature.LEVELEDSHE):
            cc.Enable(feature)
        self.keys = cc.KeyGen()
        cc.EvalMultKeyGen(self.keys.secretKey)
        cc.EvalRotateKeyGen(self.keys.secretKey, [1])
        self.notes.append("OpenFHE picks its own special-prime sizes; OMP_NUM_THREADS=1")

    def encrypt(self, values: np.ndarray):
        return self.cc.Encrypt(self.keys.publicKey, self.cc.MakeCKKSPackedPlaintext(values.tolist()))

    def decrypt(self, ct) -> np.ndarray:
        pt = self.cc.Decrypt(ct, self.keys.secretKey)
        pt.SetLength(self.setting.slots)
        return np.asarray(pt.GetRealPackedValue())

    def add(self, a, b):
        return self.cc.EvalAdd(a, b)

    def mul_plain(self, a, values: np.ndarray):
        pt = self.cc.MakeCKKSPackedPlaintext(values.tolist(), 1, a.GetLevel())
        return self.cc.EvalMult(a, pt)

    def mul(self, a, b):
        return self.cc.EvalMult(a, b)  # FIXEDMANUAL: multiply + relinearise, no rescale

    def rescale(self, a):
        return self.cc.Rescale(a)

    def rotate(self, a, steps: int = 1):
        return self.cc.EvalRotate(a, steps)


# --------------------------------------------------------------------------- Pyfhel
class PyfhelAdapter(Adapter):
    """Pyfhel (SEAL underneath, through its own Cython layer)."""

    name = "Pyfhel"
    requires = "Pyfhel"

    def _setup(self, setting: Setting) -> None:
        pyfhel = importlib.import_module("Pyfhel")
        he = self.he = pyfhel.Pyfhel()
        he.contextGen(scheme="ckks", n=setting.n, scale=setting.scale, qi_sizes=list(setting.bits))
        he.keyGen()
        he.relinKeyGen()
        he.rotateKeyGen()

    def encrypt(self, values: np.ndarray):
        return self.he.encryptFrac(np.ascontiguousarray(values, dtype=np.float64))

    def decrypt(self, ct) -> np.ndarray:
        return np.asarray(self.he.decryptFrac(ct))[: self.setting.slots]

    def add(self, a, b):
        return self.he.add(a, b, in_new_ctxt=True)

    def mul_plain(self, a, values: np.ndarray):
        # Inputs here are fresh ciphertexts, at the same (top) level as a fresh encoding.
        pt = self.he.encodeFrac(np.ascontiguousarray(values, dtype=np.float64))
        return self.he.multiply_plain(a, pt, in_new_ctxt=True)

    def mul(self, a, b):
        out = self.he.multiply(a, b, in_new_ctxt=True)
        self.he.relinearize(out)
        return out

    def rescale(self, a):
        out = a.copy()
        self.he.rescale_to_next(out)
        return out

    def rotate(self, a, steps: int = 1):
        return self.he.rotate(a, steps, in_new_ctxt=True)


ADAPTERS: tuple[type[Adapter], ...] = (HennCkksAdapter, SealAdapter, OpenFheAdapter, PyfhelAdapter)


def adapters(names: Sequence[str] | None = None) -> list[Adapter]:
    """Fresh adapters, all of them or those named (case-insensitive)."""
    wanted = None if names is None else {n.lower() for n in names}
    return [cls() for cls in ADAPTERS if wanted is None or cls.name.lower() in wanted]
