"""he_core.schemes.vhe.keygen: the key-switch identity S' (M c*) = S_src c + E c*, checked in exact integers.

The digits c* are computed here in Python (signed base-2^b, ``ell`` per entry), so the
identity is checked independently of the native kernel.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from he_core import SeededRandom
from he_core.errors import HEOverflowError
from he_core.schemes.vhe import keygen
from he_core.schemes.vhe.params import VheParams

P = VheParams(w_bits=20, magnitude_bits=40)


def digits(c: np.ndarray, params: VheParams) -> np.ndarray:
    """Signed base-2^b digits of every entry, in [-2^(b-1), 2^(b-1)), entry j's at j*ell + d."""
    base, half = 1 << params.digit_bits, 1 << (params.digit_bits - 1)
    out = []
    for x in c.tolist():
        for _ in range(params.ell):
            d = ((x + half) % base) - half
            out.append(d)
            x = (x - d) // base
        assert x == 0
    return np.array(out, dtype=object)


@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 4), o=st.integers(1, 3), data=st.data())
@settings(max_examples=25, deadline=None)
def test_a_switch_matrix_moves_a_ciphertext_to_the_new_key_up_to_e_c_star(seed, m, o, data):
    rng = SeededRandom(seed)
    src = np.array(data.draw(st.lists(st.integers(-3, 3), min_size=o * m, max_size=o * m)), dtype=np.int64)
    src = src.reshape(o, m)
    t_dst = keygen.new_secret(P, o, rng)
    mt = keygen.switch_matrix(src, t_dst, P, rng)
    assert mt.shape == (m * P.ell, o + P.k) and mt.dtype == np.int64 and mt.flags.c_contiguous
    c = np.array(data.draw(st.lists(st.integers(-2**39, 2**39), min_size=m, max_size=m)), dtype=np.int64)
    cs = digits(c, P)
    switched = mt.T.astype(object) @ cs
    s_dst = keygen.full_key(t_dst).astype(object)
    err = s_dst @ switched - src.astype(object) @ c.astype(object)
    assert max(abs(int(e)) for e in err) <= P.e_bound * sum(abs(int(d)) for d in cs)


def test_secrets_and_full_keys():
    t = keygen.new_secret(P, 5, SeededRandom(1))
    assert t.shape == (5, P.k) and np.abs(t).max() <= P.t_bound
    s = keygen.full_key(t)
    np.testing.assert_array_equal(s[:, :5], np.eye(5, dtype=np.int64))
    np.testing.assert_array_equal(s[:, 5:], t)


def test_split_matrices_recombine_to_a_switch_matrix_for_large_sources():
    rng = SeededRandom(3)
    t_dst = keygen.new_secret(P, 2, rng)
    big = np.array([[2**40, -3], [5, -(2**41)]], dtype=object)
    hi, lo = keygen.split_switch_matrix(big, t_dst, P, rng)
    assert hi.dtype == lo.dtype == np.int64 and lo.min() >= 0 and lo.max() < 2**32
    full = hi.astype(object) * 2**32 + lo.astype(object)
    c = np.array([123456789, -987654321], dtype=np.int64)
    err = keygen.full_key(t_dst).astype(object) @ (full.T @ digits(c, P)) - big @ c.astype(object)
    assert max(abs(int(e)) for e in err) <= P.e_bound * sum(abs(int(d)) for d in digits(c, P))


def test_sources_too_large_for_int64_are_refused():
    with pytest.raises(HEOverflowError, match="too large"):
        keygen.switch_matrix(np.array([[2**62]], dtype=np.int64), np.zeros((1, 1), dtype=np.int64), VheParams(),
                             SeededRandom(1))


def test_tensor_blocks_and_block_diagonals():
    tl, tr = np.array([[2]]), np.array([[3], [5]])
    blocks = keygen.tensor_blocks(tl, tr)
    np.testing.assert_array_equal(blocks, [[1, 3, 2, 6], [1, 5, 2, 10]])  # vec([1 2]^T [1 t_r])
    diag = keygen.block_diagonal(blocks)
    assert diag.shape == (2, 8)
    np.testing.assert_array_equal(diag[0, :4], blocks[0])
    np.testing.assert_array_equal(diag[1, 4:], blocks[1])
    assert not diag[0, 4:].any() and not diag[1, :4].any()


def test_public_material_has_every_kind_for_every_size():
    rng = SeededRandom(2)
    secrets = {m: keygen.new_secret(P, m, rng) for m in (1, 3)}
    material = keygen.public_material(P, secrets, rng)
    assert set(material) == {"pub", "rr", "ew", "sv", "ip"}
    for kind in material:
        assert set(material[kind]) == {"1", "3"}
    assert material["ip"]["3"].shape[1] == 1 + P.k  # inner products land under the size-1 key
