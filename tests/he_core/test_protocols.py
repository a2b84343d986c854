"""The optional protocols, checked over every registered scheme.

For each scheme and each protocol of :data:`he_core.protocols.PROTOCOLS`: a scheme that
declares the capability runs every operation of the protocol and gets the plaintext
answer back (within the scheme's tolerance); a scheme that does not declare it raises
:class:`he_core.CapabilityError` for the typed view and for every operation. A scheme
class that claims a capability without its operations is refused when defined.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import he_core
from he_core import Capability, CapabilityError, KeyRequirements, protocols
from he_core.refresh import Mask
from he_core.scheme import CORE_OPERATIONS, Scheme
from he_core.schemes.plain import PlainScheme

SIZES = (1, 3)
X = np.array([[0.5, -1.25, 2.0], [1.5, 0.75, -0.5]])
Y = np.array([[1.0, 2.0, -3.0], [-0.5, 0.25, 1.0]])


def tolerance(scheme: Scheme, ct: he_core.Ciphertext) -> float:
    """Absolute error allowed after a few operations on values up to about 10."""
    if scheme.supports(Capability.APPROXIMATE):
        return 1e-4
    if scheme.supports(Capability.EXACT):
        return 64 / min(ct.scale, 2.0**16)
    return 1e-9


@pytest.fixture(scope="module", params=he_core.available_schemes())
def ctx(request):
    scheme = he_core.get_scheme(request.param)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        keys = scheme.keygen(KeyRequirements(sizes=SIZES, rotations=(1,)), rng=he_core.SeededRandom(3))
    return scheme, keys


def check(scheme, keys, ct, want, tol=None):
    got = scheme.decrypt_exact_local(ct, keys.secret)
    assert got.shape == np.shape(want)
    assert np.max(np.abs(got - want)) <= (tolerance(scheme, ct) if tol is None else tol), (got, want)


def draw_mask(plan) -> Mask:
    """A mask for ``plan`` (what henn's MaskedRefresh draws, at a fixed modest width)."""
    rng = he_core.SeededRandom(7)
    width = max(1, math.floor(min(40.0, plan.max_width())))
    value = rng.integers(-(2**width), 2**width - 1, plan.n_read)
    residues = None
    if plan.moduli:
        residues = np.stack([np.stack([rng.uniform_mod(q, plan.n_entries) for q in plan.moduli])
                             for _ in range(plan.n_cts)])
    return Mask(plan, width, np.ascontiguousarray(value >> 63, dtype=np.int64),
                np.ascontiguousarray(value & np.int64(2**63 - 1), dtype=np.int64), residues)


# ---------------------------------------------------------------------------- one runner per protocol
def run_multiplication(s, keys):
    a, b = s.encrypt(X), s.encrypt(Y)
    check(s, keys, s.mul(a, b), X * Y)
    check(s, keys, s.square(a), X * X)
    check(s, keys, s.polyval(a, [0.5, -1.0, 0.25]), 0.5 - X + 0.25 * X**2)


def run_inner_products(s, keys):
    check(s, keys, s.inner(s.encrypt(X), s.encrypt(Y)), (X * Y).sum(axis=1, keepdims=True))


def run_rescaling(s, keys):
    small = X / 32  # a product left at the squared scale holds only small values (vhe: |v| < 1/8)
    check(s, keys, s.rescale(s.mul_plain(s.encrypt(small), 0.5, rescale=False)), 0.5 * small)


def run_linear_maps(s, keys):
    m = np.array([[0.5, -1.0, 0.25], [1.0, 0.0, 2.0], [0.0, 0.5, 0.5]])
    key = s.make_linear_key(keys.secret, m)
    assert key is None or isinstance(key, he_core.SwitchKey)
    check(s, keys, s.matvec(s.encrypt(X), m, key=key), X @ m.T)


def run_rekeying(s, keys):
    other = type(s)(s.params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        target = other.keygen(KeyRequirements(sizes=SIZES), rng=he_core.SeededRandom(4))
    moved = s.rekey(s.encrypt(X), s.make_switch_key(keys.secret, target.secret))
    assert moved.key_id == target.secret.key_id
    got = other.decrypt_exact_local(moved, target.secret)
    assert np.max(np.abs(got - X)) <= tolerance(s, moved)


def run_refreshable(s, keys):
    ct = s.mul_plain(s.encrypt(X), 1.0)
    plan = s.refresh_plan(ct)
    mask = draw_mask(plan)
    masked = s.apply_mask(ct, mask)
    fresh = s.reencrypt_masked(masked, None, keys.secret)
    check(s, keys, s.remove_mask(fresh, mask, None, ct), X)
    assert s.refresh_target_signature(ct)["shape"] == [2, 3]


def run_sanitizing(s, keys):
    # a leveled scheme's flood hides the L2 norm of the whole noise vector: at the default set's 2^40
    # scale that is a slot error of ~2^-2.9 (bound 0.7), so X goes in at 2^50 to stay readable
    scale = 2.0**50 if s.supports(Capability.LEVELS) else None
    ct = s.as_received(s.encrypt(X, scale=scale), 4.0)
    out = s.sanitize(ct)
    tol = tolerance(s, out)
    if s.supports(Capability.LEVELS):  # the flood is noise on purpose: the scheme states its bound
        tol = max(tol, protocols.view(s, protocols.Leveled).noise_estimate(out)["slot_bound"])
        assert tol < 0.1  # still a decryption of X, not noise alone
    check(s, keys, out, X, tol)


def run_rotations(s, keys):
    row = X[:1]
    ct = s.encrypt(row)
    shifted = np.zeros_like(row)
    shifted[:, :-1] = row[:, 1:]
    check(s, keys, s.rotate(ct, 1), shifted)
    check(s, keys, s.conjugate(ct), row)
    check(s, keys, s.sum_slots(ct), np.array([[row.sum()]]))


def run_leveled(s, keys):
    ct = s.encrypt(X)
    top = s.level(ct)
    assert top >= 1
    lower = s.level_drop(ct, top - 1)
    assert s.level(lower) == top - 1
    check(s, keys, lower, X)
    assert s.noise_estimate(lower)["level"] == top - 1


def run_exact_integers(s, keys):
    ct = s.add(s.encrypt(X), s.encrypt(Y))
    check(s, keys, s.rerandomize(ct), X + Y)
    fresh = s.refresh(ct, keys.secret)
    check(s, keys, fresh, X + Y)
    assert s.budget(fresh).remaining >= s.budget(ct).remaining


def run_bootstrapping(s, keys):
    plan = s.bootstrap_plan(4)
    assert plan["conjugation"] and plan["relinearisation"]
    if not plan["possible"]:  # the shared fixture's chain is short: a clear refusal, not a wrong answer
        with pytest.raises(he_core.ParameterError, match="cannot bootstrap"):
            s.bootstrap(s.encrypt(X[:1]), slots=4)
        with pytest.raises(he_core.ParameterError, match="cannot bootstrap"):
            s.bootstrap_many([s.encrypt(X[:1]), s.encrypt(X[:1])], slots=4)
        return
    check(s, keys, s.bootstrap(s.encrypt(X[:1]), slots=4), X[:1], tol=1e-3)


def run_coeff_answers(s, keys):
    params = s.coeff_answer_params(0)  # the answer's own (smaller) set: a public key and nothing else
    t = type(s)(params)
    pair = t.keygen(KeyRequirements(sizes=(1,), multiply=False, minimal=True), rng=he_core.SeededRandom(5))
    w, b = np.array([[0.5, -1.0], [0.25, 2.0], [1.0, 0.0]]), np.array([0.5, -0.25])
    assert t.coeff_capacity(3, 2) >= X.shape[0]
    query = t.encrypt_coeff_query(X, 2, pair.secret, bound=4.0, rng=he_core.SeededRandom(6))
    check(t, pair, t.answer_coeff_query(query, w, b, bound=4.0, rng=he_core.SeededRandom(7)), X @ w + b, tol=2.0**-8)


RUNNERS = {
    protocols.Multiplication: run_multiplication,
    protocols.InnerProducts: run_inner_products,
    protocols.Rescaling: run_rescaling,
    protocols.LinearMaps: run_linear_maps,
    protocols.Rekeying: run_rekeying,
    protocols.Refreshable: run_refreshable,
    protocols.Sanitizing: run_sanitizing,
    protocols.Rotations: run_rotations,
    protocols.Leveled: run_leveled,
    protocols.ExactIntegers: run_exact_integers,
    protocols.Bootstrapping: run_bootstrapping,
    protocols.CoeffAnswers: run_coeff_answers,
}


def test_every_protocol_has_a_runner_and_every_runner_a_protocol():
    assert set(RUNNERS) == set(protocols.PROTOCOLS.values())


@pytest.mark.parametrize("protocol", list(protocols.PROTOCOLS.values()), ids=lambda p: p.__name__)
def test_each_protocol_runs_or_is_refused(ctx, protocol):
    scheme, keys = ctx
    capability = protocols.capability_of(protocol)
    if scheme.supports(capability):
        assert protocols.view(scheme, protocol) is scheme
        RUNNERS[protocol](scheme, keys)
        return
    with pytest.raises(CapabilityError, match=f"scheme {scheme.name!r} does not support"):
        protocols.view(scheme, protocol)
    for op in protocols.operations(protocol):
        with pytest.raises(CapabilityError, match=f"cannot {op}: scheme {scheme.name!r}"):
            getattr(scheme, op)  # the attribute access itself refuses, before any call


def test_core_and_protocols_are_disjoint_and_the_core_defines_no_optional_operation():
    assert not set(CORE_OPERATIONS) & set(protocols.OPTIONAL_OPERATIONS)
    assert all(callable(protocols.vars_lookup(Scheme, op)) for op in CORE_OPERATIONS)
    assert [op for op in protocols.OPTIONAL_OPERATIONS if protocols.vars_lookup(Scheme, op) is not None] == []


class _NoRekey(PlainScheme):
    """The plaintext twin without re-keying: the operations are inherited, the capability is not."""

    name = "plain-norekey-protocols"
    capabilities = PlainScheme.capabilities - {Capability.REKEY}


def test_a_scheme_missing_a_protocol_raises_capability_error():
    scheme = _NoRekey.create()
    keys = scheme.keygen()
    ct = scheme.encrypt([[1.0]])
    with pytest.raises(CapabilityError, match="cannot use switching to another secret key"):
        protocols.view(scheme, protocols.Rekeying)
    with pytest.raises(CapabilityError, match="does not support switching to another secret key"):
        scheme.make_switch_key(keys.secret, keys.secret)
    with pytest.raises(CapabilityError):
        scheme.rekey(ct, he_core.SwitchKey(scheme.name, scheme.params_id, ct.key_id, ct.key_id, None))
    with pytest.raises(CapabilityError, match="cannot rotate: scheme 'plain-norekey-protocols'"):
        scheme.rotate(ct, 1)
    with pytest.raises(AttributeError):  # names outside the interface stay ordinary attribute errors
        scheme.no_such_operation


def test_a_class_declaring_a_capability_without_its_operations_is_refused():
    with pytest.raises(TypeError, match="declares slot rotation but does not define rotate, conjugate, sum_slots"):
        class _Claims(PlainScheme):  # noqa: F841 - defining it is the test
            name = "claims-rotation"
            capabilities = PlainScheme.capabilities | {Capability.ROTATE}
