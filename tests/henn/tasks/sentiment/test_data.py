"""henn.tasks.sentiment.data: the split, the vocabulary from training reviews only, and the parts of a split."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from henn.data.synthetic import make_reviews
from henn.tasks.sentiment.data import part_slice, parse_part, prepare


def test_prepare_splits_tokenises_and_limits():
    reviews = make_reviews(60, seed=2, words=40)
    p = prepare(reviews, validation=20, seed=1)
    assert len(p.train_ids) == 40 and len(p.val_ids) == 20
    assert len(p.train_labels) == 40 and len(p.val_labels) == 20
    assert all(ids.dtype.kind == "i" and (ids.size == 0 or ids.max() < len(p.vocab)) for ids in p.train_ids + p.val_ids)
    again = prepare(reviews, validation=20, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(p.train_ids, again.train_ids))  # the split is seeded
    short = prepare(reviews, validation=20, seed=1, limit=30)
    assert len(short.train_ids) == 30 and list(short.train_labels) == list(p.train_labels[:30])
    with pytest.raises(ValueError, match="limit must be positive"):
        prepare(reviews, validation=20, limit=0)


@given(n=st.integers(0, 1000), parts=st.integers(1, 12))
def test_parts_are_disjoint_near_equal_and_cover_everything(n, parts):
    slices = [part_slice(n, k, parts) for k in range(1, parts + 1)]
    covered = [i for s in slices for i in range(n)[s]]
    assert covered == list(range(n))
    sizes = [len(range(n)[s]) for s in slices]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("text,want", [("1/1", (1, 1)), ("3/8", (3, 8))])
def test_parse_part(text, want):
    assert parse_part(text) == want


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0", "", "-1/2"])
def test_bad_parts_are_refused(text):
    with pytest.raises(ValueError, match="K/M"):
        parse_part(text)
    with pytest.raises(ValueError):
        part_slice(10, 0, 3)
