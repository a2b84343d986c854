"""Attacks on the ``rows`` layout of encrypted inference (henn.deploy, CKKS ``matvec``, henn.bundle).

The change under review: a query per row, one ``matvec`` per layer whose block-diagonal
matrix has blocks for the query's *declared* rows only (no cleaning level), encoded
diagonals cached (now: one cache for the process, bounded in bytes), parameter sets chosen from the levels a trial
spends, and a refusal of circuits whose flooded trial answers err by more than 2^-5.

Each test is written as the attacker would run it. Tests marked ``xfail(strict=True)``
show an attack that WORKS on the current code (their assertions state the missing
defence; the numbers in the reasons were measured); the others show a defence that holds
(and fail if it is removed). Run:
``python -m pytest -q tests/security/test_rows_layout_attacks.py``.
"""
from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest

import he_core
from he_core.schemes.ckks import layout
from henn import activations, serving
from henn.bundle import UNCLIPPED_BOUND, client_requirements
from henn.deploy import Circuit, InferenceClient, InferenceServer, ServerBundle

pytestmark = [pytest.mark.filterwarnings("ignore::he_core.SecurityWarning"),
              pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")]

dumps, loads = he_core.serialization.dumps, he_core.serialization.loads


# ---------------------------------------------------------------------------- fixtures and attacker tools
@pytest.fixture(scope="module")
def linear_rows():
    """A 3 -> 2 linear model with the owner's clip, rows layout (width 4, 2048 rows a batch), and its weights."""
    rng = np.random.default_rng(0)
    w, b = rng.normal(0, 0.3, (3, 2)), rng.normal(0, 0.1, 2)
    return ServerBundle.create(Circuit([("linear", w, b)], clip=2.0), "ckks", layout="rows"), w, b


def world(bundle: ServerBundle, requirements: he_core.KeyRequirements | None = None):
    """A server and a registered client (optionally with keys the attacker chose: a superset is accepted)."""
    server, client = InferenceServer(bundle), InferenceClient(bundle.client_info())
    if requirements is not None:
        client._secret, client.public = client.scheme.keygen(requirements)
    server.register(client.public_bytes())
    return server, client


def slots(client: InferenceClient, ct: he_core.Ciphertext) -> np.ndarray:
    """The attacker's own exact decryption of every slot of every ciphertext: (nct, slots), real parts."""
    return client.scheme._decrypt_slots(ct, client.scheme._s_full(client._secret)).real


def rows_answered(values: np.ndarray, expected: np.ndarray, tol: float = 1e-3) -> int:
    """How many of the ``expected`` output rows appear anywhere in the decrypted slots (at any 4-aligned block),
    whatever layout the server's answer claims."""
    flat = values.reshape(-1)
    blocks = flat[: flat.size - flat.size % 4].reshape(-1, 4)[:, : expected.shape[1]]
    return sum(bool(np.any(np.all(np.abs(blocks - row) < tol, axis=1))) for row in expected)


def packed(client: InferenceClient, X: np.ndarray, width: int) -> he_core.Ciphertext:
    """An honest encryption of every row of ``X`` (one per ``width`` block), before the attacker edits it."""
    rows = np.zeros((X.shape[0], width))
    rows[:, : X.shape[1]] = X
    return client.scheme.encrypt(rows, bound=2.0)


def big_query(client: InferenceClient, values: np.ndarray, width: int, magnitude: int) -> he_core.Ciphertext:
    """A public-key encryption of ``magnitude * values`` at the fresh scale and level, metadata of ``values``
    (the client's ``encrypt`` refuses large values; a malicious client builds the plaintext itself)."""
    sch, ring = client.scheme, client.scheme.ring
    template = sch.encrypt(values, bound=2.0)
    nq = len(ring.q)
    const = ring.ntt(ring.from_signed(np.array([magnitude] + [0] * (ring.n - 1), dtype=np.int64), nq))
    pts = [ring.mul(p, const) for p in sch.encode_pts(layout.pack(values, sch.params.slots, width), template.scale,
                                                     nq)]
    data = sch._encrypt_pts(pts, nq, he_core.randomness.resolve(None), public=client.public.data["pk"])
    return template.replace(data=data)


def ask(server: InferenceServer, query: he_core.Ciphertext, count: int) -> he_core.Ciphertext:
    """The query through ``henn serve``'s frame handler (the wire format and its checks), the answer loaded back."""
    frame = struct.pack("<I", count) + dumps(query)
    return loads(serving._handle(server, serving.QUERY, frame, b"{}"), expect_kind="ciphertext")


# ---------------------------------------------------------------------------- 1. a malicious client: more answers
def test_extra_ciphertexts_behind_one_declared_row_are_refused(linear_rows):
    """Attack (HIGH, found in review, fixed): a (1, 4) query carrying two full ciphertexts, flags clean. Before:
    the product's blocks were restricted only for one-ciphertext batches and a spare ciphertext was accepted:
    4096 of 4096 rows answered for one counted answer (26 ciphertexts fit a frame: 53,248 rows). Now a
    ciphertext must hold exactly the ciphertexts its shape needs, and the query is refused unanswered."""
    bundle, w, b = linear_rows
    server, client = world(bundle)
    width, batch = bundle.row_width, bundle.batch
    X = np.random.default_rng(1).uniform(-1, 1, (2 * batch, 3))
    full = packed(client, X, width)  # two ciphertexts' worth of queries
    assert full.data.shape[0] == 2
    with pytest.raises(he_core.MismatchError, match="holds 2 ciphertexts, its shape needs 1"):
        server.answer(full.replace(shape=(1, width)), 1)
    assert server.answered() == 0


def test_the_last_ciphertext_of_a_batch_answers_only_its_declared_rows(linear_rows):
    """Attack: a batch declaring one row more than a ciphertext holds (two ciphertexts, as its shape needs),
    flags clean, with the second ciphertext full of queries. The last ciphertext's blocks follow its declared
    row count, so its other 2047 rows come back as flooding only (before the fix: every one answered)."""
    bundle, w, b = linear_rows
    width, batch = bundle.row_width, bundle.batch
    X = np.random.default_rng(11).uniform(-1, 1, (2 * batch, 3))
    ckks = he_core.get_scheme("ckks", bundle.params)
    secret, _ = ckks.keygen(bundle.requirements())
    full = packed_with(ckks, X, width)
    forged = full.replace(shape=(batch + 1, width))  # as many ciphertexts as the shape needs
    out = ckks.matvec(forged, np.vstack([w, np.zeros((width - 3, 2))]).T)
    got = ckks._decrypt_slots(out, ckks._s_full(secret)).real.reshape(2, -1, width)
    np.testing.assert_allclose(got[0, :, :2], X[:batch] @ w, atol=1e-3)
    np.testing.assert_allclose(got[1, 0, :2], X[batch] @ w, atol=1e-3)
    assert np.abs(got[1, 1:]).max() < 1e-3 < np.abs(X[batch + 1:] @ w).max()


def packed_with(scheme, X: np.ndarray, width: int) -> he_core.Ciphertext:
    rows = np.zeros((X.shape[0], width))
    rows[:, : X.shape[1]] = X
    return scheme.encrypt(rows, bound=2.0)


@pytest.mark.parametrize("forgery", ["rep", "dirty", "stride-2w", "stride-2w-count-4"])
def test_forged_layout_metadata_on_one_ciphertext_answers_only_the_declared_rows(linear_rows, forgery):
    """Defence holds: 8 queries packed into one ciphertext at the bundle's width, with the layout metadata
    forged (``rep``/``dirty`` flags, a stride of twice the width with the attacker's own Galois keys for it,
    which registration accepts as a superset). The product's blocks follow the declared rows and stride, so
    the answer holds no more rows than declared (before: blocks for every row of the ciphertext, all 8)."""
    bundle, w, b = linear_rows
    width = bundle.row_width
    requirements = client_requirements(bundle.client_info())
    if forgery.startswith("stride"):
        requirements = dataclasses.replace(requirements, transforms=(width, 2 * width))
    server, client = world(bundle, requirements)
    X = np.random.default_rng(2).uniform(-1, 1, (8, 3))
    full = packed(client, X, width)
    count = 4 if forgery.endswith("count-4") else 1
    meta = {**full.meta, **({"rep": True} if forgery == "rep" else {"dirty": True} if forgery == "dirty"
                            else {"stride": 2 * width})}
    answer = ask(server, full.replace(shape=(count, width), meta=meta), count)
    got = slots(client, answer)
    answered = rows_answered(got, X @ w + b) + rows_answered(got, X @ w)
    assert 1 <= answered <= count, f"declared {count} rows, {answered} of 8 answered"


# ---------------------------------------------------------------------------- 2. a malicious client: the weights
def _twins(bundle: ServerBundle, w: np.ndarray, b: np.ndarray) -> tuple[ServerBundle, ServerBundle]:
    """The bundle and one whose weights differ by ~0.01 but whose output at x = 0 (the bias) is the same."""
    other = w + np.random.default_rng(3).normal(0, 0.01, w.shape)
    return bundle, ServerBundle(Circuit([("linear", other, b)], clip=2.0), "ckks", bundle.params, bundle.batch,
                                layout="rows")


def _weights_signal(bundle: ServerBundle, w, b, magnitude: int) -> tuple[float, float, float]:
    """Block 0 asks x = 0 (its answer is b whatever W is); every other block holds ``magnitude`` times values in
    [-1, 1]. Returns (mean |answer(W) - answer(W')|, the same between two answers with W: the flood, the error
    of block 0)."""
    one, two = _twins(bundle, w, b)
    width = bundle.row_width
    server1, client = world(one)
    server2 = InferenceServer(two)
    server2.register(client.public_bytes())
    values = np.random.default_rng(4).uniform(-1, 1, (bundle.batch, width))
    values[0] = 0.0
    query = big_query(client, values, width, magnitude).replace(shape=(1, width))
    a1, a1b, a2 = (slots(client, s.answer(query, 1)) for s in (server1, server1, server2))
    return float(np.abs(a1 - a2).mean()), float(np.abs(a1 - a1b).mean()), float(np.abs(a1[0, :b.size] - b).max())


def test_in_range_values_in_the_undeclared_blocks_reveal_nothing_beyond_the_outputs(linear_rows):
    """Defence holds: values within the clip in every undeclared block reach the answer only through the
    encoding rounding of the zero diagonals (~2^-48), far below the flood (4e-5): two models with the same
    output at the declared query (x = 0) but weights 0.01 apart give answers as alike as two answers of one
    model (measured ratio 1.0 up to values of 2^30). Without the per-row blocks the undeclared blocks would
    answer x W: the ratio would be in the hundreds."""
    bundle, w, b = linear_rows
    diff, same, block0 = _weights_signal(bundle, w, b, 1)
    assert diff / same < 1.5, f"W vs W': {diff:.3g}, the flood {same:.3g}"
    assert block0 < 1e-2


def test_one_output_without_the_start_rotation_reveals_nothing_beyond_its_output():
    """Defence holds on the one-output path (new: a matrix without negative diagonals skips the start rotation
    and reads its diagonals from the unshifted input): in-range values in the undeclared blocks still reach the
    answer only through the encoding rounding of zero diagonals (each diagonal has blocks for the declared
    row only): two 3 -> 1 models with the same output at x = 0 answer as alike as one model twice."""
    rng = np.random.default_rng(12)
    w, b = rng.normal(0, 0.3, (3, 1)), rng.normal(0, 0.1, 1)
    bundle = ServerBundle.create(Circuit([("linear", w, b)], clip=2.0), "ckks", layout="rows")
    diff, same, block0 = _weights_signal(bundle, w, b, 1)
    assert diff / same < 1.5, f"W vs W': {diff:.3g}, the flood {same:.3g}"
    assert block0 < 1e-2


@pytest.mark.xfail(strict=True, reason="LOW (documented in threat_model.md, and subsumed by the open "
                   "'inputs are not range-checked' finding, which reads the weights directly): values of 2^40 in "
                   "the undeclared blocks are multiplied by the encoding rounding of the zero diagonals, a "
                   "deterministic function of the weights' low-order bits: W vs W' (same output at the declared "
                   "query) differ by 2.8e-3 per slot against a flood of 4.3e-5 (ratio ~66: ~6 bits above the flood "
                   "in each of 8190 slots); the declared row itself errs by 1.5e-3 (neighbouring blocks leak into it). "
                   "Threshold measured between 2^30 (ratio 1.0) and 2^40. Fix: none on a ciphertext (no range "
                   "check); a flood sized for the modulus, or randomised rounding of the encoded diagonals per query "
                   "(which the diagonal cache would then have to give up)")
def test_values_far_beyond_the_clip_in_the_undeclared_blocks_show_the_weights(linear_rows):
    bundle, w, b = linear_rows
    diff, same, _ = _weights_signal(bundle, w, b, 1 << 40)
    assert diff / same < 1.5, f"W vs W' differ by {diff:.3g} per slot, the flood is {same:.3g}"


# ---------------------------------------------------------------------------- 3. the diagonal cache
def test_the_diagonal_cache_is_keyed_by_the_declared_rows(linear_rows):
    """Defence holds: the encoded diagonals are shared by every client (they depend on no key), keyed by the
    matrix, level, scale and number of blocks: a victim's 8-row query after an attacker's 1-row query does not
    reuse 1-row diagonals (which would answer zeros for rows 1..7)."""
    bundle, w, b = linear_rows
    server, victim = world(bundle)
    attacker = InferenceClient(bundle.client_info())
    server.register(attacker.public_bytes())
    X = np.random.default_rng(5).uniform(-1, 1, (8, 3))
    for n in (8, 3, 1):  # the attacker's own queries come first
        (q,) = attacker.encrypt(X[:n])
        server.answer(q.ciphertext, q.count)
    for n in (1, 8):
        (q,) = victim.encrypt(X[:n])
        out = victim.decrypt(server.answer(q.ciphertext, q.count), q.rows)
        np.testing.assert_allclose(out, bundle.circuit.evaluate(X[:n]), atol=1e-2)


def test_cached_diagonals_stay_within_their_byte_bound(monkeypatch):
    """Attack (LOW, denial of service; found in review, fixed): queries of distinct row counts fill the cache
    with one diagonal set each. Before: 8 sets per client key (212 MB at width 32 against 127 MB of keys; 256
    clients: ~54 GB). Now one cache for the process, bounded in bytes whatever the clients do."""
    from he_core.schemes.ckks import linear
    monkeypatch.setattr(linear, "DIAGONAL_CACHE_BYTES", 8 << 20)
    monkeypatch.setattr(linear, "_diagonal_cache", type(linear._diagonal_cache)())
    rng = np.random.default_rng(6)
    bundle = ServerBundle.create(Circuit([("linear", rng.normal(0, 0.2, (16, 2)), rng.normal(0, 0.1, 2))],
                                         clip=1.0), "ckks", layout="rows")
    X = rng.uniform(-1, 1, (8, 16))
    for _ in range(2):  # two clients: one cache
        server, client = world(bundle)
        for n in range(1, 9):
            (q,) = client.encrypt(X[:n])
            np.testing.assert_allclose(client.decrypt(server.answer(q.ciphertext, q.count), q.rows),
                                       bundle.circuit.evaluate(X[:n]), atol=1e-2)
    cached = sum(size for _, size in linear._diagonal_cache.values())
    assert 0 < cached <= 8 << 20, f"{len(linear._diagonal_cache)} cached sets hold {cached / 2**20:.1f} MB"


# ---------------------------------------------------------------------------- 4. the bundle's trial check
def test_fewer_levels_still_answer_honest_inputs_up_to_the_servers_bound():
    """Defence holds (claim 3 cannot be fooled by its own trial inputs): the trial draws inputs in ±1 for a
    circuit without a clip, while a client may send up to the server's bound (UNCLIPPED_BOUND = 16). The set
    chosen from the levels the trial spends keeps room for those values: outputs near 4000 decrypt within 2^-5.
    (Flooded for 2^8 answers: the default 2^16 asks 4 bits more than this circuit's outputs leave at N = 16384
    since the flood hides the whole noise vector, and the export refuses it with a DeployError.)"""
    rng = np.random.default_rng(7)
    layers = [("linear", rng.normal(0, 2.0, (3, 4)), rng.normal(0, 0.1, 4)), ("poly", activations.square()),
              ("linear", rng.normal(0, 2.0, (4, 2)), rng.normal(0, 0.1, 2))]
    bundle = ServerBundle.create(Circuit(layers), "ckks", layout="rows", queries_per_key=1 << 8)
    assert bundle.trial_error is not None and bundle.trial_error <= 2.0**-5
    server, client = world(bundle)
    X = np.array([[1.0, -1.0, 1.0], [15.0, -15.0, 15.0]])
    assert UNCLIPPED_BOUND > 15.0
    (q,) = client.encrypt(X)
    out = client.decrypt(server.answer(q.ciphertext, q.count), q.rows)
    clear = bundle.circuit.evaluate(X)
    assert np.abs(clear).max() > 100
    assert np.abs(out - clear).max() < 2.0**-5


def test_the_trial_answers_stay_with_the_owner(linear_rows):
    """Defence holds: the trial decrypts with a throwaway key of its own and its result is the owner's to read:
    neither the client information nor the bundle file the server gets carries it."""
    bundle, _, _ = linear_rows
    assert bundle.trial_error is not None
    info, blob = bundle.client_info(), bundle.to_bytes()
    assert not any("trial" in k for k in info) and b"trial" not in blob
    assert ServerBundle.from_bytes(blob).trial_error is None


# ---------------------------------------------------------------------------- 5. answer sets and client queries
def _worst_case(circuit: Circuit) -> np.ndarray:
    """The query near the server's input bound (a 54-bit scale encodes values below 16 only) whose output
    nearly reaches the answer's bound."""
    w = circuit.layers[0][1]
    assert UNCLIPPED_BOUND == 16.0
    return 15.0 * np.where(w[:, 0] >= 0, 1.0, -1.0)[None, :]


def test_an_answer_set_too_tight_for_the_answers_bound_is_not_taken(monkeypatch):
    """Defence holds (new: answer sets without a refresh floor, whose answer lives in q_0 alone): a set whose
    last level cannot hold the answer's declared bound is refused even when the trial's random inputs (in +-1)
    fit it, and the bundle falls back on the floored set; the worst query at the server's bound then decrypts
    right. Without the room check the tight set is taken and that query's answer wraps modulo q_0."""
    from henn import bundle as bundle_module
    from he_core.schemes.ckks import params as ckks_params

    rng = np.random.default_rng(13)
    circuit = Circuit([("linear", rng.normal(0, 1.0, (30, 1)), np.zeros(1))])  # outputs up to ~400 at the bound
    ckks = he_core.scheme_class("ckks")
    # a scheme that offered its protocol scale for the answer, whatever the bound (q_0 then holds values < 16)
    monkeypatch.setattr(ckks, "params_for_answer", classmethod(lambda cls, depth, bound: ckks_params.for_answer(
        depth, 2)))
    X = _worst_case(circuit)
    clear = circuit.evaluate(X)
    assert np.abs(clear).max() > 100
    bundle = ServerBundle.create(circuit, "ckks", layout="rows")
    assert bundle.params.floor_levels == 1  # the tight set was refused
    server, client = world(bundle)
    (q,) = client.encrypt(X)
    np.testing.assert_allclose(client.decrypt(server.answer(q.ciphertext, q.count), q.rows), clear, atol=2.0**-5)
    monkeypatch.setattr(bundle_module, "_check_room", lambda scheme, answer, bound: None)
    tight = ServerBundle.create(circuit, "ckks", layout="rows")
    if tight.params.floor_levels == 1:
        return  # the trial itself refused the set: its rescale into q_0 alone cannot hold the answer's record
    server, client = world(tight)
    (q,) = client.encrypt(X)
    with pytest.raises(he_core.HEOverflowError):
        client.decrypt(server.answer(q.ciphertext, q.count), q.rows)


def test_the_answer_set_answers_the_worst_query_at_the_servers_bound():
    """Defence holds: the answer set's scale leaves q_0 room for the answer's declared bound, so the worst query
    a client may send (every input at the server's bound, signed as the weights) decrypts to the clear output.
    (Flooded for 2^8 answers, the set without a floor holds this circuit; for the default 2^16 its trial errs by
    more than the answer set's margin and the export takes the floored set at N = 16384.)"""
    rng = np.random.default_rng(14)
    circuit = Circuit([("linear", rng.normal(0, 1.0, (30, 1)), rng.normal(0, 0.1, 1))])
    bundle = ServerBundle.create(circuit, "ckks", layout="rows", queries_per_key=1 << 8)
    assert bundle.params.floor_levels == 0 and bundle.params.poly_degree == 8192
    server, client = world(bundle)
    X = _worst_case(circuit)
    (q,) = client.encrypt(X)
    out = client.decrypt(server.answer(q.ciphertext, q.count), q.rows)
    np.testing.assert_allclose(out, circuit.evaluate(X), atol=2.0**-5)


def test_a_symmetric_query_does_not_shrink_the_servers_flood(linear_rows):
    """Defence holds (new: the client encrypts its queries under its own secret key, whose fresh noise is far
    smaller than a public-key encryption's and says so in the query's metadata): the server sizes the noise it
    answers from its own bound, so the answers to a symmetric and a public-key query carry the same flood."""
    bundle, w, b = linear_rows
    server, client = world(bundle)
    X = np.random.default_rng(15).uniform(-1, 1, (1, 3))
    (sym,) = client.encrypt(X)
    public = packed(client, X, bundle.row_width)
    assert sym.ciphertext.meta["nvar"] < public.meta["nvar"] / 10  # the client's word differs
    floods = [server.answer(ct, 1).meta["flood"] for ct in (sym.ciphertext, public)]
    assert floods[0] == floods[1] > 0
