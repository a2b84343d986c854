"""The synthetic corpus the ``henn train|evaluate sentiment`` tests train on."""
from __future__ import annotations

import pytest

from henn.data.synthetic import make_reviews, write_aclimdb


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("imdb")
    reviews = make_reviews(300, seed=21, purity=0.75)
    write_aclimdb(root, reviews)
    return root, reviews
