"""cffi bindings of the native vhe kernels (``csrc/he_core.h``, section vhe), with the
reference's signatures.

Arguments are validated here before C sees them: every array must be int64 and
C-contiguous with consistent shapes (anything else raises ``TypeError`` /
``ValueError``), key columns and encryption noise must lie within the kernels' bounds
(:class:`~he_core.errors.ParameterError`), and C status codes become
:class:`~he_core.errors.HEOverflowError` or the named errors of :mod:`he_core.native`.
The kernels never allocate: the scratch they need is allocated here, at the size their
``*_scratch`` function gives.
"""
from __future__ import annotations

import numpy as np

from ... import native
from ...errors import HEOverflowError, ParameterError

_mod = native.load("vhe")
ffi, lib = _mod.ffi, _mod.lib
_I64 = np.dtype(np.int64)
_NULL = ffi.NULL
_from_buffer = ffi.from_buffer
_new = ffi.new
MAX_K = lib.VHE_MAX_K  # key columns the kernels accept (their 128-bit sums are sized for it)
MAX_NOISE = lib.VHE_MAX_NOISE  # encryption noise bound: 2 noise + 1 must fit int64
MAX_DIGITS = lib.VHE_MAX_DIGITS  # key-switch digits per row: their sums must fit the kernels' integers


def _buf(x: np.ndarray, what: str):
    # Identity tests and one flags read: this runs several times per scheme call.
    if type(x) is not np.ndarray or x.dtype is not _I64 and x.dtype != _I64:
        raise TypeError(f"vhe kernel argument {what} must be an int64 numpy array, got "
                        f"{getattr(x, 'dtype', type(x).__name__)}")
    if not x.flags.c_contiguous:
        raise ValueError(f"vhe kernel argument {what} must be C-contiguous")
    return _from_buffer("int64_t[]", x)


def _wbuf(x: np.ndarray):
    return _from_buffer("int64_t[]", x)  # outputs are fresh arrays made here, or checked by _buf first


def _check(status: int, what: str, digits: bool = False) -> None:
    if status == 0:
        return
    if status == lib.HE_ERR_OVERFLOW:
        raise HEOverflowError(f"cannot {what}: a result would exceed the parameters' magnitude limit")
    if digits and status == lib.HE_ERR_RANGE:
        raise HEOverflowError(f"cannot {what}: an entry lies outside the range the key-switch digits cover")
    native.check(status, f"{what} (vhe kernel)")


def _check_k(k: int, what: str) -> None:
    if not 0 <= k <= MAX_K:
        raise ParameterError(f"cannot {what}: {k} key columns, the kernels take 0 .. {MAX_K}")


def _check_digits(count: int, what: str) -> None:
    if count > MAX_DIGITS:
        raise ParameterError(f"cannot {what}: {count} key-switch digits per row, the kernels take at most 2^43")


def _scratch(words: int) -> np.ndarray:
    return np.empty(words, dtype=np.int64)


def _mat(x: np.ndarray, what: str):
    """The buffer of a 2-D, int64, C-contiguous array (the hot kernels' one-test fast path)."""
    if type(x) is np.ndarray and x.dtype is _I64 and x.ndim == 2 and x.flags.c_contiguous:
        return _from_buffer("int64_t[]", x)
    _matrix(x, what)  # raises the precise error
    return _buf(x, what)


def _rows_ok(r: int, rows: int, what: str) -> None:
    if r != rows and r != 1:
        raise ValueError(f"vhe kernel: {what} has {r} rows, expected {rows} or 1")


def _matrix(x: np.ndarray, what: str) -> None:
    if getattr(x, "ndim", None) != 2:  # the type itself is checked by _buf
        raise ValueError(f"vhe kernel argument {what} must be a 2-D array")


def add(a, b, sign, head, limit):
    pa, pb = _mat(a, "a"), _mat(b, "b")
    (ra, n), (rb, nb) = a.shape, b.shape
    rows = ra if ra >= rb else rb
    if nb != n:
        raise ValueError("vhe kernel add: operands differ in length")
    if sign != 1 and sign != -1:
        raise ValueError(f"vhe kernel add: sign must be 1 or -1, got {sign}")
    _rows_ok(ra, rows, "a"); _rows_ok(rb, rows, "b")
    out = np.empty((rows, n), dtype=np.int64)
    st = _new("int64_t[3]")
    status = lib.vhe_add(pa, ra, pb, rb, rows, n, head, sign, limit, _wbuf(out), st)
    if status:
        _check(status, "add")
    return out, (st[0], st[1])


def scale(a, p, div, head, limit):
    pa = _mat(a, "a")
    if type(p) is not np.ndarray or p.ndim != 1:
        raise ValueError("vhe kernel scale: factors must be a 1-D array")
    (ra, n), rp = a.shape, p.shape[0]
    rows = ra if ra >= rp else rp
    _rows_ok(ra, rows, "a"); _rows_ok(rp, rows, "factors")
    out = np.empty((rows, n), dtype=np.int64)
    st = _new("int64_t[3]")
    status = lib.vhe_scale(pa, ra, _buf(p, "p"), rp, rows, n, head, div, limit, _wbuf(out), st)
    if status:
        _check(status, "scale")
    return out, (st[0], st[1])


def combine(hi, lo, shift, div, head, limit):
    _matrix(hi, "hi"); _matrix(lo, "lo")
    if hi.shape != lo.shape:
        raise ValueError("vhe kernel combine: hi and lo differ in shape")
    out = np.empty(hi.shape, dtype=np.int64)
    st = _new("int64_t[3]")
    _check(lib.vhe_combine(_buf(hi, "hi"), _buf(lo, "lo"), hi.shape[0], hi.shape[1], head, shift, div, limit,
                           _wbuf(out), st), "recombine")
    return out, (st[0], st[1])


def lincomb(w, a, div, head, limit):
    _matrix(w, "w"); _matrix(a, "a")
    if w.shape[1] != a.shape[0]:
        raise ValueError("vhe kernel lincomb: weights do not match the rows")
    out = np.empty((w.shape[0], a.shape[1]), dtype=np.int64)
    st = _new("int64_t[3]")
    _check(lib.vhe_lincomb(_buf(w, "w"), w.shape[0], _buf(a, "a"), a.shape[0], a.shape[1], head, div, limit,
                           _wbuf(out), st), "lincomb")
    return out, (st[0], st[1])


def gather_sum(a, idx, head, limit):
    pa = _mat(a, "a")
    rows, n = a.shape
    out = np.empty((1, n), dtype=np.int64)
    st = _new("int64_t[3]")
    if idx is None:
        status = lib.vhe_gather_sum(pa, rows, n, _NULL, 0, head, limit, _wbuf(out), st)
    else:
        status = lib.vhe_gather_sum(pa, rows, n, _buf(idx, "idx"), idx.shape[0], head, limit, _wbuf(out), st)
    if status:
        _check(status, "row_sum")
    return out, (st[0], st[1])


def scatter_add(a, idx, b, head, limit):
    pa, pb = _mat(a, "a"), _mat(b, "b")
    if b.shape[1] != a.shape[1] or b.shape[0] not in (1, idx.shape[0]):
        raise ValueError("vhe kernel scatter_add: shapes do not match")
    if not a.flags.writeable:
        raise ValueError("vhe kernel scatter_add: the target array is read-only")
    st = _new("int64_t[3]")
    words = lib.vhe_scatter_add_scratch(a.shape[0])
    status = lib.vhe_scatter_add(pa, a.shape[0], a.shape[1], _buf(idx, "idx"), idx.shape[0], pb, b.shape[0], head,
                                 limit, st, _wbuf(_scratch(words)), words)
    if status:
        _check(status, "index_add_")
    return st[0], st[1], st[2]


def tensor(a, ma, b, m, k, div, limit):
    _matrix(a, "a"); _matrix(b, "b")
    rows = max(a.shape[0], b.shape[0])
    _check_k(k, "multiply")
    if a.shape[1] != ma + k or b.shape[1] != m + k or ma not in (1, m):
        raise ValueError("vhe kernel tensor: operand lengths do not match m and k")
    _rows_ok(a.shape[0], rows, "a"); _rows_ok(b.shape[0], rows, "b")
    out = np.empty((rows, m * (1 + k) ** 2), dtype=np.int64)
    _check(lib.vhe_tensor(_buf(a, "a"), a.shape[0], ma, _buf(b, "b"), b.shape[0], m, k, rows, div, limit,
                          _wbuf(out)), "multiply")
    return out


def keyswitch(c, mt, digit_bits, ell, head, limit):
    """Returns ``(out, (head max, key-column max, largest digit L1 of a row))``."""
    _matrix(c, "c"); _matrix(mt, "key")
    _check_digits(c.shape[1] * ell, "key switch")
    if mt.shape[0] != c.shape[1] * ell:
        raise ValueError(f"vhe kernel keyswitch: key has {mt.shape[0]} rows, expected {c.shape[1] * ell}")
    out = np.empty((c.shape[0], mt.shape[1]), dtype=np.int64)
    st = _new("int64_t[3]")
    words = lib.vhe_keyswitch_scratch(c.shape[1], ell)
    _check(lib.vhe_keyswitch(_buf(c, "c"), c.shape[0], c.shape[1], _buf(mt, "key"), mt.shape[1], digit_bits, ell,
                             head, limit, _wbuf(out), st, _wbuf(_scratch(words)), words), "key switch", digits=True)
    return out, (st[0], st[1], st[2])


def mul(a, ma, b, m, k, div, mt, digit_bits, ell, head, limit):
    """:func:`tensor` then :func:`keyswitch` in one native call (no intermediate array)."""
    pa, pb, pk = _mat(a, "a"), _mat(b, "b"), _mat(mt, "key")
    (ra, na), (rb, nb), (kr, out_len) = a.shape, b.shape, mt.shape
    rows = ra if ra >= rb else rb
    if k > MAX_K or k < 0:
        _check_k(k, "multiply")
    if na != ma + k or nb != m + k or (ma != 1 and ma != m):
        raise ValueError("vhe kernel mul: operand lengths do not match m and k")
    _rows_ok(ra, rows, "a"); _rows_ok(rb, rows, "b")
    _check_digits(m * (1 + k) * (1 + k) * ell, "multiply")
    if kr != m * (1 + k) * (1 + k) * ell:
        raise ValueError(f"vhe kernel mul: key has {kr} rows, expected {m * (1 + k) ** 2 * ell}")
    out = np.empty((rows, out_len), dtype=np.int64)
    st = _new("int64_t[3]")
    words = lib.vhe_mul_scratch(m, k, ell)
    status = lib.vhe_mul(pa, ra, ma, pb, rb, m, k, rows, div, pk, out_len, digit_bits, ell, head, limit,
                         _wbuf(out), st, _wbuf(_scratch(words)), words)
    if status:
        _check(status, "multiply", digits=True)
    return out, (st[0], st[1], st[2])


def encrypt_secret(x, t, w, noise, data):
    """In place on ``data`` (uniform draws, ``(rows, m + k)``): see :func:`reference.encrypt_secret`."""
    _matrix(x, "x"); _matrix(t, "T"); _matrix(data, "data")
    rows, m = x.shape
    k = t.shape[1]
    _check_k(k, "encrypt")
    if not 0 <= noise <= MAX_NOISE:
        raise ParameterError(f"cannot encrypt: noise {noise} lies outside 0 .. 2^62 - 1 (2 noise + 1 must fit int64)")
    if t.shape[0] != m or data.shape != (rows, m + k):
        raise ValueError("vhe kernel encrypt: shapes do not match m and k")
    _buf(data, "data")
    if not data.flags.writeable:
        raise ValueError("vhe kernel encrypt: the target array is read-only")
    _check(lib.vhe_encrypt(_buf(x, "x"), rows, m, k, _buf(t, "T"), w, noise, _wbuf(data)), "encrypt")


def decrypt(c, m, k, t, w):
    _matrix(c, "c"); _matrix(t, "T")
    _check_k(k, "decrypt")
    if c.shape[1] != m + k or t.shape != (m, k):
        raise ValueError("vhe kernel decrypt: shapes do not match m and k")
    x = np.empty((c.shape[0], m), dtype=np.int64)
    _check(lib.vhe_decrypt(_buf(c, "c"), c.shape[0], m, k, _buf(t, "T"), w, _wbuf(x)), "decrypt")
    return x
