"""henn.cli.sentiment.train: ``henn train sentiment`` on a synthetic corpus (evaluating a saved model: test_evaluate.py)."""
from __future__ import annotations

import pytest

from henn.cli import main
from henn.data.synthetic import make_reviews, write_lines

from .cli_run import TRAIN, json_summary as _json, run as _run

def test_train_json_summary(corpus, capsys):
    root, _ = corpus
    code, out, _ = _run(capsys, "train", "sentiment", "--data", root, "--scheme", "plain", "--json", "--quiet",
                        "--epochs", "2", "--twin", *TRAIN)
    assert code == 0
    s = _json(out)
    for key in ("task", "scheme", "epochs", "seconds", "train_mae", "validation_accuracy", "monitor_every",
                "clear_validation_accuracy", "reviews_per_s", "clear_agreement", "plain_validation_accuracy"):
        assert key in s, key
    assert s["task"] == "sentiment" and s["scheme"] == "plain" and s["epochs"] == 2
    assert s["train_reviews"] == 240 and s["validation_reviews"] == 60
    assert s["validation_accuracy"] > 0.8 and s["clear_agreement"] == 1.0
    assert s["validation_accuracy"] == s["plain_validation_accuracy"]
    # the owner saw two aggregates of 100 reviews per pass of 240 (the tails are never released), never one review
    assert [r["reviews"] for r in s["history"]] == [100, 200, 340, 440] and s["reviews_per_s"] > 0
    assert s["history"][-1]["mae"] == s["train_mae"] < s["history"][0]["mae"]


def test_train_human_output_progress_and_quiet(corpus, capsys):
    root, _ = corpus
    code, out, err = _run(capsys, "train", "sentiment", "--data", root, "--scheme", "plain", *TRAIN)
    assert code == 0 and "sentiment on plain: 240 reviews" in out and "validation (60 reviews)" in out
    assert "review/s" in err  # the progress bar
    code, out, err = _run(capsys, "train", "sentiment", "--data", root, "--scheme", "plain", "--quiet", *TRAIN)
    assert code == 0 and out == "" and "review/s" not in err


def test_lines_layout_and_data_errors(tmp_path, capsys):
    write_lines(tmp_path / "lines", make_reviews(120, seed=3))
    code, out, _ = _run(capsys, "train", "sentiment", "--data", tmp_path / "lines", "--scheme", "plain", "--json",
                        "--quiet", "--validation", "20", "--hidden", "4", "--min-count", "2")
    assert code == 0 and _json(out)["train_reviews"] == 100
    (tmp_path / "lines" / "labels.txt").unlink()
    code, _, err = _run(capsys, "train", "sentiment", "--data", tmp_path / "lines", "--scheme", "plain")
    assert code == 1 and "labels.txt does not exist" in err
    code, _, err = _run(capsys, "evaluate", "sentiment", "--model", tmp_path / "nomodel", "--data", tmp_path)
    assert code == 1 and "does not exist" in err


@pytest.mark.parametrize("argv", [
    ["train", "sentiment", "--data", ".", "--hidden", "0"],
    ["train", "sentiment", "--data", ".", "--lr", "-1"],
    ["train", "sentiment", "--data", ".", "--plot", "x.jpg"],
    ["train", "sentiment", "--data", ".", "--scheme", "nope"],
    ["train", "sentiment", "--data", ".", "--punctuation", "keep"],
])
def test_bad_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


@pytest.mark.filterwarnings("ignore::he_core.errors.SecurityWarning")
def test_train_on_vhe_agrees_with_the_twin(corpus, tmp_path, capsys):
    root, _ = corpus
    code, out, _ = _run(capsys, "train", "sentiment", "--data", root, "--scheme", "vhe", "--json", "--quiet",
                        "--twin", "--save", tmp_path / "m", *TRAIN)
    assert code == 0
    s = _json(out)
    # About one refresh round per review (each review's table update, before it lands), never many more.
    assert s["scheme"] == "vhe" and 0.5 * s["train_reviews"] < s["refresh_rounds"] <= 1.1 * s["train_reviews"]
    assert abs(s["validation_accuracy"] - s["plain_validation_accuracy"]) <= 0.05
    assert s["clear_agreement"] >= 0.95
    code, out, _ = _run(capsys, "evaluate", "sentiment", "--model", tmp_path / "m", "--data", root, "--split",
                        "train", "--json", "--limit", "50", "--allow-insecure")
    assert code == 0 and _json(out)["scheme"] == "vhe"


@pytest.mark.parametrize("kind", ["sigmoid", "poly"])
def test_reference_mode(corpus, capsys, kind):
    root, _ = corpus
    code, out, _ = _run(capsys, "train", "sentiment", "--data", root, "--reference", kind, "--json", *TRAIN)
    assert code == 0
    s = _json(out)
    assert s["scheme"] == f"numpy-{kind}" and s["validation_accuracy"] > 0.8
    assert 0 < s["validation_logit_p99"] <= s["validation_logit_max"]
    code, out, _ = _run(capsys, "train", "sentiment", "--data", root, "--reference", kind, *TRAIN)
    assert code == 0 and "|logit| p99" in out


@pytest.mark.filterwarnings("ignore::he_core.errors.SecurityWarning")
def test_batch_size_trains_mini_batches_with_one_landing_refresh_each(corpus, capsys):
    root, _ = corpus
    code, out, _ = _run(capsys, "train", "sentiment", "--data", root, "--scheme", "vhe", "--json", "--quiet",
                        "--twin", "--batch-size", "8", *TRAIN)
    assert code == 0
    s = _json(out)
    assert s["batch_size"] == 8 and s["train_reviews"] == 240
    # about one landing refresh per batch of 8 (30 batches; none when an update is near fresh), never one per
    # review (240) as the per-review run takes
    assert 20 <= s["refresh_rounds"] <= 45
    assert abs(s["validation_accuracy"] - s["plain_validation_accuracy"]) <= 0.05
    code, out, _ = _run(capsys, "train", "sentiment", "--data", root, "--reference", "poly", "--json",
                        "--batch-size", "8", *TRAIN)
    assert code == 0 and _json(out)["batch_size"] == 8


@pytest.mark.parametrize("extra", [["--cluster", "local"], ["--model", "m.henn"], ["--init", "p.npz"]])
def test_batch_size_is_for_single_party_runs(capsys, extra):
    code, _, err = _run(capsys, "train", "sentiment", "--data", ".", "--batch-size", "4", *extra)
    assert code == 2 and "--batch-size" in err
    with pytest.raises(SystemExit) as exc:
        main(["train", "sentiment", "--data", ".", "--batch-size", "0"])
    assert exc.value.code == 2


@pytest.mark.filterwarnings("ignore::he_core.errors.SecurityWarning")
def test_a_linear_schedule_trains_and_is_reported(corpus, capsys):
    root, _ = corpus
    runs = {}
    for schedule in ("constant", "linear"):
        code, out, _ = _run(capsys, "train", "sentiment", "--data", root, "--scheme", "vhe", "--json", "--quiet",
                            "--batch-size", "8", "--schedule", schedule, "--lr-end", "0.2", *TRAIN)
        assert code == 0
        runs[schedule] = _json(out)
    assert runs["linear"]["schedule"] == "linear" and runs["linear"]["lr_end"] == 0.2
    assert runs["constant"]["schedule"] == "constant"
    # the reference follows the same schedule
    code, out, _ = _run(capsys, "train", "sentiment", "--data", root, "--reference", "poly", "--json",
                        "--batch-size", "8", "--schedule", "linear", *TRAIN)
    assert code == 0 and _json(out)["schedule"] == "linear"


@pytest.mark.parametrize("extra", [["--cluster", "local"], ["--model", "m.henn"], ["--init", "p.npz"]])
def test_a_schedule_is_for_single_party_runs(capsys, extra):
    code, _, err = _run(capsys, "train", "sentiment", "--data", ".", "--schedule", "linear", *extra)
    assert code == 2 and "--schedule" in err


@pytest.mark.parametrize("argv", [["--schedule", "cosine"], ["--lr-end", "0"], ["--lr-end", "-1"]])
def test_bad_schedule_options_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        main(["train", "sentiment", "--data", ".", *argv])
    assert exc.value.code == 2


def test_an_end_above_one_is_a_usage_error(capsys):
    code, _, err = _run(capsys, "train", "sentiment", "--data", ".", "--schedule", "linear", "--lr-end", "1.5")
    assert code == 2 and "end must lie in (0, 1]" in err
