"""henn.cli.sentiment.inputs: the data option, loading reviews (with their decoding warnings), the owner's
split checked against the data, and the optional seeded randomness."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

import he_core
from henn.cli.sentiment import inputs
from henn.data.imdb import DataError, split_validation
from henn.data.synthetic import make_reviews, write_lines


def test_the_data_option_is_required_unless_the_environment_names_the_data(monkeypatch):
    for default, required in ((None, True), ("/data/imdb", False)):
        monkeypatch.setattr(inputs, "DEFAULT_DATA", default)
        parser = argparse.ArgumentParser()
        inputs.add_data_option(parser)
        action = next(a for a in parser._actions if a.dest == "data")
        assert action.required is required and action.default == default


def test_reviews_load_and_undecodable_bytes_are_warned_about_unless_quiet(tmp_path, capsys):
    write_lines(tmp_path, make_reviews(20, seed=1))
    text = (tmp_path / "reviews.txt").read_bytes().split(b"\n")
    text[3] = text[3] + b" \xff\xfe"
    (tmp_path / "reviews.txt").write_bytes(b"\n".join(text))
    reviews = inputs.load_reviews(str(tmp_path), "train", quiet=False)
    assert len(reviews) == 20 and "henn: warning:" in capsys.readouterr().err
    inputs.load_reviews(str(tmp_path), "train", quiet=True)
    assert capsys.readouterr().err == ""
    with pytest.raises(DataError):
        inputs.load_reviews(str(tmp_path / "missing"), "train", quiet=True)


def test_the_owners_split_is_recomputed_only_on_the_same_reviews(tmp_path):
    reviews = make_reviews(50, seed=2)
    split = {"reviews": 50, "validation": 10, "seed": 7}
    train, held = split_validation(50, 10, 7)
    assert np.array_equal(inputs.train_indices(reviews, split, tmp_path), train)
    assert np.array_equal(inputs.validation_indices(reviews, split, tmp_path), held)
    assert not set(train) & set(held) and len(train) + len(held) == 50
    for other in ({**split, "reviews": 49}, {**split, "reviews": 51}):
        with pytest.raises(ValueError, match="holds 50 training reviews, the model's split was made on"):
            inputs.validation_indices(reviews, other, tmp_path)


def test_randomness_progress_and_passphrase_follow_the_options(tmp_path):
    assert inputs.init_rng(argparse.Namespace(seed=None)) is None  # the OS CSPRNG
    seeded = [inputs.init_rng(argparse.Namespace(seed=5)).normal(4) for _ in range(2)]
    assert isinstance(inputs.init_rng(argparse.Namespace(seed=5)), he_core.SeededRandom)
    assert np.array_equal(*seeded)
    assert inputs.progress_bar("imdb", quiet=True) is False
    assert inputs.progress_bar("imdb", quiet=False) == {"desc": "imdb", "unit": "review"}
    assert inputs.passphrase_of(argparse.Namespace(passphrase_file=None)) is None
    (tmp_path / "pass").write_text("correct horse\nignored\n")
    (tmp_path / "pass").chmod(0o600)
    assert inputs.passphrase_of(argparse.Namespace(passphrase_file=tmp_path / "pass")) == b"correct horse"
