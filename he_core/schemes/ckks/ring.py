"""The RNS polynomial ring of a parameter set, backed by the native ``_ckks`` kernels.

One :class:`RnsRing` per parameter set holds the NTT tables of every prime (ciphertext
primes first, special primes last) and the ring arithmetic on them: transforms,
element-wise operations, rescaling, base conversion and Galois permutations. Key
switching, which combines these with a key, lives in :mod:`.keyswitch`; it shares the
ring's bases, pointers and scratch buffer (``basis``, ``_ptr``, ``_scratch``, ``_check``).
Polynomials are C-contiguous uint64 arrays of shape ``(limbs, N)``; limb i belongs to
prime i of the basis the call names. Sizes and moduli are validated here, in Python,
before any pointer reaches C.
"""
from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from ... import native
from ...errors import ParameterError
from .params import CkksParams
from .primes import primitive_root_2n

_lib_cache: dict = {}


def _native():
    if "mod" not in _lib_cache:
        _lib_cache["mod"] = native.load("ckks")
    return _lib_cache["mod"]


class RnsRing:
    """NTT tables and kernels for Z_Q[X]/(X^N + 1) in RNS form.

    Args:
        n: ring dimension (power of two).
        q_primes: ciphertext primes q_0 .. q_L.
        p_primes: special primes (may be empty when key switching is not used).
    """

    def __init__(self, n: int, q_primes, p_primes=()):
        mod = _native()
        self.ffi, self.lib = mod.ffi, mod.lib
        self.n = int(n)
        self.q = tuple(int(q) for q in q_primes)
        self.p = tuple(int(p) for p in p_primes)
        primes = self.q + self.p
        if len(set(primes)) != len(primes):
            raise ParameterError("cannot build the ring: primes must be distinct")
        for q in primes:
            if not (2 < q < 2**61) or (q - 1) % (2 * self.n):
                raise ParameterError(f"cannot build the ring: {q} is not a prime = 1 mod 2N below 2^61")
        self._tables = np.zeros((len(primes), 4 * self.n), dtype=np.uint64)
        self._mods = self.ffi.new("ckks_modulus[]", len(primes))
        for i, q in enumerate(primes):
            psi = primitive_root_2n(q, self.n)
            tab = self.ffi.cast("uint64_t *", self._tables[i].ctypes.data)
            native.check(self.lib.ckks_modulus_init(self._mods + i, q, psi, self.n, tab, self._tables[i].size),
                         "modulus init")
        self._qp_cache: dict[int, object] = {}
        self._scalar_cache: dict = {}
        self._repeat_cache: dict[tuple[int, int], object] = {}
        self._local = threading.local()  # per-thread scratch (see _scratch)

    @classmethod
    def for_params(cls, params: CkksParams) -> "RnsRing":
        return _ring_for(params.poly_degree, params.q_primes, params.p_primes)

    # ------------------------------------------------------------------ bases and pointers
    def _ptr(self, a: np.ndarray):
        # from_buffer is ~7x cheaper than a cast of ctypes.data and keeps the array alive for the call.
        if a.dtype == np.uint64 and a.flags.c_contiguous:
            return self.ffi.from_buffer("uint64_t[]", a)
        return self.ffi.cast("uint64_t *", a.ctypes.data)

    def _out(self, a: np.ndarray):
        """:meth:`_ptr` of an array a kernel writes: refused when read-only (a memory map opened
        for reading, a view of ``bytes``), which the kernel would crash on or silently overwrite."""
        if not a.flags.writeable:
            raise ParameterError(f"cannot write the result into a read-only array of shape {a.shape}")
        return self._ptr(a)

    def basis(self, nq: int, special: bool = False):
        """cffi pointer to the moduli of q_0 .. q_{nq-1} (followed by the special primes if asked)."""
        if not 1 <= nq <= len(self.q):
            raise ParameterError(f"cannot use {nq} limbs: the ring has {len(self.q)} ciphertext primes")
        if not special:
            return self._mods
        if nq not in self._qp_cache:
            k = len(self.q)
            arr = self.ffi.new("ckks_modulus[]", nq + len(self.p))
            for i in range(nq):
                arr[i] = self._mods[i]
            for j in range(len(self.p)):
                arr[nq + j] = self._mods[k + j]
            self._qp_cache[nq] = arr
        return self._qp_cache[nq]

    def moduli(self, nq: int, special: bool = False) -> tuple[int, ...]:
        return self.q[:nq] + (self.p if special else ())

    def _check(self, a: np.ndarray, nlimbs: int | None = None) -> int:
        if a.dtype != np.uint64 or not a.flags.c_contiguous or a.ndim != 2 or a.shape[1] != self.n:
            raise ParameterError(f"cannot use polynomial of dtype {a.dtype} and shape {a.shape}: "
                                 f"need a C-contiguous uint64 (limbs, {self.n}) array")
        if nlimbs is not None and a.shape[0] != nlimbs:
            raise ParameterError(f"cannot combine polynomials with {a.shape[0]} and {nlimbs} limbs")
        # A prefix of the ciphertext primes, or every prime (key material over Q*P).
        if not (1 <= a.shape[0] <= len(self.q) or a.shape[0] == len(self.q) + len(self.p)):
            raise ParameterError(f"cannot use {a.shape[0]} limbs: the ring has {len(self.q)} ciphertext primes")
        return a.shape[0]

    # ------------------------------------------------------------------ transforms
    def _check_transform(self, a: np.ndarray, special: bool) -> int:
        """The ciphertext limbs of an in-place transform's array (all of it checked: the kernel
        walks every row, the special primes' too)."""
        if a.dtype != np.uint64 or not a.flags.c_contiguous or a.ndim != 2 or a.shape[1] != self.n:
            raise ParameterError(f"cannot use polynomial of dtype {a.dtype} and shape {a.shape}: "
                                 f"need a C-contiguous uint64 (limbs, {self.n}) array")
        nl = a.shape[0] - (len(self.p) if special else 0)
        self._check(a[:nl] if special else a)
        return nl

    def ntt(self, a: np.ndarray, special: bool = False) -> np.ndarray:
        """In-place forward NTT of a (limbs, N) polynomial; returns ``a``."""
        nl = self._check_transform(a, special)
        native.check(self.lib.ckks_ntt(self.basis(nl, special), a.shape[0], self.n, self._out(a)), "ntt")
        return a

    def intt(self, a: np.ndarray, special: bool = False) -> np.ndarray:
        nl = self._check_transform(a, special)
        native.check(self.lib.ckks_intt(self.basis(nl, special), a.shape[0], self.n, self._out(a)), "intt")
        return a

    # ------------------------------------------------------------------ element-wise
    def add(self, a, b, out=None):
        nl = self._check(a)
        self._check(b, nl)
        out = np.empty_like(a) if out is None else out
        native.check(self.lib.ckks_add(self._mods, nl, self.n, self._ptr(a), self._ptr(b), self._out(out)), "add")
        return out

    def sub(self, a, b, out=None):
        nl = self._check(a)
        self._check(b, nl)
        out = np.empty_like(a) if out is None else out
        native.check(self.lib.ckks_sub(self._mods, nl, self.n, self._ptr(a), self._ptr(b), self._out(out)), "sub")
        return out

    def add_stacked(self, a: np.ndarray, b: np.ndarray, sub: bool = False) -> np.ndarray:
        """a + b (or a - b) of two (..., limbs, N) stacks of polynomials over the same limbs, in one
        kernel call (the moduli repeated per polynomial): a ciphertext batch's sum at once."""
        if (a.dtype != np.uint64 or b.dtype != np.uint64 or a.shape != b.shape or a.ndim < 2
                or a.shape[-1] != self.n or not (a.flags.c_contiguous and b.flags.c_contiguous)):
            raise ParameterError(f"cannot add stacks of shapes {a.shape} and {b.shape}: need equal C-contiguous "
                                 f"uint64 (..., limbs, {self.n}) arrays")
        nl = self._check(a.reshape(-1, self.n)[: a.shape[-2]])
        polys = a.size // (nl * self.n)
        out = np.empty_like(a)
        fn = self.lib.ckks_sub if sub else self.lib.ckks_add
        native.check(fn(self._repeated_basis(nl, polys), nl * polys, self.n, self._ptr(a), self._ptr(b),
                        self._out(out)), "sub" if sub else "add")
        return out

    def _repeated_basis(self, nl: int, polys: int):
        """The moduli of q_0 .. q_{nl-1}, ``polys`` times over (cached)."""
        arr = self._repeat_cache.get((nl, polys))
        if arr is None:
            arr = self.ffi.new("ckks_modulus[]", nl * polys)
            for k in range(polys):
                for i in range(nl):
                    arr[k * nl + i] = self._mods[i]
            if len(self._repeat_cache) < 256:  # batch sizes vary: keep the cache bounded
                self._repeat_cache[(nl, polys)] = arr
        return arr

    def neg(self, a, out=None):
        nl = self._check(a)
        out = np.empty_like(a) if out is None else out
        native.check(self.lib.ckks_neg(self._mods, nl, self.n, self._ptr(a), self._out(out)), "neg")
        return out

    def mul(self, a, b, out=None):
        nl = self._check(a)
        self._check(b, nl)
        out = np.empty_like(a) if out is None else out
        native.check(self.lib.ckks_mul(self._mods, nl, self.n, self._ptr(a), self._ptr(b), self._out(out)), "mul")
        return out

    def muladd(self, a, b, acc):
        """acc += a * b (in place)."""
        nl = self._check(a)
        self._check(b, nl)
        self._check(acc, nl)
        native.check(self.lib.ckks_muladd(self._mods, nl, self.n, self._ptr(a), self._ptr(b), self._out(acc)),
                     "muladd")
        return acc

    def dot(self, xs, ps, out=None) -> np.ndarray:
        """sum_t xs[t] * ps[t] for equal-shape (limbs, N) residue arrays, each coefficient's sum
        reduced once (cheaper than a chain of :meth:`muladd`)."""
        if len(xs) == 0 or len(xs) != len(ps):
            raise ParameterError(f"cannot take a sum of products of {len(xs)} and {len(ps)} factors")
        nl = self._check(xs[0])
        shape = xs[0].shape
        for a in (*xs, *ps):
            if a.dtype != np.uint64 or a.shape != shape or not a.flags.c_contiguous:
                self._check(a, nl)  # raises the named error
        out = np.empty_like(xs[0]) if out is None else out
        self._check(out, nl)
        if any(np.may_share_memory(out, a) for a in (*xs, *ps)):
            raise ParameterError("cannot write a sum of products over one of its factors")
        buf = self.ffi.from_buffer
        # The buffers stay referenced here until the call returns (the C side holds raw pointers).
        xbufs, pbufs = [buf("uint64_t[]", a) for a in xs], [buf("uint64_t[]", a) for a in ps]
        xp, pp = self.ffi.new("uint64_t *[]", xbufs), self.ffi.new("uint64_t *[]", pbufs)
        native.check(self.lib.ckks_dot(self._mods, nl, self.n, xp, pp, len(xs), self._out(out)), "dot")
        del xbufs, pbufs
        return out

    def mul_int(self, a, value: int, out=None):
        """a times the (signed, arbitrary-size) integer ``value``."""
        nl = self._check(a)
        s = np.array([int(value) % q for q in (self.q + self.p)[:nl]], dtype=np.uint64)
        out = np.empty_like(a) if out is None else out
        native.check(self.lib.ckks_mul_scalar(self._mods, nl, self.n, self._ptr(a), self._ptr(s), self._out(out)),
                     "mul_scalar")
        return out

    def lincomb(self, a: np.ndarray, factors, out: np.ndarray | None = None) -> np.ndarray:
        """``out[j] = sum_r factors[j][r] * a[r]``: integer linear combinations of polynomials.

        Args:
            a: ``(rows, limbs, N)`` uint64 residues, each ``(limbs, N)`` block contiguous (the rows may
                be spaced further apart: ``data[:, part]`` of a batch of ciphertexts).
            factors: ``(outputs, rows)`` signed integers of any size.
            out: ``(outputs, limbs, N)`` with the same layout rules, not overlapping ``a``.

        One pass over the operands with 128-bit sums (:func:`ckks_lincomb`), instead of a product
        and a sum per term.
        """
        nl = self._check_rows(a, "combine")
        factors = [[int(f) for f in row] for row in factors]
        if not factors or any(len(row) != a.shape[0] for row in factors):
            raise ParameterError(f"cannot combine {a.shape[0]} polynomials: need (outputs, {a.shape[0]}) factors")
        primes = (self.q + self.p)[:nl]
        w = np.array([[[f % q for q in primes] for f in row] for row in factors], dtype=np.uint64)
        out = np.empty((len(factors), nl, self.n), dtype=np.uint64) if out is None else out
        if self._check_rows(out, "write") != nl or out.shape[0] != len(factors):
            raise ParameterError(f"cannot combine into an array of shape {out.shape}: need ({len(factors)}, {nl}, "
                                 f"{self.n})")
        if np.may_share_memory(a, out):  # bounds only: cheap, and errs on the side of refusing
            raise ParameterError("cannot combine polynomials into an array that overlaps them")
        native.check(self.lib.ckks_lincomb(self._mods, nl, self.n, a.shape[0], len(factors), self._ptr(a),
                                           a.strides[0] // 8, self._ptr(w), self._out(out), out.strides[0] // 8),
                     "lincomb")
        return out

    def _check_rows(self, a: np.ndarray, what: str) -> int:
        """Limbs of a ``(rows, limbs, N)`` stack whose blocks are contiguous (rows any whole-word distance apart)."""
        if not isinstance(a, np.ndarray) or a.dtype != np.uint64 or a.ndim != 3 or a.shape[0] == 0 \
                or a.strides[1:] != (8 * self.n, 8) or a.strides[0] < 8 * a.shape[1] * self.n or a.strides[0] % 8:
            raise ParameterError(f"cannot {what} polynomials of dtype {getattr(a, 'dtype', None)} and shape "
                                 f"{getattr(a, 'shape', None)}: need (rows, limbs, {self.n}) uint64 blocks")
        return self._check(a[0])

    def mul_scalar_limb(self, a: np.ndarray, value: int, limb: int) -> np.ndarray:
        """One limb (shape (N,)) of prime ``limb`` times ``value``, modulo that prime."""
        primes = self.q + self.p
        a = np.ascontiguousarray(a, dtype=np.uint64)
        if a.shape != (self.n,) or not 0 <= limb < len(primes) or int(a.max(initial=0)) >= primes[limb]:
            raise ParameterError("cannot multiply limb: wrong shape, limb index or unreduced values")
        s = np.array([int(value) % primes[limb]], dtype=np.uint64)
        out = np.empty_like(a)
        native.check(self.lib.ckks_mul_scalar(self._mods + limb, 1, self.n, self._ptr(a), self._ptr(s),
                                              self._out(out)), "mul_scalar")
        return out

    def from_signed(self, x: np.ndarray, nlimbs: int, special: bool = False) -> np.ndarray:
        """Signed int64 coefficients to a (limbs, N) RNS polynomial (coefficient form)."""
        x = np.ascontiguousarray(x, dtype=np.int64)
        if x.shape != (self.n,):
            raise ParameterError(f"cannot reduce coefficients of shape {x.shape}: need ({self.n},)")
        total = nlimbs + (len(self.p) if special else 0)
        out = np.empty((total, self.n), dtype=np.uint64)
        native.check(self.lib.ckks_from_signed(self.basis(nlimbs, special), total, self.n,
                                               self.ffi.cast("int64_t *", x.ctypes.data), self._out(out)),
                     "from_signed")
        return out

    def rescale(self, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Round a / q_last, dropping the last limb (NTT form in and out)."""
        nl = self._check(a)
        if nl < 2:
            raise ParameterError("cannot rescale: only one prime left")
        out = np.empty((nl - 1, self.n), dtype=np.uint64) if out is None else out
        self._check(out, nl - 1)
        scratch = self._scratch(self.lib.ckks_rescale_scratch(self.n))
        native.check(self.lib.ckks_rescale(self._mods, nl, self.n, self._ptr(a), self._out(out),
                                           self._ptr(scratch), scratch.size), "rescale")
        return out

    def drop_special(self, a: np.ndarray) -> np.ndarray:
        """Round a / P for a polynomial over all of Q*P (NTT form): the result over Q.

        Used by public-key encryption, which works over Q*P so that this division
        shrinks its noise by P (to the rounding error) before the message is added.

        Raises:
            ParameterError: if ``a`` is not over every prime of Q*P.
        """
        nq, k = len(self.q), len(self.p)
        self._check(a, nq + k)
        cur = np.ascontiguousarray(a)
        scratch = self._scratch(self.lib.ckks_rescale_scratch(self.n))
        for j in range(k):  # one special prime at a time, last first (as the moduli table is ordered)
            nl = nq + k - j
            out = np.empty((nl - 1, self.n), dtype=np.uint64)
            native.check(self.lib.ckks_rescale(self._mods, nl, self.n, self._ptr(cur), self._out(out),
                                               self._ptr(scratch), scratch.size), "rescale")
            cur = out
        return cur

    def permute(self, a: np.ndarray, perm: np.ndarray) -> np.ndarray:
        nl = self._check(a)
        if (not isinstance(perm, np.ndarray) or perm.dtype != np.uint32 or perm.shape != (self.n,)
                or not perm.flags.c_contiguous):
            raise ParameterError(f"cannot permute by {getattr(perm, 'dtype', type(perm))} of shape "
                                 f"{getattr(perm, 'shape', '?')}: need a C-contiguous uint32 array of {self.n}")
        out = np.empty_like(a)
        native.check(self.lib.ckks_permute(nl, self.n, self._ptr(a),
                                           self.ffi.cast("uint32_t *", perm.ctypes.data), self._out(out)),
                     "permute")
        return out

    def _scratch(self, words: int) -> np.ndarray:
        """A reusable work buffer of at least ``words`` words, one per ring and Python thread.

        Reused between calls so the hot path never touches fresh pages; the kernels check
        its length (passed with it) against their ``*_scratch`` sizes. Per thread, because
        the kernels release the GIL: two threads sharing one buffer (a server answering
        queries on a thread pool) would overwrite each other's key switch.
        """
        buf = getattr(self._local, "scratch", None)
        if buf is None or buf.size < words:
            raw = np.zeros(words + 8, dtype=np.uint64)
            start = (-raw.ctypes.data % 64) // 8  # cache-line aligned: limbs do not straddle lines
            buf = raw[start: start + words]
            self._local.scratch = buf
        return buf

    # ------------------------------------------------------------------ base conversion
    @staticmethod
    def conv_constants(src, dst) -> tuple[np.ndarray, np.ndarray]:
        """Fast base conversion constants: (src_prod/q_i)^-1 mod q_i and (src_prod/q_i) mod p_t."""
        prod = 1
        for q in src:
            prod *= q
        inv_hat = np.array([pow(prod // q % q, -1, q) for q in src], dtype=np.uint64)
        hat = np.array([[prod // q % p for p in dst] for q in src], dtype=np.uint64)
        return inv_hat, hat

    def base_conv(self, x: np.ndarray, src_idx, dst_idx) -> np.ndarray:
        """Fast base conversion of coefficient-form limbs between two sets of ring primes.

        Args:
            x: (len(src_idx), N) coefficient-form limbs.
            src_idx, dst_idx: indices into q_primes + p_primes.
        """
        primes = self.q + self.p
        src, dst = [primes[i] for i in src_idx], [primes[i] for i in dst_idx]
        if x.shape != (len(src), self.n) or x.dtype != np.uint64:
            raise ParameterError(f"cannot convert limbs of shape {x.shape}")
        m_src = self.ffi.new("ckks_modulus[]", len(src))
        m_dst = self.ffi.new("ckks_modulus[]", len(dst))
        for j, i in enumerate(src_idx):
            m_src[j] = self._mods[i]
        for j, i in enumerate(dst_idx):
            m_dst[j] = self._mods[i]
        inv_hat, hat = self.conv_constants(src, dst)
        x = np.ascontiguousarray(x)
        out = np.empty((len(dst), self.n), dtype=np.uint64)
        scratch = self._scratch(self.lib.ckks_base_conv_scratch(len(src), self.n))
        native.check(self.lib.ckks_base_conv(m_src, len(src), m_dst, len(dst), self.n, self._ptr(x),
                                             self._ptr(inv_hat), self._ptr(hat), self._out(out),
                                             self._ptr(scratch), scratch.size), "base_conv")
        return out

    # ------------------------------------------------------------------ Galois automorphisms
    @lru_cache(maxsize=None)
    def galois_perm(self, g: int) -> np.ndarray:
        """Index permutation that applies X -> X^g to an NTT-form polynomial.

        Entry k of an NTT-form polynomial is a(psi^(2*brev(k)+1)); the automorphism's
        value there is a(psi^((2*brev(k)+1)*g)), found at the index whose exponent matches.
        """
        n, logn = self.n, self.n.bit_length() - 1
        if g % 2 == 0 or not 0 < g < 2 * n:
            raise ParameterError(f"cannot use Galois element {g}: need an odd value below 2N")
        k = np.arange(n)
        rev = np.zeros(n, dtype=np.int64)
        for b in range(logn):
            rev |= ((k >> b) & 1) << (logn - 1 - b)
        exps = 2 * rev + 1
        where = np.empty(2 * n, dtype=np.int64)
        where[exps] = k
        return np.ascontiguousarray(where[(exps * g) % (2 * n)].astype(np.uint32))


@lru_cache(maxsize=8)
def _ring_for(n: int, q_primes: tuple[int, ...], p_primes: tuple[int, ...]) -> RnsRing:
    return RnsRing(n, q_primes, p_primes)
