"""Attacker review of the coeffs deploy layout (5944cec): pad, chosen phases, flood accounting, client checks.

Tests named ``test_finding_*`` measure an attack that works on 5944cec (they pass while the
finding stands and print its size); the others check a property that holds and fail when
the code is broken the way they test.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import he_core
from he_core import Flooding, KeyRequirements
from he_core.schemes.ckks.coeff_answer import block
from he_core.schemes.ckks.release import Releaser
from henn.deploy import Circuit, DeployError, InferenceClient, InferenceServer, ServerBundle

pytestmark = pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")

ALPHA = 1e-3
FLOODING = Flooding(30, 1 << 16)


@pytest.fixture(scope="module")
def ctx():
    scheme = he_core.get_scheme("ckks", he_core.get_scheme("ckks").coeff_answer_params(0))
    pair = scheme.keygen(KeyRequirements(sizes=(1,), multiply=False, minimal=True), rng=he_core.SeededRandom(1))
    return scheme, pair


def limb_phases(scheme, pair, ct) -> np.ndarray:
    """The decrypted phase of ``ct`` as residues, one row per limb (coefficient form)."""
    (limbs,) = scheme.decryptor.phase_limbs(ct, scheme._s_full(pair.secret))
    return np.asarray(limbs)


# ---------------------------------------------------------------------------------------------- the pad

def test_the_pad_is_uniform_modulo_each_limb_in_the_unused_blocks_too(ctx):
    """One query in a ciphertext of 128 blocks: the 127 unused blocks hold only noise times the
    weights; each limb's residues there must be uniform, whatever the weights."""
    scheme, pair = ctx
    rng = np.random.default_rng(21)
    x = rng.uniform(-4, 4, (1, 30))
    s = block(30, 1)
    samples = []
    for seed, w in ((3, rng.normal(0, 0.5, (30, 1))), (5, np.eye(30, 1) * 2.0)):
        query = scheme.encrypt_coeff_query(x, 1, pair.secret, bound=4.0, rng=he_core.SeededRandom(seed))
        answer = scheme.answer_coeff_query(query, w, np.zeros(1), bound=4.0, flooding=FLOODING,
                                           rng=he_core.SeededRandom(seed + 1))
        limbs = limb_phases(scheme, pair, answer)
        per_limb = [limbs[i, s:].astype(np.float64) / float(q) for i, q in enumerate(scheme.ring.q[:limbs.shape[0]])]
        # per limb alone is weak (the 2^47 flood already wraps a 37-bit limb): the phase modulo Q too
        (phase,) = scheme._phases(answer, scheme._s_full(pair.secret))
        modulus = float(np.prod([float(q) for q in scheme.ring.q[:limbs.shape[0]]]))
        per_limb.append(phase[s:] / modulus + 0.5)
        for sample in per_limb:
            assert stats.kstest(sample, "uniform").pvalue > ALPHA
        samples.append(per_limb)
    for first, second in zip(*samples):
        assert stats.ks_2samp(first, second).pvalue > ALPHA


# ------------------------------------------------------------------------------- chosen-phase queries

def forged(scheme, query, at: dict[int, int]):
    """``query`` with integers added to its phase at the given coefficients (the client holds the
    secret key: it may put anything in c0); the metadata still says fresh, clean, in range."""
    nl, n = query.data.shape[2], scheme.ring.n
    poly = np.zeros(n, dtype=np.int64)
    for pos, value in at.items():
        poly[pos] = value
    data = query.data.copy()
    scheme.ring.add(np.ascontiguousarray(data[0, 0]), scheme.ring.ntt(scheme.ring.from_signed(poly, nl)), data[0, 0])
    return query.replace(data=data)


def test_finding_a_chosen_phase_reads_other_outputs_weights_and_the_exact_integer_weights(ctx):
    """Two models with the same bias and different weights give the same outputs at x = 0.
    A query of two all-zero rows (the requested outputs: the bias, twice) with a value put
    between two features of block 0 tells them apart: output 0 of block 0 carries w[2, 1]
    (another output's weight), and a value 2^12 times the query scale at a feature gives the
    integer rint(w * Delta_w) exactly, where an honest query within the bound gives it to the flood."""
    scheme, pair = ctx
    features, outputs = 4, 2
    rng = np.random.default_rng(31)
    w = rng.normal(0, 0.5, (features, outputs))
    w2 = w.copy()
    w2[2, 1] += 0.5
    b = np.array([0.25, -0.5])
    x = np.zeros((2, features))
    dx = scheme.answerer.query_scale()
    read = {}
    for name, weights in (("w", w), ("w2", w2)):
        honest = scheme.encrypt_coeff_query(x, outputs, pair.secret, bound=4.0, rng=he_core.SeededRandom(40))
        cross = forged(scheme, honest, {2 * outputs + 1: int(dx) << 8})  # between feature 2 and 3: w[2, 1]
        big = forged(scheme, honest, {1 * outputs: int(dx) << 12})  # feature 1 at 2^12, bound 4
        got = {}
        for kind, q in (("honest", honest), ("cross", cross), ("big", big)):
            ans = scheme.answer_coeff_query(q, weights, b, bound=4.0, flooding=FLOODING, rng=he_core.SeededRandom(41))
            got[kind] = scheme.decrypt_exact_local(ans, pair.secret)
            got["wbits"] = int(np.log2(ans.scale / dx))
        read[name] = got
    flood = 1e-2
    for name, weights in (("w", w), ("w2", w2)):
        got = read[name]
        assert np.allclose(got["honest"], b, atol=flood)  # the requested outputs: the bias
        cross_read = (got["cross"][0, 0] - got["cross"][1, 0]) / 2**8
        assert abs(cross_read - weights[2, 1]) < 2**-10
        wscale = 2.0 ** got["wbits"]
        integer = (got["big"][0, 0] - got["big"][1, 0]) * wscale / 2**12
        assert abs(integer - np.rint(weights[1, 0] * wscale)) < 0.05  # the exact integer weight
    assert abs(read["w"]["honest"][0, 0] - read["w2"]["honest"][0, 0]) < flood  # honest: alike
    gap = abs((read["w"]["cross"][0, 0] - read["w2"]["cross"][0, 0]) / 2**8)
    print(f"cross-output weight read through output 0: the two models differ by {gap:.4f} (0.5 planted); "
          f"Delta_w = 2^{read['w']['wbits']}")
    assert gap > 0.45


# --------------------------------------------------------------------------- the flood's accounting

def tiny_bundle(queries_per_key: int = 1 << 16) -> ServerBundle:
    rng = np.random.default_rng(51)
    circuit = Circuit([("linear", rng.normal(0, 0.5, (30, 1)), np.array([0.1]))], None, None, 4.0)
    return ServerBundle.create(circuit, "ckks", layout="coeffs", queries_per_key=queries_per_key)


@pytest.fixture(scope="module")
def served():
    bundle = tiny_bundle()
    server = InferenceServer(bundle)
    client = InferenceClient(bundle.client_info(), rng=he_core.SeededRandom(9))
    server.register(client.public_bytes())
    return bundle, server, client


@pytest.mark.parametrize("features,outputs", [(13, 3), (2, 1), (1, 1)])
def test_the_flood_hides_the_noise_vector_of_every_released_output_coefficient(ctx, monkeypatch, features, outputs):
    """The finding this replaces: the flood was sized for one coefficient's noise bound while an answer
    releases batch * outputs noisy coefficients. Measured with the server's pre-sanitisation answer and
    the client's key, sigma / ||e_outputs||_2 then fell 2^0.2 (2 x 1: 2,048 outputs) and 2^0.7 (1 x 1:
    4,096) below the LMSS factor sqrt(12 q) 2^(lambda/2) (13 x 3 passed only because the analytic noise
    bound sits ~1.6 bits above the measured noise). Sized on the output vector it clears it by 2^2.4."""
    scheme, pair = ctx
    seen = []
    original = Releaser.sanitize

    def capture(self, ct, flooding, rng, count=None):
        out = original(self, ct, flooding, rng, count)
        seen.append((ct, out.meta["flood"]))
        return out

    monkeypatch.setattr(Releaser, "sanitize", capture)
    rng = np.random.default_rng(31)
    w, b = rng.normal(0, 0.5, (features, outputs)), rng.normal(0, 1, outputs)
    x = rng.uniform(-4, 4, (scheme.coeff_capacity(features, outputs), features))
    query = scheme.encrypt_coeff_query(x, outputs, pair.secret, bound=4.0, rng=he_core.SeededRandom(3))
    scheme.answer_coeff_query(query, w, b, bound=4.0, flooding=FLOODING, rng=he_core.SeededRandom(4))
    (before, flood_var), = seen
    (phase,) = scheme._phases(before, scheme._s_full(pair.secret))
    s, wscale = block(features, outputs), before.scale / query.scale
    at = np.arange(x.shape[0])[:, None] * s + s - 1 - np.arange(outputs)[None, :]
    message = np.rint(x * query.scale) @ np.rint(w * wscale) + np.rint(b * before.scale)
    noise_l2 = float(np.linalg.norm(phase[at] - message))
    assert noise_l2 > 0
    assert np.sqrt(flood_var) / noise_l2 >= 2.0 ** FLOODING.factor_log2


def two_clients(queries_per_key: int):
    """A tiny bundle's server with two registered clients: (bundle, server, client one, client two)."""
    bundle = tiny_bundle(queries_per_key=queries_per_key)
    server = InferenceServer(bundle)
    one = InferenceClient(bundle.client_info(), rng=he_core.SeededRandom(1))
    two = InferenceClient(bundle.client_info(), rng=he_core.SeededRandom(2))
    server.register(one.public_bytes())
    server.register(two.public_bytes())
    return bundle, server, one, two


def test_the_budget_counts_ciphertexts_and_refuses_past_it():
    bundle, server, one, two = two_clients(queries_per_key=2)
    X = np.zeros((bundle.batch, 30))
    for _ in range(2):
        (q,) = one.encrypt(X)
        server.answer(q.ciphertext, q.count)
    (q,) = two.encrypt(X[:1])
    with pytest.raises(DeployError, match="are spent"):  # the other client's share is gone too (global)
        server.answer(q.ciphertext, q.count)
    assert server.answered(one.public.key_id) == 2 and server.answered() == 2


# ----------------------------------------------------------------------------------- the client's checks

@pytest.mark.xfail(strict=True, reason="finding: the client checks an answer's shape and key only, not its "
                   "layout or scale")
def test_the_client_refuses_an_answer_whose_scale_was_changed(served):
    bundle, server, client = served
    (q,) = client.encrypt(np.full((3, 30), 0.5))
    answer = server.answer(q.ciphertext, q.count)
    good = client.decrypt(answer, q.rows)
    tampered = answer.replace(scale=answer.scale * 2)
    try:
        bad = client.decrypt(tampered, q.rows)
    except DeployError:
        return
    print(f"a doubled scale decrypts silently: {good[0, 0]:.4f} -> {bad[0, 0]:.4f}")
    raise AssertionError("the client decrypted an answer whose scale is not Delta_x * Delta_w of a coeffs answer")


# ------------------------------------------------------------------------------ a malicious public key

def c0_at_outputs(scheme, answer, positions) -> np.ndarray:
    """The answer's c0 (not the phase) at ``positions``, centred modulo Q, as Python integers."""
    nl = answer.data.shape[2]
    c0 = scheme.ring.intt(np.ascontiguousarray(answer.data[0, 0]))
    qs = [int(q) for q in scheme.ring.q[:nl]]
    big = 1
    for q in qs:
        big *= q
    out = []
    for t in positions:
        x = 0
        for limb, q in enumerate(qs):
            rest = big // q
            x += int(c0[limb, t]) * rest * pow(rest, -1, q)
        x %= big
        out.append(x - big if x > big // 2 else x)
    return np.array(out, dtype=object)


def test_finding_a_public_key_whose_b_half_is_chosen_reads_the_sanitisations_ephemeral_secret(ctx):
    """Only the a-half is checked against its seed. With b = P * 2^L (a constant), the
    re-randomisation's z0 = round((b v + e) / P) = 2^L v, so an all-zero c0 in the query leaves
    the answer's c0 at each output coefficient t equal to the bias, the flood, and 2^L v_t: the
    differences between blocks are 2^L times small integers. The honest key: no such structure."""
    scheme, pair = ctx
    features, outputs, L = 30, 1, 56  # the flood: 2^46.7
    s, count = block(features, outputs), scheme.coeff_capacity(features, outputs)
    rng = np.random.default_rng(61)
    w, b = rng.normal(0, 0.5, (features, outputs)), np.array([0.3])
    pk = pair.public.data["pk"].copy()
    special = int(scheme.params.p_primes[0])
    for limb, q in enumerate(list(scheme.ring.q) + list(scheme.ring.p)):
        pk[0, limb, :] = (special * 2**L) % int(q)  # a constant polynomial is constant in NTT form
    evil = type(pair.public)(pair.public.scheme, pair.public.params_id, pair.public.key_id,
                             {**pair.public.data, "pk": pk}, pair.public.requirements, pair.public.params)
    query = scheme.encrypt_coeff_query(np.zeros((count, features)), outputs, pair.secret, bound=4.0,
                                       rng=he_core.SeededRandom(62))
    data = query.data.copy()
    data[0, 0] = 0
    query = query.replace(data=data)
    near = {}
    for name, public in (("chosen b", evil), ("honest", pair.public)):
        server = he_core.get_scheme("ckks", scheme.params)
        server.check_public_keys(public)  # accepted: b is not checked
        server.set_public_keys(public)
        answer = server.answer_coeff_query(query, w, b, bound=4.0, flooding=FLOODING, rng=he_core.SeededRandom(63))
        vals = c0_at_outputs(scheme, answer, [q * s + s - 1 for q in range(count)])
        diffs = np.array([float(v - vals[0]) / 2.0**L for v in vals[1:]])
        near[name] = float(np.mean(np.abs(diffs - np.rint(diffs)) < 0.05)), np.rint(diffs)
    print(f"block differences within 0.05 of an integer: chosen b {near['chosen b'][0]:.2f}, honest "
          f"{near['honest'][0]:.2f}; values {sorted(set(near['chosen b'][1].astype(int)))}")
    assert near["chosen b"][0] == 1.0 and set(near["chosen b"][1]) <= {-2.0, -1.0, 0.0, 1.0, 2.0}
    assert near["honest"][0] < 0.5


def test_finding_a_query_relabelled_with_another_clients_key_id_is_answered_and_counted_to_it():
    """Key ids are public; the server takes the query's word for whose it is. The answer is under
    the other key's public key (useless to the sender), but the per-key count is charged to it and
    the shared budget is spent (the budget is global, so one client can spend everyone's)."""
    bundle, server, one, two = two_clients(queries_per_key=4)
    (q,) = one.encrypt(np.zeros((1, 30)))
    relabelled = q.ciphertext.replace(key_id=two.public.key_id)
    server.answer(relabelled, q.count)
    assert server.answered(two.public.key_id) == 1 and server.answered(one.public.key_id) == 0


def test_a_query_with_a_third_component_is_refused(ctx):
    """INFO, fixed: check_query tested data.shape[0] (ciphertexts), not data.shape[1] (components), so a
    (c0, c1, c2) query was answered from c0 and c1 alone; it is refused now, as anything but a fresh query is."""
    scheme, pair = ctx
    query = scheme.encrypt_coeff_query(np.zeros((1, 30)), 1, pair.secret, bound=4.0)
    three = query.replace(data=np.concatenate([query.data, query.data[:, :1]], axis=1))
    with pytest.raises(he_core.MismatchError, match="not a fresh coefficient-packed query"):
        scheme.answer_coeff_query(three, np.ones((30, 1)), np.zeros(1), bound=4.0, flooding=FLOODING)