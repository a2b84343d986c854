"""henn.cli.xor: ``henn train xor`` (the dispatcher itself: test_cli.py)."""
from __future__ import annotations

import json
import os
import pathlib
import stat

import pytest

from henn import io
from henn.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[3]


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_summary_is_the_last_line(capsys):
    code, out, _ = _run(capsys, "train", "xor", "--scheme", "plain", "--epochs", "300", "--json", "--seed", "1")
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    for key in ("task", "scheme", "epochs", "seconds", "final_loss", "correct", "seconds_per_epoch"):
        assert key in summary, key
    assert summary["task"] == "xor" and summary["scheme"] == "plain" and summary["epochs"] == 300
    assert summary["correct"] == 4 and summary["final_loss"] < summary["initial_loss"]
    assert summary["seconds_per_epoch"] == pytest.approx(summary["seconds"] / 300)
    assert len(summary["loss_history"]) == 301
    # the plaintext twin's budget is unbounded: the budget policy never refreshes it
    assert summary["refresh_policy"] == "budget" and summary["refresh_rounds"] == 0
    assert summary["bytes_exchanged"] > 0 and summary["retry_refreshes"] == 0 and summary["budget_checks"] > 0


def test_json_reports_the_releases_and_the_hiding(capsys):
    code, out, _ = _run(capsys, "train", "xor", "--scheme", "vhe", "--epochs", "30", "--json", "--quiet")
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and summary["releases"] == 31  # one aggregate loss per epoch, the predictions at the end
    assert summary["hiding"]["refresh_rounds"] == summary["refresh_rounds"] > 0
    assert summary["hiding"]["statistical_distance_log2"] > -30  # vhe: honest about hiding nothing


def test_scheme_parameters_pass_through(capsys):
    code, out, _ = _run(capsys, "train", "xor", "--scheme", "plain", "--scheme-param", "precision_bits=16",
                        "--epochs", "2", "--json", "--quiet")
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and summary["scheme_params"] == {"precision_bits": 16}
    code, _, err = _run(capsys, "train", "xor", "--scheme", "plain", "--scheme-param", "precision_bits=99",
                        "--epochs", "2", "--quiet")
    assert code == 1 and "cannot create scheme 'plain': ParameterError" in err
    code, _, err = _run(capsys, "train", "xor", "--scheme", "plain", "--scheme-param", "colour=1", "--quiet")
    assert code == 1 and "cannot create scheme 'plain'" in err


def test_human_summary_and_quiet(capsys):
    code, out, _ = _run(capsys, "train", "xor", "--scheme", "plain", "--epochs", "5")
    assert code == 0 and "xor on plain: 5 epochs" in out
    code, out, err = _run(capsys, "train", "xor", "--scheme", "plain", "--epochs", "5", "--quiet")
    assert code == 0 and out == "" and err == ""


@pytest.mark.parametrize("argv, message", [
    (["train", "xor", "--epochs", "-3"], "must be >= 0"),
    (["train", "xor", "--lr", "nan"], "positive finite"),
    (["train", "xor", "--lr", "abc"], "not a number"),
    (["train", "xor", "--scheme", "nope"], "unknown scheme 'nope'"),
    (["train", "xor", "--plot", "curve.jpg"], "must end in .png"),
    (["train", "xor", "--bogus"], "unrecognized arguments"),
    (["train", "xor", "--scheme-param", "levels"], "expected KEY=VALUE"),
    (["train", "xor", "--refresh-every", "1"], "unrecognized arguments"),
    (["train", "cats"], "invalid choice"),
    (["train"], "required"),
    ([], "required"),
])
def test_bad_arguments_exit_2_with_usage(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: henn" in err and message in err


def test_save_and_plot(tmp_path, capsys):
    png = tmp_path / "loss.png"
    code, out, _ = _run(capsys, "train", "xor", "--scheme", "plain", "--epochs", "20", "--save",
                        str(tmp_path / "model"), "--plot", str(png), "--json")
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stat.S_IMODE(os.stat(tmp_path / "model" / io.SECRET_FILE).st_mode) == 0o600
    loaded = io.load_model(tmp_path / "model", expect_scheme="plain", allow_insecure=True)
    assert loaded.meta["task"] == "xor" and loaded.meta["config"]["epochs"] == 20
    assert "seed" not in loaded.meta["config"]  # a model file never tells how to replay the initial weights
    assert loaded.meta["final_loss"] == pytest.approx(summary["final_loss"])
    io.load_secret(tmp_path / "model", key_id=loaded.key_id, allow_insecure=True)


def test_runtime_failure_exits_1_with_message(capsys):
    code, out, err = _run(capsys, "train", "xor", "--scheme", "ckks", "--epochs", "1", "--quiet",
                          "--scheme-param", "poly_degree=1024")
    assert code == 1 and "henn: error: cannot create scheme 'ckks'" in err and "128-bit" in err


def test_unwritable_save_directory_exits_1(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = _run(capsys, "train", "xor", "--scheme", "plain", "--epochs", "1", "--quiet",
                        "--save", str(blocker / "model"))
    assert code == 1 and "cannot save the model" in err


def test_ckks_json_reports_refreshes(capsys):
    code, out, _ = _run(capsys, "train", "xor", "--scheme", "ckks", "--epochs", "1", "--json", "--quiet")
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and summary["scheme"] == "ckks" and summary["security_bits"] >= 128
    # the activations were refreshed mid-forward, and the released loss before its release (the predictions are
    # re-encrypted by the key holder itself: no refresh)
    assert summary["refresh_rounds"] == summary["op_refreshes"] + 1 and summary["retry_refreshes"] == 0
    assert summary["hiding"]["statistical_distance_log2"] <= -30  # the job-wide bound, over every refresh
    assert summary["release"]["flooded"] and summary["release"]["queries"] == 3
    assert summary["bytes_exchanged"] > summary["refresh_rounds"] * 2 * 100_000  # two ckks ciphertexts a round


# ---------------------------------------------------------------- --refresh bootstrap
def test_bootstrap_options_that_do_not_go_together_exit_2(capsys):
    code, _, err = _run(capsys, "train", "xor", "--scheme", "ckks", "--ring", "1024", "--epochs", "1")
    assert code == 2 and "--ring applies only with --refresh bootstrap" in err
    code, _, err = _run(capsys, "train", "xor", "--scheme", "ckks", "--refresh", "bootstrap",
                        "--scheme-param", "poly_degree=8192", "--epochs", "1")
    assert code == 2 and "--scheme-param" in err
    with pytest.raises(SystemExit) as exc:
        main(["train", "xor", "--refresh", "sometimes"])
    assert exc.value.code == 2


def test_a_scheme_that_cannot_bootstrap_says_so(capsys):
    code, _, err = _run(capsys, "train", "xor", "--scheme", "vhe", "--refresh", "bootstrap", "--epochs", "1")
    assert code == 1 and "does not support bootstrapping" in err


def test_bootstrapped_xor_on_a_trial_ring_reports_no_training_refresh(capsys):
    """Two epochs (4/4 takes four: tests/henn/training/test_bootstrap.py): the plain twin's predictions."""
    args = ("--seed", "2", "--lr", "8", "--epochs", "2", "--json", "--quiet")
    code, out, _ = _run(capsys, "train", "xor", "--scheme", "ckks", "--refresh", "bootstrap", "--ring", "1024", *args)
    summary = json.loads(out.strip().splitlines()[-1])
    _, twin_out, _ = _run(capsys, "train", "xor", "--scheme", "plain", *args)
    twin = json.loads(twin_out.strip().splitlines()[-1])
    assert code == 0 and summary["refresh"] == "bootstrap"
    assert max(abs(a - b) for a, b in zip(summary["predictions"], twin["predictions"])) < 1e-3
    assert summary["train_refresh_rounds"] == 0 and summary["bootstraps"] > 0
    assert summary["refresh_rounds"] == 0 and summary["releases"] == 1  # the final release only, no refresh
    assert summary["security_bits"] == 0 and summary["initial_loss"] is None
    # All four parameters side by side; packed at most once per step after the first (here none is needed yet).
    assert summary["bootstrap_slots"] == 32 and summary["parameter_bootstraps"] <= 1


@pytest.mark.slow
def test_bootstrapped_xor_at_128_bits_needs_no_key_holder_while_training(capsys):
    """The issue's command at N = 2^16 (about 4 GB of keys; tens of minutes on one core)."""
    code, out, _ = _run(capsys, "train", "xor", "--scheme", "ckks", "--refresh", "bootstrap", "--seed", "2",
                        "--lr", "8", "--epochs", "6", "--json", "--quiet")
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and summary["correct"] == 4 and summary["security_bits"] == 128
    assert summary["train_refresh_rounds"] == 0 and summary["bootstraps"] > 0
    assert 0 < summary["parameter_bootstraps"] <= 5  # packed, at most once per step after the first
