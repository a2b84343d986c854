"""The bootstrapping side-by-side's plumbing: reading the children's lines and the table.

The OpenFHE half runs only where its own venv exists (skipped otherwise); the rest
needs no peer library.
"""
import json
import os
from pathlib import Path

import pytest

from benchmarks.peers import bootstrap_side_by_side as sbs

OFHE_PYTHON = Path(os.environ.get("HENN_OFHE_PYTHON", "/work/venv-ofhe/bin/python"))


def ofhe_row(**changes) -> dict:
    row = {"library": "OpenFHE", "version": "1.6.1.0", "secret": "UNIFORM_TERNARY", "hamming_weight": None,
           "N": 65536, "security": "HEStd_128_classic", "scale_bits": 59, "dnum": 4, "log2_qp": 1718.0,
           "keygen_s": 12.48, "keygen_cpu_s": 12.33, "bootstrap_s_median": 15.369, "bootstrap_cpu_s_median": 14.724,
           "precision_bits_min": 16.25, "precision_bits_median": 17.96, "levels_left": 2,
           "key_bytes": 2919432280, "peak_rss_mb": 3501.5}
    return {**row, **changes}


def henn_row(**changes) -> dict:
    row = {"library": "henn", "secret": "sparse ternary, h = 192", "N": 65536, "dnum": 6, "log2_qp": 1529.0,
           "keygen_s": 76.5, "bootstrap_s_median": 50.8, "bootstrap_cpu_s_median": 13.3,
           "precision_bits_min": 20.2, "precision_bits_median": 21.7, "levels_left": 8,
           "key_bytes": 3.27e9, "peak_rss_mb": 3963.0}
    return {**row, **changes}


def test_json_rows_skip_the_peers_warnings():
    row = ofhe_row()
    text = "\nWarning, level budget for encoding too large. Setting it to 3\n" + json.dumps(row) + "\n\n"
    assert sbs.json_rows(text) == [row]
    assert sbs.json_rows("Warning only\n") == []


def test_a_truncated_line_is_an_error_not_a_missing_row():
    with pytest.raises(json.JSONDecodeError):
        sbs.json_rows('{"library": "OpenFHE", "N": 65')


def test_row_specs():
    assert sbs.row_spec("sparse:8") == ("sparse", 8, "auto")
    assert sbs.row_spec("uniform:2:13") == ("uniform", 2, "13")
    for bad in ("sparse", "dense:2", "sparse:two", "sparse:2:3:4"):
        with pytest.raises(ValueError, match="cannot read the OpenFHE row"):
            sbs.row_spec(bad)


def test_table_has_one_row_per_result_with_each_secret_named():
    rows = [henn_row(), ofhe_row(), ofhe_row(secret="SPARSE_TERNARY", hamming_weight=192, key_bytes=None)]
    lines = sbs.table(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert {line.count("|") for line in lines} == {12}  # 11 columns everywhere
    henn, uniform, sparse = lines[2:]
    assert henn.startswith("| henn ckks (dnum 6") and "| 13.3 / 50.8 |" in henn and "| 20.2 / 21.7 |" in henn
    assert "keygen" not in henn and "| 76.5 |" in henn  # no CPU figure given: wall only
    assert "| uniform ternary |" in uniform and "| 12.5 (12.3 CPU) |" in uniform and "| 2.92 GB |" in uniform
    assert "| sparse ternary, h = 192 |" in sparse and "| — |" in sparse
    assert "| 1718 |" in uniform and "| 1529 |" in henn
    assert "above the h = 192 estimate's 1550" in sparse and "estimate" not in uniform
    within = sbs.table([ofhe_row(secret="SPARSE_TERNARY", hamming_weight=192, log2_qp=1538.0)])
    assert "within the h = 192 estimate's 1550" in within


def test_a_saved_run_reprints_its_table(tmp_path, capsys):
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps({"rows": [henn_row(), ofhe_row()]}))
    assert sbs.main(["--from-json", str(saved)]) == 0
    assert capsys.readouterr().out.strip() == sbs.table([henn_row(), ofhe_row()])


@pytest.mark.peers
@pytest.mark.skipif(not OFHE_PYTHON.exists(), reason=f"OpenFHE's venv is absent ({OFHE_PYTHON})")
def test_openfhe_script_bootstraps_on_a_trial_ring():
    row = sbs.run_openfhe(str(OFHE_PYTHON), "sparse", 2048, 8, 1, 0, insecure=True)
    assert row is not None, "the OpenFHE script failed (its stderr is printed above)"
    assert (row["N"], row["slots"], row["hamming_weight"], row["levels_left"]) == (2048, 8, 192, 2)
    assert row["level_budget_effective"] == [3, 3]  # [4, 4] lowered to log2(8 slots)
    assert row["precision_bits_min"] > 20  # measured 26.1 at this ring
    assert row["log2_qp"] > row["log2_q"] > 0 and row["key_bytes"] > 0
    assert "| sparse ternary, h = 192 | 2048 |" in sbs.table([row])
