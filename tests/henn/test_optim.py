"""henn.optim.SGD on the plaintext twin (exact): the update rules, sparse rows, and all-or-nothing steps;
then one step and its refusals on every scheme (the ``env`` fixture) against numpy."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import he_core
from henn.module import Parameter, RowGrad
from henn.optim import SGD
from henn.tensor import EncTensor


@pytest.fixture(scope="module")
def scheme():
    s = he_core.get_scheme("plain")
    s.keygen(rng=he_core.SeededRandom(1))
    return s


def dec(t: EncTensor) -> np.ndarray:
    return t.ct.data.copy()  # the twin's payload is the values (the decryption itself has its own tests)


values = st.lists(st.floats(-4, 4, width=16), min_size=3, max_size=3).map(lambda v: np.array([v]))


@given(w=values, g=values, lr=st.sampled_from([0.5, 0.25, 1.0]), wd=st.sampled_from([0.0, 0.5, 0.9]),
       prescaled=st.booleans())
@settings(max_examples=30, deadline=None)
def test_a_step_is_w_times_1_minus_lr_wd_minus_lr_g(scheme, w, g, lr, wd, prescaled):
    p = Parameter(EncTensor.encrypt(scheme, w), "w")
    p.grad = EncTensor.encrypt(scheme, g)
    SGD([p], lr=lr, weight_decay=wd).step(prescaled=prescaled)
    want = (1 - lr * wd) * w - (g if prescaled else lr * g)
    np.testing.assert_allclose(dec(p.value), want, rtol=0, atol=1e-12)


def test_a_row_gradient_lands_only_on_its_rows_repeats_accumulating(scheme):
    table = np.arange(12.0).reshape(4, 3)
    p = Parameter(EncTensor.encrypt(scheme, table), "table")
    bags = [np.array([0, 2]), np.array([2]), np.zeros(0, dtype=np.int64)]  # an empty bag lands nothing
    grads = np.array([[1.0] * 3, [2.0] * 3, [5.0] * 3])
    p.grad = RowGrad(bags=bags, values=EncTensor.encrypt(scheme, grads))
    SGD([p], lr=0.5).step()
    want = table.copy()
    want[0] -= 0.5
    want[2] -= 0.5 + 1.0
    np.testing.assert_array_equal(dec(p.value), want)


def test_updates_are_all_computed_before_any_lands(scheme):
    a = Parameter(EncTensor.encrypt(scheme, np.ones((1, 2))), "a")
    b = Parameter(EncTensor.encrypt(scheme, np.ones((1, 2))), "b")
    a.grad = EncTensor.encrypt(scheme, np.ones((1, 2)))
    opt = SGD([a, b], lr=0.1)
    with pytest.raises(RuntimeError, match="'b' has no gradient"):
        opt.step()
    np.testing.assert_array_equal(dec(a.value), np.ones((1, 2)))  # a did not move either
    assert opt.steps == 0
    b.grad = EncTensor.encrypt(scheme, np.ones((1, 2)))
    landing = opt.prepare()
    np.testing.assert_array_equal(dec(a.value), np.ones((1, 2)))  # prepared, not landed
    opt.land(landing)
    np.testing.assert_allclose(dec(a.value), np.full((1, 2), 0.9))
    assert opt.steps == 1


@pytest.mark.parametrize("lr,wd", [(0.0, 0.0), (-1.0, 0.0), (float("nan"), 0.0), (0.5, -0.1), (0.5, 2.0),
                                   (0.5, float("nan"))])
def test_bad_settings_are_refused(lr, wd):
    with pytest.raises(ValueError, match="cannot build SGD"):
        SGD([], lr=lr, weight_decay=wd)


def test_zero_grad_forgets_every_gradient(scheme):
    p = Parameter(EncTensor.encrypt(scheme, np.ones((1, 1))), "p")
    p.grad = EncTensor.encrypt(scheme, np.ones((1, 1)))
    SGD([p], lr=1.0).zero_grad()
    assert p.grad is None


# --------------------------------------------------------------------------- every scheme (the env fixture)
def test_sgd_step_matches_numpy(env):
    w = np.array([[1.0, -2.0, 0.5]])
    g = np.array([[0.25, 0.5, -1.0]])
    p = Parameter(EncTensor.encrypt(env.scheme, w), "w")
    opt = SGD([p], lr=0.5)
    p.grad = EncTensor.encrypt(env.scheme, g)
    opt.step()
    np.testing.assert_allclose(env.decrypt(p.value), w - 0.5 * g, atol=env.tol(3))
    opt.step()
    np.testing.assert_allclose(env.decrypt(p.value), w - g, atol=env.tol(5))
    assert opt.steps == 2
    opt.zero_grad()
    with pytest.raises(RuntimeError, match="no gradient"):
        opt.step()


def test_sgd_rejects_bad_settings(env):
    with pytest.raises(ValueError, match="learning rate"):
        SGD([], lr=0)
    with pytest.raises(TypeError):
        SGD([], lr=1, refresh_every=2)  # refreshing is the refresh policy's job, not the optimiser's
    with pytest.raises(TypeError, match="expected an EncTensor"):
        Parameter(np.ones(3))
