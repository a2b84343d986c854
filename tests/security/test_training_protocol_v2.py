"""The general trainer (``henn.training.fit``) against the training protocol: what crosses between parties.

Commit 1435342 replaced the IMDB and XOR trainers with :func:`henn.training.fit.fit`:
layout moves through the key holder (``GuardedScheme`` / ``RefreshPolicy.move``), masks
sized from declared bounds and from ``RefreshPolicy.bounded`` blocks (the monitoring
term, the landing of in-place updates), aggregates with a public ``scale``, job targets
learnt by a dry run of ``fit``, and ``fit(keyholder="unix:PATH")``.

Four tests here were written by the attacker's review of that commit and failed on it (an
aggregate size the key service chose, monitoring intermediates masked for less than they
hold, declared bounds that could only narrow a mask, one refresh fewer for an empty
review); each now checks the defence that fixed it. The others check defences that held.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import he_core
from he_core.schemes.ckks import CkksParams
from henn import activations, jobs
from henn import lifecycle as lc
from henn.keyholder import KeyHolder, RefreshTerms
from henn.keyservice import RELEASE, KeyService, protocol
from henn.layers import Linear
from henn.module import Sequential
from henn.tasks import sentiment as T
from henn.tasks.sentiment import SentimentConfig, init_weights
from henn.tasks.xor import X as XOR_X
from henn.tasks.xor import Y as XOR_Y
from henn.training.fit import fit
from henn.training.refresh import RefreshPolicy
from henn.training.targets import learn_targets

from ..henn.keyservice.test_service import serving

PARAMS = CkksParams(poly_degree=2048, levels=5, first_bits=60, scale_bits=54, special_bits=60, floor_levels=1,
                    floor_bits=61, allow_insecure=True)
CONFIG = SentimentConfig(hidden=4, lr=0.02, init_scale=0.5)
VOCAB = 256
#: What the documentation promises the owner never sees fewer of (SECURITY.md, the sentiment job).
PROMISED_MIN_AGGREGATE = 500

pytestmark = pytest.mark.filterwarnings("ignore::he_core.SecurityWarning", "ignore::henn.training.fit.SinglePartyWarning")


class _Spy(KeyHolder):
    """An in-process key holder that records, per refresh: the bound its mask was sized for, the true
    largest |value| (the owner's exact decryption: a measurement, not part of any protocol), what the
    key holder received (metadata and target signature) and the mask's width."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bounds, self.sent, self.signatures, self.widths = [], [], [], []

    def refresh(self, x, *, layout=None, value_bound=None):
        ct = getattr(x, "ct", x)
        true = float(np.max(np.abs(self.scheme.decrypt_exact_local(ct, self._secret))))
        self.bounds.append((value_bound, true))
        return super().refresh(x, layout=layout, value_bound=value_bound)

    def draw_mask(self, plan):
        mask = super().draw_mask(plan)
        self.widths.append(mask.width_bits)
        return mask

    def reencrypt(self, masked, layout=None):
        self.sent.append(json.dumps(masked.meta, sort_keys=True))
        self.signatures.append(json.dumps(self.scheme.refresh_target_signature(masked, layout), sort_keys=True))
        return super().reencrypt(masked, layout)


def _xor_mlp(scheme, seed=7):
    act = activations.make("sigmoid_lsq", 3, 4.0)
    rng = np.random.default_rng(seed)
    return Sequential(Linear.init(scheme, 2, 4, rng=rng, init_scale=2.0), act,
                      Linear.init(scheme, 4, 1, rng=rng, init_scale=2.0, encrypted_input=True), act)


@pytest.fixture(scope="module")
def ckks():
    scheme = he_core.get_scheme("ckks", PARAMS)
    keys = scheme.keygen(he_core.KeyRequirements(sizes=(1, 2, 4)), rng=he_core.SeededRandom(5))
    return scheme, keys.secret


# ---------------------------------------------------------------------------- the key service's terms
def _xor_job(tmp_path, terms: RefreshTerms, args: dict):
    """A vhe job for the XOR MLP (targets learnt by the dry run) and its service; the trainer's public-only scheme."""
    owner = he_core.get_scheme("vhe")
    secret, public = owner.keygen(he_core.KeyRequirements(sizes=(1, 2, 4)), rng=he_core.SeededRandom(9))
    targets = learn_targets(owner, secret, terms, lambda s: _xor_mlp(s), XOR_X, XOR_Y, **args)
    spec = jobs.JobSpec(job_id=jobs.new_job_id(), key_id=secret.key_id, scheme="vhe", params_id=owner.params_id,
                        terms=terms, targets=targets, scale_log2=float(np.log2(owner.encrypt([0.0]).scale)),
                        model={"task": "test"})
    keys = tmp_path / "job"
    keys.mkdir(mode=0o700)
    jobs.write_spec(keys, spec)
    service = KeyService(owner, secret, spec, jobs.Journal(keys))
    trainer = he_core.get_scheme("vhe")
    trainer.set_public_keys(public)
    return service, trainer


def test_a_key_service_reached_by_address_cannot_choose_small_aggregates(tmp_path):
    # The job the owner serves: min_aggregate = 1 (the trainer was promised 500 in the signed model file).
    args = {"lr": 2.0, "epochs": 1, "batch_size": 1, "shuffle": False}
    service, trainer = _xor_job(tmp_path, RefreshTerms(refreshes=400, releases=40, min_aggregate=1), args)
    address = f"unix:{tmp_path / 'sock' / 'k.sock'}"
    refused = False
    with serving(service, address):
        try:
            fit(_xor_mlp(trainer), XOR_X, XOR_Y, keyholder=address, **args)
        except (he_core.HEError, ValueError):
            refused = True  # a fixed trainer refuses a service below its floor
    service.journal.close()
    counts = [a["count"] for a in service.journal.aggregates]
    assert refused or all(c >= PROMISED_MIN_AGGREGATE for c in counts), (
        f"the owner's journal holds {len(counts)} aggregates over {sorted(set(counts))} sample(s) each")


# ---------------------------------------------------------------------------- mask bounds
def test_every_value_refreshed_while_monitoring_fits_its_mask(ckks):
    scheme, secret = ckks
    holder = _Spy(scheme, secret, terms=RefreshTerms(min_aggregate=PROMISED_MIN_AGGREGATE))
    fit(_xor_mlp(scheme), XOR_X, XOR_Y, keyholder=holder, lr=4.0, epochs=1, batch_size=4, shuffle=False,
        value_bound=16.0)
    over = [(b, t) for b, t in holder.bounds if b is not None and t > b]
    assert holder.bounds and not over, "refreshed beyond the mask's bound (bound, true |value|): " + ", ".join(
        f"({b:.3g}, {t:.3g}: {math.log2(t / b):.1f} bits)" for b, t in over)


def test_a_declared_bound_larger_than_the_policys_sizes_the_mask():
    # vhe, where the run was measured (CKKS at scale 2^54 over a 60-bit q_0 cannot even encrypt |x| >= 16).
    scheme = he_core.get_scheme("vhe")
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, 4)), rng=he_core.SeededRandom(2))
    holder = _Spy(scheme, secret, terms=RefreshTerms())
    policy = RefreshPolicy(holder, value_bound=16.0)
    hidden = scheme.encrypt(np.full((1, 4), 40.0))   # a review's hidden sum: |h| < 40 measured, 256 declared
    hidden = scheme.declare_bound(hidden, 256.0)
    policy.note_bound(hidden, 256.0)                   # what GuardedScheme.declare_bound does
    policy.retry(scheme, [hidden])                     # any refresh of it
    bound, true = holder.bounds[-1]
    assert bound >= true, f"|h| = {true:g} masked for {bound:g}"


# ---------------------------------------------------------------------------- what a request shows
def _sentiment_traffic(ids, label, keys, scheme):
    W01, w12 = init_weights(VOCAB, CONFIG, he_core.SeededRandom(1))
    holder = _Spy(scheme, keys, terms=RefreshTerms(refreshes=1000, entries_per_refresh=64,
                                                   min_aggregate=PROMISED_MIN_AGGREGATE))
    model = T.build_model(scheme, W01, w12)
    warm = np.array([1, 2, 3], dtype=np.int64)  # the first step moves w12 once; compare steady-state steps
    T.train(model, holder, [warm, ids], np.array([1, label]), CONFIG, monitor_every=PROMISED_MIN_AGGREGATE)
    return holder


@pytest.fixture(scope="module")
def sentiment_keys():
    scheme = he_core.get_scheme("ckks", PARAMS)
    keys = scheme.keygen(he_core.KeyRequirements(sizes=(1, CONFIG.hidden)), rng=he_core.SeededRandom(3))
    return scheme, keys.secret


def test_with_monitoring_on_every_review_and_label_sends_the_same_requests(sentiment_keys):
    """Monitoring runs inside a bounded block and updates land in another: with both on, the requests'
    metadata, targets, mask widths and count are the same whatever the review's length and label
    (widths come from declared bounds, never from the tracked ones, which follow the review)."""
    scheme, secret = sentiment_keys
    choose = np.random.default_rng(0)
    views = {}
    for length in (1, 3, 21, 55):
        ids = np.sort(choose.choice(np.arange(4, VOCAB), size=length, replace=False)).astype(np.int64)
        for label in (0, 1):
            holder = _sentiment_traffic(ids, label, secret, scheme)
            views[(length, label)] = (tuple(holder.sent), tuple(holder.signatures), tuple(holder.widths))
    assert len(set(views.values())) == 1, "a refresh request depends on the review or its label"
    sent, _, widths = next(iter(views.values()))
    assert len(sent) >= 6 and len(set(widths)) >= 2  # two steps of moves, masks of different sizes


def test_an_empty_review_sends_as_many_refreshes_as_any_other(sentiment_keys):
    scheme, secret = sentiment_keys
    empty = _sentiment_traffic(np.zeros(0, dtype=np.int64), 0, secret, scheme)
    full = _sentiment_traffic(np.array([5, 9, 40], dtype=np.int64), 0, secret, scheme)
    assert len(empty.signatures) == len(full.signatures), (
        f"{len(empty.signatures)} requests for an empty review, {len(full.signatures)} for another")


# ---------------------------------------------------------------------------- the job's targets
def test_the_learnt_sentiment_targets_allow_only_the_networks_own_moves(sentiment_keys):
    """The dry run of fit learns exactly the moves the old hand-written trainer made: a logit into a
    constant, a (1, 1) identity refresh (the aggregate), a gathered row into either coefficient order,
    and the table in its own layout. Nothing moves a table, a row or a slot vector anywhere else."""
    scheme, secret = sentiment_keys
    W01, w12 = init_weights(VOCAB, CONFIG, he_core.SeededRandom(1))
    model = T.build_model(scheme, W01, w12)
    terms = T.terms_for(1000, 1, CONFIG.hidden, vocab=VOCAB, whole_entries=T.whole_entries(scheme))
    targets = T.learn_targets(scheme, secret, model[0].weight.value.ct, model[1].weight.value.ct, CONFIG, terms)
    kinds = {(t["layout"], tuple(t["shape"]), t.get("rev")) for t in targets}
    assert kinds == {("constant", (1, 1), None), ("same", (1, 1), None), ("coeff", (1, CONFIG.hidden), False),
                     ("coeff", (1, CONFIG.hidden), True), ("coeff", (VOCAB, CONFIG.hidden), False)}
    spec = jobs.JobSpec(job_id="t", key_id=secret.key_id, scheme="ckks", params_id=scheme.params_id, terms=terms,
                        targets=targets, scale_log2=54.0, model={})
    # What a trainer might try: a slot vector of the weights' width refreshed in place, a table row at a
    # level below any the run reaches.
    slots = scheme.encrypt(np.zeros((1, CONFIG.hidden)))
    assert not spec.allows(scheme.refresh_target_signature(slots, None))
    row = next(t for t in targets if t["layout"] == "coeff" and t["shape"] == [1, CONFIG.hidden])
    assert not spec.allows({**row, "level_in": row["level_in"] - 1})


# ---------------------------------------------------------------------------- releases and their scale
def test_the_release_scale_is_checked_and_nothing_comes_back(tmp_path):
    """``scale`` is public metadata for the owner's log: refused outside (0, 1] before anything is
    decrypted, and a release answers nothing whatever it says, so a trainer learns nothing from it; a
    single sample claimed as k samples was possible before (the count is the trainer's word) and shows
    the owner only what the trainer chose to send."""
    owner = he_core.get_scheme("vhe")
    secret, _public = owner.keygen(he_core.KeyRequirements(sizes=(1, 3)), rng=he_core.SeededRandom(4))
    probe = owner.encrypt(np.zeros((1, 1)))
    spec = jobs.JobSpec(job_id=jobs.new_job_id(), key_id=secret.key_id, scheme="vhe", params_id=owner.params_id,
                        terms=RefreshTerms(releases=10, min_aggregate=3), targets=[],
                        scale_log2=math.log2(probe.scale), model={"task": "test"})
    jobs.write_spec(tmp_path, spec)
    service = KeyService(owner, secret, spec, jobs.Journal(tmp_path))
    body = he_core.serialization.dumps(owner.encrypt(np.array([[0.75]])))

    def release(scale, rid):
        header = {"request_id": rid * 32, "count": 3}
        if scale is not ...:
            header["scale"] = scale
        return service.handle(RELEASE, protocol.pack(header, body))

    for i, bad in enumerate((0.0, -0.5, 1.5, float("nan"), float("inf"), True, "0.5", None)):
        with pytest.raises(Exception, match="scale"):
            release(bad, "abcdef0123456789"[i])
    assert service.journal.releases == 0  # refused before any decryption
    answers = {release(scale, rid)[1] for scale, rid in ((1 / 3, "a"), (1e-9, "b"), (..., "c"))}
    assert answers == {b""}
    assert [a.get("scale", 1.0) for a in service.journal.aggregates] == [1 / 3, 1e-9, 1.0]
    service.journal.close()


# ---------------------------------------------------------------------------- no secret on the trainer's side
def test_fit_without_a_key_holder_or_through_an_address_never_touches_a_secret(tmp_path, monkeypatch):
    """The trainer's process holds public keys only: inside public_only() no secret may be loaded, and the
    trainer's scheme is never asked to decrypt, re-encrypt or build an in-process key holder."""
    # Enough epochs that the weights' noise runs low: vhe forecasts these small products' cost.
    args = {"lr": 2.0, "epochs": 24, "batch_size": 4, "shuffle": False}
    service, trainer = _xor_job(tmp_path, RefreshTerms(refreshes=400, releases=16, min_aggregate=8), args)

    def refuse(*_a, **_k):
        raise AssertionError("the trainer's side used a secret key")

    for name in ("decrypt", "decrypt_exact_local", "reencrypt_masked", "keygen"):
        monkeypatch.setattr(trainer, name, refuse)
    monkeypatch.setattr(KeyHolder, "__init__", refuse)
    address = f"unix:{tmp_path / 'sock' / 'k.sock'}"
    with lc.public_only():
        with serving(service, address):
            remote = fit(_xor_mlp(trainer), XOR_X, XOR_Y, keyholder=address, **args)
        try:
            fit(_xor_mlp(trainer), XOR_X, XOR_Y, keyholder=None, **args)
        except (he_core.NoiseBudgetExhausted, he_core.LevelExhaustedError):
            pass  # public material only: it may run out of budget, never reach for a key
        with pytest.raises(lc.KeyMissingError):
            lc.load_secret(tmp_path / "job", allow_insecure=True)  # the job directory: the owner's
    service.journal.close()
    assert remote.policy["op_refreshes"] > 0 and service.journal.refreshes > 0
