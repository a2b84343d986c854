"""One XOR training epoch per scheme, side by side: plain vs vhe vs ckks.

An epoch is one full-batch step on the four rows: forward, the key holder decrypting
the predictions, backward, the SGD update, and every refresh the budget policy asks
for (none on ``plain``, a few per step on ``vhe``, 12-14 on ``ckks`` with its
default 2-level set). Keys are generated once per scheme and the weights of each
round are encrypted in the untimed set-up::

    pytest benchmarks/henn/training/test_bench_xor.py --benchmark-only

``extra_info`` records the refreshes and the bytes exchanged with the key holder
per epoch.
"""
from __future__ import annotations

import warnings

import pytest

import he_core
from henn.losses import MSELoss
from henn.tasks.xor import X, Y, XorConfig, build_xor, setup
from henn.training.fit import fit

CONFIG = XorConfig(seed=0, epochs=1)
ROUNDS = {"plain": 20, "vhe": 20, "ckks": 3}


def _loads(name: str) -> bool:
    try:
        he_core.scheme_class(name)
    except Exception:  # noqa: BLE001 - not built (or being written)
        return False
    return True


@pytest.fixture(scope="module")
def keyed():
    """Schemes with keys, generated once (outside every timed region)."""
    warnings.simplefilter("ignore", he_core.SecurityWarning)
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = setup(name, CONFIG.hidden)
        return cache[name]

    return get


@pytest.mark.parametrize("scheme_name", [n for n in ("plain", "vhe", "ckks") if _loads(n)])
def test_xor_epoch(benchmark, keyed, scheme_name):
    scheme, keyholder = keyed(scheme_name)
    counts = []

    def fresh():  # weight encryption stays out of the timed region
        counts.append((keyholder.refresh_rounds, keyholder.bytes_exchanged))
        return (build_xor(scheme, CONFIG),), {}

    def run(model):
        fit(model, X, Y, keyholder=keyholder, lr=CONFIG.lr, batch_size=len(X), loss=MSELoss(), shuffle=False,
            value_bound=CONFIG.value_bound)

    benchmark.group = "xor: one training epoch (4 rows, hidden 4)"
    benchmark.pedantic(run, setup=fresh, rounds=ROUNDS[scheme_name], iterations=1, warmup_rounds=0)
    rounds = len(counts)
    refreshes = (keyholder.refresh_rounds - counts[0][0]) / rounds
    exchanged = (keyholder.bytes_exchanged - counts[0][1]) / rounds
    benchmark.extra_info.update(scheme=scheme_name, params=scheme.params.to_dict(),
                                refreshes_per_epoch=refreshes, bytes_per_epoch=exchanged)
    if scheme_name == "plain":
        assert refreshes == 0
