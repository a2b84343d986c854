"""henn.training.batches: what fit accepts (hyper-parameters, rows, targets) and how batches are taken."""
import numpy as np
import pytest

import he_core
from henn.tensor import EncTensor
from henn.training.batches import as_targets, check_hyper, count_rows, take_rows


@pytest.mark.parametrize("lr,epochs,batch", [(0, 1, 1), (-1.0, 1, 1), (float("nan"), 1, 1), (float("inf"), 1, 1),
                                             ("0.1", 1, 1), (0.1, 0, 1), (0.1, 1.0, 1), (0.1, True, 1),
                                             (0.1, 1, -3)])
def test_bad_hyper_parameters_are_refused(lr, epochs, batch):
    with pytest.raises(ValueError, match="cannot fit"):
        check_hyper(lr, epochs, batch)


def test_good_hyper_parameters_pass():
    check_hyper(0.5, 3, np.int64(8))


def test_rows_are_counted_and_bad_plaintext_refused():
    s = he_core.get_scheme("plain")
    s.keygen()
    assert count_rows(np.zeros((5, 2)), "x") == 5 and count_rows([1.0, 2.0], "y") == 2
    assert count_rows(EncTensor.encrypt(s, np.zeros((3, 2))), "x") == 3
    for bad in (np.zeros((0, 2)), np.zeros((2, 2, 2)), 3.0, [["a"]], [np.nan], [np.inf, 1.0]):
        with pytest.raises(ValueError, match="cannot fit: x"):
            count_rows(bad, "x")


def test_targets_become_columns_and_encrypted_ones_pass():
    assert as_targets([1, 0, 1]).shape == (3, 1)
    assert as_targets(np.zeros((3, 2))).shape == (3, 2)
    s = he_core.get_scheme("plain")
    s.keygen()
    t = EncTensor.encrypt(s, np.zeros((3, 1)))
    assert as_targets(t) is t


def test_take_rows_of_every_kind():
    x = np.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(take_rows(x, np.array([3, 1])), x[[3, 1]])
    s = he_core.get_scheme("plain")
    s.keygen()
    t = take_rows(EncTensor.encrypt(s, x), np.array([3, 1]))
    np.testing.assert_array_equal(t.ct.data, x[[3, 1]])
