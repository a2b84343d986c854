"""The peer comparison's plumbing: skipped peers, ratios, checks; the training recipe on plain."""
import re
import warnings

import numpy as np
import pytest

from benchmarks.peers import adapters, compare, training
from henn.bench.timing import Budget

TINY = Budget(target_round_s=1e-4, max_time_s=0.002, min_rounds=3, max_rounds=4, warmup_s=0.0)
SMALL = adapters.Setting(n=64, bits=(60, 40, 60))


class NumpyAdapter(adapters.Adapter):
    """The adapter API computed in the clear: a stand-in library for the plumbing tests."""

    requires = "numpy"

    def __init__(self, name="henn", slowdown=0):
        super().__init__()
        self.name = name
        self.slowdown = slowdown

    def _setup(self, setting):
        pass

    def _work(self, x):
        for _ in range(self.slowdown):
            x = x + 0.0
        return x

    def encrypt(self, v):
        return self._work(np.array(v))

    def decrypt(self, c):
        return c.copy()

    def add(self, a, b):
        return self._work(a + b)

    def mul_plain(self, a, v):
        return a * v

    def mul(self, a, b):
        return a * b

    def rescale(self, a):
        return a.copy()

    def rotate(self, a, steps=1):
        return np.roll(a, -steps)


class MissingAdapter(NumpyAdapter):
    requires = "no_such_he_library_xyz"


class WrongRotate(NumpyAdapter):
    def rotate(self, a, steps=1):
        return np.roll(a, steps)


def test_missing_peer_is_a_skipped_row_not_a_failure():
    libs = [NumpyAdapter("henn"), MissingAdapter("Ghost")]
    result = compare.compare_setting(libs, SMALL, TINY)
    status = {s["library"]: s for s in result["libraries"]}
    assert status["Ghost"]["status"] == "skipped"
    assert "no_such_he_library_xyz" in status["Ghost"]["reason"]
    assert status["henn"]["status"] == "ok"
    assert all(set(row["median_s"]) == {"henn"} for row in result["ops"])
    text = compare.ratio_table(result)
    assert "Ghost: skipped" in text


def test_ratios_between_libraries():
    libs = [NumpyAdapter("henn", slowdown=0), NumpyAdapter("Peer", slowdown=30)]
    result = compare.compare_setting(libs, SMALL, TINY)
    add = next(row for row in result["ops"] if row["op"] == "add")
    assert add["median_s"]["henn"] < add["median_s"]["Peer"]
    assert add["precision_bits"]["henn"] == float("inf")
    lines = compare.ratio_table(result).splitlines()
    head = re.split(r"\s{2,}", lines[1].strip())
    add_cells = re.split(r"\s{2,}", next(line for line in lines if line.startswith("add")).strip())
    ratio = float(add_cells[head.index("henn/Peer")])
    assert ratio == pytest.approx(add["median_s"]["henn"] / add["median_s"]["Peer"], rel=0.01, abs=0.005)
    assert 0 < ratio < 1


def test_wrong_results_are_not_timed():
    result = compare.compare_setting([WrongRotate("henn")], SMALL, TINY)
    rot = next(row for row in result["ops"] if row["op"] == "rotate")
    assert "henn" in rot["errors"] and "wrong result" in rot["errors"]["henn"]
    assert rot["median_s"] == {}
    assert "henn rotate: error" in compare.ratio_table(result)


def test_henn_adapter_skips_cleanly_without_ckks(monkeypatch):
    import he_core

    def missing(name):
        raise he_core.registry.UnknownSchemeError("unknown scheme 'ckks'")

    monkeypatch.setattr(he_core, "scheme_class", missing)
    with pytest.raises(adapters.PeerMissing, match="ckks"):
        adapters.ckks_parameters(adapters.Setting())


def test_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="cannot compare"):
        compare.run([4096], None, TINY)


def test_main_reports_skips_and_exit_code(monkeypatch, capsys):
    monkeypatch.setattr(compare, "adapters", lambda names: [NumpyAdapter("henn"), MissingAdapter("Ghost")])
    monkeypatch.setitem(compare.SETTINGS, 8192, SMALL)
    monkeypatch.setattr(compare, "QUICK_BUDGET", TINY)
    assert compare.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "Ghost: skipped" in out and "encrypt" in out


@pytest.fixture(scope="module")
def data():
    return training.load_data()


def test_breast_cancer_split_is_standardised(data):
    assert data.x_train.shape[1] == data.x_test.shape[1] == 30
    assert len(data.y_test) == pytest.approx(0.2 * (len(data.y_train) + len(data.y_test)), abs=1)
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(data.x_train.std(axis=0), 1, atol=1e-9)
    assert set(np.unique(data.y_train)) == {0.0, 1.0}


def test_clear_training_learns(data):
    run = training.train_clear(data, 5)
    assert len(run.accuracy) == len(run.seconds) == 5
    assert run.accuracy[-1] > 0.85


def test_henn_training_on_plain_matches_the_clear_run(data):
    clear = training.train_clear(data, 3)
    henn = training.train_henn(data, 3, "plain")
    assert henn.status == "ok", henn.reason
    assert henn.accuracy == clear.accuracy
    assert len(henn.weights) == data.x_train.shape[1] + 1
    # plain is float64 arithmetic in another order (batched sums, lr/n applied last).
    np.testing.assert_allclose(henn.weights, clear.weights, rtol=1e-9, atol=1e-12)


def _small_ckks(levels):
    """A small insecure ring (tests only): N = 2048, default 2^40-ish working scale."""
    import he_core

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        params = he_core.scheme_class("ckks").params_class(poly_degree=2048, levels=levels, allow_insecure=True)
        return he_core.get_scheme("ckks", params)


@pytest.fixture(scope="module")
def subset():
    # 64 samples x 30 features is 1920 values: two ciphertexts of the 1024-slot ring.
    return training.load_data(64)


def test_batched_ckks_training_matches_the_clear_run(subset):
    pytest.importorskip("he_core.native")
    clear = training.train_clear(subset, 2)
    henn = training.train_henn(subset, 2, "ckks", scheme=_small_ckks(levels=5))
    assert henn.status == "ok", henn.reason
    # Stated bound: CKKS at a ~2^40 scale keeps the weights within 1e-6 of the clear
    # training over two epochs (about 1e-9 observed), so the predictions agree exactly.
    np.testing.assert_allclose(henn.weights, clear.weights, rtol=0, atol=1e-6)
    assert henn.accuracy == clear.accuracy
    assert training.max_gap(clear, henn) <= training.GOAL_GAP_POINTS


def test_too_few_levels_is_an_error_row_not_a_crash(subset):
    # One epoch needs depth 5 (inner, the cubic's two, mul, lr/n): four levels cannot do it.
    henn = training.train_henn(subset, 1, "ckks", scheme=_small_ckks(levels=4))
    assert henn.status == "error"
    assert "level" in henn.reason.lower()
    assert re.search(r"^henn-ckks\s+error: LevelExhaustedError", training.summary([henn], 1), re.M)


def _timed(name, seconds, acc):
    return training.Run(name, seconds=list(seconds), accuracy=list(acc))


def test_speedup_and_accuracy_gap_lines():
    clear = _timed("clear", [0.001] * 3, [0.80, 0.90, 0.95])
    peer = _timed("tenseal", [100.0, 120.0, 90.0], [0.80, 0.90, 0.95])
    fast = _timed("henn-ckks-a", [5.0, 4.0, 6.0], [0.80, 0.90, 0.95])
    slow = _timed("henn-ckks-b", [20.0, 30.0, 25.0], [0.80, 0.89, 0.95])
    assert training.speedup(peer, fast) == pytest.approx(100.0 / 5.0)
    assert training.max_gap(clear, slow) == pytest.approx(1.0)
    lines = training.comparison_lines([clear, peer, fast, slow])
    assert len(lines) == 2
    assert "20.0x (meets >= 10x)" in lines[0] and "0.00 points (meets" in lines[0]
    assert "4.0x (misses >= 10x)" in lines[1] and "1.00 points (misses" in lines[1]


def test_no_ratio_without_the_peer():
    clear = _timed("clear", [0.001], [0.9])
    henn = _timed("henn-plain", [0.01], [0.9])
    skipped = training.Run("tenseal", "skipped", "not installed")
    assert training.speedup(skipped, henn) is None
    assert "= -;" in training.comparison_lines([clear, skipped, henn])[0]


def test_sigmoid_approximation():
    z = np.array([-2.0, 0.0, 1.0])
    np.testing.assert_allclose(training.sigmoid3(z), 0.5 + 0.197 * z - 0.004 * z**3)


@pytest.mark.peers
def test_seal_adapter_ops_are_correct():
    pytest.importorskip("tenseal")
    lib = adapters.SealAdapter()
    lib.setup(adapters.Setting(8192, (60, 40, 40, 60)))
    cases = compare.op_cases(lib, compare._inputs(4096))
    for op, (_, result, expected) in cases.items():
        assert compare.precision_bits(result(), expected) > 15, op
