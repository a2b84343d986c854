"""The vhe scheme is broken by design: these tests carry out the attacks SECURITY.md describes.

1. Key recovery from the public key alone (Bogos, Gaspoz & Vaudenay, 2018): with no
   modulus, the top block of the public key-switch matrix is I* - T A + E with A public
   (the bottom block), so least squares gives T to within E's small contribution, and
   rounding recovers it exactly.
2. Plaintext leakage with no key at all: the message columns are w X + (small), so
   rounding them by w reads X off the ciphertext.
"""
import importlib.util
import pathlib

import numpy as np

from he_core import SecretKey

_spec = importlib.util.spec_from_file_location("vhe_conftest", pathlib.Path(__file__).with_name("conftest.py"))
_conf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conf)


def recover_t(public_matrix_t: np.ndarray, m: int, k: int, digit_bits: int, ell: int) -> np.ndarray:
    """T from the (transposed) public-encryption key-switch matrix, by least squares."""
    M = public_matrix_t.T
    top, a = M[:m], M[m:m + k]
    # I*: row i has 2^(b d) at column i*ell + d, the known source key of public encryption.
    i_star = np.zeros_like(top)
    for i in range(m):
        for d in range(ell):
            i_star[i, i * ell + d] = 2 ** (digit_bits * d)
    residual = (top - i_star).astype(np.float64)  # = -T A + E: small integers, exact in float64
    minus_t, *_ = np.linalg.lstsq(a.T.astype(np.float64), residual.T, rcond=None)
    return np.rint(-minus_t.T).astype(np.int64)


def test_key_recovery_from_the_public_key_decrypts_public_ciphertexts():
    scheme, keys = _conf.make(sizes=(4,), seed=123, t_bound=2)  # a larger T than the default
    p = scheme.params
    m = 4
    public_matrix = keys.public.data["pub"][str(m)]  # what every party holds
    t = recover_t(public_matrix, m, p.k, p.digit_bits, p.ell)
    np.testing.assert_array_equal(t, keys.secret.data["T"][str(m)])

    x = np.array([[3.25, -17.5, 0.0, 42.0]])
    ct = scheme.encrypt(x)  # public-key encryption
    stolen = SecretKey("vhe", scheme.params_id, ct.key_id, {"T": {str(m): t}})
    np.testing.assert_array_equal(scheme.decrypt_exact_local(ct, stolen), x)


def test_rounding_the_ciphertext_leaks_the_plaintext_without_any_key():
    scheme, keys = _conf.make(sizes=(3,), seed=7)
    x = np.array([[1.5, -2.0, 30.25]])
    for ct in (scheme.encrypt(x), scheme.encrypt(x, keys.secret)):
        head = ct.data[:, :3].astype(object)
        leaked = np.array([[float(round(v / scheme.params.w)) for v in row] for row in head]) / ct.scale
        np.testing.assert_array_equal(leaked, x)
