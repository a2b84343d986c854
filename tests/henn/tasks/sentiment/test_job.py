"""henn.tasks.sentiment.job: a run's refresh and release budgets (terms_for), the keyed scheme (setup), and the
refresh signatures a dry run learns (learn_targets)."""
from __future__ import annotations

import numpy as np
import pytest

import he_core
from henn.keyholder import RefreshTerms
from henn.tasks import sentiment as T
from henn.tasks.sentiment import SentimentConfig, init_weights
from henn.tasks.sentiment.job import MONITOR_EVERY, REFRESHES_PER_REVIEW, TABLE_REFRESHES

CONFIG = SentimentConfig(hidden=4, lr=0.03, init_scale=0.5)


def test_terms_for_a_small_run_by_hand():
    """1000 reviews x 2 epochs, hidden 4 (row stride 8), vocabulary 100, 50 validation, aggregates of 500."""
    terms = T.terms_for(1000, 2, 4, vocab=100, validation=50, monitor_every=500, whole_entries=16)
    steps, row, aggregates = 2000, 8, 2000 // 500 + 2
    assert terms.refreshes == int(1.1 * (REFRESHES_PER_REVIEW * steps + 50 + aggregates)) + TABLE_REFRESHES + 16
    assert terms.entries == int(1.1 * (REFRESHES_PER_REVIEW * steps * row + 50 + aggregates * 16
                                       + TABLE_REFRESHES * 100 * row))
    assert terms.releases == int(1.1 * (aggregates + 50)) + 4
    assert terms.entries_per_refresh == 100 * row and terms.min_aggregate == 500
    assert terms.statistical_bits == 30


def test_terms_grow_with_the_run_and_the_aggregate_floor_is_capped():
    small, large = T.terms_for(100, 1, 8), T.terms_for(1000, 3, 8)
    assert large.refreshes > small.refreshes and large.entries > small.entries
    assert T.terms_for(100, 1, 8, monitor_every=10).min_aggregate == 10
    assert T.terms_for(100, 1, 8, monitor_every=10**6).min_aggregate == MONITOR_EVERY
    assert T.terms_for(0, 1, 8).refreshes > 0  # an empty run still gets a valid job
    assert T.terms_for(10, 1, 16).entries_per_refresh == 16384 * 16  # hidden 16: stride 16
    # a mini-batch's landing refresh reads its batch's rows at once: a small vocabulary still allows them
    assert T.terms_for(640, 1, 8, vocab=32, batch_size=64).entries_per_refresh == 64 * 8
    assert T.terms_for(640, 1, 8, vocab=32).entries_per_refresh == 32 * 8


def test_setup_keys_the_scheme_for_the_network_and_builds_the_terms():
    scheme, holder = T.setup("plain", 6, terms=lambda s: RefreshTerms(refreshes=7), rng=he_core.SeededRandom(4))
    assert holder.scheme is scheme and holder.terms.refreshes == 7
    assert set(scheme.public_keys.requirements.sizes) == {1, 6}
    _, holder2 = T.setup("plain", 6, rng=he_core.SeededRandom(4))
    assert holder2.key_id == holder.key_id  # seeded keys (tests); the default is the OS CSPRNG
    assert T.whole_entries(scheme) == 1  # a (1, 1) ciphertext of the plain twin reads one entry


@pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")
@pytest.mark.parametrize("name", ["plain", "vhe"])
def test_the_dry_run_learns_the_refreshes_a_step_asks_for(name):
    scheme, holder = T.setup(name, CONFIG.hidden, rng=he_core.SeededRandom(5))
    W01, w12 = init_weights(20, CONFIG, he_core.SeededRandom(6))
    model = T.build_model(scheme, W01, w12)
    w = T.weights(model)
    before = [np.array(w[k].ct.data, copy=True) for k in ("W01", "w12")]
    targets = T.learn_targets(scheme, holder.export_secret_key(), w["W01"].ct, w["w12"].ct, CONFIG,
                              T.terms_for(10, 1, CONFIG.hidden, vocab=20))
    assert targets and all(isinstance(t, dict) and "layout" in t for t in targets)
    assert len({repr(sorted(t.items())) for t in targets}) == len(targets)  # each signature once
    after = [np.array(w[k].ct.data) for k in ("W01", "w12")]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))  # the dry run trains copies
