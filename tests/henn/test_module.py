"""henn.module: parameters, contexts, and the Sequential container, on toy modules.

The toy modules compute on plain floats (the module system never looks at the values):
what is tested is the bookkeeping, naming, contexts per position, the order of backward
and the errors. Layers on real ciphertexts are tested in test_layers.py.
"""
from __future__ import annotations

import numpy as np
import pytest

import he_core
from henn.module import Module, Parameter, RowGrad, Sequential
from henn.tensor import EncTensor


@pytest.fixture(scope="module")
def scheme():
    s = he_core.get_scheme("plain")
    s.keygen(he_core.KeyRequirements(sizes=(1, 2)))
    return s


class Scale(Module):
    """y = k x; backward returns k g and records the context it was given."""

    forward_depth, op_depth = 1, 1

    def __init__(self, k: float, sizes=(2,)):
        self.k, self.sizes, self.seen = k, set(sizes), []

    def forward_train(self, x):
        return self.k * x, ("input", x)

    def backward_train(self, ctx, grad):
        self.seen.append(ctx)
        return self.k * grad

    def key_sizes(self):
        return self.sizes


class Affine(Module):
    """A module with a parameter (and a nested one), for naming; backward stores a gradient."""

    forward_depth, op_depth = 2, 3

    def __init__(self, scheme, plain_input=False):
        self.weight = Parameter(EncTensor.encrypt(scheme, np.ones((1, 2))))
        self.inner = Scale(1.0, sizes=(1,))
        self.plain_input = plain_input

    def forward_train(self, x):
        return x + 1.0, x

    def backward_train(self, ctx, grad):
        self.weight.grad = grad
        return None if self.plain_input else grad


def test_parameter_wraps_an_enctensor_only(scheme):
    p = Parameter(EncTensor.encrypt(scheme, np.zeros((2, 2))), "0.weight")
    assert p.grad is None and repr(p) == "Parameter('0.weight', shape=(2, 2))"
    with pytest.raises(TypeError, match="expected an EncTensor, got ndarray"):
        Parameter(np.zeros((2, 2)))


def test_names_are_dotted_and_stable(scheme):
    net = Sequential(Scale(2.0), Affine(scheme), Scale(3.0), Affine(scheme))
    names = [n for n, _ in net.named_parameters()]
    assert names == ["1.weight", "3.weight"]
    assert [n for n, _ in Sequential(net, Affine(scheme)).named_parameters()] == ["0.1.weight", "0.3.weight",
                                                                                   "1.weight"]
    assert net.parameters() == [p for _, p in net.named_parameters()]
    for p in net.parameters():
        p.grad = RowGrad([[0]], [])
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_call_keeps_the_context_for_backward_and_forward_keeps_none():
    m = Scale(2.0)
    assert m.forward(3.0) == 6.0
    with pytest.raises(RuntimeError, match="cannot run backward of Scale: forward has not been called"):
        m.backward(1.0)
    assert m(5.0) == 10.0 and m(7.0) == 14.0
    assert m.backward(1.0) == 2.0 and m.seen == [("input", 7.0)]  # the last call's context


def test_sequential_runs_backward_in_reverse_with_each_positions_context(scheme):
    shared = Scale(2.0)  # no parameters: may appear twice, each position keeps its own context
    net = Sequential(shared, Scale(3.0), shared)
    assert net(1.0) == 12.0 and net.forward(1.0) == 12.0
    assert net.backward(1.0) == 12.0
    assert shared.seen == [("input", 6.0), ("input", 1.0)]  # position 2 first, then position 0
    assert net.forward_depth == 3 and net.op_depth == 1
    assert len(net) == 3 and net[1].k == 3.0


def test_depths_and_key_sizes_combine(scheme):
    net = Sequential(Scale(2.0, sizes=(2, 4)), Affine(scheme), Scale(1.0, sizes=(8,)))
    assert net.forward_depth == 1 + 2 + 1  # the sum along the path
    assert net.op_depth == 3  # the deepest single operation
    assert net.key_sizes() == {2, 4, 8}  # Affine's own default: none


def test_a_plain_input_layer_ends_backward(scheme):
    first = Affine(scheme, plain_input=True)
    net = Sequential(first, Scale(2.0))
    net(1.0)
    assert net.backward(1.0) is None and first.weight.grad == 2.0
    net = Sequential(Scale(2.0), Affine(scheme, plain_input=True), Scale(2.0))
    net(1.0)
    with pytest.raises(RuntimeError, match="received no gradient"):
        net.backward(1.0)


def test_sequential_refuses_bad_layers(scheme):
    with pytest.raises(ValueError, match="no layers"):
        Sequential()
    with pytest.raises(TypeError, match="layer 1 is a int, not a Module"):
        Sequential(Scale(1.0), 3)
    layer = Affine(scheme)
    with pytest.raises(ValueError, match="layer 2 is the same object as layer 0 and has parameters"):
        Sequential(layer, Scale(1.0), layer)
