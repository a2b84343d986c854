"""henn.cli.sentiment.evaluate: ``henn evaluate sentiment`` on a saved model, an unseen split, the owner's keys."""
from __future__ import annotations

import os
import stat

import pytest

from henn.cli import main
from henn.data.synthetic import make_reviews, write_aclimdb

from .cli_run import TRAIN, json_summary as _json, run as _run


@pytest.mark.parametrize("argv", [
    ["evaluate", "sentiment", "--data", "."],
    ["evaluate", "sentiment", "--model", "m", "--data", ".", "--split", "dev"],
])
def test_bad_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


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
