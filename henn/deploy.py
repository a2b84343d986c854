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
from he_core import Ciphertext, Flooding, KeyRequirements, PublicKeys
from he_core.formats import container

from . import activations
from .layers import Linear
from .module import Sequential
from .tensor import EncTensor

FORMAT = "henn-server-bundle/1"
#: Queries per batch for a scheme without a natural ciphertext size (each row then costs per entry).
DEFAULT_BATCH = 64
#: Answered batches the answers' flooding is sized for, over every client (they all learn about one model).
DEFAULT_QUERIES_PER_KEY = 1 << 16
#: Client keys one server holds at most (each is several MB).
MAX_CLIENTS = 256


class DeployError(he_core.HEError, ValueError):
    """A bundle, key or query that does not fit the circuit (named in the message)."""


@dataclasses.dataclass
class Circuit:
    """A trained network in the clear: linear layers and polynomial activations.

    Attributes:
        layers: ``("linear", W (in, out), b (out,))`` or ``("poly", PolyActivation)``.
        shift, scale, clip: the inputs' standardisation, ``clip((x - shift) / scale, ±clip)``,
            applied by the client before encrypting (``None``: raw features).
    """

    layers: list[tuple]
    shift: np.ndarray | None = None
    scale: np.ndarray | None = None
    clip: float | None = None

    def __post_init__(self) -> None:
        width = None
        for i, layer in enumerate(self.layers):
            if layer[0] == "linear":
                w, b = layer[1], layer[2]
                if w.ndim != 2 or b.shape != (w.shape[1],) or not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                    raise DeployError(f"cannot build the circuit: layer {i} needs a finite (in, out) weight and an "
                                      f"(out,) bias, got {w.shape} and {b.shape}")
                if width is not None and w.shape[0] != width:
                    raise DeployError(f"cannot build the circuit: layer {i} takes {w.shape[0]} inputs, the previous "
                                      f"layer gives {width}")
                width = w.shape[1]
            elif layer[0] != "poly" or not isinstance(layer[1], activations.PolyActivation):
                raise DeployError(f"cannot build the circuit: layer {i} is neither linear nor a polynomial")
        if width is None:
            raise DeployError("cannot build the circuit: it has no linear layer")
        n = self.n_features
        for name in ("shift", "scale"):
            value = getattr(self, name)
            if value is not None and (np.shape(value) != (n,) or not np.all(np.isfinite(value))):
                raise DeployError(f"cannot build the circuit: {name} must be {n} finite numbers")
        if self.scale is not None and np.any(np.asarray(self.scale) <= 0):
            raise DeployError("cannot build the circuit: scale must be positive")
        if self.clip is not None and not (self.clip > 0 and np.isfinite(self.clip)):
            raise DeployError("cannot build the circuit: clip must be positive and finite")

    def prepare(self, X: Any) -> np.ndarray:
        """The inputs as the first layer takes them (standardised and clipped, as the owner trained)."""
        x = np.asarray(X, dtype=np.float64)
        if self.shift is not None:
            x = x - self.shift
        if self.scale is not None:
            x = x / self.scale
        return x if self.clip is None else np.clip(x, -self.clip, self.clip)

    @classmethod
    def from_model(cls, model: Sequential, weights: list[np.ndarray]) -> "Circuit":
        """The circuit of a henn model, given its weights in the clear (``model.parameters()`` order)."""
        it = iter(weights)
        layers: list[tuple] = []
        for layer in model.layers:
            if isinstance(layer, Linear):
                w, b = np.asarray(next(it), dtype=np.float64), np.asarray(next(it), dtype=np.float64)
                layers.append(("linear", w.T if layer.encrypted_input else w, b.reshape(-1)))
            elif isinstance(layer, activations.PolyActivation):
                layers.append(("poly", layer))
            else:
                raise DeployError(f"cannot export {type(layer).__name__}: only Linear and PolyActivation layers")
        return cls(layers)

    @property
    def n_features(self) -> int:
        return next(layer[1].shape[0] for layer in self.layers if layer[0] == "linear")

    @property
    def n_outputs(self) -> int:
        return [layer[1].shape[1] for layer in self.layers if layer[0] == "linear"][-1]

    @property
    def depth(self) -> int:
        """A bound on the levels of one evaluation: a level per linear layer, each activation's, the answer's mask.

        A scheme may spend fewer (CKKS absorbs small constant factors into the scale):
        :meth:`ServerBundle.create` measures on a trial run.
        """
        return sum(1 if layer[0] == "linear" else layer[1].forward_depth for layer in self.layers) + 1

    def run(self, x: EncTensor, count: int) -> EncTensor:
        """The encrypted evaluation on ``X^T`` rows (features x batch); slots past ``count`` are zeroed."""
        for layer in self.layers:
            x = layer[1].T @ x + layer[2][:, None] if layer[0] == "linear" else layer[1].forward(x)
        if count >= x.size:
            return x  # every slot was asked for (each row is whole: no slot outside the batch)
        mask = np.zeros((1, x.size))
        mask[0, :count] = 1.0
        return x * mask  # the slots nobody asked about would answer a zero query

    def evaluate(self, X: np.ndarray) -> np.ndarray:
        """The clear model on ``(n, features)`` raw rows: ``(n, outputs)``."""
        x = self.prepare(X)
        for layer in self.layers:
            x = x @ layer[1] + layer[2] if layer[0] == "linear" else layer[1].value(x)
        return x


@dataclasses.dataclass
class ServerBundle:
    """What the owner gives the server: the circuit, its scheme and parameter set.

    Attributes:
        circuit: the network in the clear.
        scheme: scheme name.
        params: the parameter set (chosen from the circuit's depth by :meth:`create`).
        batch: queries per encrypted batch.
        queries_per_key: answered batches in all, over every client key (sizes the answers'
            flooding: every answer tells something about the same weights, whoever asks).
    """

    circuit: Circuit
    scheme: str
    params: he_core.Parameters | None
    batch: int
    queries_per_key: int = DEFAULT_QUERIES_PER_KEY

    @classmethod
    def create(cls, circuit: Circuit, scheme: str = "ckks", *,
               queries_per_key: int = DEFAULT_QUERIES_PER_KEY) -> "ServerBundle":
        """A bundle with the scheme's cheapest parameter set that runs the circuit.

        Candidates come from the circuit's depth bound, smallest ring first, each
        filled with every level its ring holds; the first on which a trial
        evaluation (throwaway keys, zero queries) completes is taken.

        Raises:
            DeployError: no parameter set of the scheme runs the circuit.
        """
        cls_ = he_core.scheme_class(scheme)
        candidates: dict[str, he_core.Parameters | None] = {}
        for depth in range(1, circuit.depth + 1):
            params = cls_.params_for_depth(depth, fill_ring=True)
            candidates.setdefault("none" if params is None else params.param_id, params)
        for params in candidates.values():
            instance = _make_scheme(scheme, params)
            batch = instance.natural_size or DEFAULT_BATCH
            if params is None or _trial_runs(circuit, instance, batch):
                return cls(circuit, scheme, params, batch, queries_per_key)
        raise DeployError(f"cannot deploy: no {scheme} parameter set up to depth {circuit.depth} runs the circuit")

    def client_info(self) -> dict:
        """What a client needs to make keys and queries (no weights)."""
        c = self.circuit
        return {"format": FORMAT, "scheme": self.scheme, "params": None if self.params is None else
                self.params.to_dict(), "batch": self.batch, "features": c.n_features, "outputs": c.n_outputs,
                "shift": None if c.shift is None else [float(v) for v in c.shift],
                "scale": None if c.scale is None else [float(v) for v in c.scale], "clip": c.clip}

    def to_bytes(self) -> bytes:
        """The bundle in the project's container format (JSON header and raw arrays; no pickle)."""
        header = {**self.client_info(), "queries_per_key": self.queries_per_key, "layers": []}
        arrays = [(name, np.ascontiguousarray(value, dtype=np.float64)) for name, value in
                  (("shift", self.circuit.shift), ("scale", self.circuit.scale)) if value is not None]
        for i, layer in enumerate(self.circuit.layers):
            if layer[0] == "linear":
                header["layers"].append({"kind": "linear", "weight": f"w{i}", "bias": f"b{i}"})
                arrays += [(f"w{i}", np.ascontiguousarray(layer[1])), (f"b{i}", np.ascontiguousarray(layer[2]))]
            else:
                act = layer[1]
                header["layers"].append({"kind": "poly", "name": act.name, "coeffs": list(act.coeffs),
                                         "interval": act.interval})
        return container.pack(header, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> "ServerBundle":
        """Read and validate a bundle.

        Raises:
            he_core.FormatError: not a bundle, or malformed.
            DeployError: a circuit that does not fit together.
        """
        header, arrays = container.unpack(data)
        if header.get("format") != FORMAT:
            raise he_core.FormatError(f"cannot read the bundle: not a {FORMAT} file")
        layers = []
        for spec in _list(header, "layers"):
            kind = spec.get("kind") if isinstance(spec, dict) else None
            if kind == "linear":
                w, b = arrays.get(spec.get("weight")), arrays.get(spec.get("bias"))
                if w is None or b is None or w.dtype != np.float64 or b.dtype != np.float64:
                    raise he_core.FormatError("cannot read the bundle: a linear layer lacks float64 arrays")
                layers.append(("linear", w, b))
            elif kind == "poly":
                coeffs, interval = spec.get("coeffs"), spec.get("interval")
                if not isinstance(coeffs, list) or not all(isinstance(c, (int, float)) for c in coeffs) \
                        or not isinstance(interval, (int, float)):
                    raise he_core.FormatError("cannot read the bundle: a malformed activation")
                layers.append(("poly", activations.PolyActivation(str(spec.get("name", "poly")), coeffs, interval)))
            else:
                raise he_core.FormatError(f"cannot read the bundle: unknown layer kind {kind!r}")
        scheme, params = _scheme_params(header)
        batch, limit = header.get("batch"), header.get("queries_per_key")
        if not (isinstance(batch, int) and batch > 0 and isinstance(limit, int) and limit > 0):
            raise he_core.FormatError("cannot read the bundle: malformed batch or query limit")
        shift, scale, clip = arrays.get("shift"), arrays.get("scale"), header.get("clip")
        if clip is not None and not isinstance(clip, (int, float)):
            raise he_core.FormatError("cannot read the bundle: malformed clip")
        bundle = cls(Circuit(layers, shift, scale, clip), scheme, params, batch, limit)
        if bundle.circuit.n_features != header.get("features") or bundle.circuit.n_outputs != header.get("outputs"):
            raise he_core.FormatError("cannot read the bundle: its header disagrees with its layers")
        return bundle


def _list(header: dict, name: str) -> list:
    value = header.get(name)
    if not isinstance(value, list):
        raise he_core.FormatError(f"cannot read the bundle: {name} is not a list")
    return value


def _scheme_params(info: dict) -> tuple[str, he_core.Parameters | None]:
    scheme = info.get("scheme")
    if not isinstance(scheme, str):
        raise he_core.FormatError("cannot read the bundle: no scheme")
    params = info.get("params")
    if params is None:
        return scheme, None
    try:
        return scheme, he_core.scheme_class(scheme).params_class.from_dict(params)
    except (TypeError, ValueError, KeyError) as exc:
        raise he_core.FormatError(f"cannot read the bundle: bad parameters ({exc})") from None


def _make_scheme(scheme: str, params: he_core.Parameters | None) -> he_core.Scheme:
    return he_core.get_scheme(scheme, params) if params is not None else he_core.get_scheme(scheme)


def _requirements(batch: int) -> KeyRequirements:
    # Products of whole rows and plaintext lincombs: a relinearisation key, no rotation.
    return KeyRequirements(sizes=(1, batch), multiply=True, minimal=True)


def _trial_runs(circuit: Circuit, scheme: he_core.Scheme, batch: int) -> bool:
    scheme.keygen(_requirements(batch))
    try:
        circuit.run(EncTensor.encrypt(scheme, np.zeros((circuit.n_features, batch))), 1)
    except he_core.LevelExhaustedError:
        return False
    return True


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
        name, params = _scheme_params(info)
        self.scheme = _make_scheme(name, params)
        self.batch, self.features, self.outputs = int(info["batch"]), int(info["features"]), int(info["outputs"])
        self._prepare = Circuit([("linear", np.zeros((self.features, 1)), np.zeros(1))],
                                None if info.get("shift") is None else np.asarray(info["shift"], dtype=np.float64),
                                None if info.get("scale") is None else np.asarray(info["scale"], dtype=np.float64),
                                info.get("clip")).prepare
        self._rng = rng
        self._secret, self.public = self.scheme.keygen(_requirements(self.batch), rng=rng)

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
            out.append(Query(self.scheme.encrypt(padded, rng=self._rng), self.batch if hide_count else rows, rows))
        return out

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
        probe = _make_scheme(bundle.scheme, bundle.params)
        probe.keygen(_requirements(bundle.batch))
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
        scheme = _make_scheme(self.bundle.scheme, self.bundle.params)
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


__all__ = ["Circuit", "DeployError", "InferenceClient", "InferenceServer", "Query", "ServerBundle", "bytes_of"]
