"""What a refresh request's metadata and mask width tell the key holder about a review.

Before: a request carried the trainer's tracked noise and value bounds, which follow
the computation: the logit's bound is half the review's number of distinct words, so
the key holder read every review's length off its requests (and the mask width,
sized from the tracked bound, moved with it). After: requests carry public fields
only, and masks are sized from the declared bounds: every request of a signature
looks the same whatever the review.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import he_core
from he_core.schemes.ckks import CkksParams
from henn.keyholder import KeyHolder, RefreshTerms
from henn.tasks import sentiment as T
from henn.tasks.sentiment import SentimentConfig, init_weights

CONFIG = SentimentConfig(hidden=4, lr=0.02, init_scale=0.5)
PARAMS = CkksParams(poly_degree=2048, levels=5, first_bits=60, scale_bits=54, special_bits=60, floor_levels=1,
                    floor_bits=61, allow_insecure=True)
LENGTHS = (1, 3, 8, 21, 55)


class _Spy(KeyHolder):
    """Records what the key holder receives (the request's metadata), what the trainer would have sent
    before (the tracked metadata of the ciphertext it refreshes), and every mask's width."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent, self.tracked, self.widths = [], [], []

    def refresh(self, x, layout=None, value_bound=None):
        ct = getattr(x, "ct", x)
        self.tracked.append(json.dumps(ct.meta, sort_keys=True))
        return super().refresh(x, layout=layout, value_bound=value_bound)

    def draw_mask(self, plan):
        mask = super().draw_mask(plan)
        self.widths.append(mask.width_bits)
        return mask

    def reencrypt(self, masked, layout=None):
        self.sent.append(json.dumps(masked.meta, sort_keys=True))
        return super().reencrypt(masked, layout)


@pytest.fixture(scope="module")
def traffic():
    """One SGD step per review length (same weights), and what each step's requests showed."""
    scheme = he_core.get_scheme("ckks", PARAMS)
    keys = scheme.keygen(he_core.KeyRequirements(sizes=(1, CONFIG.hidden)), rng=he_core.SeededRandom(3))
    W01, w12 = init_weights(256, CONFIG, he_core.SeededRandom(1))
    choose = np.random.default_rng(0)
    views = {}
    for length in LENGTHS:
        holder = _Spy(scheme, keys.secret, terms=RefreshTerms(refreshes=1000, entries_per_refresh=64))
        model = T.build_model(scheme, W01, w12)
        ids = np.sort(choose.choice(np.arange(1, 256), size=length, replace=False)).astype(np.int64)
        T.train(model, holder, [ids], np.array([length % 2]), CONFIG, monitor_every=None)
        views[length] = holder
    return views


def test_the_tracked_metadata_would_show_the_review_length(traffic):
    """The unprotected configuration: sending the ciphertext's own metadata tells the lengths apart."""
    tracked = {length: tuple(holder.tracked) for length, holder in traffic.items()}
    assert len(set(tracked.values())) == len(LENGTHS)


def test_requests_and_masks_look_the_same_for_every_review(traffic):
    sent = {tuple(holder.sent) for holder in traffic.values()}
    widths = {tuple(holder.widths) for holder in traffic.values()}
    assert all(len(holder.sent) >= 3 for holder in traffic.values())
    assert len(sent) == 1, "request metadata depends on the review"
    assert len(widths) == 1, "mask widths depend on the review"
