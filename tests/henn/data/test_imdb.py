"""Loading reviews: both layouts, bad files, and the validation split."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from henn.data.imdb import DataError, load_aclimdb, load_imdb, load_lines, split_validation
from henn.data.synthetic import make_reviews, write_aclimdb, write_lines


def test_aclimdb_layout_from_parent_and_from_aclimdb(tmp_path):
    reviews = make_reviews(12, seed=3)
    base = write_aclimdb(tmp_path, reviews)
    for root in (tmp_path, base):
        got = load_imdb(root, "train")
        assert len(got) == 12 and sorted(got.texts) == sorted(reviews.texts)
        assert got.labels.sum() == 6 and got.replaced == 0
        # positives first, each text keeps its label
        truth = dict(zip(reviews.texts, reviews.labels))
        assert all(truth[t] == y for t, y in zip(got.texts, got.labels))
        assert list(got.labels[:6]) == [1] * 6


def test_aclimdb_test_split_and_missing_split(tmp_path):
    write_aclimdb(tmp_path, make_reviews(4), split="test")
    assert len(load_aclimdb(tmp_path, "test")) == 4
    with pytest.raises(DataError, match="no train/pos and train/neg"):
        load_aclimdb(tmp_path, "train")
    with pytest.raises(DataError, match="split must be"):
        load_aclimdb(tmp_path, "dev")


def test_lines_layout(tmp_path):
    reviews = make_reviews(7, seed=1)
    write_lines(tmp_path, reviews)
    got = load_imdb(tmp_path)
    assert got.texts == reviews.texts and list(got.labels) == list(reviews.labels)
    assert got.sources[0] == "reviews.txt:1"


@pytest.mark.parametrize("words", [("pos", "neg"), ("1", "0"), ("POSITIVE", "Negative")])
def test_label_spellings(tmp_path, words):
    (tmp_path / "reviews.txt").write_text("good film\nbad film\n")
    (tmp_path / "labels.txt").write_text(f"{words[0]}\r\n{words[1]}\r\n")
    assert list(load_lines(tmp_path).labels) == [1, 0]


def test_empty_review_file_is_an_error(tmp_path):
    base = write_aclimdb(tmp_path, make_reviews(4))
    (base / "train" / "neg" / "99_1.txt").write_bytes(b"  \n")
    with pytest.raises(DataError, match="99_1.txt is empty"):
        load_imdb(tmp_path)


def test_empty_directory_is_an_error(tmp_path):
    (tmp_path / "train" / "pos").mkdir(parents=True)
    (tmp_path / "train" / "neg").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no .txt files"):
        load_imdb(tmp_path)


def test_non_utf8_bytes_are_replaced_with_a_warning(tmp_path):
    base = write_aclimdb(tmp_path, make_reviews(4))
    (base / "train" / "pos" / "50_9.txt").write_bytes(b"caf\xe9 was great \xff")
    with pytest.warns(UnicodeWarning, match="1 review"):
        got = load_imdb(tmp_path)
    assert got.replaced == 1
    assert "caf\ufffd was great \ufffd" in got.texts


def test_non_utf8_lines_counted_per_review(tmp_path):
    (tmp_path / "reviews.txt").write_bytes(b"ok\nbad \xff\nalso \xfe bad\n")
    (tmp_path / "labels.txt").write_text("1\n0\n0\n")
    with pytest.warns(UnicodeWarning, match="2 review"):
        got = load_lines(tmp_path)
    assert got.replaced == 2 and got.texts[1] == "bad \ufffd"


def test_missing_labels_file(tmp_path):
    (tmp_path / "reviews.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match="labels.txt does not exist"):
        load_imdb(tmp_path)


def test_label_count_mismatch(tmp_path):
    (tmp_path / "reviews.txt").write_text("a\nb\nc\n")
    (tmp_path / "labels.txt").write_text("positive\nnegative\n")
    with pytest.raises(DataError, match="has 3 reviews but .* has 2 labels"):
        load_lines(tmp_path)


def test_unknown_label_and_empty_line(tmp_path):
    (tmp_path / "reviews.txt").write_text("a\nb\n")
    (tmp_path / "labels.txt").write_text("positive\nmaybe\n")
    with pytest.raises(DataError, match="line 2 .* 'maybe'"):
        load_lines(tmp_path)
    (tmp_path / "reviews.txt").write_text("a\n\n")
    (tmp_path / "labels.txt").write_text("positive\nnegative\n")
    with pytest.raises(DataError, match="line 2 .* is empty"):
        load_lines(tmp_path)


def test_not_a_directory(tmp_path):
    with pytest.raises(DataError, match="is not a directory"):
        load_imdb(tmp_path / "nope")


@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 300), frac=st.floats(0, 0.99), seed=st.integers(0, 2**31))
def test_split_is_a_seeded_partition(n, frac, seed):
    validation = min(int(frac * n), n - 1)
    train, val = split_validation(n, validation, seed)
    assert len(val) == validation and len(train) == n - validation
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(n))
    train2, val2 = split_validation(n, validation, seed)
    assert np.array_equal(train, train2) and np.array_equal(val, val2)


def test_split_rejects_bad_sizes():
    with pytest.raises(ValueError, match="validation must be"):
        split_validation(10, 10)
    with pytest.raises(ValueError, match="validation must be"):
        split_validation(10, -1)
