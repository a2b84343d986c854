"""Table, JSON document and plot of benchmark records."""
import json

import pytest

from henn.bench import report, runner
from henn.bench.timing import Budget

TINY = Budget(target_round_s=1e-4, max_time_s=0.005, min_rounds=3, max_rounds=5, warmup_s=0.0)
RECORD_KEYS = {"scheme", "op", "size", "rows", "status", "median_s", "min_s", "rounds", "loops", "ops_per_s",
               "max_abs_err", "reason"}


@pytest.fixture(scope="module")
def records():
    return runner.run(["plain"], [2, 5], budget=TINY, rows=3)


def test_json_schema(tmp_path, records):
    path = tmp_path / "out.json"
    report.write_json(str(path), records, quick=True)
    doc = json.loads(path.read_text())
    head = doc["header"]
    for key in ("date", "cpu", "python", "libraries", "threads", "schema"):
        assert key in head
    assert head["quick"] is True
    assert head["libraries"]["numpy"]
    assert "tenseal" in head["libraries"]  # present or None, never left out
    assert len(doc["records"]) == len(records)
    keys = {(r["scheme"], r["op"], r["size"]) for r in doc["records"]}
    assert len(keys) == len(records)  # one record per (scheme, op, size)
    for rec in doc["records"]:
        assert set(rec) == RECORD_KEYS
        if rec["status"] == "ok":
            assert isinstance(rec["median_s"], float) and rec["median_s"] > 0
            assert rec["min_s"] <= rec["median_s"]
            assert isinstance(rec["rounds"], int) and rec["rounds"] >= 3
        else:
            assert rec["median_s"] is None and rec["reason"]


def test_table_lists_every_timing(records):
    text = report.table(records, show_skipped=True)
    lines = text.splitlines()
    assert lines[0].split() == ["scheme", "op", "size", "median", "min", "ops/s"]
    timed = [r for r in records if r.status == "ok"]
    body = [line for line in lines[2:] if line.startswith("plain")]
    assert len(body) == len(timed)
    assert any(line.startswith("SKIPPED: plain rotate") for line in lines)
    assert "SKIPPED" not in report.table(records)


def test_table_without_records():
    assert report.table([]).splitlines()[0].split()[0] == "scheme"


@pytest.mark.parametrize("seconds, text", [(2.5, "2.5 s"), (0.0123, "12.3 ms"), (4.56e-6, "4.56 us"),
                                           (7e-9, "7 ns"), (None, "-")])
def test_format_seconds(seconds, text):
    assert report.format_seconds(seconds) == text


def test_plot_writes_a_png(tmp_path, records):
    path = tmp_path / "bench.png"
    report.plot(str(path), records)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_refuses_empty(tmp_path):
    with pytest.raises(ValueError, match="cannot plot"):
        report.plot(str(tmp_path / "x.png"), [runner.Record("plain", "add", 2, 1, status="skipped")])


def test_cpu_model_is_named():
    assert report.cpu_model()
