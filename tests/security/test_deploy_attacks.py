"""Attacks on encrypted-data inference (henn.deploy, henn.serving): a malicious client, a malicious server.

The server's secret is the model's weights, the client's its key and data. Each test
is written as the attacker would run it. Tests marked ``xfail(strict=True)`` show an
attack that WORKS on the current code (their assertions state the defence that is
missing; the numbers in the failure messages are the measured evidence); the others
show a defence that holds. Run: ``python -m pytest -q tests/security/test_deploy_attacks.py``.
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import struct
import tempfile
import threading

import numpy as np
import pytest

import he_core
from he_core import PublicKeys
from he_core.keys import derive_key_id
from he_core.schemes.ckks import layout
from henn import activations, serving
from henn.deploy import Circuit, DeployError, InferenceClient, InferenceServer, ServerBundle
from henn.tensor import EncTensor
from henn.keyservice.transport import BYE, ERROR, HELLO, OK, KeyServiceError, connect

pytestmark = [pytest.mark.filterwarnings("ignore::he_core.SecurityWarning"),
              pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")]

dumps = he_core.serialization.dumps


def _pair(queries):
    """The one query of a batch as (ciphertext, count) (the count the client sends, which hides its rows)."""
    (query,) = queries
    return query.ciphertext, query.count


# ---------------------------------------------------------------------------- fixtures and attacker tools
@pytest.fixture(scope="module")
def linear():
    """A logistic-regression-like circuit (3 -> 2) with the owner's clip, and its weights."""
    rng = np.random.default_rng(0)
    w, b = rng.normal(0, 0.3, (3, 2)), rng.normal(0, 0.1, 2)
    return ServerBundle.create(Circuit([("linear", w, b)], clip=2.0), "ckks"), w, b


@pytest.fixture(scope="module")
def square():
    """3 -> 4 -> square -> 2 (a ciphertext product, so the client's relinearisation key is used)."""
    rng = np.random.default_rng(1)
    layers = [("linear", rng.normal(0, 0.3, (3, 4)), rng.normal(0, 0.1, 4)), ("poly", activations.square()),
              ("linear", rng.normal(0, 0.3, (4, 2)), rng.normal(0, 0.1, 2))]
    return ServerBundle.create(Circuit(layers), "ckks"), layers


def crt_lift(limbs: np.ndarray, primes) -> np.ndarray:
    """Centred integers of coefficient-form RNS limbs (exact, Python ints)."""
    big = math.prod(int(p) for p in primes)
    out = np.zeros(limbs.shape[1], dtype=object)
    for i, p in enumerate(primes):
        m = big // int(p)
        out = out + limbs[i].astype(object) * (m * pow(m, -1, int(p)) % big)
    out = out % big
    return np.where(out > big // 2, out - big, out)


def with_data(public: PublicKeys, **data) -> PublicKeys:
    """The client's public keys with some material replaced (the key id re-derived, as the loader demands)."""
    new = {**public.data, **data}
    key_id = derive_key_id(public.scheme, public.params_id, [new["pk"]])
    return PublicKeys(public.scheme, public.params_id, key_id, new, public.requirements, public.params)


def slots(client: InferenceClient, ct: he_core.Ciphertext) -> np.ndarray:
    """The attacker's own exact decryption (complex slots, no validity check)."""
    return client.scheme._decrypt_slots(ct, client.scheme._s_full(client._secret))


def big_query(client: InferenceClient, X: np.ndarray, magnitude: int) -> he_core.Ciphertext:
    """A public-key encryption of ``magnitude * X`` at the normal scale, with the metadata of ``X``.

    The client's own ``encrypt`` refuses |values| >= q_0 / (4 scale) = 16, far below what the
    modulus Q holds; a malicious client builds the plaintext itself.
    """
    sch, ring = client.scheme, client.scheme.ring
    template = sch.encrypt(X)
    nq = len(ring.q)
    const = ring.ntt(ring.from_signed(np.array([magnitude] + [0] * (ring.n - 1), dtype=np.int64), nq))
    pts = [ring.mul(p, const) for p in sch.encode_pts(layout.pack(X, sch.params.slots, X.shape[1]), template.scale,
                                                     nq)]
    data = sch._encrypt_pts(pts, nq, he_core.randomness.resolve(None), public=client.public.data["pk"])
    return template.replace(data=data)


def query_frame(ct: he_core.Ciphertext, count: int) -> bytes:
    return struct.pack("<I", count) + dumps(ct)


@contextlib.contextmanager
def running_server(bundle: ServerBundle, connections: int):
    """``henn serve``'s loop in a thread on a private Unix socket; yields (address, thread, result)."""
    where = tempfile.mkdtemp(prefix="hs", dir="/tmp")
    os.chmod(where, 0o700)
    address = "unix:" + os.path.join(where, "s.sock")
    ready, result = threading.Event(), {}

    def run():
        try:
            result["server"] = serving.serve(bundle, address, connections=connections, on_ready=lambda _: ready.set())
        except BaseException as exc:  # noqa: BLE001 - what killed the server is the evidence
            result["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(60)
    try:
        yield address, thread, result
    finally:
        thread.join(0.1)
        shutil.rmtree(where, ignore_errors=True)


# ---------------------------------------------------------------------------- 1. malicious client vs the weights
@pytest.mark.parametrize("variant", ["zero_key", "a_equals_one"])
def test_a_degenerate_public_key_leaves_the_answer_unrandomised_and_gives_the_weights(linear, variant,
                                                                                     monkeypatch):
    """Sanitising re-randomises c1 with the client's own public key. Unprotected (the key taken as sent), a key
    whose uniform part is 0 or 1 leaves c1 a weighted sum of the query's c1 parts: one crafted query gives every
    weight to ~1e-12. Protected: the key's uniform part must be the expansion of its published seed, and such a
    key is refused at registration."""
    bundle, w, _ = linear
    client = InferenceClient(bundle.client_info())
    sch, ring = client.scheme, client.scheme.ring
    pk = client.public.data["pk"].copy()
    if variant == "zero_key":
        pk[:] = 0
    else:  # pk0 + pk1 s = 0: decrypts like a valid key, but its "a" is the constant 1
        s = sch._s_full(client._secret)
        primes = np.array(list(ring.q) + list(ring.p), dtype=np.uint64)[:, None]
        pk[0], pk[1] = (primes - s) % primes, 1
    evil = with_data(client.public, pk=np.ascontiguousarray(pk))
    with pytest.raises(he_core.FormatError, match="uniform part"):
        InferenceServer(bundle).register(dumps(evil))
    # the unprotected configuration: keys taken as sent
    monkeypatch.setattr(type(client.scheme), "_check_public_keys", lambda self, public: None)
    server = InferenceServer(bundle)
    key_id = server.register(dumps(evil))
    q, n = _pair(client.encrypt(np.zeros((bundle.batch, 3))))
    nl = q.data.shape[2]
    top = int(ring.q[nl - 1])
    data = q.data.copy()
    for j in range(3):  # c1 of feature j: (q_top 2^20) X^(1000 j), so the lincomb's rescale is exact
        poly = np.zeros((nl, ring.n), dtype=np.uint64)
        for i in range(nl):
            poly[i, 1000 * j] = (top << 20) % int(ring.q[i])
        data[j, 1] = ring.ntt(poly)
    query = q.replace(data=data, key_id=key_id)
    first, second = server.answer(query, n), server.answer(query, n)
    c1 = first.data[:, 1].copy()
    est = np.empty_like(w)
    for i in range(c1.shape[0]):
        ring.intt(c1[i])
        coeffs = crt_lift(c1[i], ring.q[: c1.shape[1]])
        est[:, i] = [float(coeffs[1000 * j]) / 2.0**74 for j in range(3)]
    err = float(np.abs(est - w).max())
    # measured: c1 identical in both answers, weights recovered to ~1e-12 (honest answers: ~1e-4)
    assert err < 1e-9 and np.array_equal(first.data[:, 1], second.data[:, 1])


@pytest.mark.xfail(strict=True, reason="HIGH: the flood is sized for an honest relinearisation key; a relin key "
                   "whose error is P*2^40 injects sum_j digit_j(c2)*2^40, a weight-dependent term ~1400x the flood. "
                   "Fix: no guarantee is possible without proofs of well-formed keys; restrict products or document")
def test_a_malicious_relinearisation_key_makes_answers_depend_on_the_weights_beyond_the_outputs(square):
    bundle, layers = square
    rng = np.random.default_rng(5)
    other = [layers[0][:1] + (layers[0][1] + rng.normal(0, 0.01, layers[0][1].shape), layers[0][2])] + layers[1:]
    bundle2 = ServerBundle(Circuit(other), bundle.scheme, bundle.params, bundle.batch)
    # Same outputs at the query (x = 0: only the biases and the second layer matter), different first layer.
    np.testing.assert_allclose(bundle.circuit.evaluate(np.zeros((1, 3))), bundle2.circuit.evaluate(np.zeros((1, 3))))
    client = InferenceClient(bundle.client_info())
    ring = client.scheme.ring
    relin = client.public.data["relin"].copy()
    big_p = math.prod(int(p) for p in ring.p)
    for i, q_i in enumerate(ring.q):  # error + P * 2^40 in every digit: the key switch adds sum_j d_j 2^40
        relin[:, 0, i] = (relin[:, 0, i].astype(object) + (big_p << 40) % int(q_i)) % int(q_i)
    evil = PublicKeys(client.public.scheme, client.public.params_id, client.public.key_id,
                      {**client.public.data, "relin": np.ascontiguousarray(relin.astype(np.uint64))},
                      client.public.requirements, client.public.params)  # params: or dumps refuses before the attack
    q, n = _pair(client.encrypt(np.zeros((bundle.batch, 3))))
    s1, s2 = InferenceServer(bundle), InferenceServer(bundle2)
    s1.register(dumps(evil)), s2.register(dumps(evil))
    a1, a2, b1 = (slots(client, s.answer(q, n))[:, :n].real for s in (s1, s1, s2))
    same, diff = np.abs(a1 - a2).mean(), np.abs(a1 - b1).mean()
    # honest keys (measured): ratio 1.0; this key: 0.106 / 7.8e-5 = 1360
    assert diff / same < 3, f"the weights show through the flood: W vs W' differ by {diff:.3g}, the flood {same:.3g}"


def test_understated_noise_metadata_does_not_shrink_the_flood(square):
    """Defence holds: declaring zero noise and a tiny value bound leaves the flood as large (2^32.8)."""
    bundle, _ = square
    server, client = InferenceServer(bundle), InferenceClient(bundle.client_info())
    server.register(client.public)
    q, n = _pair(client.encrypt(np.zeros((5, 3))))
    honest = server.answer(q, n)
    lie = q.replace(meta={**q.meta, "nvar": 0.0, "nslot": 0.0, "nspec": 0.0, "vmax": 2.0**-60,
                          "flood": 0.0})
    lying = server.answer(lie, n)
    assert 0.5 * math.log2(lying.meta["flood"]) >= 0.5 * math.log2(honest.meta["flood"]) - 0.01 >= 32
    # and its own "flood" claim (key-independent noise) does not survive the first operation
    flood_claim = server.answer(q.replace(meta={**q.meta, "flood": q.meta["nvar"]}), n)
    assert abs(math.log2(flood_claim.meta["flood"]) - math.log2(honest.meta["flood"])) < 0.01


@pytest.mark.xfail(strict=True, reason="MEDIUM: the mask's plaintext rounding times the padded slots' answers is "
                   "sized from the client's vmax; declaring vmax=1 for values 2^50 unmasks them (0.57 vs noise 4e-5), "
                   "where an honest vmax is refused. Fix: server sets vmax/nvar itself; count is no boundary")
def test_an_understated_value_bound_unmasks_the_padded_slots(linear):
    bundle, _, _ = linear
    server, client = InferenceServer(bundle), InferenceClient(bundle.client_info())
    server.register(client.public)
    X = np.zeros((3, bundle.batch))
    X[[0, 1, 2], [1, 2, 3]] = 1.0  # the padded slots 1..3 hold one-hot queries; count = 1
    q = big_query(client, X, 1 << 50)
    assert q.meta["vmax"] == 1.0
    with pytest.raises(he_core.HEError):  # declared honestly (2^50), the flood cannot even be sampled
        server.answer(q.replace(meta={**q.meta, "vmax": 2.0**50}), 1)
    out = slots(client, server.answer(q, 1)).real
    leak, noise = float(np.abs(out[:, 1:4]).max()), float(out[:, 100:].std())
    assert leak < 10 * noise, f"masked slots hold {leak:.3g}, the flood's noise is {noise:.3g}"


@pytest.mark.xfail(strict=True, reason="MEDIUM: the input bound (the owner's clip) is never enforced; one batch of "
                   "one-hot inputs of magnitude 2^40 gives the first layer to 9e-16 (in-range: 1e-4). Fix: check the "
                   "query scale = fresh scale; otherwise only documentable (no range check on ciphertexts)")
def test_out_of_range_inputs_give_the_weights_to_full_precision(linear):
    bundle, w, _ = linear
    server, client = InferenceServer(bundle), InferenceClient(bundle.client_info())
    server.register(client.public)
    errors = {}
    for k in (0, 40):
        X = np.zeros((3, bundle.batch))
        X[[0, 1, 2], [0, 1, 2]] = 1.0  # slot 3 is the zero query: the bias
        out = client.decrypt(server.answer(big_query(client, X, 1 << k), bundle.batch), bundle.batch)
        errors[k] = float(np.abs((out[:3] - out[3]) / 2.0**k - w).max())
    assert errors[40] > errors[0] / 100, f"weights to {errors[40]:.2g} out of range, {errors[0]:.2g} in range"


def test_fresh_keys_escape_the_query_budget_the_flooding_is_sized_for(linear):
    bundle, _, _ = linear
    bundle = ServerBundle(bundle.circuit, bundle.scheme, bundle.params, bundle.batch, queries_per_key=1)
    server = InferenceServer(bundle)
    answered = 0
    for _ in range(3):
        client = InferenceClient(bundle.client_info())
        server.register(client.public_bytes())
        q, n = _pair(client.encrypt(np.zeros((1, 3))))
        with contextlib.suppress(DeployError):
            server.answer(q, n)
            answered += 1
    assert answered <= bundle.queries_per_key, f"{answered} answers about the weights, flooding sized for 1"


def test_reregistering_a_victims_public_key_replaces_its_evaluation_key(square):
    bundle, _ = square
    server, victim = InferenceServer(bundle), InferenceClient(bundle.client_info())
    server.register(victim.public_bytes())
    stolen = he_core.serialization.loads(victim.public_bytes(), expect_kind="public_keys")
    with pytest.raises(DeployError, match="other evaluation keys"):  # before: accepted, replacing the victim's
        server.register(PublicKeys(stolen.scheme, stolen.params_id, stolen.key_id,
                                   {**stolen.data, "relin": np.zeros_like(stolen.data["relin"])}, stolen.requirements))
    X = np.random.default_rng(2).normal(0, 1, (4, 3))
    (query,) = victim.encrypt(X)
    try:
        err = float(np.abs(victim.decrypt(server.answer(query.ciphertext, query.count), query.rows)
                           - bundle.circuit.evaluate(X)).max())
    except he_core.HEError:
        err = math.inf
    assert err < 1e-2, f"the victim's answer is off by {err:.3g}"


# ---------------------------------------------------------------------------- 2. malicious server vs the client
def test_the_query_metadata_does_not_reveal_the_clients_data(linear):
    """Before: vmax was the power of two above the batch's largest feature (0.5 against 2.0 here). Now the client
    records the owner's clip, a bound that does not depend on its data."""
    bundle, _, _ = linear
    client = InferenceClient(bundle.client_info())
    small = np.full((4, 3), 0.3)
    large = small.copy()
    large[2, 1] = 1.7
    qa, _ = _pair(client.encrypt(small))
    qb, _ = _pair(client.encrypt(large))
    assert qa.meta["vmax"] == qb.meta["vmax"], f"vmax {qa.meta['vmax']} vs {qb.meta['vmax']}"


@pytest.mark.xfail(strict=True, reason="LOW: InferenceClient.decrypt raises on |imag| > 0.5, a key-dependent test on "
                   "a server-chosen answer (c1 += t): a reaction oracle, 1 bit per decryption. predict_remote now "
                   "decrypts after the session has closed (the server sees no reaction) with a fresh key per run; "
                   "a reused InferenceClient whose failures the server can observe still leaks. Fix: never raise")
def test_whether_a_crafted_answer_decrypts_does_not_depend_on_the_clients_key(linear):
    from he_core.schemes.ckks import encoder
    bundle, _, _ = linear
    server = InferenceServer(bundle)
    clients, answers, crit = [], [], []
    for _ in range(6):
        client = InferenceClient(bundle.client_info())
        server.register(client.public)
        q, n = _pair(client.encrypt(np.zeros((1, 3))))
        answer = server.answer(q, n)
        s = np.asarray(client._secret.data["s"], dtype=np.float64)
        crit.append(0.5 * answer.scale / float(np.abs(encoder.decode(s, 1.0).imag).max()))
        clients.append(client), answers.append(answer)
    ordered = sorted(crit)
    t = int(math.sqrt(ordered[1] * ordered[-2]))  # the malicious server's guess: between the keys' thresholds
    outcomes = []
    for client, answer in zip(clients, answers):
        ring, data = client.scheme.ring, answer.data.copy()
        for i in range(data.shape[2]):
            data[:, 1, i] = (data[:, 1, i] + np.uint64(t % int(ring.q[i]))) % np.uint64(ring.q[i])
        try:
            client.decrypt(answer.replace(data=data), 1)
            outcomes.append("decrypted")
        except he_core.HEError:
            outcomes.append("refused")
    assert len(set(outcomes)) == 1, f"one crafted answer, outcomes by key: {outcomes}"


def test_nothing_decrypted_goes_back_and_every_run_uses_fresh_keys(linear, monkeypatch):
    """Defence holds: the client sends HELLO, its public keys, ciphertexts under them and BYE, nothing else."""
    bundle, _, _ = linear
    seen, original = [], serving._handle
    monkeypatch.setattr(serving, "_handle", lambda server, op, payload, info:
                        seen.append((op, payload)) or original(server, op, payload, info))
    X = np.random.default_rng(3).normal(0, 1, (3, 3))
    with running_server(bundle, connections=2) as (address, _, _):
        outs = [serving.predict_remote(address, X).outputs for _ in range(2)]
    np.testing.assert_allclose(outs[0], bundle.circuit.evaluate(X), atol=1e-2)
    assert [op for op, _ in seen] == [HELLO, serving.KEYS, serving.QUERY] * 2
    key_ids = []
    for op, payload in seen:
        if op == serving.KEYS:
            keys = he_core.serialization.loads(payload, expect_kind="public_keys")
            assert set(keys.data) == {"pk", "pk_seed", "relin", "relin_seed", "galois", "galois_seeds"}
            assert keys.data["galois"] == {} and keys.data["galois_seeds"] == {}
            key_ids.append(keys.key_id)
        elif op == serving.QUERY:
            ct = he_core.serialization.loads(payload[4:], expect_kind="ciphertext")
            assert ct.key_id == key_ids[-1] and ct.meta["level"] == bundle.params.levels
    assert len(set(key_ids)) == 2  # a reaction oracle gets at most one run per key


def test_a_server_cannot_weaken_the_clients_error_distribution(linear):
    bundle, _, _ = linear
    info = bundle.client_info()
    weak = {**info, "params": {**info["params"], "sigma": 0.5}}
    try:
        client = InferenceClient(weak)
    except (he_core.HEError, ValueError):
        return
    assert client.scheme.params.sigma >= 3.19, f"keys made with sigma {client.scheme.params.sigma}, " \
        f"reported {client.scheme.params.security_bits}-bit secure"


# ---------------------------------------------------------------------------- 3. robustness
def _frames(client: InferenceClient) -> dict:
    """id -> (malformed public keys to register first or None, op, payload or None: a query under those keys)."""
    q, n = _pair(client.encrypt(np.zeros((2, 3))))
    pub, pk = client.public, client.public.data["pk"]

    def bad_key(**data):
        return dumps(with_data(pub, **data))

    return {
        "short-query": (None, serving.QUERY, b"\x01"),
        "garbage-ciphertext": (None, serving.QUERY, b"\x01\x00\x00\x00garbage"),
        "garbage-keys": (None, serving.KEYS, b"garbage"),
        "unknown-op": (None, 99, b""),
        "count-0": (None, serving.QUERY, query_frame(q, 0)),
        "count-huge": (None, serving.QUERY, query_frame(q, 2**32 - 1)),
        "unregistered-key": (None, serving.QUERY, query_frame(q.replace(key_id="0" * 32), n)),
        "wrong-shape": (None, serving.QUERY, query_frame(q.replace(shape=(3, 4096)), n)),
        "residues-above-q": (None, serving.QUERY, query_frame(q.replace(data=np.full_like(q.data, 2**64 - 1)), n)),
        "level-0": (None, serving.QUERY, query_frame(q.replace(data=np.ascontiguousarray(q.data[:, :, :1])), n)),
        "coefficient-layout": (None, serving.QUERY,
                               query_frame(q.replace(meta={**q.meta, "coeff": True, "rev": False}), n)),
        "stride": (None, serving.QUERY, query_frame(q.replace(meta={**q.meta, "stride": 4096}), n)),
        "nvar-huge": (None, serving.QUERY, query_frame(q.replace(meta={**q.meta, "nvar": 1e300}), n)),
        "scale-1": (None, serving.QUERY, query_frame(q.replace(scale=1.0), n)),
        "scale-1e-300": (None, serving.QUERY, query_frame(q.replace(scale=1e-300), n)),
        "pk-few-limbs": (bad_key(pk=np.ascontiguousarray(pk[:, :3])), serving.QUERY, None),
        "pk-1d": (bad_key(pk=pk.ravel()[: pk.shape[-1]].copy()), serving.QUERY, None),
        "relin-not-an-array": (bad_key(relin="x"), serving.QUERY, None),
    }


@pytest.fixture(scope="module")
def fuzz_world(square):
    bundle, _ = square
    client = InferenceClient(bundle.client_info())
    return bundle, client, _frames(client)


@pytest.mark.parametrize("case", [
    "short-query", "garbage-ciphertext", "garbage-keys", "unknown-op", "count-0", "count-huge", "unregistered-key",
    "wrong-shape", "residues-above-q", "level-0", "coefficient-layout", "stride", "nvar-huge", "scale-1",
    "scale-1e-300", "pk-few-limbs", "pk-1d", "relin-not-an-array",
])
def test_malformed_frames_get_a_named_error(fuzz_world, case):
    bundle, client, frames = fuzz_world
    keys, op, payload = frames[case]
    server = InferenceServer(bundle)
    server.register(client.public)
    if keys is not None:  # a malformed key is refused at registration (before: accepted, the query crashed)
        with contextlib.suppress(he_core.HEError, ValueError):
            key_id = server.register(keys)
            q, n = _pair(client.encrypt(np.zeros((2, 3))))
            payload = query_frame(q.replace(key_id=key_id), n)
        if payload is None:
            return  # refused at registration: the defence
    try:
        serving._handle(server, op, payload, b"{}")
    except (he_core.HEError, ValueError):
        pass  # a named refusal, which _session sends back as ERROR


def test_the_server_survives_a_query_that_crashes_the_evaluation(linear):
    bundle, _, _ = linear
    client = InferenceClient(bundle.client_info())
    q, n = _pair(client.encrypt(np.zeros((2, 3))))
    with running_server(bundle, connections=2) as (address, thread, result):
        with connect(address) as conn:
            conn.send(serving.KEYS, client.public_bytes())
            assert conn.recv()[0] == OK
            conn.send(serving.QUERY, query_frame(q.replace(scale=1e-300), n))
            reply = conn.recv()
        thread.join(1.0)
        assert thread.is_alive(), f"the server died: {result.get('error')!r}"
        assert reply is not None and reply[0] == ERROR
        with connect(address) as conn:
            conn.send(HELLO, b"")
            assert conn.recv()[0] == OK


def test_the_server_survives_a_client_that_hangs_up_before_its_answer(linear):
    bundle, _, _ = linear
    client = InferenceClient(bundle.client_info())
    q, n = _pair(client.encrypt(np.zeros((2, 3))))
    with running_server(bundle, connections=2) as (address, thread, result):
        conn = connect(address)
        conn.send(serving.KEYS, client.public_bytes())
        assert conn.recv()[0] == OK
        conn.send(serving.QUERY, query_frame(q, n))
        conn.close()
        thread.join(3.0)
        assert thread.is_alive(), f"the server died: {result.get('error')!r}"
        with connect(address) as conn:
            conn.send(HELLO, b"")
            assert conn.recv()[0] == OK


def test_an_idle_client_does_not_lock_out_the_others(linear):
    bundle, _, _ = linear
    with running_server(bundle, connections=2) as (address, _, _):
        with connect(address) as squatter:
            squatter.send(HELLO, b"")
            assert squatter.recv()[0] == OK
            with connect(address, idle_seconds=2.0) as other:
                other.send(HELLO, b"")
                try:
                    reply = other.recv()
                except KeyServiceError as exc:
                    reply = exc
                squatter.send(BYE, b"")
        assert isinstance(reply, tuple) and reply[0] == OK, f"a second client got {reply!r}"


def test_a_query_whose_metadata_understates_its_values_gets_the_honest_flood(square, monkeypatch):
    """A client edits its query's public metadata (value bound 1e-6, zero noise) so the server would size the
    answer's flood for nothing: weight-dependent rounding noise would then show. The server sizes it from its own
    bound and a fresh encryption's noise. Unprotected (the metadata taken as sent), the lie does shrink the flood,
    though here only by 0.3 % (measured): the circuit's own rounding terms dominate the bound, so this is a
    defence in depth rather than a measured break."""
    bundle, _ = square
    client = InferenceClient(bundle.client_info())
    X = np.full((4, 3), 1.5)
    (honest,) = client.encrypt(X)
    lie = honest.ciphertext.replace(meta={**honest.ciphertext.meta, "vmax": 1e-6, "nvar": 0.0})

    def bound_of(server, ct):
        answer = server.answer(ct, honest.count)
        return server._clients[ct.key_id][0].noise_estimate(answer)["variance"]  # the flood dominates it

    server = InferenceServer(bundle)
    server.register(client.public_bytes())
    assert bound_of(server, lie) == pytest.approx(bound_of(server, honest.ciphertext), rel=1e-9)
    monkeypatch.setattr(InferenceServer, "answer", _answer_trusting_metadata)
    trusting = InferenceServer(bundle)
    trusting.register(client.public_bytes())
    assert bound_of(trusting, lie) < bound_of(trusting, honest.ciphertext)


def _answer_trusting_metadata(self, query, count):
    """The server's evaluation before it reset a query's metadata (the unprotected configuration)."""
    scheme = self._clients[query.key_id][0]
    return scheme.sanitize(self.bundle.circuit.run(EncTensor(scheme, query), count).ct, flooding=self._flooding)


# ---------------------------------------------------------------------------- the rows layout
def test_a_rows_query_answers_no_more_rows_than_it_declares(square):
    """Attack: the client packs 8 queries into the slots of a ciphertext that declares 1 row (its metadata is the
    client's to write) to get 8 answers for one counted query. Defence: the products have blocks for the
    declared rows only, so every other block of the answer decrypts to zero (flooding only)."""
    bundle = ServerBundle.create(square[0].circuit, "ckks", layout="rows")
    server = InferenceServer(bundle)
    client = InferenceClient(bundle.client_info())
    server.register(client.public_bytes())
    rng = np.random.default_rng(5)
    X = rng.uniform(-1, 1, (8, 3))
    padded = np.zeros((8, bundle.row_width))
    padded[:, :3] = X
    full = client.scheme.encrypt(padded, bound=2.0)
    forged = full.replace(shape=(1, bundle.row_width))  # same slots, one declared row
    answer = server.answer(forged, 1)
    slots = client.scheme._decrypt_slots(answer, client.scheme._s_full(client._secret)).real
    blocks = slots.reshape(-1, bundle.row_width)
    clear = bundle.circuit.evaluate(X)
    np.testing.assert_allclose(blocks[0, :2], clear[0], atol=1e-2)
    assert np.abs(blocks[1:]).max() < 1e-2 < np.abs(clear[1:]).max()  # the other 7 queries get nothing
    assert np.abs(blocks[0, 2:]).max() < 1e-2  # nor the padding of the answered row
