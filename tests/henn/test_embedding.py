"""Sparse input into an encrypted table: Bags, EmbeddingBag forward and backward, and training through fit."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import he_core
from henn import activations
from henn.embedding import Bags, EmbeddingBag
from henn.keyholder import RefreshTerms
from henn.layers import Linear
from henn.losses import PolyLogisticLoss
from henn.module import RowGrad, Sequential
from henn.optim import SGD
from henn.tensor import EncTensor
from henn.training.fit import SinglePartyWarning, fit, in_process_keyholder


# ---------------------------------------------------------------------------- Bags
def test_bags_sort_keep_repeats_and_check_their_indices():
    bags = Bags([[3, 1, 1], [], np.array([0], dtype=np.int32)], 4)
    assert len(bags) == 3 and bags.width == 4
    assert bags[0].tolist() == [1, 1, 3] and bags[1].size == 0 and bags[2].dtype == np.int64
    np.testing.assert_array_equal(bags.dense(), [[0, 2, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]])
    assert [b.tolist() for b in bags.take([2, 0])] == [[0], [1, 1, 3]]
    with pytest.raises(ValueError, match="outside"):
        Bags([[4]], 4)
    with pytest.raises(ValueError, match="outside"):
        Bags([[-1]], 4)
    with pytest.raises(ValueError, match="integer indices"):
        Bags([[0.5]], 4)
    with pytest.raises(ValueError, match="integer indices"):
        Bags([[[0]]], 4)
    with pytest.raises(ValueError, match="no samples"):
        Bags([], 4)
    with pytest.raises(ValueError, match="width"):
        Bags([[0]], 0)


def test_bags_from_a_sparse_count_matrix():
    sparse = pytest.importorskip("scipy.sparse")
    counts = np.array([[0, 2, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]])
    bags = Bags.from_sparse(sparse.csr_matrix(counts))
    np.testing.assert_array_equal(bags.dense(), counts)
    with pytest.raises(ValueError, match="tf-idf"):
        Bags.from_sparse(sparse.csr_matrix(np.array([[0.5, 0.0]])))
    with pytest.raises(ValueError, match="non-negative"):
        Bags.from_sparse(sparse.csr_matrix(np.array([[-1.0, 0.0]])))


# ---------------------------------------------------------------------------- the layer on exact schemes
@st.composite
def _tables_and_bags(draw):
    rows = draw(st.integers(1, 9))
    width = draw(st.integers(1, 5))
    values = draw(st.lists(st.sampled_from([0.0, -1.5, 0.25, 3.0, -0.125, 1.0]), min_size=rows * width,
                           max_size=rows * width))
    bags = draw(st.lists(st.lists(st.integers(0, rows - 1), max_size=6), min_size=1, max_size=4))
    return np.array(values).reshape(rows, width), bags


@settings(max_examples=25, deadline=None)
@given(case=_tables_and_bags())
def test_forward_is_the_dense_product_and_backward_lands_on_the_named_rows(env, case):
    env.only_without(he_core.Capability.PACKING, "test_ckks_tables_train_like_numpy_with_three_moves_per_sample")
    table, bag_lists = case
    if table.shape[1] not in (1, 2, 3, 4, 5):
        return
    layer = EmbeddingBag(EncTensor.encrypt(env.scheme, table, layout="table"))
    bags = Bags(bag_lists, table.shape[0])
    out, ctx = layer.forward_train(bags)
    expect = bags.dense() @ table
    assert out.shape == expect.shape
    # every gathered entry sums at most 6 table entries: one fixed-point rounding each at most
    np.testing.assert_allclose(env.decrypt(out), expect, atol=env.tol(6, 3.0), rtol=0)
    grad = EncTensor.encrypt(env.scheme, np.arange(expect.size, dtype=np.float64).reshape(expect.shape) / 8 - 0.5)
    assert layer.backward_train(ctx, grad) is None
    g = layer.weight.grad
    assert isinstance(g, RowGrad)
    assert [r.tolist() for r in g.bags] == [b.tolist() for b in bags.bags]
    assert g.values is grad  # the whole batch's rows, landed by one scatter
    SGD(layer.parameters(), lr=0.5).step()
    dense_grad = bags.dense().T @ env.decrypt(grad)
    np.testing.assert_allclose(env.decrypt(layer.weight.value), table - 0.5 * dense_grad,
                               atol=env.tol(8 * len(bag_lists), 4.0), rtol=0)


def test_bad_input_is_refused_by_name(env):
    layer = EmbeddingBag.init(env.scheme, 4, 2)
    with pytest.raises(TypeError, match="expected Bags"):
        layer.forward_train(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="address 5 rows, the table has 4"):
        layer.forward_train(Bags([[0]], 5))
    with pytest.raises(ValueError, match="expected \\(4, 2\\)"):
        EmbeddingBag.init(env.scheme, 4, 2, values=np.zeros((2, 4)))
    _, ctx = layer.forward_train(Bags([[0]], 4))  # one sample: no rows to combine (CKKS would ask a refresh)
    with pytest.raises(ValueError, match="2 gradient rows for 1 samples"):
        layer.backward_train(ctx, EncTensor.encrypt(env.scheme, np.zeros((2, 2))))


# ---------------------------------------------------------------------------- training through fit
def _bag_model(scheme, table, w):
    return Sequential(EmbeddingBag.init(scheme, *table.shape, values=table),
                      Linear(EncTensor.encrypt(scheme, w.reshape(1, -1), layout="table"), None, encrypted_input=True))


def _numpy_bag_sgd(table, w, bags, y, act, lr):
    """Per-sample SGD of the same network in float64 (w before its update, as the layers compute)."""
    table, w = table.copy(), w.copy()
    for bag, target in zip(bags, y):
        h = table[bag].sum(axis=0)
        step = lr * (act.value(h @ w) - target)
        g_table = step * w
        w = w - step * h
        np.add.at(table, bag, -g_table)
    return table, w


def _data(seed=0, n=24, vocab=12, hidden=4):
    rng = np.random.default_rng(seed)
    bags = [rng.choice(vocab, size=rng.integers(0, 5), replace=False) for _ in range(n)]
    y = rng.integers(0, 2, size=n).astype(np.float64)
    return bags, y, rng.normal(0, 0.3, (vocab, hidden)), rng.normal(0, 1.0, hidden)


@pytest.mark.parametrize("name", ["plain", pytest.param("vhe", marks=pytest.mark.filterwarnings(
    "ignore::he_core.SecurityWarning"))])
def test_fit_on_bags_trains_like_numpy(name):
    bags, y, table, w = _data()
    act = activations.make("sigmoid_lsq", 5, 8.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SinglePartyWarning)
        scheme, kh = in_process_keyholder(name, [1, 4], terms=RefreshTerms(min_aggregate=8))
    model = _bag_model(scheme, table, w)
    history = fit(model, Bags(bags, 12), y, keyholder=kh, lr=0.1, batch_size=1, loss=PolyLogisticLoss(act),
                  shuffle=False)
    ref_table, ref_w = _numpy_bag_sgd(table, w, bags, y, act, 0.1)
    secret = kh.export_secret_key()
    got_table = scheme.decrypt_exact_local(model[0].weight.value.ct, secret)
    got_w = scheme.decrypt_exact_local(model[1].weight.value.ct, secret)[0]
    atol = 1e-12 if name == "plain" else 2e-3  # vhe: 16-bit fixed point through 24 steps
    np.testing.assert_allclose(got_table, ref_table, atol=atol, rtol=0)
    np.testing.assert_allclose(got_w, ref_w, atol=atol, rtol=0)
    assert [a["samples"] for a in history.aggregates] == [8, 16, 24]
    assert history.policy["retry_refreshes"] == 0


def test_fit_without_a_key_holder_stops_when_the_budget_runs_out():
    """vhe, no key holder: the error says how many samples were trained; those weights hold whole steps."""
    warnings.simplefilter("ignore", he_core.SecurityWarning)
    bags, y, table, w = _data(n=400)
    act = activations.make("sigmoid_lsq", 5, 8.0)
    scheme = he_core.get_scheme("vhe")
    scheme.keygen(he_core.KeyRequirements(sizes=(1, 4)), rng=he_core.SeededRandom(2))
    model = _bag_model(scheme, table, w)
    with pytest.raises((he_core.NoiseBudgetExhausted, he_core.LevelExhaustedError)) as info:
        fit(model, Bags(bags, 12), y, keyholder=None, lr=0.1, batch_size=1, loss=PolyLogisticLoss(act),
            shuffle=False, epochs=3)
    done = info.value.samples_done
    assert 0 < done < 3 * 400
    with pytest.raises(ValueError, match="without a key holder"):
        fit(_bag_model(scheme, table, w), Bags(bags[:2], 12), y[:2], keyholder=None, lr=0.1, batch_size=1,
            loss=PolyLogisticLoss(act), checkpoint="unused.henn")


@pytest.fixture(scope="module")
def ckks_keys():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SinglePartyWarning)
        scheme = he_core.get_scheme("ckks", he_core.scheme_class("ckks").params_for_depth(4))
        return in_process_keyholder(scheme, [1, 4], terms=RefreshTerms(min_aggregate=4),
                                    rng=he_core.SeededRandom(5))


def test_ckks_tables_train_like_numpy_with_three_moves_per_sample(ckks_keys):
    """The gathered logit moves into the polynomial's layout, the two updates into their tables' packing."""
    scheme, kh = ckks_keys
    bags, y, table, w = _data(seed=3, n=8)
    bags = [b if b.size else np.array([0]) for b in bags]
    act = activations.make("sigmoid_lsq", 5, 8.0)
    model = _bag_model(scheme, table, w)
    assert not scheme.in_default_layout(model[0].weight.value.ct)
    rounds = kh.refresh_rounds
    history = fit(model, Bags(bags, 12), y, keyholder=kh, lr=0.1, batch_size=1, loss=PolyLogisticLoss(act),
                  shuffle=False)
    assert history.policy["op_refreshes"] == history.policy["retry_refreshes"] == 0
    # three per sample, and once the output weight into the order its inner product needs (it keeps it)
    assert history.policy["layout_refreshes"] == 3 * len(bags) + 1
    assert kh.refresh_rounds - rounds == 3 * len(bags) + 1 + 2  # and the two aggregates, refreshed before release
    ref_table, ref_w = _numpy_bag_sgd(table, w, bags, y, act, 0.1)
    secret = kh.export_secret_key()
    # CKKS at scale 2^54 through 8 refreshed steps: errors near 2^-30 (docs/noise.md); 1e-6 leaves room
    np.testing.assert_allclose(scheme.decrypt_exact_local(model[0].weight.value.ct, secret), ref_table, atol=1e-6)
    np.testing.assert_allclose(scheme.decrypt_exact_local(model[1].weight.value.ct, secret)[0], ref_w, atol=1e-6)
