"""The one trainer: any MLP, several outputs, encrypted data and labels, refreshes, clear errors."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import he_core
from henn import activations
from henn.keyholder import RefreshTerms
from henn.layers import Linear
from henn.losses import PolySoftmaxCrossEntropy, one_hot
from henn.module import Sequential
from henn.schedules import LinearDecayLR
from henn.tasks.xor import X as XOR_X
from henn.tasks.xor import Y as XOR_Y
from henn.tensor import EncTensor
from henn.training.fit import SinglePartyWarning, TrainingDiverged, fit, in_process_keyholder, predict, release_outputs

SCHEMES = ["plain", pytest.param("vhe", marks=pytest.mark.filterwarnings("ignore::he_core.SecurityWarning"))]


def keyholder(name, sizes, min_aggregate=4):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SinglePartyWarning)
        return in_process_keyholder(name, sizes, terms=RefreshTerms(min_aggregate=min_aggregate),
                                    rng=he_core.SeededRandom(3))


def mlp(scheme, sizes, act, seed=25, init=2.0):
    rng = np.random.default_rng(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(Linear.init(scheme, a, b, init_scale=init, rng=rng, encrypted_input=i > 0,
                                  encryption_rng=he_core.SeededRandom(seed + i)))
        layers.append(act)
    return Sequential(*layers)


def numpy_sgd(weights, act, x, y, lr, epochs):
    """Full-batch SGD on an MLP with an activation after every layer and the mean squared error."""
    weights = [(w.copy(), b.copy()) for w, b in weights]
    for _ in range(epochs):
        zs, hs = [], [x]
        for w, b in weights:
            zs.append(hs[-1] @ w + b)
            hs.append(act.value(zs[-1]))
        d = 2 * (hs[-1] - y) / y.size * act.grad_value(zs[-1])
        for i in reversed(range(len(weights))):
            w, b = weights[i]
            dw, db = hs[i].T @ d, d.sum(0, keepdims=True)
            if i:
                d = (d @ w.T) * act.grad_value(zs[i - 1])
            weights[i] = (w - lr * dw, b - lr * db)
    return weights


@pytest.mark.parametrize("name", SCHEMES)
def test_a_deep_mlp_trains_like_numpy(name):
    """2 -> 4 -> 3 -> 2 with one activation object at every position, 5 full-batch steps vs float64."""
    scheme, kh = keyholder(name, [1, 2, 3, 4])
    act = activations.sigmoid_lsq(3, 4.0)
    model = mlp(scheme, [2, 4, 3, 2], act)
    start = [(kh.scheme.decrypt_exact_local(model[2 * i].weight.value.ct, kh.export_secret_key()),
              kh.scheme.decrypt_exact_local(model[2 * i].bias.value.ct, kh.export_secret_key())) for i in range(3)]
    start = [(w if i == 0 else w.T, b) for i, (w, b) in enumerate(start)]
    y = np.hstack([XOR_Y, 1 - XOR_Y])
    history = fit(model, XOR_X, y, keyholder=kh, lr=2.0, epochs=5, batch_size=4, shuffle=False)
    expect = numpy_sgd(start, act, XOR_X, y, 2.0, 5)
    secret = kh.export_secret_key()
    tol = 0.0 if name == "plain" else 2e-3  # vhe: 16-bit fixed point through ~5 x 30 roundings
    for i, (w, b) in enumerate(expect):
        got = kh.scheme.decrypt_exact_local(model[2 * i].weight.value.ct, secret)
        np.testing.assert_allclose(got if i == 0 else got.T, w, atol=tol + 1e-12, err_msg=f"layer {i}")
    assert len(history.records) == 5 and all(r["loss"] is not None for r in history.records)
    assert history.records[-1]["releases"] == 5  # one aggregate of the 4 rows per epoch
    if name == "vhe":
        assert history.policy["op_refreshes"] > 0 and history.policy["retry_refreshes"] == 0


@pytest.mark.parametrize("name", SCHEMES)
def test_encrypted_rows_and_labels_train_the_same_model(name):
    scheme, kh = keyholder(name, [1, 2, 3])
    act = activations.square()
    plain_y, data_y = one_hot(np.array([0, 1, 2, 1]), 3), None
    runs = []
    for encrypted in (False, True):
        model = Sequential(Linear.init(scheme, 2, 3, init_scale=0.5, rng=np.random.default_rng(1),
                                       encrypted_input=encrypted), act)
        x = EncTensor.encrypt(scheme, XOR_X) if encrypted else XOR_X
        data_y = EncTensor.encrypt(scheme, plain_y) if encrypted else plain_y
        fit(model, x, data_y, keyholder=kh, lr=0.5, epochs=3, batch_size=2, random_state=0, monitor=False)
        w = kh.scheme.decrypt_exact_local(model[0].weight.value.ct, kh.export_secret_key())
        runs.append(w.T if encrypted else w)
    np.testing.assert_allclose(runs[0], runs[1], atol=0 if name == "plain" else 1e-3)


def test_multiclass_softmax_learns_a_separable_problem():
    scheme, kh = keyholder("plain", [1, 2, 3, 8], min_aggregate=30)
    rng = np.random.default_rng(0)
    centres = np.array([[1.0, 0.0], [-0.5, 0.8], [-0.5, -0.8]])
    labels = rng.integers(0, 3, 90)
    x = centres[labels] + 0.15 * rng.normal(size=(90, 2))
    model = Sequential(Linear.init(scheme, 2, 8, init_scale=0.5, rng=rng), activations.square(),
                       Linear.init(scheme, 8, 3, init_scale=0.5, rng=rng, encrypted_input=True))
    history = fit(model, x, one_hot(labels, 3), keyholder=kh, lr=0.5, epochs=15, batch_size=10,
                  loss=PolySoftmaxCrossEntropy(3), random_state=0)
    out = kh.release(predict(model, x))
    assert (out.argmax(axis=1) == labels).mean() >= 0.95
    assert history.losses[-1] < history.losses[0]


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_errors_are_named():
    scheme, kh = keyholder("plain", [1, 2])
    model = mlp(scheme, [2, 1], activations.square(), init=1.0)
    with pytest.raises(ValueError, match="X has 4 rows, y has 3"):
        fit(model, XOR_X, XOR_Y[:3], keyholder=kh, lr=1.0)
    with pytest.raises(ValueError, match="lr must be a positive"):
        fit(model, XOR_X, XOR_Y, keyholder=kh, lr=0.0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        fit(model, XOR_X, XOR_Y, keyholder=kh, lr=1.0, batch_size=0)
    with pytest.raises(ValueError, match="finite numbers"):
        fit(model, XOR_X * np.nan, XOR_Y, keyholder=kh, lr=1.0)
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        fit(model, XOR_X * 1e3, XOR_Y, keyholder=kh, lr=1e3, epochs=30, batch_size=4)


@pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")
def test_a_three_layer_mlp_on_ckks_matches_the_twin():
    """2 -> 4 -> 3 -> 1, three full-batch steps: the released losses agree with float64 within the releases' flood.

    The losses are flooded releases of values computed at scale 2^54 through ~18 refreshes a
    step. Each release states its error's standard deviation (``value_sigma``: 1.6e-6 since the
    flood hides the released noise vector for the key's heaviest slots; 1.5e-7 gaps before): the
    losses must agree within six of them plus the rounding grid, the computation adding nothing.
    """
    shape = mlp(keyholder("plain", [1])[0], [2, 4, 3, 1], activations.sigmoid_lsq(3, 4.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SinglePartyWarning)
        scheme, kh = in_process_keyholder("ckks", shape, terms=RefreshTerms(min_aggregate=4))
    assert scheme.params.security_bits >= 128
    losses = {}
    for name, (s, k) in {"plain": keyholder("plain", [1, 2, 3, 4]), "ckks": (scheme, kh)}.items():
        act = activations.sigmoid_lsq(3, 4.0)
        model = mlp(s, [2, 4, 3, 1], act, init=1.0)
        history = fit(model, XOR_X, XOR_Y, keyholder=k, lr=4.0, epochs=3, batch_size=4, shuffle=False)
        losses[name] = history.losses
        if name == "ckks":
            assert history.policy["op_refreshes"] > 0 and history.policy["retry_refreshes"] == 0
            out = release_outputs(k, predict(model, XOR_X, keyholder=k))
            assert out.shape == (4, 1)
    stated = max(6.0 * r["value_sigma"] + r["grid"] for r in kh.reports[:len(losses["ckks"])])
    assert stated < 2e-5  # a statement, not noise: the losses differ by ~2e-3 a step
    np.testing.assert_allclose(losses["ckks"], losses["plain"], atol=stated, rtol=0)


@pytest.mark.parametrize("name", SCHEMES)
def test_a_run_resumed_from_its_checkpoint_ends_as_an_uninterrupted_one(name, tmp_path):
    """2 epochs, stop, resume 2 more: the same weights, history and key-holder counts as 4 in one go."""
    scheme, kh = keyholder(name, [1, 2, 3, 4], min_aggregate=12)
    act = activations.sigmoid_lsq(3, 4.0)
    rows, y = np.vstack([XOR_X] * 3), np.vstack([XOR_Y] * 3)

    def run(epochs, path=None, resume=False):
        model = mlp(scheme, [2, 4, 1], act, seed=7)
        h = fit(model, rows, y, keyholder=kh, lr=2.0, epochs=epochs, batch_size=4, random_state=3,
                checkpoint=path, resume=resume)
        return model, h

    straight, h_straight = run(4)
    counts_straight = (kh.refresh_rounds, kh.entries_read)
    kh.refresh_rounds = kh.entries_read = 0
    path = tmp_path / "run.henn"
    run(2, path)
    resumed, h_resumed = run(4, path, resume=True)
    secret = kh.export_secret_key()
    for (n1, p1), (_, p2) in zip(straight.named_parameters(), resumed.named_parameters()):
        np.testing.assert_array_equal(kh.scheme.decrypt_exact_local(p1.value.ct, secret),
                                      kh.scheme.decrypt_exact_local(p2.value.ct, secret), err_msg=n1)
    assert [r["loss"] for r in h_resumed.records] == [r["loss"] for r in h_straight.records]
    assert (kh.refresh_rounds, kh.entries_read) == counts_straight  # the job's accounting continued
    other = mlp(scheme, [2, 3, 1], act)
    with pytest.raises(he_core.FormatError, match=r"0.weight has shape \(2, 4\), the model.s \(2, 3\)"):
        fit(other, rows, y, keyholder=kh, lr=1.0, epochs=3, checkpoint=path, resume=True)


@pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")
def test_a_key_service_address_trains_like_an_in_process_key_holder(tmp_path):
    """fit(keyholder="unix:...") reaches the owner's service for its job: no secret key on the trainer's side."""
    from henn import jobs
    from henn.keyholder import KeyHolder
    from henn.keyservice import KeyService
    from henn.training.targets import learn_targets

    from ..keyservice.test_service import serving

    owner = he_core.get_scheme("vhe")
    secret, public = owner.keygen(he_core.KeyRequirements(sizes=(1, 2, 4)), rng=he_core.SeededRandom(9))
    terms = RefreshTerms(refreshes=400, releases=16, min_aggregate=12)
    act = activations.sigmoid_lsq(3, 4.0)
    rows, y = np.vstack([XOR_X] * 3), np.vstack([XOR_Y] * 3)
    # Eight epochs: vhe forecasts these small products' noise, and the first refreshes come in epoch 7.
    args = dict(lr=2.0, epochs=8, batch_size=4, random_state=3)
    spec = jobs.JobSpec(job_id=jobs.new_job_id(), key_id=secret.key_id, scheme="vhe", params_id=owner.params_id,
                        terms=terms, targets=learn_targets(owner, secret, terms, lambda s: mlp(s, [2, 4, 1], act),
                                                           rows, y, **args),
                        scale_log2=float(np.log2(owner.encrypt([0.0]).scale)), model={"task": "test"})
    keys = tmp_path / "job"
    keys.mkdir(mode=0o700)
    jobs.write_spec(keys, spec)
    service = KeyService(owner, secret, spec, jobs.Journal(keys))
    trainer = he_core.get_scheme("vhe")
    trainer.set_public_keys(public)  # the trainer's scheme: public keys only
    remote_model = mlp(trainer, [2, 4, 1], act, seed=7)
    with serving(service, f"unix:{tmp_path / 'sock' / 'k.sock'}"):
        history = fit(remote_model, rows, y, keyholder=f"unix:{tmp_path / 'sock' / 'k.sock'}", **args)
    service.journal.close()
    assert history.policy["op_refreshes"] > 0 and service.journal.refreshes >= history.policy["op_refreshes"]
    assert [r["loss"] for r in history.records] == [None] * 8  # aggregates go to the owner's log only
    local = mlp(trainer, [2, 4, 1], act, seed=7)
    fit(local, rows, y, keyholder=KeyHolder(trainer, secret, terms=terms), **args)
    for (name, a), (_, b) in zip(remote_model.named_parameters(), local.named_parameters()):
        np.testing.assert_array_equal(owner.decrypt_exact_local(a.value.ct, secret),
                                      owner.decrypt_exact_local(b.value.ct, secret), err_msg=name)


@pytest.mark.parametrize("name", SCHEMES)
def test_a_schedule_sets_each_steps_rate(name):
    """Full-batch steps: step k of 5 trains at ``schedule.at(k, 5)``, as NumPy SGD at those rates does."""
    scheme, kh = keyholder(name, [1, 2, 3, 4])
    act = activations.sigmoid_lsq(3, 4.0)
    model = mlp(scheme, [2, 3, 2], act)
    secret = kh.export_secret_key()
    start = [(kh.scheme.decrypt_exact_local(model[0].weight.value.ct, secret),
              kh.scheme.decrypt_exact_local(model[0].bias.value.ct, secret)),
             (kh.scheme.decrypt_exact_local(model[2].weight.value.ct, secret).T,
              kh.scheme.decrypt_exact_local(model[2].bias.value.ct, secret))]
    y = np.hstack([XOR_Y, 1 - XOR_Y])
    schedule = LinearDecayLR(2.0, end=0.25)
    fit(model, XOR_X, y, keyholder=kh, lr=schedule, epochs=5, batch_size=4, shuffle=False)
    expect = start
    for k in range(5):  # one full-batch step per epoch, at that step's rate
        expect = numpy_sgd(expect, act, XOR_X, y, schedule.at(k, 5), 1)
    constant = numpy_sgd(start, act, XOR_X, y, 2.0, 5)
    assert np.max(np.abs(constant[0][0] - expect[0][0])) > 1e-2  # the schedule changes the result
    tol = 0.0 if name == "plain" else 2e-3
    for i, (w, b) in enumerate(expect):
        got = kh.scheme.decrypt_exact_local(model[2 * i].weight.value.ct, secret)
        np.testing.assert_allclose(got if i == 0 else got.T, w, atol=tol + 1e-12, err_msg=f"layer {i}")


def test_a_schedule_with_a_bad_peak_is_refused():
    scheme, kh = keyholder("plain", [1, 2])
    model = mlp(scheme, [2, 2], activations.square())

    class Broken(LinearDecayLR):
        peak = float("nan")

    bad = Broken(0.1)
    bad.peak = float("nan")
    with pytest.raises(ValueError, match="lr must be a positive finite number or a schedule"):
        fit(model, XOR_X, one_hot(np.array([0, 1, 1, 0]), 2), keyholder=kh, lr=bad, epochs=1, batch_size=4)
