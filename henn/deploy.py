"""Inference on encrypted data: the model owner's bundle, the client, the server.

Three roles, as in Concrete-ML's deployment split:

* the **owner** exports a :class:`ServerBundle`: the circuit (layer sizes, the
  polynomial activations), its parameter set, and the weights **in the clear**. In
  single-key CKKS, weights under the owner's key cannot meet data under a client's
  key, so the server computes plaintext weights on the client's ciphertexts;
* the **client** makes its own keys (:class:`InferenceClient`): the public key and
  the one evaluation key the circuit needs (relinearisation: the batch layout below
  needs no rotation), encrypts a batch of queries, sends it, and decrypts the answer
  with a secret key that never leaves it;
* the **server** (:class:`InferenceServer`) evaluates on ciphertexts it cannot read.
  It holds no secret key. Before answering it zeroes every slot the client did not
  ask about (they would hold the model's answer to a zero query) and floods the
  noise (:meth:`he_core.Scheme.sanitize`), so an answer reveals the requested
  outputs and nothing else about the weights; it answers at most
  ``queries_per_key`` batches per client key, the count the flooding is sized for.

Layout: the client sends ``X^T``, one encrypted row per feature holding that feature
of up to ``batch`` queries. Each layer is then one plaintext ``lincomb`` (integer
multiples and sums of whole ciphertexts on a packing scheme: no rotation), a bias, an
activation; many queries cost the same as one.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

import he_core
from he_core import Ciphertext, Flooding, PublicKeys

from .bundle import FORMAT, ServerBundle, client_requirements, make_scheme, scheme_params
from .circuit import Circuit, DeployError
from .tensor import EncTensor

#: Client keys one server holds at most (each is several MB).
MAX_CLIENTS = 256
#: The inputs' bound a server assumes for a circuit without a clip (the client's encoding refuses more).
UNCLIPPED_BOUND = 16.0


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
        self._prepare = Circuit([("linear", np.zeros((self.features, 1)), np.zeros(1))],
                                None if info.get("shift") is None else np.asarray(info["shift"], dtype=np.float64),
                                None if info.get("scale") is None else np.asarray(info["scale"], dtype=np.float64),
                                info.get("clip")).prepare
        self._clip = info.get("clip")
        self._rng = rng
        self._secret, self.public = self.scheme.keygen(client_requirements(self.batch), rng=rng)

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
            padded = np.zeros((self.features, self.batch))
            padded[:, :chunk.shape[0]] = chunk.T
            rows = chunk.shape[0]
            ct = self.scheme.encrypt(padded, rng=self._rng, bound=self._bound(padded))
            out.append(Query(ct, self.batch if hide_count else rows, rows))
        return out

    def _bound(self, padded: np.ndarray) -> float:
        """A public bound for the query's metadata that does not depend on the data: the owner's clip
        (the largest power of two above the values otherwise, which says a few bits of their size)."""
        top = float(np.max(np.abs(padded)))
        if self._clip is not None and top <= self._clip:
            return float(self._clip)
        return float(2.0 ** np.ceil(np.log2(max(top, 2.0**-20))))

    def decrypt(self, answer: Ciphertext, rows: int) -> np.ndarray:
        """The ``(rows, outputs)`` answers of one batch (decrypted here: nothing goes back)."""
        if tuple(answer.shape) != (self.outputs, self.batch) or answer.key_id != self.public.key_id:
            raise DeployError(f"cannot decrypt the answer: expected a ({self.outputs}, {self.batch}) ciphertext "
                              f"under this client's key, got {answer.describe()}")
        return self.scheme.decrypt_exact_local(answer, self._secret)[:, :rows].T


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
        self._input_bound = float(bundle.circuit.clip) if bundle.circuit.clip is not None else UNCLIPPED_BOUND
        probe = make_scheme(bundle.scheme, bundle.params)
        probe.keygen(client_requirements(bundle.batch))
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
        material = he_core.serialization.dumps(public)
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
        if self.bundle.batch not in public.requirements.sizes or not public.requirements.multiply:
            raise DeployError(f"cannot register: the keys do not cover batches of {self.bundle.batch} with products")
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
        batch, features = self.bundle.batch, self.bundle.circuit.n_features
        if tuple(query.shape) != (features, batch):
            raise DeployError(f"cannot answer: expected a ({features}, {batch}) query, got {query.shape}")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= batch:
            raise DeployError(f"cannot answer: count must lie in 1..{batch}, got {count!r}")
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
        out = self.bundle.circuit.run(EncTensor(scheme, query), count)
        return scheme.sanitize(out.ct, flooding=self._flooding)

    def answered(self, key_id: str | None = None) -> int:
        """Batches answered for a client key, or in all (this server's earlier runs included) when ``None``."""
        return self._total if key_id is None else self._answered.get(key_id, 0)


def bytes_of(obj: Any) -> int:
    """Size in the project's file format (what crosses the wire)."""
    return len(he_core.serialization.dumps(obj))


__all__ = ["Circuit", "DeployError", "FORMAT", "InferenceClient", "InferenceServer", "Query", "ServerBundle",
           "bytes_of"]
