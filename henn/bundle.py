"""The owner's server bundle: a circuit, its parameter set, and the file that carries them.

The parameter set is the scheme's cheapest that runs the circuit, found by a trial
evaluation (:meth:`ServerBundle.create`). The file is the project's container (JSON
header, raw float64 arrays; no pickle), validated when read.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

import he_core
from he_core import KeyRequirements
from he_core.formats import container

from . import activations, coeffs
from .circuit import Circuit, DeployError
from .tensor import EncTensor

FORMAT = "henn-server-bundle/1"
#: How queries are laid out: ``"columns"`` (``X^T``: one row per feature, a slot per query),
#: ``"rows"`` (a row per query, its features in slots: one ``matvec`` per layer) or ``"coeffs"``
#: (a query per block of coefficients: one plaintext-polynomial product, one linear layer only).
LAYOUTS = ("columns", "rows", "coeffs")
#: Queries per batch for a scheme without a natural ciphertext size (each row then costs per entry).
DEFAULT_BATCH = 64
#: Answered batches the answers' flooding is sized for, over every client (they all learn about one model).
DEFAULT_QUERIES_PER_KEY = 1 << 16
#: The largest error of a flooded trial answer a bundle accepts (outputs are logits or scores).
MAX_ANSWER_ERROR = 2.0**-5
#: A set without a refresh floor (a smaller scale) is taken only when its trial answers err by at most this
#: fraction of ``MAX_ANSWER_ERROR``: room for the answers the trial's 16 did not draw.
ANSWER_SET_MARGIN = 0.25
#: The inputs' bound a server assumes for a circuit without a clip (the client's encoding refuses more).
UNCLIPPED_BOUND = 16.0
#: The flooding of the trial answers (the server's default).
TRIAL_FLOODING_BITS = 30


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
        layout: ``"columns"`` (``X^T``; many queries for the price of one, no rotation
            key), ``"rows"`` (a query per row; one ``matvec`` per layer: the cheaper
            layout for a few queries, with rotation keys for the circuit's width only) or
            ``"coeffs"`` (one linear layer only: a query per block of coefficients, one
            plaintext-polynomial product, a public key and nothing else).
    """

    circuit: Circuit
    scheme: str
    params: he_core.Parameters | None
    batch: int
    queries_per_key: int = DEFAULT_QUERIES_PER_KEY
    layout: str = "columns"
    spent: int | None = dataclasses.field(default=None, compare=False)
    trial_error: float | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise DeployError(f"cannot build the bundle: layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.layout == "coeffs":
            coeffs.linear_layer(self.circuit)

    @property
    def row_width(self) -> int:
        """A query's size in the ``rows`` layout: the circuit's width, to a power of two on a packing scheme."""
        return row_width(self.circuit.width)

    @classmethod
    def create(cls, circuit: Circuit, scheme: str = "ckks", *, queries_per_key: int = DEFAULT_QUERIES_PER_KEY,
               layout: str = "columns") -> "ServerBundle":
        """A bundle with the scheme's cheapest parameter set that runs the circuit.

        The levels the circuit spends are measured on a trial evaluation (throwaway
        keys, a zero query) with the set for its depth bound; the bundle then takes the
        set for exactly those levels (a key switch costs in proportion to the levels a
        ciphertext carries, and a server never refreshes): first one without a refresh
        floor whose last level holds the circuit's output bound
        (:meth:`he_core.Scheme.params_for_answer`; CKKS: N = 8192 for a linear model),
        taken if its trial answers fit that level and err by at most a quarter of
        ``MAX_ANSWER_ERROR``; else the most precise set with the scheme's floor below the
        computation whose trial runs (:meth:`he_core.Scheme.answer_params`).

        Args:
            layout: ``"columns"``, ``"rows"`` or ``"coeffs"`` (see the class); ``"rows"`` needs a
                scheme with linear transforms, ``"coeffs"`` one with coefficient answers and a
                circuit of one linear layer (the set: the scheme's first candidate, smallest
                ring first, whose trial answers err by at most a quarter of ``MAX_ANSWER_ERROR``).

        Raises:
            DeployError: no parameter set of the scheme runs the circuit, a layout the
                scheme cannot evaluate, or a layer whose weights its parameters cannot hold.
        """
        if layout not in LAYOUTS:
            raise DeployError(f"cannot deploy: layout must be one of {LAYOUTS}, got {layout!r}")
        if layout == "coeffs":
            return cls._create_coeffs(circuit, scheme, queries_per_key)
        cls_ = he_core.scheme_class(scheme)
        try:
            bound = cls_.params_for_depth(circuit.depth)
        except he_core.ParameterError as exc:
            raise DeployError(f"cannot deploy: no {scheme} parameter set holds depth {circuit.depth} ({exc})") from None
        bundle, value_bound = cls._trial(circuit, scheme, bound, queries_per_key, layout)
        if bound is not None and bundle.spent is not None:
            # Cheapest first (he_core.Scheme.answer_params): the set without a floor if its trial errs
            # within the margin, else the first floored set whose trial runs (the most precise first).
            depth, answer_bound = max(bundle.spent, 1), max(value_bound, circuit.output_bound(input_bound(circuit)))
            answer_set = cls_.params_for_answer(depth, answer_bound)
            candidates = cls_.answer_params(depth, answer_bound, input_bound(circuit))
            for params in candidates:
                try:
                    fitted, _ = cls._trial(circuit, scheme, params, queries_per_key, layout)
                    if params is not candidates[-1] and fitted.spent is not None:
                        fitted.trial_error = _answer_error(fitted)
                    if params is candidates[-1] or params != answer_set or \
                            fitted.trial_error <= ANSWER_SET_MARGIN * MAX_ANSWER_ERROR:
                        bundle = fitted if fitted.spent is not None else bundle
                        break
                except he_core.HEError:  # DeployError included: the next set is tried
                    if params is candidates[-1]:
                        raise
        if bundle.trial_error is None:
            bundle.trial_error = _answer_error(bundle)
        return bundle

    @classmethod
    def _create_coeffs(cls, circuit: Circuit, scheme: str, queries_per_key: int) -> "ServerBundle":
        """The coeffs layout's bundle on the first of the scheme's candidate sets (smallest ring first)
        whose flooded trial answers err by at most ``ANSWER_SET_MARGIN * MAX_ANSWER_ERROR``."""
        coeffs.linear_layer(circuit)
        tried = []
        for params in coeffs.parameter_sets(make_scheme(scheme, None)):
            instance = make_scheme(scheme, params)
            batch = coeffs.answering(instance).coeff_capacity(circuit.n_features, circuit.n_outputs)
            if batch < 1:
                continue
            bundle = cls(circuit, scheme, params, batch, queries_per_key, "coeffs")
            try:
                bundle.trial_error = _answer_error(bundle)
            except DeployError as exc:
                tried.append(str(exc))
                continue
            if bundle.trial_error <= ANSWER_SET_MARGIN * MAX_ANSWER_ERROR:
                return bundle
            tried.append(f"N = {params.poly_degree}: trial answers err by {bundle.trial_error:.3g}")
        raise DeployError(f"cannot deploy the coeffs layout: no {scheme} set answers the circuit ({'; '.join(tried)})")

    @classmethod
    def _trial(cls, circuit: Circuit, scheme: str, params, queries_per_key: int,
               layout: str) -> tuple["ServerBundle", float | None]:
        """A bundle on ``params`` whose ``spent`` holds the levels a trial evaluation used (``None``: unleveled),
        and the answer's value bound (for a query of the server's input bound; ``None``: unleveled)."""
        instance = make_scheme(scheme, params)
        if layout == "rows" and not instance.supports(he_core.Capability.LINEAR_TRANSFORM):
            raise DeployError(f"cannot deploy: the rows layout needs linear transforms, which {scheme} lacks")
        bundle = cls(circuit, scheme, params, 1, queries_per_key, layout)
        bundle.batch = bundle.rows_per_batch(instance) if layout == "rows" else instance.natural_size or DEFAULT_BATCH
        instance.keygen(bundle.requirements())
        query = EncTensor(instance, instance.as_received(instance.encrypt(np.zeros(bundle.query_shape(1))),
                                                         input_bound(circuit)))
        try:
            answer = circuit.run(query, 1) if layout == "columns" else circuit.run_rows(query)
        except he_core.LevelExhaustedError:
            raise DeployError(f"cannot deploy: the {scheme} set for depth {circuit.depth} does not run the "
                              "circuit") from None
        except he_core.KeyMissingError as exc:  # vhe's transforms need a key per matrix from the key holder
            raise DeployError(f"cannot deploy: {scheme} cannot run the {layout} layout with a client's keys "
                              f"alone ({exc})") from None
        before, after = instance.budget(query.ct), instance.budget(answer.ct)
        if before.get("kind") != "levels":
            return bundle, None
        bundle.spent = int(before["remaining"] - after["remaining"])
        return bundle, float(instance.noise_estimate(answer.ct)["value_bound"])

    def rows_per_batch(self, scheme: he_core.Scheme) -> int:
        """Queries one ``rows`` batch holds: a ciphertext's worth on a packing scheme."""
        natural = scheme.natural_size
        return max(1, natural // self.row_width) if natural else DEFAULT_BATCH

    def requirements(self) -> KeyRequirements:
        """The client's keys (:func:`client_requirements`)."""
        return client_requirements(self.client_info())

    def query_shape(self, count: int) -> tuple[int, int]:
        """The shape of an encrypted batch of ``count`` queries (its padded size in the ``columns`` layout;
        in ``coeffs`` the queries' own: the scheme packs and checks the features itself)."""
        if self.layout == "coeffs":
            return (count, self.circuit.n_features)
        return (self.circuit.n_features, self.batch) if self.layout == "columns" else (count, self.row_width)

    def answer_shape(self, count: int) -> tuple[int, int]:
        return (self.circuit.n_outputs, self.batch) if self.layout == "columns" else (count, self.circuit.n_outputs)

    def client_info(self) -> dict:
        """What a client needs to make keys and queries (no weights)."""
        c = self.circuit
        return {"format": FORMAT, "scheme": self.scheme, "params": None if self.params is None else
                self.params.to_dict(), "batch": self.batch, "features": c.n_features, "outputs": c.n_outputs,
                "layout": self.layout, "width": self.row_width, "sizes": list(c.sizes),
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
        layout = header.get("layout", "columns")  # bundles from before the rows layout
        if layout not in LAYOUTS:
            raise he_core.FormatError(f"cannot read the bundle: unknown layout {layout!r}")
        bundle = cls(Circuit(layers, shift, scale, clip), scheme, params, batch, limit, layout)
        if bundle.circuit.n_features != header.get("features") or bundle.circuit.n_outputs != header.get("outputs") \
                or header.get("width", bundle.row_width) != bundle.row_width:
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


def _answer_error(bundle: ServerBundle, rows: int = 16) -> float:
    """The largest error of flooded trial answers (throwaway keys, inputs drawn in the owner's clip).

    A circuit whose noise bound asks for more flooding than the answer's scale holds
    (an activation with large coefficients) would answer noise or fail to decrypt at
    the client: it is refused here, where the owner can act on it.

    Raises:
        DeployError: an answer that does not decrypt, or errs by more than ``MAX_ANSWER_ERROR``.
    """
    scheme = make_scheme(bundle.scheme, bundle.params)
    circuit = bundle.circuit
    bound = circuit.clip if circuit.clip is not None else 1.0
    if bundle.layout == "coeffs":
        error = coeffs.trial_error(scheme, circuit, he_core.Flooding(TRIAL_FLOODING_BITS, bundle.queries_per_key),
                                   bound, input_bound(circuit), min(rows, bundle.batch))
        _refuse_error(bundle, error)
        return error
    secret, _ = scheme.keygen(bundle.requirements(), rng=he_core.SeededRandom(0))
    x = np.random.default_rng(0).uniform(-bound, bound, (rows, circuit.n_features))
    if bundle.layout == "columns":
        padded = np.zeros(bundle.query_shape(rows))
        padded[:, :rows] = x.T
    else:
        padded = np.zeros(bundle.query_shape(rows))
        padded[:, :circuit.n_features] = x
    # the server declares the input bound itself (its noise bound, hence its flood, is sized from it)
    # seeded like the throwaway keys: the trial (hence the set it picks) is the same on every export
    query = EncTensor(scheme, scheme.as_received(scheme.encrypt(padded, rng=he_core.SeededRandom(1)),
                                                 input_bound(circuit)))
    out = circuit.run(query, rows) if bundle.layout == "columns" else circuit.run_rows(query)
    try:
        flooded = scheme.sanitize(out.ct, flooding=he_core.Flooding(TRIAL_FLOODING_BITS, bundle.queries_per_key),
                                  rng=he_core.SeededRandom(2))
    except he_core.ParameterError:  # a flood beyond the Gaussian sampler's range: no scale holds it
        _refuse_error(bundle, math.inf)
    _check_room(scheme, flooded, circuit.output_bound(input_bound(circuit)))
    try:
        answer = scheme.decrypt_exact_local(flooded, secret)
    except he_core.HEOverflowError:
        error = math.inf
    else:
        answer = answer[:, :rows].T if bundle.layout == "columns" else answer[:rows]
        error = float(np.max(np.abs(answer - circuit.evaluate_prepared(x))))
    _refuse_error(bundle, error)
    return error


def _refuse_error(bundle: ServerBundle, error: float) -> None:
    if not error <= MAX_ANSWER_ERROR:
        what = "does not decrypt" if math.isinf(error) else f"errs by {error:.3g} (more than {MAX_ANSWER_ERROR})"
        raise DeployError(f"cannot deploy: flooded for {bundle.queries_per_key} answers, a trial answer {what}: "
                          "the circuit's noise bound asks for more "
                          "flooding than its scale holds (an activation with large coefficients?); refit it on a "
                          "narrower range or lower queries_per_key")


def _check_room(scheme: he_core.Scheme, answer: he_core.Ciphertext, output_bound: float) -> None:
    """Refuse an answer at the last level whose bound its modulus cannot hold (a query in the
    server's input bound would wrap: the trial's random inputs need not reach the bound).

    Args:
        output_bound: the circuit's bound on its outputs for inputs in the server's bound.

    Raises:
        DeployError: the answer's bound exceeds the last level's range.
    """
    budget = scheme.budget(answer)
    if budget.get("kind") != "levels" or budget["remaining"] != 0:
        return  # levels above the last hold far more than any answer
    bound = max(output_bound, float(scheme.noise_estimate(answer)["value_bound"]))
    if not bound <= budget["max_value"]:
        raise DeployError(f"cannot deploy: answers up to {bound:.4g} outgrow the last level's range "
                          f"({budget['max_value']:.4g})")


def input_bound(circuit: Circuit) -> float:
    """The bound a server declares for a query's values: the owner's clip, or ``UNCLIPPED_BOUND``."""
    return float(circuit.clip) if circuit.clip is not None else UNCLIPPED_BOUND


def client_requirements(info: dict) -> KeyRequirements:
    """The keys a client makes for a bundle's client information: a product key, and in the
    ``rows`` layout the linear transforms of its width (no other rotation).

    Raises:
        DeployError: malformed sizes in ``info``.
    """
    try:
        if info.get("layout") == "coeffs":
            return coeffs.client_keys()
        if info.get("layout", "columns") == "columns":  # products of whole rows and plaintext lincombs
            return KeyRequirements(sizes=(1, int(info["batch"])), multiply=True, minimal=True)
        width, sizes = int(info["width"]), tuple(int(n) for n in info["sizes"])
        return KeyRequirements(sizes=(1, width) + sizes, multiply=True, minimal=True, transforms=(width,))
    except (KeyError, TypeError, ValueError) as exc:
        raise DeployError(f"cannot make keys: malformed client information ({exc})") from None


def row_width(width: int) -> int:
    """A ``rows`` query's size: the circuit's width to a power of two (a packing scheme's row block)."""
    return 1 << max(0, width - 1).bit_length()


