"""The owner's server bundle: a circuit, its parameter set, and the file that carries them.

The parameter set is the scheme's cheapest that runs the circuit, found by a trial
evaluation (:meth:`ServerBundle.create`). The file is the project's container (JSON
header, raw float64 arrays; no pickle), validated when read.
"""
from __future__ import annotations

import dataclasses

import numpy as np

import he_core
from he_core import KeyRequirements
from he_core.formats import container

from . import activations
from .circuit import Circuit, DeployError
from .tensor import EncTensor

FORMAT = "henn-server-bundle/1"
#: Queries per batch for a scheme without a natural ciphertext size (each row then costs per entry).
DEFAULT_BATCH = 64
#: Answered batches the answers' flooding is sized for, over every client (they all learn about one model).
DEFAULT_QUERIES_PER_KEY = 1 << 16


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
            instance = make_scheme(scheme, params)
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
        scheme, params = scheme_params(header)
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


def scheme_params(info: dict) -> tuple[str, he_core.Parameters | None]:
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


def make_scheme(scheme: str, params: he_core.Parameters | None) -> he_core.Scheme:
    return he_core.get_scheme(scheme, params) if params is not None else he_core.get_scheme(scheme)


def client_requirements(batch: int) -> KeyRequirements:
    # Products of whole rows and plaintext lincombs: a relinearisation key, no rotation.
    return KeyRequirements(sizes=(1, batch), multiply=True, minimal=True)


def _trial_runs(circuit: Circuit, scheme: he_core.Scheme, batch: int) -> bool:
    scheme.keygen(client_requirements(batch))
    try:
        circuit.run(EncTensor.encrypt(scheme, np.zeros((circuit.n_features, batch))), 1)
    except he_core.LevelExhaustedError:
        return False
    return True
