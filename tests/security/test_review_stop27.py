"""Attacker review of e295c4b (bags of rows), 9ea33c9 (loader/dumper caches, dtype lookup, header depth
fast path, ``Mask.as_int64``) and b716160 (``--batch-size``, ``learn_targets(batch_size=...)``).

Passing tests are checks that hold on the current code; each was watched failing against a
broken variant (a monkeypatch inside the test, named ``..._breaks``, or a scratch patch listed in
the reviewer's report). The four attacks the review found working (LOW: a deep header behind closing
brackets in a string, a uint64 index wrapping to a row from the end; INFO: -0.0 matching a cached 0.0,
a mask's negative low word wrapping) were fixed in the same stop and are plain tests now. vhe and
plain only, plus one CKKS fixture (the default N = 8192 set) for ``bag_add_``; one core.
Run: ``python -m pytest -q tests/security/test_review_stop27.py -p no:cacheprovider``.
"""
from __future__ import annotations

import dataclasses
import json
import types
import warnings

import numpy as np
import pytest

import he_core
from he_core import KeyRequirements, SeededRandom, loading
from he_core.bags import BagRows
from he_core.formats import container
from he_core.params import Parameters
from he_core.refresh import Mask, MaskPlan
from he_core.schemes.plain import PlainParams
from henn import jobs
from henn.data.synthetic import make_reviews
from henn.data.text import TextConfig
from henn.keyholder import KeyHolder, RefreshTerms
from henn.tasks import sentiment as T
from henn.tasks.sentiment import SentimentConfig, init_weights

pytestmark = [pytest.mark.filterwarnings("ignore::he_core.SecurityWarning",
                                         "ignore::henn.training.fit.SinglePartyWarning")]

HIDDEN = 4
CONFIG = SentimentConfig(hidden=HIDDEN, lr=0.02, init_scale=0.5, degree=5, interval=8.0)


# ============================================================================ 1. loader / dumper caches
def _plain_header(values: dict, params_id: str) -> dict:
    return {"scheme": "plain", "params_id": params_id, "params": values}


@pytest.fixture
def cold_cache():
    loading._PARAMS_SEEN.clear()
    yield
    loading._PARAMS_SEEN.clear()


def _insecure_ckks_file() -> bytes:
    params = he_core.scheme_class("ckks").params_class(poly_degree=1024, levels=1, first_bits=40, scale_bits=30,
                                                         special_bits=40, allow_insecure=True)
    scheme = he_core.get_scheme("ckks", params)
    keys = scheme.keygen(KeyRequirements(sizes=(1,)), rng=SeededRandom(2))
    return he_core.serialization.dumps(scheme.encrypt(np.zeros((1, 1)), keys.secret, rng=SeededRandom(3)))


def test_a_cached_parameter_set_is_still_checked_for_security(cold_cache):
    """A toy ring loaded once with allow_insecure=True (cached) is refused by the next caller that did not opt in.

    Fails if the cache hit skipped _check_security (the owner would be moved to a toy ring by any file
    once some earlier load had allowed it)."""
    data = _insecure_ckks_file()
    he_core.serialization.loads(data, allow_insecure=True)
    assert loading._PARAMS_SEEN, "the set should be cached now"
    with pytest.raises(he_core.FormatError, match="128-bit|insecure|security"):
        he_core.serialization.loads(data)


def test_a_cached_parameter_set_is_still_checked_for_security_breaks(cold_cache, monkeypatch):
    data = _insecure_ckks_file()
    he_core.serialization.loads(data, allow_insecure=True)
    real = loading._check_security
    monkeypatch.setattr(loading, "_check_security",
                        lambda p, allow: None if loading._PARAMS_SEEN else real(p, allow))  # skip on a warm cache
    he_core.serialization.loads(data)  # the broken variant lets the toy ring through


def _collide(monkeypatch) -> None:
    """Every plain set hashes to one id: a 48-bit id collision, for free."""
    monkeypatch.setattr(PlainParams, "param_id", property(lambda self: "plain-c011151011ee"))


def _served(values: dict) -> PlainParams:
    return loading._params_in(_plain_header(values, "plain-c011151011ee"), True)[1]


def test_an_id_collision_never_serves_another_sets_values(cold_cache, monkeypatch):
    """Two different sets under one id (a birthday collision of the 48-bit id costs ~2^24 hashes):
    each file gets the set its own values make, in any order. Fails if the cache matched on the id alone."""
    _collide(monkeypatch)
    for bits in (10, 20, 10, None, 20):
        assert _served({"precision_bits": bits}).precision_bits == bits


def test_an_id_collision_never_serves_another_sets_values_breaks(cold_cache, monkeypatch):
    _collide(monkeypatch)
    monkeypatch.setattr(loading, "_same_json", lambda a, b: True)  # keyed by (scheme, id) only
    _served({"precision_bits": 10})
    assert _served({"precision_bits": 20}).precision_bits == 10  # the poisoned answer the real code avoids


def test_the_callers_header_cannot_reach_the_cache(cold_cache):
    """The header dict a load was given, changed afterwards, is not what the cache compares against:
    a tampered copy of it claiming the old id is refused. Fails if the cache kept the caller's dict."""
    good = PlainParams(precision_bits=10)
    header = _plain_header({"precision_bits": 10}, good.param_id)
    loading._params_in(header, True)
    header["params"]["precision_bits"] = 20  # the same dict object, now other values under the old id
    with pytest.raises(he_core.FormatError, match="tampered"):
        loading._params_in(header, True)


def test_the_callers_header_cannot_reach_the_cache_breaks(cold_cache, monkeypatch):
    monkeypatch.setattr(loading, "_frozen_json", lambda v: v)  # keep the caller's dict
    good = PlainParams(precision_bits=10)
    header = _plain_header({"precision_bits": 10}, good.param_id)
    loading._params_in(header, True)
    header["params"]["precision_bits"] = 20
    assert loading._params_in(header, True)[1].precision_bits == 10  # accepted, the wrong set


def test_a_cache_entry_serves_its_own_params_class_only(cold_cache, monkeypatch):
    """A plug-in registered under a cached scheme name, with a stricter class of its own, validates again.
    Fails if the cache ignored the class (the plug-in would get a set its own class refuses)."""

    @dataclasses.dataclass(frozen=True)
    class Strict(PlainParams):
        def __post_init__(self) -> None:
            super().__post_init__()
            if self.precision_bits is not None and self.precision_bits > 8:
                raise he_core.ParameterError("this plug-in keeps at most 8 bits")

    header = _plain_header({"precision_bits": 10}, PlainParams(precision_bits=10).param_id)
    loading._params_in(header, True)
    plugin = types.SimpleNamespace(params_class=Strict)
    monkeypatch.setattr(loading, "scheme_class", lambda name: plugin)
    with pytest.raises(he_core.FormatError, match="invalid plain parameters"):
        loading._params_in(header, True)


def test_a_loaded_set_is_frozen_and_its_cached_id_is_its_hash(cold_cache):
    """What a load returns (shared by every later load of that set) cannot be changed through the usual
    API, and its once-computed id is the hash of its fields (a replace makes a new object, a new id)."""
    params = loading._params_in(_plain_header({"precision_bits": 12}, PlainParams(precision_bits=12).param_id),
                                True)[1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.precision_bits = 40  # type: ignore[misc]
    assert params.param_id == Parameters.param_id.func(params)
    other = dataclasses.replace(params, precision_bits=13)
    assert other.param_id != params.param_id and other.param_id == Parameters.param_id.func(other)


def test_values_that_hash_to_another_id_are_refused_warm_as_cold(cold_cache):
    zero = PlainParams(precision_bits=0.0)
    assert PlainParams(precision_bits=-0.0).param_id != zero.param_id
    with pytest.raises(he_core.FormatError, match="tampered"):
        loading._params_in(_plain_header({"precision_bits": -0.0}, zero.param_id), True)  # cold: refused
    loading._params_in(_plain_header({"precision_bits": 0.0}, zero.param_id), True)  # warms the cache
    with pytest.raises(he_core.FormatError, match="tampered"):
        loading._params_in(_plain_header({"precision_bits": -0.0}, zero.param_id), True)


def _header_params(data: bytes) -> dict:
    header, _ = container.unpack(data)
    return header["params"]


def test_the_dumper_writes_each_sets_own_fields_under_a_colliding_id(monkeypatch):
    """_fields_of is keyed by the id: under a collision (and alternately) each set still writes its own
    fields, so its file loads back to it. Fails if the kept dict were served by id alone."""
    from he_core import dumping
    _collide(monkeypatch)
    dumping._FIELDS_SEEN.clear()
    for bits in (10, 20, 10):
        scheme = he_core.get_scheme("plain", PlainParams(precision_bits=bits))
        scheme.keygen(KeyRequirements(sizes=(1,)))
        assert _header_params(he_core.serialization.dumps(scheme.encrypt(np.ones((1, 1))))) == \
            {"precision_bits": bits}
    dumping._FIELDS_SEEN.clear()


def test_the_dumper_writes_each_sets_own_fields_breaks(monkeypatch):
    from he_core import dumping
    _collide(monkeypatch)
    dumping._FIELDS_SEEN.clear()
    monkeypatch.setattr(dumping, "_fields_of", lambda p: dumping._FIELDS_SEEN.setdefault(p.param_id, p.to_dict()))
    written = []
    for bits in (10, 20):
        scheme = he_core.get_scheme("plain", PlainParams(precision_bits=bits))
        scheme.keygen(KeyRequirements(sizes=(1,)))
        written.append(_header_params(he_core.serialization.dumps(scheme.encrypt(np.ones((1, 1))))))
    dumping._FIELDS_SEEN.clear()
    assert written[1] == {"precision_bits": 10}  # another set's fields: what the real check prevents


# ============================================================================ 2. header depth, dtype codes
def _depth(value, level: int = 0) -> int:
    if isinstance(value, dict):
        return max([_depth(v, level + 1) for v in value.values()], default=level + 1)
    if isinstance(value, list):
        return max([_depth(v, level + 1) for v in value], default=level + 1)
    return level


@pytest.mark.parametrize("depth, strings", [(200, 0), (201, 0), (150, 100), (199, 300)])
def test_the_bracket_count_never_under_counts_a_header_without_closing_brackets_in_strings(depth, strings):
    """The fast path (no more than 200 opening brackets) returns the count, which bounds the depth; past
    it the running depth is used, and opening brackets inside strings only over-count. A 201-deep header
    is refused, a 200-deep one parsed."""
    nested: object = 0
    for _ in range(depth - 1):
        nested = [nested]
    header = {"s": "[" * strings, "d": nested}
    raw = json.dumps(header).encode()
    assert _depth(header) == depth
    assert container._max_nesting(raw) >= depth
    if depth > container.MAX_JSON_DEPTH or depth + strings > container.MAX_JSON_DEPTH:
        with pytest.raises(he_core.FormatError, match="nested deeper"):
            container._parse_header(memoryview(raw))
    else:
        container._parse_header(memoryview(raw))


def test_closing_brackets_in_a_string_cannot_hide_a_deep_header():
    deep = 260
    raw = ('{"s":"' + "]" * 300 + '","d":' + "[" * deep + "]" * deep + "}").encode()
    with pytest.raises(he_core.FormatError, match="nested deeper"):
        container._parse_header(memoryview(raw))


# dtypes whose *name* is on the allow-list but which are not that plain dtype (fields over the base)
_LOOKALIKES = {"int64+fields": np.dtype(("i8", [("a", "i8")])), "uint8+fields": np.dtype(("u1", [("a", "u1")])),
               "float64+fields": np.dtype(("f8", {"re": ("f4", 0), "im": ("f4", 4)}))}
_REFUSED = {**_LOOKALIKES, "struct": np.dtype([("a", "<i8")]), "subarray": np.dtype(("<i8", (2,))),
            "datetime": np.dtype("M8[s]"), "timedelta": np.dtype("m8[s]"), "float16": np.dtype("f2"),
            "complex": np.dtype("c16"), "object": np.dtype("O"), "void": np.dtype("V8"), "bytes": np.dtype("S8")}


@pytest.mark.parametrize("code", sorted(container.DTYPE_CODES))
def test_every_allowed_dtype_maps_to_its_code_in_every_byte_order(code):
    base = container.DTYPE_CODES[code]
    for order in "=<>|":
        assert container.dtype_code(base.newbyteorder(order)) == code
    assert container.dtype_code(np.dtype(base.name)) == code


@pytest.mark.parametrize("name", sorted(_REFUSED))
def test_dtypes_off_the_list_are_refused_including_lookalikes(name):
    """The lookup refuses by dtype, not by name: an int64 with fields (name 'int64') is refused, which the
    name check before 9ea33c9 let through. Fails on a name-based check (``..._breaks`` below)."""
    with pytest.raises(TypeError, match="not allowed"):
        container.dtype_code(_REFUSED[name])


def test_dtypes_off_the_list_are_refused_breaks():
    by_name = [n for n, dt in _LOOKALIKES.items() if dt.name in container.ALLOWED_DTYPES]
    assert by_name == sorted(_LOOKALIKES, key=list(_LOOKALIKES).index)  # the old check accepted all three


def test_a_big_endian_array_is_written_little_endian_and_reads_back_the_same_values():
    values = np.array([[-(2**62), 3], [2**40 + 7, -1]], dtype=">i8")
    header, arrays = container.unpack(container.pack({"x": 1}, [("a", values)]))
    assert arrays["a"].dtype == np.dtype("=i8") and np.array_equal(arrays["a"], values.astype("<i8"))


# ============================================================================ 3. Mask.as_int64
def _mask(high, low) -> Mask:
    n = len(high)
    plan = MaskPlan(read=(np.zeros(n, dtype=np.int64), np.arange(n, dtype=np.int64)), bound_bits=0.0,
                    room_bits=70.0, moduli=(), n_cts=1, n_entries=n)
    return Mask(plan, 62, np.asarray(high, dtype=np.int64), np.asarray(low, dtype=np.int64), None)


def test_as_int64_is_as_ints_for_every_width_the_key_holder_draws():
    """Masks drawn by MaskedRefresh.draw_mask at widths 1..63 (and the int64 extremes) convert exactly;
    width 64+ (a high word outside {0, -1}) is refused."""
    scheme = he_core.get_scheme("plain")
    scheme.keygen(KeyRequirements(sizes=(1,)))
    holder = KeyHolder.__new__(KeyHolder)
    holder.terms, holder._rng, holder.entries_read, holder.worst_margin_bits = RefreshTerms(), SeededRandom(4), 0, 0
    plan = MaskPlan(read=(np.zeros(512, dtype=np.int64), np.arange(512, dtype=np.int64)), bound_bits=0.0,
                    room_bits=200.0, moduli=(), n_cts=1, n_entries=512)
    for width in list(range(1, 64)) + [64, 70, 100]:
        holder._width = lambda p, w=width: w  # noqa: B023 - the width under test
        mask = holder.draw_mask(plan)
        if width <= 63:
            assert mask.as_int64().tolist() == mask.as_ints()
        elif np.any((mask.high != 0) & (mask.high != -1)):
            with pytest.raises(OverflowError):
                mask.as_int64()
    extremes = _mask([-1, -1, 0, 0], [0, 2**63 - 1, 0, 2**63 - 1])
    assert extremes.as_int64().tolist() == extremes.as_ints() == [-(2**63), -1, 0, 2**63 - 1]


def test_as_int64_refuses_an_entry_below_int64():
    mask = _mask([-1], [-1])
    assert mask.as_ints() == [-(2**63) - 1]
    with pytest.raises(OverflowError):
        mask.as_int64()


# ============================================================================ 4. bags: atomicity, indices, noise
@pytest.fixture(scope="module")
def schemes():
    out = {}
    for name in ("plain", "vhe", "ckks"):
        if name not in he_core.available_schemes():
            continue
        scheme = he_core.get_scheme(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", he_core.SecurityWarning)
            keys = scheme.keygen(KeyRequirements(sizes=(1, 3)), rng=SeededRandom(5))
        out[name] = (scheme, keys.secret)
    return out


def _snapshot(ct):
    data = ct.data.copy() if isinstance(ct.data, np.ndarray) else tuple(np.array(x, copy=True) for x in ct.data)
    return data, json.dumps(ct.meta, sort_keys=True, default=str), ct.scale, ct.shape


def _same(ct, snap) -> bool:
    data, meta, scale, shape = snap
    now = ct.data if isinstance(ct.data, np.ndarray) else tuple(ct.data)
    same_data = np.array_equal(now, data) if isinstance(data, np.ndarray) else \
        all(np.array_equal(x, y) for x, y in zip(now, data))
    return same_data and json.dumps(ct.meta, sort_keys=True, default=str) == meta and ct.scale == scale \
        and ct.shape == shape


@pytest.mark.parametrize("name", ["plain", "vhe", "ckks"])
@pytest.mark.parametrize("layout", [None, "table"])
def test_a_batch_refused_by_its_last_bag_leaves_the_table_as_it_was(schemes, name, layout):
    """Every bag is validated before any row moves: a bad index in the last bag (out of range, or beyond
    int64) changes nothing, on every scheme and layout. Fails on a bag-by-bag landing (``..._breaks``)."""
    if name not in schemes:
        pytest.skip(f"{name} not built")
    scheme, _ = schemes[name]
    table = scheme.encrypt(np.arange(12.0).reshape(4, 3) / 8, layout=layout)
    update = scheme.encrypt(np.full((1, 3), 0.25))
    for bad in ([[0, 1], [2], [4]], [[0], [1], [-5]]):
        snap = _snapshot(table)
        with pytest.raises((IndexError, ValueError)):
            scheme.bag_add_(table, bad, update)
        assert _same(table, snap)


def test_a_batch_refused_by_its_last_bag_breaks(schemes, monkeypatch):
    scheme, _ = schemes["plain"]

    def one_bag_at_a_time(self, a, bags, b):  # the pre-e295c4b landing, one index_add_ per bag
        for bag in bags:
            self.index_add_(a, bag, b)
    monkeypatch.setattr(BagRows, "bag_add_", one_bag_at_a_time)
    table = scheme.encrypt(np.zeros((4, 3)))
    snap = _snapshot(table)
    with pytest.raises(IndexError):
        scheme.bag_add_(table, [[0, 1], [2], [4]], scheme.encrypt(np.ones((1, 3))))
    assert not _same(table, snap)


def test_a_vhe_batch_that_overflows_in_its_last_bag_leaves_the_table_as_it_was(schemes):
    """The scatter's range check covers the whole batch: row 0 overflows only on the third bag's landing,
    after rows 1 and 2 took theirs; nothing changes (data and bounds) and the error is named."""
    scheme, _ = schemes["vhe"]
    top = float(scheme._xmax) / scheme.params.scale * 0.45  # two landings fit, three do not
    table = scheme.encrypt(np.full((3, 3), top))
    snap = _snapshot(table)
    with pytest.raises(he_core.HEOverflowError):
        scheme.bag_add_(table, [[1, 0], [2, 0], [0]], scheme.encrypt(np.full((3, 3), top)))
    assert _same(table, snap)


def test_a_ckks_batch_outside_a_packed_tables_packing_is_refused_before_any_row_moves(schemes):
    """A coefficient-packed table takes one broadcast row in its own packing: a (2, size) batch, or a row
    at another scale, raises before the table changes (as index_add_ does)."""
    if "ckks" not in schemes:
        pytest.skip("ckks not built")
    scheme, _ = schemes["ckks"]
    table = scheme.encrypt(np.zeros((4, 3)), layout="table")
    snap = _snapshot(table)
    for update in (scheme.encrypt(np.ones((2, 3))), scheme.encrypt(np.ones((1, 3)), scale=2.0**30)):
        with pytest.raises(he_core.HEError):
            scheme.bag_add_(table, [[0], [1]], update)
        assert _same(table, snap)


@pytest.mark.parametrize("name", ["plain", "vhe"])
def test_bag_indices_address_the_rows_they_name(schemes, name):
    """In-range negative indices mean ``nrows + i`` (numpy's rule, as take_rows and index_add_); anything
    else is refused. Bags (henn's input type) refuses negatives altogether."""
    scheme, secret = schemes[name]
    values = np.arange(12.0).reshape(4, 3)
    table = scheme.encrypt(values)
    got = scheme.decrypt_exact_local(scheme.bag_sum(table, [np.array([-1, -4])]), secret)
    assert np.allclose(got, values[3] + values[0], atol=1e-3)
    for bad in (np.array([-5]), np.array([4]), np.array([2**63 - 1]), np.array([2**63], dtype=np.uint64)):
        with pytest.raises(IndexError):
            scheme.bag_sum(table, [bad])
    from henn.embedding import Bags
    with pytest.raises(ValueError, match="outside"):
        Bags([np.array([-1])], 4)
    with pytest.raises(ValueError, match="outside"):
        Bags([np.array([2**64 - 1], dtype=np.uint64)], 4)


@pytest.mark.parametrize("name", ["plain", "vhe"])
def test_an_unsigned_index_past_int64_is_refused(schemes, name):
    scheme, _ = schemes[name]
    table = scheme.encrypt(np.arange(12.0).reshape(4, 3))
    with pytest.raises(IndexError):
        scheme.bag_sum(table, [np.array([2**64 - 1], dtype=np.uint64)])
    with pytest.raises(IndexError):
        scheme.take_rows(table, np.array([2**64 - 2], dtype=np.uint64))


def test_vhe_bag_sum_charges_the_longest_bags_noise(schemes):
    """The batch's noise bound is the longest bag's: a batch whose longest bag would pass the noise
    limit is refused (named), one bag shorter passes and decrypts exactly. Fails if the bound followed
    the first (or shortest) bag: the long bag would decrypt wrong."""
    scheme, secret = schemes["vhe"]
    table = scheme.encrypt(np.full((4, 3), 0.5))
    limit = scheme.params.w // 2
    longest = 9
    table.meta["noise"] = limit // longest + 1  # 9 rows exceed the limit, 8 do not
    with pytest.raises(he_core.NoiseBudgetExhausted):
        scheme.bag_sum(table, [np.array([0]), np.zeros(longest, dtype=np.int64)])
    ok = scheme.bag_sum(table, [np.array([0]), np.zeros(longest - 1, dtype=np.int64), np.array([], dtype=np.int64)])
    assert ok.meta["noise"] == table.meta["noise"] * (longest - 1)
    got = scheme.decrypt_exact_local(ok, secret)
    assert np.allclose(got, [[0.5] * 3, [0.5 * (longest - 1)] * 3, [0.0] * 3], atol=2.0**-14)


# ============================================================================ 5. batched landing: masks, job shapes
@pytest.fixture(scope="module")
def reviews():
    data = T.prepare(make_reviews(300, seed=11, purity=0.75), validation=60, seed=4,
                     text=TextConfig(min_count=3, polarity_cutoff=0.3))
    return data


@pytest.fixture(scope="module")
def vhe_job():
    scheme = he_core.get_scheme("vhe")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        secret, _ = scheme.keygen(KeyRequirements(sizes=(1, HIDDEN)), rng=SeededRandom(3))
    return scheme, secret


class _Spy(KeyHolder):
    """Per refresh: the declared bound, the largest value refreshed (read with the key), the mask's width
    and bound bits, the entries read and the request's public signature."""

    def __init__(self, *args, secret, **kwargs):
        super().__init__(*args, **kwargs)
        self._key, self.log, self.signatures = secret, [], []

    def refresh(self, x, *, layout=None, value_bound=None):
        ct = getattr(x, "ct", x)
        actual = float(np.abs(self.scheme.decrypt_exact_local(ct, self._key)).max())
        self.log.append({"shape": tuple(ct.shape), "bound": value_bound, "actual": actual})
        return super().refresh(x, layout=layout, value_bound=value_bound)

    def draw_mask(self, plan):
        mask = super().draw_mask(plan)
        self.log[-1].update(width=mask.width_bits, bound_bits=plan.bound_bits, entries=plan.n_read)
        return mask

    def reencrypt(self, masked, layout=None):
        self.signatures.append(self.scheme.refresh_target_signature(masked, layout))
        return super().reencrypt(masked, layout)


N_REVIEWS = 48


def _run(vhe_job, reviews, batch_size: int) -> _Spy:
    scheme, secret = vhe_job
    terms = T.terms_for(N_REVIEWS, 1, HIDDEN, vocab=len(reviews.vocab), monitor_every=N_REVIEWS)
    holder = _Spy(scheme, secret, secret=secret, terms=terms, rng=SeededRandom(17))
    net = T.build_model(scheme, *init_weights(len(reviews.vocab), CONFIG, SeededRandom(1)), rng=SeededRandom(16))
    T.train(net, holder, reviews.train_ids[:N_REVIEWS], reviews.train_labels[:N_REVIEWS], CONFIG,
            monitor_every=None, batch_size=batch_size)
    return holder


@pytest.fixture(scope="module")
def runs(vhe_job, reviews):
    return {b: _run(vhe_job, reviews, b) for b in (1, 8)}


def _landings(holder: _Spy, rows: int) -> list[dict]:
    return [r for r in holder.log if r["shape"] == (rows, HIDDEN)]


def test_the_batched_landing_shows_the_key_holder_no_more_per_entry(runs):
    """B = 8: one masked (8, hidden) landing per batch where B = 1 made one (1, hidden) landing per review.
    Each entry of either is masked at the same width, from the same job budget, and holds one review's
    update, within the declared bound the mask was sized for (measured with the key): the key holder's
    hiding per entry is unchanged (on vhe, its range caps the width below lambda + log2 E: SECURITY.md)."""
    one, eight = _landings(runs[1], 1), _landings(runs[8], 8)
    # (a landing within LANDING_SLACK_BITS of fresh goes unrefreshed, per review or per batch alike)
    assert 1 <= len(eight) <= N_REVIEWS // 8 and len(one) >= len(eight)
    assert all(r["entries"] == 8 * HIDDEN for r in eight) and all(r["entries"] == HIDDEN for r in one)
    assert runs[1].terms.entries_budget == runs[8].terms.entries_budget
    assert {r["width"] for holder in runs.values() for r in holder.log} == {eight[0]["width"]}
    for holder in runs.values():
        for r in holder.log:
            assert r["bound"] is not None and r["actual"] <= r["bound"], r
    assert {r["bound"] for r in one + eight} == {T.update_bound(CONFIG)}  # per review, not per batch


def test_the_batched_landing_shows_the_key_holder_no_more_per_entry_breaks(vhe_job, reviews, monkeypatch):
    """A batched landing masked for less than its values (here the declared bound / 1000) is caught."""
    from henn.tasks.sentiment import training
    monkeypatch.setattr(training, "update_bound", lambda config: T.update_bound(config) / 1000)
    assert any(r["actual"] > r["bound"] for r in _landings(_run(vhe_job, reviews, 8), 8))


def test_a_job_learnt_at_batch_size_b_allows_that_run_and_refuses_other_batch_shapes(runs, vhe_job, reviews):
    """learn_targets(batch_size=8) allows every request a real B = 8 run makes; a partial batch (3 rows), a
    double one (16) and the per-review logit (1, 1) are refused; a B = 1 job refuses the (8, hidden) landing."""
    scheme, secret = vhe_job
    net = T.build_model(scheme, *init_weights(len(reviews.vocab), CONFIG, SeededRandom(1)))
    terms = runs[8].terms
    spec = {b: types.SimpleNamespace(targets=T.learn_targets(scheme, secret, net[0].weight.value.ct,
                                                             net[1].weight.value.ct, CONFIG, terms, batch_size=b))
            for b in (1, 8)}
    allows = {b: (lambda sig, s=s: jobs.JobSpec.allows(s, sig)) for b, s in spec.items()}
    assert runs[8].signatures and all(allows[8](sig) for sig in runs[8].signatures)
    assert all(allows[1](sig) for sig in runs[1].signatures)
    landing = runs[8].signatures[[r["shape"] for r in runs[8].log].index((8, HIDDEN))]
    assert not allows[1](landing)
    for rows, size in ((3, HIDDEN), (16, HIDDEN), (1, 1), (8, 2 * HIDDEN)):
        assert not allows[8]({**landing, "shape": [rows, size]}), (rows, size)


def test_a_job_refuses_other_batch_shapes_breaks(runs, vhe_job, reviews, monkeypatch):
    """Without the shape in the signature, the B = 8 job would serve a (3, hidden) request."""
    scheme, secret = vhe_job
    real = type(scheme)._refresh_target_signature
    monkeypatch.setattr(type(scheme), "_refresh_target_signature",
                        lambda self, ct, target: {k: v for k, v in real(self, ct, target).items() if k != "shape"})
    net = T.build_model(scheme, *init_weights(len(reviews.vocab), CONFIG, SeededRandom(1)))
    targets = T.learn_targets(scheme, secret, net[0].weight.value.ct, net[1].weight.value.ct, CONFIG,
                              runs[8].terms, batch_size=8)
    assert jobs.JobSpec.allows(types.SimpleNamespace(targets=targets), {**targets[0]})
    odd = scheme.encrypt(np.zeros((3, HIDDEN)))
    assert jobs.JobSpec.allows(types.SimpleNamespace(targets=targets), scheme.refresh_target_signature(odd))
