"""``henn bench`` on the command line: options, exit codes, JSON output."""
import argparse
import json
import subprocess

import pytest

from henn.cli import bench as bench_cli


def run(argv, capsys):
    code = bench_cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_and_table(tmp_path, capsys):
    path = tmp_path / "out.json"
    code, out, _ = run(["--scheme", "plain", "--sizes", "3", "--ops", "add", "decrypt", "--quick",
                        "--json", str(path), "--quiet"], capsys)
    assert code == 0
    assert "plain" in out and "add" in out and "decrypt" in out
    doc = json.loads(path.read_text())
    assert {(r["op"], r["size"], r["status"]) for r in doc["records"]} == {("add", 3, "ok"), ("decrypt", 3, "ok")}
    assert doc["header"]["quick"] is True
    # The native code paths the figures were taken with, in the JSON header and under the table.
    import he_core
    kernels = he_core.kernel_paths()
    assert doc["header"]["kernels"] == kernels
    assert f"vector path {kernels['vector'] or '-'}" in out


def test_plot_option(tmp_path, capsys):
    png = tmp_path / "b.png"
    code, _, _ = run(["--scheme", "plain", "--sizes", "2", "--ops", "add", "--quick", "--plot", str(png),
                      "--quiet"], capsys)
    assert code == 0 and png.exists()


def test_progress_goes_to_stderr(capsys):
    code, out, err = run(["--scheme", "plain", "--sizes", "2", "--ops", "add", "--quick"], capsys)
    assert code == 0
    assert "plain" in err and "add" in err


@pytest.mark.parametrize("argv", [["--sizes", "0"], ["--sizes", "x"], ["--ops", "divide"], ["--bogus"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        bench_cli.main(argv)
    assert exc.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_unknown_scheme_exits_2(capsys):
    code, _, err = run(["--scheme", "nosuch", "--quick"], capsys)
    assert code == 2
    assert "unknown scheme" in err and "plain" in err


def test_plot_must_be_png(capsys):
    code, _, err = run(["--scheme", "plain", "--plot", "chart.pdf"], capsys)
    assert code == 2 and ".png" in err


def test_failing_op_exits_1(monkeypatch, capsys):
    from henn.bench import runner

    monkeypatch.setattr(runner, "check", lambda scheme, prepared: (_ for _ in ()).throw(
        runner.WrongResultError("cannot accept result: off by one")))
    code, out, _ = run(["--scheme", "plain", "--sizes", "2", "--ops", "add", "--quick", "--quiet"], capsys)
    assert code == 1
    assert "ERROR: plain add size 2" in out


def test_add_parser_registers_bench():
    parser = argparse.ArgumentParser(prog="henn")
    sub = parser.add_subparsers(dest="command")
    bench_cli.add_parser(sub)
    args = parser.parse_args(["bench", "--quick", "--scheme", "plain", "--sizes", "4", "8"])
    assert args.func is bench_cli.run_command
    assert args.quick and args.schemes == ["plain"] and args.sizes == [4, 8]


def test_peers_option_runs_the_comparison_as_a_program(monkeypatch, capsys):
    seen, status = [], [0]

    def fake_run(command, check):
        seen.append(command[1:])
        return subprocess.CompletedProcess(command, status[0])

    monkeypatch.setattr(bench_cli.subprocess, "run", fake_run)
    code, _, _ = run(["--scheme", "plain", "--sizes", "2", "--ops", "add", "--quick", "--quiet", "--peers"], capsys)
    assert code == 0 and seen == [["-m", "benchmarks.peers", "all", "--quick"]]
    status[0] = 1
    code, _, err = run(["--scheme", "plain", "--sizes", "2", "--ops", "add", "--quick", "--quiet", "--peers"], capsys)
    assert code == 1 and "exited with status 1" in err


@pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")
def test_train_reports_rates_and_rounds_per_batch_size(tmp_path, capsys):
    path = tmp_path / "train.json"
    code, out, err = run(["--train", "--scheme", "plain", "vhe", "--batch-sizes", "1", "4", "--train-seconds",
                          "0.01", "--in-process", "--json", str(path)], capsys)
    assert code == 0 and "reviews/s" in out and "vhe" in err
    doc = json.loads(path.read_text())
    assert doc["header"]["kind"] == "train"
    rows = {(r["scheme"], r["batch_size"]): r for r in doc["records"]}
    assert set(rows) == {("plain", 1), ("plain", 4), ("vhe", 1), ("vhe", 4)}
    assert all(r["status"] == "ok" and r["reviews"] >= 64 and r["reviews_per_s"] > 0 for r in rows.values())
    assert rows[("vhe", 1)]["refresh_rounds_per_review"] >= 0.9  # one landing refresh per review
    assert rows[("vhe", 4)]["refresh_rounds_per_review"] <= 0.4  # one per batch of 4 (a few more for the rest)
    assert rows[("plain", 4)]["key_service"] == "in-process"


@pytest.mark.parametrize("argv", [["--train", "--ops", "add"], ["--train", "--sizes", "8"], ["--in-process"],
                                  ["--train-seconds", "3"], ["--train", "--train-seconds", "0"]])
def test_train_options_that_do_not_go_together_exit_2(argv, capsys):
    code, _, err = run(argv, capsys)
    assert code == 2 and "--train" in err
