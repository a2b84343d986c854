"""A short run of the key-service fuzzer (``fuzz/run_keyservice.py``) per scheme, and the bugs it found, replayed.

The long run is ``python fuzz/run_keyservice.py --count 3000 --scheme ckks`` (and
``vhe``); docs/formats.md says what it sends and checks. The bugs below live in files
were fixed; each is replayed by a test here, and the fuzz run tolerates no crash and
no violation.
"""
from __future__ import annotations

import contextlib
import importlib.util
import random
import struct
import sys
import warnings
from pathlib import Path

import pytest

import he_core
from henn.keyservice import REENCRYPT, protocol

_FUZZ = Path(__file__).resolve().parents[3] / "fuzz" / "run_keyservice.py"

SCALE_OVERFLOW = "he_core/serialization.py _ct: math.isfinite() of an integer scale beyond float range raises " \
                 "OverflowError, not FormatError"
DEEP_HEADER = "henn/keyservice/protocol.py unpack: json.loads of a header nested 30000 deep (60 KB, under " \
              "MAX_HEADER) raises RecursionError, not KeyServiceError"
PLAN_AFTER_DECRYPTION = "henn/keyservice/service.py _reencrypt: refresh_plan (which reads the request's metadata) " \
                        "runs after reencrypt_masked, and vhe's validate() leaves its metadata unchecked"
UNJOURNALED_FAILURE = "henn/keyservice/service.py _reencrypt: an error raised after the decryption (vhe: the " \
                      "re-encryption's range check) is not journaled and its message carries the decrypted magnitude"
KNOWN_CRASHES: set = set()
KNOWN_VIOLATIONS: set = set()


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("henn_fuzz_keyservice", _FUZZ)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("scheme", ["ckks", "vhe"])
def test_mutated_requests_neither_crash_the_service_nor_break_the_jobs_terms(fuzz, scheme):
    report = fuzz.run(scheme, 300, seed=11, show=0)
    assert report.requests == 300
    assert report.outcomes["valid", "OK"] >= 20  # the honest corpus is served...
    assert report.outcomes["valid", "BudgetExhausted"] > 0  # ... until the budget runs out
    assert report.outcomes["retry", "OK"] > 0  # retries answered (from the cache)
    new_crashes = {site: n for site, n in report.crash_sites.items() if site not in KNOWN_CRASHES}
    new_violations = [v for v in report.violations if v.split(":")[0] not in KNOWN_VIOLATIONS]
    assert not new_crashes, new_crashes
    assert not new_violations, new_violations[:5]
    assert report.crashes == 0 and not report.violations


# ---------------------------------------------------------------------------- the bugs, replayed
@pytest.fixture
def vhe(fuzz, tmp_path):
    """(fuzz module, world, service, an honest (2, 3) request's header and body) on a fresh vhe job."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        world = fuzz.vhe_world(3)
        world.sources = [s for s in world.sources if s.name == "2x3"]
        service = fuzz.new_service(world, tmp_path / "job")
        header, body = fuzz.reencrypt_request(world, random.Random(3))
    yield fuzz, world, service, header, body
    service.journal.close()


@contextlib.contextmanager
def decryptions(scheme):
    """The number of ``reencrypt_masked`` calls made in the block (a one-item list, filled on exit)."""
    calls, real = [], scheme.reencrypt_masked
    scheme.reencrypt_masked = lambda *a, **k: calls.append(1) or real(*a, **k)
    count = [0]
    try:
        yield count
    finally:
        del scheme.reencrypt_masked
        count[0] = len(calls)


def test_a_scale_beyond_float_range_is_a_format_error(vhe):
    fuzz, _world, service, header, body = vhe
    forged = fuzz._edit_header(body, lambda h: h.__setitem__("scale", fuzz._RAW), b"1" + b"0" * 400)
    with pytest.raises(he_core.FormatError):
        service.handle(REENCRYPT, protocol.pack(header, forged))


def test_a_deeply_nested_header_is_a_protocol_error(vhe):
    _fuzz, _world, service, header, body = vhe
    text = b'{"request_id": "%s", "target": %s}' % (header["request_id"].encode(), b"[" * 30000 + b"]" * 30000)
    assert len(text) < protocol.MAX_HEADER
    with pytest.raises(he_core.HEError):
        service.handle(REENCRYPT, struct.pack(">I", len(text)) + text + body)


def test_forged_metadata_is_refused_before_any_decryption(vhe):
    fuzz, world, service, header, body = vhe
    forged = fuzz._edit_header(body, lambda h: h["meta"]["$d"].__setitem__("head", "8"))
    with decryptions(world.scheme) as count, pytest.raises(he_core.HEError):
        service.handle(REENCRYPT, protocol.pack(header, forged))
    assert count[0] == 0


def test_a_refresh_failing_after_its_decryption_is_journaled_and_silent_on_the_value(vhe):
    fuzz, world, service, header, body = vhe
    messages = []
    for k, value in enumerate([2**62, -(2**62)]):  # the key column: the decryption's size depends on s
        rid = f"{k + 1:032x}"
        forged = fuzz._edit_arrays(body, lambda d, v=value: d.__setitem__((0, -1), v) or d)
        with decryptions(world.scheme) as count, pytest.raises(he_core.HEError) as info:
            service.handle(REENCRYPT, protocol.pack({**header, "request_id": rid}, forged))
        assert count[0] == 0 or rid in service.journal.seen  # a decryption always spends budget
        messages.append(str(info.value))
    assert messages[0] == messages[1]  # a refusal depends on the request's public parts only
