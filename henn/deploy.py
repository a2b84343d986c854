"""Inference on encrypted data: the model owner's bundle, the client, the server.

Three roles, as in Concrete-ML's deployment split:

* the **owner** exports a :class:`ServerBundle`: the circuit (layer sizes, the
  polynomial activations), its parameter set, and the weights **in the clear**. In
  single-key CKKS, weights under the owner's key cannot meet data under a client's
  key, so the server computes plaintext weights on the client's ciphertexts;
* the **client** makes its own keys (:class:`InferenceClient`): the public key and
  the evaluation keys the circuit needs (relinearisation; in the ``rows`` layout also
  the rotations of one linear transform of the circuit's width), encrypts a batch of
  queries, sends it, and decrypts the answer with a secret key that never leaves it;
* the **server** (:class:`InferenceServer`) evaluates on ciphertexts it cannot read.
  It holds no secret key. Before answering it zeroes every slot the client did not
  ask about (they would hold the model's answer to a zero query) and floods the
  noise (:meth:`he_core.Scheme.sanitize`), so an answer reveals the requested
  outputs and nothing else about the weights; it answers at most
  ``queries_per_key`` batches per client key, the count the flooding is sized for.

Layouts (the bundle's ``layout``): in ``columns`` the client sends ``X^T``, one
encrypted row per feature holding that feature of up to ``batch`` queries; each layer
is one plaintext ``lincomb`` (no rotation) and many queries cost the same as one. In
``rows`` the client sends one row per query, its features in the slots of a block of
the circuit's width; each layer is one ``matvec`` (rotations), the product has blocks
for the declared rows only, and a single query costs one small ciphertext. In ``coeffs``
(a circuit of one linear layer: logistic regression, several outputs allowed) the client
puts each query in a block of the plaintext polynomial's *coefficients* and holds a
public key only (no product or rotation key); the server answers with one
plaintext-polynomial product (each output's weight row reversed at its own offset, so
output ``k`` of query ``q`` lands on a known coefficient), adds the bias there, adds a
uniform one-time pad to every other coefficient (they hold shifted correlations of the
query and the weights) and sanitises (:mod:`henn.coeffs`; the scheme's side is
:class:`he_core.protocols.CoeffAnswers`). No rotation and no key switch: the cheapest
layout for one query.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

import he_core
from he_core import Ciphertext, Flooding, PublicKeys

from . import coeffs
from .bundle import FORMAT, UNCLIPPED_BOUND, ServerBundle, client_requirements, input_bound, make_scheme, scheme_params
from .circuit import Circuit, DeployError
from .tensor import EncTensor

#: Client keys one server holds at most (each is several MB).
MAX_CLIENTS = 256


@dataclasses.dataclass(frozen=True)
class Query:
    """One encrypted batch: the ciphertext, the count to send, the real rows it holds (the client's to keep)."""

    ciphertext: Ciphertext
    count: int
    rows: int


class InferenceClient:
    """Makes keys, encrypts queries and decrypts answers; its secret key never leaves it.

    Args:
        info: the bundle's :meth:`ServerBundle.client_info` (no weights).
        rng: key and encryption randomness (default the OS CSPRNG).
    """

    def __init__(self, info: dict, rng: he_core.RandomSource | None = None):
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            raise DeployError("cannot make a client: not the client information of a henn server bundle")
        name, params = scheme_params(info)
        self.scheme = make_scheme(name, params)
        self.batch, self.features, self.outputs = int(info["batch"]), int(info["features"]), int(info["outputs"])
        self.layout = info.get("layout", "columns")
        self.width = int(info.get("width", self.features))
        if self.layout not in ("columns", "rows", "coeffs") or self.width < self.features:
            raise DeployError("cannot make a client: malformed layout in the client information")
        self._prepare = Circuit([("linear", np.zeros((self.features, 1)), np.zeros(1))],
                                None if info.get("shift") is None else np.asarray(info["shift"], dtype=np.float64),
                                None if info.get("scale") is None else np.asarray(info["scale"], dtype=np.float64),
                                info.get("clip")).prepare
        self._clip = info.get("clip")
        self._rng = rng
        self._secret, self.public = self.scheme.keygen(client_requirements(info), rng=rng)

    def public_bytes(self) -> bytes:
        """The public and evaluation keys, in the project's file format."""
        return he_core.serialization.dumps(self.public)

    def encrypt(self, X: Any, *, hide_count: bool = False) -> list[Query]:
        """Encrypt ``(n, features)`` queries: one :class:`Query` per batch of up to ``batch`` rows.

        With ``hide_count`` every batch asks for all its slots (padding rows are zeros),
        so the server does not learn how many rows it holds. The price: the answer is
        not masked, its noise bound covers every slot, and the flooding sized from it
        costs about 3 bits of precision at a hundred rows (off by default).

        Raises:
            DeployError: the wrong number of features, or non-finite values.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.features or not np.all(np.isfinite(X)) or X.shape[0] == 0:
            raise DeployError(f"cannot encrypt queries: expected finite (n, {self.features}) rows, got {X.shape}")
        X = self._prepare(X)
        out = []
        for lo in range(0, X.shape[0], self.batch):
            chunk = X[lo:lo + self.batch]
            rows = chunk.shape[0]
            count = self.batch if hide_count else rows
            if self.layout == "coeffs":  # a batch's rows are always its count: the pad hides the rest
                out.append(Query(coeffs.encrypt(self.scheme, chunk, self.outputs, self._secret,
                                                self._coeff_bound(chunk), self._rng), rows, rows))
                continue
            if self.layout == "columns":
                padded = np.zeros((self.features, self.batch))
                padded[:, :rows] = chunk.T
            else:
                padded = np.zeros((count, self.width))
                padded[:rows, :self.features] = chunk
            # Under the client's own secret key (it holds it): a symmetric encryption costs about half a
            # public-key one, and the server sizes the noise it answers from its own bound either way.
            ct = self.scheme.encrypt(padded, self._secret, rng=self._rng, bound=self._bound(padded))
            out.append(Query(ct, count, rows))
        return out

    def _coeff_bound(self, chunk: np.ndarray) -> float:
        """The server's own input bound (the owner's clip, else ``UNCLIPPED_BOUND``): it sizes the weights'
        scale from it, so a coeffs query beyond it would wrap the answer; the bound itself says nothing."""
        limit = float(self._clip) if self._clip is not None else UNCLIPPED_BOUND
        if float(np.max(np.abs(chunk))) > limit:
            raise DeployError(f"cannot encrypt coeffs queries: values beyond the server's input bound {limit:g} "
                              "(standardised features should lie well inside it)")
        return limit

    def _bound(self, padded: np.ndarray) -> float:
        """A public bound for the query's metadata that does not depend on the data: the owner's clip
        (the largest power of two above the values otherwise, which says a few bits of their size)."""
        top = float(np.max(np.abs(padded)))
        if self._clip is not None and top <= self._clip:
            return float(self._clip)
        return float(2.0 ** np.ceil(np.log2(max(top, 2.0**-20))))

    def decrypt(self, answer: Ciphertext, rows: int) -> np.ndarray:
        """The ``(rows, outputs)`` answers of one batch (decrypted here: nothing goes back)."""
        columns = self.layout == "columns"
        expected = (self.outputs, self.batch) if columns else (rows, self.outputs)
        shape_ok = tuple(answer.shape) == expected if columns or self.layout == "coeffs" else \
            answer.shape[1] == self.outputs and rows <= answer.shape[0] <= self.batch
        if not shape_ok or answer.key_id != self.public.key_id:
            raise DeployError(f"cannot decrypt the answer: expected a {expected} ciphertext "
                              f"under this client's key, got {answer.describe()}")
        out = self.scheme.decrypt_exact_local(answer, self._secret)
        return out[:, :rows].T if columns else out[:rows]


def check_security(bundle: ServerBundle, allow_insecure: bool) -> he_core.Scheme:
    """Refuse a bundle whose parameter set gives no security unless asked for (tests and teaching).

    Returns:
        A scheme of the bundle's parameters (no keys).

    Raises:
        DeployError: an insecure bundle without ``allow_insecure``.
    """
    probe = make_scheme(bundle.scheme, bundle.params)
    if probe.params.security_bits == 0 and not allow_insecure:
        raise DeployError(f"cannot serve: the bundle's {bundle.scheme} parameters give no security; pass "
                          "allow_insecure=True (--allow-insecure) for tests and teaching")
    return probe


class InferenceServer:
    """Evaluates the bundle's circuit on clients' ciphertexts; it holds no secret key.

    Args:
        bundle: the owner's bundle.
        flooding_bits: statistical security of the answers' flooding.
        allow_insecure: accept keys of parameter sets without security (tests and teaching only).
    """

    def __init__(self, bundle: ServerBundle, *, flooding_bits: int = 30, allow_insecure: bool = False,
                 answered_before: int = 0):
        self.bundle = bundle
        self.allow_insecure = allow_insecure
        self._flooding = Flooding(flooding_bits, bundle.queries_per_key)
        self._clients: dict[str, tuple[he_core.Scheme, bytes]] = {}
        self._answered: dict[str, int] = {}
        self._total = int(answered_before)
        # Inputs reach the first layer standardised and clipped (the owner's clip); without a clip,
        # the largest input the scheme can hold at the query's scale is all that bounds them.
        self._input_bound = input_bound(bundle.circuit)
        probe = check_security(bundle, allow_insecure)
        self._params_id = probe.params_id
        probe.keygen(bundle.requirements())
        fresh = probe.budget(probe.encrypt(np.zeros((1, 1))))
        self._fresh_scale = probe.encrypt(np.zeros((1, 1))).scale
        # a leveled scheme's fresh ciphertexts sit at the top level: a query below it was computed on
        self._fresh_levels = fresh["remaining"] if fresh.get("kind") == "levels" else None

    def register(self, public: PublicKeys | bytes) -> str:
        """Accept a client's public keys; returns its key id.

        Raises:
            DeployError: keys of another scheme or parameter set, or without what the circuit needs.
        """
        if isinstance(public, (bytes, bytearray)):
            public = he_core.serialization.loads(bytes(public), expect_kind="public_keys",
                                                 allow_insecure=self.allow_insecure)
        if not isinstance(public, PublicKeys):
            raise DeployError(f"cannot register: expected public keys, got {type(public).__name__}")
        if public.scheme != self.bundle.scheme or public.params_id != self._params_id:
            raise DeployError(f"cannot register: keys for {public.scheme} {public.params_id}, the circuit runs on "
                              f"{self.bundle.scheme} {self._params_id}")
        material = he_core.serialization.dumps(public, params=self.bundle.params)
        known = self._clients.get(public.key_id)
        if known is not None:
            if known[1] != material:  # the id covers the public key only: evaluation keys could be swapped
                raise DeployError("cannot register: this key id is registered with other evaluation keys")
            return public.key_id
        if len(self._clients) >= MAX_CLIENTS:
            raise DeployError(f"cannot register: the server holds {MAX_CLIENTS} client keys already")
        scheme = make_scheme(self.bundle.scheme, self.bundle.params)
        if public.scheme != scheme.name or public.params_id != scheme.params_id:
            raise DeployError(f"cannot register: keys for {public.scheme} {public.params_id}, the circuit runs on "
                              f"{scheme.name} {scheme.params_id}")
        need, have = self.bundle.requirements(), public.requirements
        if not (set(need.sizes) <= set(have.sizes) and set(need.transforms) <= set(have.transforms)
                and (have.multiply or not need.multiply)):
            raise DeployError(f"cannot register: the keys do not cover the circuit's {self.bundle.layout} batches "
                              f"(sizes {need.sizes}, transforms {need.transforms}, products)")
        scheme.check_public_keys(public)  # the answers are re-randomised with this key: its uniform part must be
        scheme.set_public_keys(public)
        self._clients[public.key_id] = (scheme, material)
        self._answered.setdefault(public.key_id, 0)
        return public.key_id

    def answer(self, query: Ciphertext, count: int) -> Ciphertext:
        """The sanitised encrypted outputs of one batch of ``count`` queries.

        Raises:
            DeployError: an unregistered key, a wrong shape or count, or the key's query budget spent.
        """
        client = self._clients.get(query.key_id) if isinstance(query, Ciphertext) else None
        if client is None:
            raise DeployError("cannot answer: the query is not a ciphertext under a registered key")
        scheme = client[0]
        batch = self.bundle.batch
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= batch:
            raise DeployError(f"cannot answer: count must lie in 1..{batch}, got {count!r}")
        if self.bundle.layout == "coeffs":
            return self._answer_coeffs(scheme, query, count)
        if tuple(query.shape) != self.bundle.query_shape(count):
            raise DeployError(f"cannot answer: expected a {self.bundle.query_shape(count)} query, got {query.shape}")
        if self._total >= self.bundle.queries_per_key:
            raise DeployError(f"cannot answer: the {self.bundle.queries_per_key} batches the answers' flooding is "
                              "sized for are spent; the owner must issue a new bundle")
        scheme.validate(query)
        levels = scheme.budget(query)["remaining"] if self._fresh_levels is not None else None
        if query.scale != self._fresh_scale or levels != self._fresh_levels or scheme.layout_of(query) is not None:
            raise DeployError("cannot answer: the query is not a fresh encryption (its scale, level or layout "
                              "differs from one)")
        # the query's noise and value bound are the client's word: the flood is sized from ours
        query = scheme.as_received(query, self._input_bound)
        self._answered[query.key_id] += 1
        self._total += 1
        x = EncTensor(scheme, query)
        # rows: the products have blocks for the count rows only (nothing else reaches the answer)
        out = self.bundle.circuit.run(x, count) if self.bundle.layout == "columns" else self.bundle.circuit.run_rows(x)
        return scheme.sanitize(out.ct, flooding=self._flooding)

    def _answer_coeffs(self, scheme: he_core.Scheme, query: Ciphertext, count: int) -> Ciphertext:
        """A coeffs batch: the scheme checks the packing, level and scale of a fresh query itself."""
        if query.rows != count:
            raise DeployError(f"cannot answer: a coeffs batch of {count} queries has {count} rows, got {query.shape}")
        if self._total >= self.bundle.queries_per_key:
            raise DeployError(f"cannot answer: the {self.bundle.queries_per_key} batches the answers' flooding is "
                              "sized for are spent; the owner must issue a new bundle")
        try:
            scheme.validate(query)
        except he_core.HEError as exc:  # a malformed query is the client's error, said as the server's refusal
            raise DeployError(f"cannot answer: {exc}") from None
        out = coeffs.answer(scheme, self.bundle.circuit, query, self._input_bound, self._flooding)
        self._answered[query.key_id] += 1  # counted once answered: a refused query released nothing
        self._total += 1
        return out

    def answered(self, key_id: str | None = None) -> int:
        """Batches answered for a client key, or in all (this server's earlier runs included) when ``None``."""
        return self._total if key_id is None else self._answered.get(key_id, 0)


def bytes_of(obj: Any) -> int:
    """Size in the project's file format (what crosses the wire)."""
    return len(he_core.serialization.dumps(obj))


__all__ = ["Circuit", "DeployError", "FORMAT", "InferenceClient", "InferenceServer", "Query", "ServerBundle",
           "bytes_of"]
