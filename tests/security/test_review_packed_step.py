"""Attacker's review of the batched CKKS step's refresh FLOW (benchmarks/henn/training/ckks_packed_step.py).

Per batch the key holder sees four masked requests: the packed logits (round 1), the
gradients g = lr (s(z) - y) (round 2), dW01 (the whole table) and dw12 (round 3). The
moves' masks and maps were reviewed in test_review_refresh_moves.py; here: what the
whole flow shows (bounds it declares, metadata, widths, sizes) and what a malicious
trainer can ask of the four signatures. Small insecure parameters (N = 1024).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import he_core
from he_core import KeyRequirements, SeededRandom
from he_core.schemes.ckks import CkksParams, exact
from he_core.schemes.ckks.scheme import CkksScheme
from henn.data.synthetic import make_reviews
from henn.data.text import TextConfig
from henn.keyholder import KeyHolder
from henn.tasks import sentiment as T

from benchmarks.henn.training.ckks_packed_step import PackedTrainer, job_terms, sigmoid_reach

B = 8
NAMES = ("logits", "gradients", "dW01", "dw12")


@pytest.fixture(scope="module")
def setup():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        scheme = CkksScheme(CkksParams(poly_degree=1024, levels=5, first_bits=60, scale_bits=54, special_bits=60,
                                       floor_levels=1, floor_bits=61, allow_insecure=True))
    secret, _ = scheme.keygen(KeyRequirements(sizes=(1, 8), coefficient_moves=True), rng=SeededRandom(3))
    data = T.prepare(make_reviews(80, seed=5, purity=0.8), validation=10, seed=1,
                     text=TextConfig(min_count=1, polarity_cutoff=0.0))
    return scheme, secret, data


class Spy(KeyHolder):
    """A key holder that also records, per request, what it sees and (test only) the unmasked phase's size."""

    def __init__(self, *args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", he_core.SecurityWarning)
            super().__init__(*args, **kwargs)
        self.log: list[dict] = []

    def refresh(self, x, *, layout=None, value_bound=None):
        plan = self.scheme.refresh_plan(x, layout, value_bound=value_bound)
        ct = self.scheme.refresher.evaluator.relin(x)
        phases = self.scheme.refresher.decryptor.phase_limbs(ct, self.scheme.keyset.s_full(self._secret))
        worst = 0
        for i in sorted(set(plan.read[0].tolist())):
            ints = exact.lift(self.scheme.ring, np.ascontiguousarray(phases[i])).to_ints()
            worst = max([worst] + [abs(ints[p]) for p in plan.read[1][plan.read[0] == i]])
        self.log.append({"bound_bits": plan.bound_bits, "actual_bits": math.log2(max(worst, 1)),
                         "width": self._width(plan), "n_read": plan.n_read, "read": plan.read,
                         "signature": self.scheme.refresh_target_signature(x, layout)})
        return super().refresh(x, layout=layout, value_bound=value_bound)

    def reencrypt(self, masked, layout=None):
        self.log[-1]["meta"] = dict(masked.meta)
        self.log[-1]["shape"] = tuple(masked.shape)
        self.log[-1]["nbytes"] = masked.nbytes
        return super().reencrypt(masked, layout)


def _batch(setup, ids, labels, W01, w12, lr=0.05):
    scheme, secret, data = setup
    spy = Spy(scheme, secret, terms=job_terms(len(data.vocab), 64, B, 1024), rng=SeededRandom(9))
    trainer = PackedTrainer(scheme, spy, T.SentimentConfig(lr=lr), W01, w12)
    trainer.step(ids, np.asarray(labels, dtype=np.float64), lr)
    assert len(spy.log) == 4
    return dict(zip(NAMES, spy.log))


def _weights(data, seed):
    W01 = np.random.default_rng(seed).normal(0, 0.05, (len(data.vocab), 8))
    return W01, np.random.default_rng(seed + 1).normal(0, 1.0, 8)


# ============================================================================ 1. the key holder's view
def test_what_the_key_holder_sees_does_not_depend_on_the_batchs_words_or_labels(setup):
    """Two batches (other reviews, lengths, labels, weights): same signatures, widths, reads, sizes, metadata."""
    _, _, data = setup
    ids = data.train_ids
    order = np.argsort([len(r) for r in ids])
    short, long_ = [ids[i] for i in order[:B]], [ids[i] for i in order[-B:]]
    a = _batch(setup, short, np.zeros(B), *_weights(data, 2))
    b = _batch(setup, long_, np.ones(B), *_weights(data, 4))
    for name in NAMES:
        for key in ("signature", "width", "n_read", "shape", "nbytes", "meta"):
            assert a[name][key] == b[name][key], (name, key)
        assert all(np.array_equal(x, y) for x, y in zip(a[name]["read"], b[name]["read"])), name


def test_round_3_reads_every_entry_of_the_table_zero_rows_included_under_the_declared_bound(setup):
    """dW01: every table entry is read (bounded mask), so rows of words absent from the batch look like the rest."""
    _, _, data = setup
    ids = data.train_ids[:B]
    log = _batch(setup, ids, data.train_labels[:B], *_weights(data, 2))
    dW = log["dW01"]
    assert dW["n_read"] == len(data.vocab) * 8  # zero rows are read as well
    assert len({r for rev in ids for r in rev}) < len(data.vocab)  # the batch really leaves rows at zero
    for name in NAMES:
        assert log[name]["actual_bits"] <= log[name]["bound_bits"], name


def _hot(data, target_logit):
    """Weights whose largest logit on the first batch is ``target_logit`` (inside LOGIT_BOUND)."""
    w12 = np.random.default_rng(7).normal(0, 1.0, 8)
    W01 = np.tile(np.sign(w12) * 1.0, (len(data.vocab), 1))
    longest = max(len(r) for r in data.train_ids[:B])
    return W01 * target_logit / (longest * np.abs(w12).sum()), w12


def test_round_1_logits_within_logit_bound_are_within_round_1s_declared_bound(setup):
    _, _, data = setup
    log = _batch(setup, data.train_ids[:B], data.train_labels[:B], *_hot(data, 35.0))
    assert log["logits"]["actual_bits"] <= log["logits"]["bound_bits"]


def test_round_2s_declared_bound_covers_gradients_of_logits_inside_logit_bound(setup):
    """Was MEDIUM (fixed the same day): round 2 declared |g| <= 2 lr, but the degree-5 sigmoid gives |s(z) - y| up
    to 51.4 for |z| <= LOGIT_BOUND = 40 (25.7x: 4.7 bits of hiding margin lost; here 1.9 bits at z = 35; IMDB lr
    0.003-0.005, B = 128 measured 2.1-3.2x, 1.1-1.7 bits). It now declares lr times the polynomial's reach."""
    _, _, data = setup
    log = _batch(setup, data.train_ids[:B], data.train_labels[:B], *_hot(data, 35.0))
    g = log["gradients"]
    assert g["actual_bits"] <= g["bound_bits"], f"{g['actual_bits'] - g['bound_bits']:.2f} bits over"


@pytest.mark.xfail(strict=True, reason="LOW (open, shared with per-review training's network.update_bound): the "
                   "updates' bounds assume |s(z) - y| <= 2 per review, while |z| <= LOGIT_BOUND = 40 allows 52.4: a "
                   "batch whose logits all reach 40 would show dW01 / dw12 entries up to 4.7 bits above their masks' "
                   "bound; on IMDB they stay 5-12 bits below it (0 bits measured). Sized from the reach, dw12's mask "
                   "needs 121 of the floor's 120 bits at B = 128: fix with a tighter logit bound or smaller groups")
def test_the_update_contract_covers_gradients_of_logits_inside_logit_bound():
    act = T.SentimentConfig().make_activation()
    assert 1.0 + sigmoid_reach(act, T.LOGIT_BOUND) <= 2.0


# ============================================================================ 3. a malicious trainer
def test_the_four_signatures_answer_any_phase_alike_no_value_dependent_refusal(setup):
    """Requests of the four shapes with arbitrary phases (zero, uniform mod Q): all answered, none refused."""
    scheme, secret, data = setup
    spy = Spy(scheme, secret, terms=job_terms(len(data.vocab), 64, B, 1024), rng=SeededRandom(9))
    trainer = PackedTrainer(scheme, spy, T.SentimentConfig(lr=0.05), *_weights(data, 2))
    seen = []
    real = spy.refresh

    def capture(x, *, layout=None, value_bound=None):
        seen.append((x, layout))
        return real(x, layout=layout, value_bound=value_bound)

    spy.refresh = capture
    trainer.step(data.train_ids[:B], np.asarray(data.train_labels[:B], dtype=np.float64), 0.05)
    gen = np.random.default_rng(11)
    for ct, layout in seen:
        ct = scheme.refresher.evaluator.relin(ct)
        qs = scheme.ring.q[: ct.data.shape[2]]
        uniform = np.stack([np.stack([np.stack([gen.integers(0, q, ct.data.shape[3], dtype=np.uint64) for q in qs])
                                      for _ in range(2)]) for _ in range(ct.data.shape[0])])
        for data_ in (np.zeros_like(ct.data), uniform):
            fresh = scheme.reencrypt_masked(ct.replace(data=data_), layout, secret, rng=SeededRandom(1))
            assert fresh.data.shape[0] >= 1
