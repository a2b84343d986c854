"""``henn train sentiment`` and ``henn evaluate sentiment`` on a synthetic corpus."""
from __future__ import annotations

import json
import os
import stat

import pytest

from henn.cli import main
from henn.data.synthetic import make_reviews, write_aclimdb, write_lines

TRAIN = ["--hidden", "4", "--validation", "60", "--min-count", "3", "--polarity-cutoff", "0.3",
         "--lr", "0.02", "--interval", "8", "--init-scale", "0.5", "--monitor-every", "100", "--seed", "3"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("imdb")
    reviews = make_reviews(300, seed=21, purity=0.75)
    write_aclimdb(root, reviews)
    return root, reviews


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _json(out):
    return json.loads(out.strip().splitlines()[-1])


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


def test_train_save_plot_then_evaluate_an_unseen_split(corpus, tmp_path, capsys):
    root, _ = corpus
    model, plot = tmp_path / "model", tmp_path / "h.png"
    code, out, _ = _run(capsys, "train", "sentiment", "--data", root, "--scheme", "plain", "--json", "--quiet",
                        "--save", model, "--plot", plot, *TRAIN)
    assert code == 0 and plot.stat().st_size > 1000
    assert stat.S_IMODE(os.stat(model / "secret.key").st_mode) == 0o600
    trained = _json(out)
    # An unseen "test" split in the same layout: fresh reviews from another seed, as symlinks.
    test_root = tmp_path / "unseen"
    source = write_aclimdb(tmp_path / "src", make_reviews(80, seed=99, purity=0.75))
    for sub in ("pos", "neg"):
        (test_root / "test" / sub).mkdir(parents=True)
        for f in (source / "train" / sub).iterdir():
            (test_root / "test" / sub / f.name).symlink_to(f)
    code, out, _ = _run(capsys, "evaluate", "sentiment", "--model", model, "--data", test_root, "--split", "test",
                        "--json", "--allow-insecure")
    assert code == 0
    ev = _json(out)
    assert ev["reviews"] == 80 and ev["split"] == "test" and ev["reviews_per_s"] > 0
    assert ev["accuracy"] > 0.75 and abs(ev["accuracy"] - trained["validation_accuracy"]) < 0.2
    code, out, _ = _run(capsys, "evaluate", "sentiment", "--model", model, "--data", test_root, "--limit", "10",
                        "--allow-insecure")
    assert code == 0 and "(10 reviews, plain): accuracy" in out


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
    ["evaluate", "sentiment", "--data", "."],
    ["evaluate", "sentiment", "--model", "m", "--data", ".", "--split", "dev"],
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
    assert s["scheme"] == "vhe" and s["refresh_rounds"] >= s["train_reviews"]
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


def test_evaluate_validation_split_needs_a_keys_model(corpus, tmp_path, capsys):
    root, _ = corpus
    code, _, _ = _run(capsys, "train", "sentiment", "--data", root, "--scheme", "plain", "--quiet",
                      "--save", tmp_path / "m", *TRAIN)
    assert code == 0
    code, _, err = _run(capsys, "evaluate", "sentiment", "--model", tmp_path / "m", "--data", root,
                        "--split", "validation", "--allow-insecure")
    assert code == 1 and "only a --keys model records its split" in err


def test_init_then_evaluate_with_keys_in_process(corpus, tmp_path, capsys):
    """Owner side in one process: --init, keygen, encrypt-model, evaluate --keys on the held-out reviews."""
    root, reviews = corpus
    plain = tmp_path / "plain.npz"
    assert _run(capsys, "train", "sentiment", "--data", root, "--init", plain, "--json", *TRAIN)[0] == 0
    assert stat.S_IMODE(os.stat(plain).st_mode) == 0o600  # plaintext weights: owner-only
    assert _run(capsys, "keygen", "--scheme", "plain", "--out", tmp_path / "keys", "--model", plain)[0] == 0
    assert _run(capsys, "encrypt-model", "--model", plain, "--keys", tmp_path / "keys",
                "--out", tmp_path / "m.henn", "--allow-insecure")[0] == 0
    code, out, _ = _run(capsys, "evaluate", "sentiment", "--model", tmp_path / "m.henn", "--keys", tmp_path / "keys",
                        "--data", root, "--split", "validation", "--json", "--allow-insecure")
    assert code == 0
    s = _json(out)
    # Untrained: W01 = 0, so every logit is 0 and every prediction is s(0) (> or <= 1/2): one class.
    from henn.data.imdb import load_imdb, split_validation

    labels = load_imdb(root, "train").labels[split_validation(300, 60, 0)[1]]
    assert s["reviews"] == 60 and s["accuracy"] in (pytest.approx(labels.mean()), pytest.approx(1 - labels.mean()))
    code, _, err = _run(capsys, "train", "sentiment", "--data", root, "--init", plain, "--limit", "5", *TRAIN)
    assert code == 1 and "--init takes neither" in err
