"""The machine-limit kernels compute what they claim, and the modmul counts add up."""
import numpy as np
import pytest

from benchmarks.limits import achieved, counts, kernel


@pytest.fixture(scope="module")
def compiled():
    pytest.importorskip("cffi")
    try:
        return kernel.load()
    except Exception as exc:  # no C compiler: the limit cannot be measured here
        pytest.skip(f"cannot compile the limit kernels: {exc}")


@pytest.mark.parametrize("reps", [1, 3])
def test_barrett_loop_matches_python_integers(compiled, reps):
    acc, a, b = kernel.inputs(37, seed=reps)
    want = [int(x) for x in acc]
    for _ in range(reps):
        want = [(w + int(x) * int(y)) % kernel.Q for w, x, y in zip(want, a, b)]
    kernel.barrett(acc, a, b, reps=reps)
    assert [int(x) for x in acc] == want


def test_barrett_extremes(compiled):
    q = kernel.Q
    acc = np.array([q - 1, 0, q - 1], dtype=np.uint64)
    a = np.array([q - 1, q - 1, 0], dtype=np.uint64)
    b = np.array([q - 1, 1, q - 1], dtype=np.uint64)
    kernel.barrett(acc, a, b)
    assert [int(x) for x in acc] == [((q - 1) + (q - 1) ** 2) % q, q - 1, q - 1]


def test_shoup_loop_is_correct_and_lazy(compiled):
    acc, a, b = kernel.inputs(41, seed=7)
    w = int(b[3])
    want = [int(x) for x in acc]
    for _ in range(5):
        want = [(v + int(x) * w) % kernel.Q for v, x in zip(want, a)]
    kernel.shoup(acc, a, w, reps=5)
    assert all(int(x) < 2 * kernel.Q for x in acc)
    assert [int(x) % kernel.Q for x in acc] == want


def test_peak_is_positive(compiled):
    assert kernel.peak("shoup", seconds=0.05) > 1e6


def test_ntt_count():
    assert counts.ntt(8) == 4 * 3
    assert counts.ntt(8192, limbs=3) == 3 * 4096 * 13


def test_key_switch_count_seal_shape():
    n, L = 8192, 3
    ntt1 = counts.ntt(n)
    # INTT of L limbs; per digit NTTs of L+1-1 limbs; 2*L*(L+1)*N inner product; mod-down 2*(1+L) NTTs + 2*L*N
    expected = L * ntt1 + L * L * ntt1 + 2 * L * (L + 1) * n + 2 * ((1 + L) * ntt1 + L * n)
    assert counts.key_switch(n, L) == expected
    assert counts.ct_ct_multiply(n, L) == expected + 4 * n * L


def test_fewer_digits_cost_base_conversions():
    n, L = 4096, 4
    assert counts.base_conversion(n, 1, 5) == 0
    assert counts.key_switch(n, L, special=2, dnum=2) != counts.key_switch(n, L, special=2, dnum=4)


def test_ntt_primes_and_roots():
    from he_core.schemes.ckks.primes import is_prime  # the ckks prime search the benchmark reuses

    primes = achieved.ntt_primes(1024, 40, 3)
    assert len(set(primes)) == 3
    for q in primes:
        assert q % 2048 == 1 and q < 2**40 and is_prime(q)
        psi = achieved.primitive_root_2n(q, 1024)
        assert pow(psi, 1024, q) == q - 1
    assert not is_prime(2**61 - 3)  # composite
    assert is_prime(2**61 - 1)


def test_interleaved_workloads_report_rates(compiled):
    from henn.bench.timing import Budget

    loads = [achieved.kernel_workload("shoup", reps=2), achieved.kernel_workload("barrett", reps=2)]
    rows = achieved.measure_interleaved(loads, Budget(target_round_s=1e-4, max_time_s=0.005, min_rounds=3,
                                                      max_rounds=5, warmup_s=0.0))
    assert [r.op for r in rows] == ["shoup loop", "barrett loop"]
    assert all(r.modmuls == 2 * kernel.N_ELEMENTS and r.per_second > 0 for r in rows)


def test_henn_native_ntt_round_trips():
    pytest.importorskip("he_core.native._ckks")
    try:
        load = achieved.henn_native_ntt(1024, 2)
    except Exception as exc:  # the ckks native module's API is owned elsewhere and may change
        pytest.skip(f"ckks native NTT not usable: {exc}")
    data = load.call.keep_alive[2]
    before = data.copy()
    load.call()  # forward + inverse: the identity
    assert np.array_equal(data, before)
    assert load.modmuls == 2 * counts.ntt(1024, 2)
