"""henn.bench.ops: every benchmarked op, prepared outside the timed region, computes what it claims.

Each op's ciphertext is decrypted here (not through the runner's check) and compared with numpy on the
plaintext twin, exactly, and on vhe within its 16-bit fixed point (2^-10 per rounded term, as the
scheme's own tests state for one rounding of values below 1). Ops a scheme lacks are named, not run.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import he_core
from he_core import Capability
from henn.bench import ops

SCHEMES = ["plain", "vhe"]
TOL = {"plain": 0.0, "vhe": 2.0**-10}


@pytest.fixture(scope="module", params=SCHEMES)
def ctx(request):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        scheme = he_core.get_scheme(request.param)
        return ops.make_context(scheme, size=4, rows=6, seed=3)


def decrypted(ctx, prepared):
    out = prepared.output()
    return ctx.scheme.decrypt_exact_local(*out) if isinstance(out, tuple) else np.asarray(out)


def test_the_op_table_names_each_op_once_and_get_op_finds_it():
    assert len(set(ops.OP_NAMES)) == len(ops.OPS) == 12
    assert all(ops.get_op(name).name == name for name in ops.OP_NAMES)
    with pytest.raises(KeyError, match="unknown op 'divide'; known: encrypt, decrypt"):
        ops.get_op("divide")


def test_the_context_has_keys_for_its_sizes_and_seeded_inputs(ctx):
    req = ctx.keys.public.requirements
    assert {ctx.size, 1} <= set(req.sizes) and ctx.rows == 6
    assert req.multiply == ctx.scheme.supports(Capability.CIPHER_MULTIPLY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        again = ops.make_context(he_core.get_scheme(ctx.scheme.name), size=4, rows=6, seed=3)  # keygen installs keys
    fresh = np.random.default_rng(3)
    assert np.array_equal(again.values(2), fresh.uniform(-1, 1, (2, 4)))  # inputs only: keys stay OS-random
    assert again.keys.secret.key_id != ctx.keys.secret.key_id
    x = ctx.values()
    assert x.shape == (1, 4) and np.all(np.abs(x) <= 1.0)
    assert np.max(np.abs(ctx.scheme.decrypt_exact_local(ctx.encrypt(x), ctx.keys.secret) - x)) <= TOL[ctx.scheme.name]


def test_every_supported_op_computes_its_stated_answer(ctx):
    ran = []
    for spec in ops.OPS:
        if spec.unsupported_reason(ctx.scheme) is not None:
            continue
        prepared = spec.prepare(ctx)
        if prepared.reset is not None:
            prepared.reset()
        prepared.run()  # the timed call itself works
        got = decrypted(ctx, prepared)
        answers = prepared.expected if isinstance(prepared.expected, tuple) else (prepared.expected,)
        errors = [np.max(np.abs(got - want)) for want in answers if want.shape == got.shape]
        assert errors and min(errors) <= TOL[ctx.scheme.name] * prepared.terms, spec.name
        ran.append(spec.name)
    assert {"encrypt", "decrypt", "add", "mul_plain", "mul", "row_sum", "index_add_"} <= set(ran)


def uniform(gen, rows, size):
    return gen.uniform(-1.0, 1.0, size=(rows, size))


# Each op's answer from the same seeded draws the op makes, in its order (inputs only: keys are never seeded).
FORMULAS = {
    "add": lambda g, n, r: uniform(g, 1, n) + uniform(g, 1, n),
    "mul_plain": lambda g, n, r: uniform(g, 1, n) * uniform(g, 1, n),
    "mul": lambda g, n, r: uniform(g, 1, n) * uniform(g, 1, n),
    "inner": lambda g, n, r: np.sum(uniform(g, 1, n) * uniform(g, 1, n), axis=1, keepdims=True),
    "matvec": lambda g, n, r: (lambda x, m: x @ m.T)(uniform(g, 1, n), uniform(g, n, n) / np.sqrt(n)),
    "row_sum": lambda g, n, r: (lambda t: t[g.integers(0, r, size=max(1, r // 2))].sum(axis=0, keepdims=True))(
        uniform(g, r, n)),
}


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_expected_answers_are_the_numpy_formulas_of_the_ops_inputs(name):
    ctx = ops.make_context(he_core.get_scheme("plain"), size=5, rows=7, seed=11)
    prepared = ops.get_op(name).prepare(ctx)
    want = FORMULAS[name](np.random.default_rng(11), 5, 7)
    assert prepared.expected.shape == want.shape and np.array_equal(prepared.expected, want)
    assert prepared.terms == {"inner": 5, "matvec": 5, "row_sum": 3}.get(name, 1)


def test_in_place_and_rekey_ops_leave_what_they_check_alone(ctx):
    sk = ctx.keys.secret
    add = ops.get_op("index_add_").prepare(ctx)
    assert add.inplace and add.expected.shape == (ctx.rows, ctx.size)
    before = decrypted(ctx, add)
    add.run()  # runs on the timed target, never on what output() decrypts
    assert np.array_equal(decrypted(ctx, add), before)
    add.reset()
    rekey = ops.get_op("rekey").prepare(ctx) if ctx.scheme.supports(Capability.REKEY) else None
    if rekey is not None:
        ct, other = rekey.output()
        assert other.key_id != sk.key_id and ct.key_id == other.key_id
        assert ctx.scheme.public_keys.key_id == sk.key_id  # the switch key's keygen did not replace the keys


def test_rotation_expects_a_left_roll_or_a_left_shift():
    """Prepared without running it (neither scheme here rotates): its answers for a seeded input."""
    ctx = ops.make_context(he_core.get_scheme("plain"), size=3, rows=2, seed=0)
    prepared = ops.get_op("rotate").prepare(ctx)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3))
    roll, shift = prepared.expected
    assert np.array_equal(roll, x[:, [1, 2, 0]])
    assert np.array_equal(shift, np.array([[x[0, 1], x[0, 2], 0.0]]))


def test_an_op_the_scheme_lacks_names_the_missing_capabilities():
    plain = he_core.get_scheme("plain")
    assert not plain.supports(Capability.ROTATE)
    assert ops.get_op("rotate").unsupported_reason(plain) == f"plain does not support {Capability.ROTATE.value}"
    assert ops.get_op("add").unsupported_reason(plain) is None
    both = ops.OpSpec("both", ops.get_op("add").prepare, (Capability.ROTATE, Capability.EXACT))
    assert both.unsupported_reason(plain) == \
        f"plain does not support {Capability.ROTATE.value}, {Capability.EXACT.value}"
