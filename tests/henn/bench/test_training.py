"""henn.bench.training: training throughput with the key service apart or in process."""
from __future__ import annotations

import pytest

import he_core
from henn.bench import training

pytestmark = pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")


def test_the_key_service_apart_pays_a_round_trip_per_refresh():
    seen = []
    records = training.run(["vhe"], [4], seconds=0.01, reviews=256, progress=seen.append)
    (r,) = records
    assert seen == records and r.status == "ok" and r.key_service == "apart"
    assert r.reviews >= 64 and r.reviews % 4 == 0 and r.seconds > 0
    assert 0 < r.refresh_rounds <= r.reviews // 4 + 8  # about one landing refresh per batch of 4
    assert r.to_dict()["refresh_rounds_per_review"] == r.refresh_rounds / r.reviews
    assert "vhe" in training.table(records) and "apart" in training.table(records)


def test_a_failing_scheme_is_reported_and_the_others_still_run(monkeypatch):
    real = training._one

    def failing(name, *args):
        if name == "vhe":
            raise he_core.LevelExhaustedError("no level")
        return real(name, *args)

    monkeypatch.setattr(training, "_one", failing)
    records = training.run(["vhe", "plain"], [2], seconds=0.01, in_process=True, reviews=128)
    assert [(r.scheme, r.status) for r in records] == [("vhe", "error"), ("plain", "ok")]
    assert "LevelExhaustedError" in records[0].detail and "error" in training.table(records)
