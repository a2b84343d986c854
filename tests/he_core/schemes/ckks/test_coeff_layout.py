"""he_core.schemes.ckks.coeff_layout: where a table keeps its values, and what marks a table or a constant."""
import warnings

import numpy as np
import pytest

from he_core import KeyRequirements, SeededRandom
from he_core.schemes.ckks import CkksParams, CkksScheme
from he_core.schemes.ckks.coeff_layout import (TABLE_LEVEL, coeff_meta, coeff_polys, coeff_positions, is_coeff,
                                               is_constant, nonzero_coeffs)
from he_core.schemes.ckks.params import REFRESH_FLOOR_LEVELS

N = 64


class Like:
    """The fields of a ciphertext these functions read."""

    def __init__(self, shape, meta):
        self.shape, self.meta = shape, meta
        self.rows, self.size = shape


@pytest.mark.parametrize("rev", [False, True])
def test_positions_read_back_what_the_polynomials_place(rev):
    values = np.arange(1, 16, dtype=np.float64).reshape(3, 5)  # 3 rows of 5 at stride 8
    polys = np.array(coeff_polys(values, 8, rev, 4.0, N))
    which, pos = coeff_positions(Like(values.shape, coeff_meta(1, 8, rev, dirty=False)), N)
    assert polys.shape == (1, N)
    assert np.array_equal(polys[which, pos], 4.0 * values)
    assert np.count_nonzero(polys) == values.size  # nothing anywhere else


def test_rows_beyond_one_ciphertext_go_to_the_next():
    values = np.ones((N // 8 + 1, 8))
    polys = coeff_polys(values, 8, False, 1.0, N)
    which, pos = coeff_positions(Like(values.shape, coeff_meta(1, 8, False, dirty=False)), N)
    assert len(polys) == 2 and which[-1, 0] == 1 and pos[-1, 0] == 0


def test_nonzero_coefficients_of_a_table_a_constant_and_anything_else():
    table = Like((3, 5), coeff_meta(1, 8, False, dirty=False))
    assert is_coeff(table) and not is_constant(table)
    assert nonzero_coeffs(table, N) == 15
    assert nonzero_coeffs(Like((3, 5), coeff_meta(1, 8, False, dirty=True)), N) == N  # garbage anywhere
    constant = Like((1, 1), {"stride": 1, "rep": True, "dirty": False})
    assert is_constant(constant) and nonzero_coeffs(constant, N) == 1
    assert nonzero_coeffs(Like((2, 4), {"stride": 4, "rep": False, "dirty": False}), N) == N  # slots


def test_tables_sit_one_level_above_the_refresh_floor_and_encrypt_there():
    assert TABLE_LEVEL == 1 + REFRESH_FLOOR_LEVELS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=1024, levels=3, allow_insecure=True))
    secret = scheme.keygen(KeyRequirements(sizes=(4,)), rng=SeededRandom(1)).secret
    table = scheme.encrypt(np.ones((2, 3)), secret, rng=SeededRandom(2), layout="table")
    assert is_coeff(table) and scheme.level(table) == min(TABLE_LEVEL, scheme.params.levels)
