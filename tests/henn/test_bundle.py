"""henn.bundle.ServerBundle: the owner's file for a server, written and read back, and refused when malformed.

Bundles are built directly (no trial run): the file format, the client information and
the key requirements are this module's contract; choosing parameters by trial is
covered by the deployment tests.
"""
import numpy as np
import pytest

import he_core
from he_core.formats import container
from henn import activations
from henn.bundle import FORMAT, ServerBundle, client_requirements, row_width, scheme_params
from henn.circuit import Circuit, DeployError


def bundle(layout="columns", **circuit_kw):
    rng = np.random.default_rng(4)
    c = Circuit([("linear", rng.normal(size=(5, 3)), rng.normal(size=3)), ("poly", activations.square()),
                 ("linear", rng.normal(size=(3, 2)), rng.normal(size=2))], **circuit_kw)
    return ServerBundle(c, "ckks", he_core.scheme_class("ckks").params_class(), 64, 1000, layout)


@pytest.mark.parametrize("layout", ["columns", "rows"])
def test_a_bundle_round_trips_through_its_file(layout):
    b = bundle(layout, shift=np.arange(5.0), scale=np.full(5, 2.0), clip=3.0)
    back = ServerBundle.from_bytes(b.to_bytes())
    assert (back.scheme, back.params, back.batch, back.queries_per_key, back.layout) == \
        (b.scheme, b.params, b.batch, b.queries_per_key, b.layout)
    for (kind, *a), (kind2, *z) in zip(b.circuit.layers, back.circuit.layers):
        assert kind == kind2
        if kind == "linear":
            np.testing.assert_array_equal(a[0], z[0])
            np.testing.assert_array_equal(a[1], z[1])
        else:
            assert a[0].coeffs == z[0].coeffs and a[0].interval == z[0].interval
    np.testing.assert_array_equal(back.circuit.shift, b.circuit.shift)
    assert back.circuit.clip == 3.0


def test_the_client_information_holds_no_weights_and_says_the_shapes():
    b = bundle("rows")
    info = b.client_info()
    assert info["format"] == FORMAT and info["width"] == row_width(5) == 8
    assert "layers" not in info and all(not isinstance(v, np.ndarray) for v in info.values())
    assert b.query_shape(3) == (3, 8) and b.answer_shape(3) == (3, 2)
    cols = bundle("columns")
    assert cols.query_shape(3) == (5, 64) and cols.answer_shape(3) == (2, 64)


def test_client_keys_are_minimal_for_each_layout():
    cols = client_requirements(bundle("columns").client_info())
    assert cols.minimal and cols.multiply and cols.sizes == (1, 64) and cols.transforms == ()
    rows = client_requirements(bundle("rows").client_info())
    assert rows.transforms == (8,) and set(rows.sizes) >= {1, 8, 2, 3, 5}
    with pytest.raises(DeployError, match="malformed client information"):
        client_requirements({"layout": "rows", "width": "x"})


def forged(b, **header_changes):
    header, arrays = container.unpack(b.to_bytes())
    header.update(header_changes)
    return container.pack(header, list(arrays.items()))


@pytest.mark.parametrize("changes,match", [
    (dict(format="other"), "not a henn-server-bundle"),
    (dict(layers="x"), "layers is not a list"),
    (dict(layers=[{"kind": "conv"}]), "unknown layer kind"),
    (dict(layers=[{"kind": "linear", "weight": "nope", "bias": "b0"}]), "lacks float64"),
    (dict(layers=[{"kind": "poly", "coeffs": "1", "interval": 1}]), "malformed activation"),
    (dict(batch=0), "batch or query limit"),
    (dict(queries_per_key=-1), "batch or query limit"),
    (dict(clip="3"), "malformed clip"),
    (dict(layout="diagonal"), "unknown layout"),
    (dict(features=7), "disagrees with its layers"),
    (dict(scheme=5), "no scheme"),
    (dict(params={"poly_degree": 3}), "bad parameters"),
])
def test_malformed_bundles_are_refused_by_name(changes, match):
    with pytest.raises(he_core.FormatError, match=match):
        ServerBundle.from_bytes(forged(bundle(), **changes))


def test_an_unknown_layout_is_refused_when_built():
    with pytest.raises(DeployError, match="layout must be one of"):
        bundle("diagonal")


def test_scheme_params_without_parameters_means_the_defaults():
    assert scheme_params({"scheme": "plain", "params": None}) == ("plain", None)
