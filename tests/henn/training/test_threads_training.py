"""Training does not depend on the thread count (issue #13): the same seeded run under 1 and 2 threads.

Every threaded kernel (``csrc/pool.c``) hands out items that each write only their own
limb or row, and the only cross-thread merges (the vhe row jobs' maxima and first failure)
are order-free, so results are identical for any thread count: not merely within CKKS's
noise bound. The strongest true claim is therefore tested on both schemes: after a few SGD
steps with encrypted weights, the weights' ciphertexts (residues or integers) and the
owner's flooded releases are bit for bit the same under 1 and 2 threads; so are the CKKS
decryptions of a product with relinearisation, a rotation and a matrix-vector product.

Every source of randomness is seeded (keys, the initial weights and their encryption, the
key holder's masks and flooding, the visiting order), so two runs differ only in the
thread count. With two threads a worker must really have taken part (``he_split_jobs``),
else the comparison would prove nothing; on a busy or pinned machine a run is repeated (and
compared again) until one has.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import he_core
from he_core.schemes.ckks import CkksParams
from henn import KeyHolder, Linear, Sequential, activations, fit
from henn.keyholder import RefreshTerms
from henn.training.predict import release_outputs

from ...he_core.thread_counts import each_count, same

pytest.importorskip("sklearn")
from sklearn.datasets import load_breast_cancer  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")

# Toy CKKS set (N = 2048, insecure: asked for explicitly) deep enough for the refresh floor.
SMALL_CKKS = dict(poly_degree=2048, levels=5, first_bits=60, scale_bits=54, special_bits=60, floor_levels=1,
                  floor_bits=61, allow_insecure=True)
# (rows, features, hidden, lr, batch): vhe's row kernels go parallel only above ~32k words
# (HE_PARALLEL_WORDS), which a 30 -> 64 -> 1 network on batches of 32 reaches.
SHAPES = {"vhe": (128, 30, 64, 0.05, 32), "ckks": (32, 6, 2, 0.5, 16)}




def make_scheme(name: str) -> he_core.Scheme:
    return he_core.get_scheme("ckks", CkksParams(**SMALL_CKKS)) if name == "ckks" else he_core.get_scheme(name)


def data(rows: int, features: int) -> tuple[np.ndarray, np.ndarray]:
    """A slice of the breast-cancer set, standardised to sd 1/2 and clipped to +-2."""
    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[:rows, :features], y[:rows].astype(np.float64)[:, None]
    return np.clip((X - X.mean(0)) / (2.0 * X.std(0)), -2.0, 2.0), y


def train(name: str, seed: int = 1) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    """A 2-layer MLP trained one epoch with encrypted weights, every randomness seeded from ``seed``.

    Returns:
        (the weights' ciphertext data, the owner's flooded releases of them, the refresh counters).
    """
    rows, features, hidden, lr, batch = SHAPES[name]
    X, y = data(rows, features)
    scheme = make_scheme(name)
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, hidden, features)), rng=he_core.SeededRandom(seed))
    holder = KeyHolder(scheme, secret, terms=RefreshTerms(min_aggregate=16), rng=he_core.SeededRandom(seed + 1))
    init = np.random.default_rng(seed)
    model = Sequential(
        Linear.init(scheme, features, hidden, init_scale=0.5, rng=init, encryption_rng=he_core.SeededRandom(seed + 2)),
        activations.sigmoid_lsq(3, 4.0),
        Linear.init(scheme, hidden, 1, init_scale=0.5, rng=init, encrypted_input=True,
                    encryption_rng=he_core.SeededRandom(seed + 3)))
    history = fit(model, X, y, keyholder=holder, lr=lr, epochs=1, batch_size=batch, random_state=seed)
    params = model.parameters()
    cts = [np.array(p.value.ct.data, copy=True) for p in params]
    released = [release_outputs(holder, p.value) for p in params]
    return cts, released, history.policy






@pytest.mark.parametrize("name", ["vhe", pytest.param("ckks", marks=pytest.mark.skipif(
    "ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built"))])
def test_training_is_bit_identical_for_one_and_two_threads(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SecurityWarning of the toy sets
        one, two = each_count(lambda: train(name), patience_s=20.0)
    (data1, released1, policy1), (data2, released2, policy2) = one, two
    assert policy1["op_refreshes"] > 0  # the run went through the key holder, whose masks are seeded too
    assert policy1 == policy2
    for i, (a, b) in enumerate(zip(data1, data2)):
        assert same(a, b), f"parameter {i}: ciphertexts differ between 1 and 2 threads"
    for i, (a, b) in enumerate(zip(released1, released2)):
        assert same(a, b), f"parameter {i}: releases differ between 1 and 2 threads"
    assert all(np.all(np.isfinite(w)) and np.max(np.abs(w)) < 4.0 for w in released1)  # a real, bounded model


@pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")
def test_ckks_decryptions_of_products_rotations_and_matvecs_are_identical():
    """Each op and its decryption run under the same thread count."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = make_scheme("ckks")
    reqs = he_core.KeyRequirements(sizes=(16, 1), rotations=(1,), multiply=True)
    secret, _ = scheme.keygen(reqs, rng=he_core.SeededRandom(7))
    gen = np.random.default_rng(0)
    x, y, m = gen.uniform(-1, 1, (4, 16)), gen.uniform(-1, 1, (4, 16)), gen.uniform(-1, 1, (16, 16))
    a, b = scheme.encrypt(x, rng=he_core.SeededRandom(1)), scheme.encrypt(y, rng=he_core.SeededRandom(2))
    shifted = np.append(x.ravel()[1:], 0.0).reshape(x.shape)  # the batch's slots move as one vector
    ops = {"mul+relin": (lambda: scheme.mul(a, b, rescale=False), x * y),
           "mul+relin+rescale": (lambda: scheme.mul(a, b), x * y),
           "rotate": (lambda: scheme.rotate(a, 1), shifted),
           "matvec": (lambda: scheme.matvec(a, m), x @ m.T)}
    for name, (op, want) in ops.items():
        one, two = each_count(lambda: scheme.decrypt_exact_local(op(), secret), patience_s=20.0)
        assert same(one, two), name
        assert np.max(np.abs(one - want)) < 2.0**-12, name  # and it is the right answer
