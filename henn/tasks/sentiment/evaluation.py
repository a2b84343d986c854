"""Encrypted prediction and evaluation of the sentiment network, and the weights as they leave a party.

Every prediction the key holder releases is noise-flooded and counts against the job's
release budget; :func:`outgoing_weights` is what a trainer sends back to the owner.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

import he_core

from ...embedding import Bags
from ...keyholder import KeyHolder, MaskedRefresh
from ...module import Sequential
from ...training.fit import predict
from .network import VALUE_BOUND, SentimentConfig, weights

_EPS = 1e-7


def predict_encrypted(model: Sequential, keyholder: KeyHolder, ids: Sequence[np.ndarray], config: SentimentConfig,
                      *, batch: int = 1000) -> np.ndarray:
    """Encrypted forward pass and ``s(z)``; the key holder *releases* (flooded) each prediction.

    Reviews with no vocabulary word get ``s(0)`` without a ciphertext. A table in a
    scheme-specific packing (CKKS) is read one review at a time, each prediction moved
    into the polynomial's layout and released on its own; otherwise reviews go in
    batches. Each released prediction (or batch) counts against the release budget.
    """
    loss = config.make_loss()
    p = np.full(len(ids), loss.activation.coeffs[0])
    present = np.array([i for i, r in enumerate(ids) if r.size], dtype=np.int64)
    if not present.size:
        return p
    table = weights(model)["W01"]
    width = table.rows
    packed = not keyholder.scheme.in_default_layout(table.ct)
    step = 1 if packed else batch
    for lo in range(0, present.size, step):
        part = present[lo:lo + step]
        out = predict(model, Bags([ids[i] for i in part], width), keyholder=keyholder, value_bound=VALUE_BOUND,
                      loss=loss)
        p[part] = keyholder.release(out)[:, 0]
    return p


def evaluate_encrypted(model: Sequential, keyholder: KeyHolder, ids: Sequence[np.ndarray], labels: np.ndarray,
                       config: SentimentConfig) -> dict:
    """Accuracy and throughput of encrypted prediction on labelled reviews."""
    start = time.perf_counter()
    p = predict_encrypted(model, keyholder, ids, config)
    seconds = time.perf_counter() - start
    y = np.asarray(labels)
    pred = (p > 0.5).astype(np.int64)
    return {"accuracy": float(np.mean(pred == y)) if y.size else float("nan"),
            "loss": float(np.mean(cross_entropy(p, y))) if y.size else float("nan"),
            "reviews": int(y.size), "seconds": seconds,
            "reviews_per_s": y.size / seconds if seconds > 0 else float("inf"), "predictions": pred}


def outgoing_weights(model: Sequential, keyholder: MaskedRefresh | None) -> dict[str, he_core.Ciphertext]:
    """The trained weights as they leave the trainer: re-encrypted by the key holder, or sanitised.

    Through a key holder each tensor is refreshed into its own layout (a masked
    refresh), so its noise is the key holder's own and the owner's decryption shows the
    weights and nothing of how they were computed (an approximate scheme's noise follows
    the data). Otherwise (an exact scheme, or no key holder) each is sanitised:
    re-randomised, its noise flooded.
    """
    scheme = weights(model)["W01"].scheme
    through = keyholder is not None and scheme.supports(he_core.Capability.APPROXIMATE)
    out = {}
    for name, tensor in weights(model).items():
        ct = tensor.ct
        out[name] = (keyholder.fresh_for_owner(ct, VALUE_BOUND, layout=scheme.layout_of(ct)) if through
                     else scheme.sanitize(ct))
    return out


def release_weights(model: Sequential, keyholder: KeyHolder) -> tuple[np.ndarray, np.ndarray]:
    """Key holder: the model's weights, released (noise-flooded) for the owner's check."""
    w = weights(model)
    return keyholder.release(w["W01"]), keyholder.release(w["w12"])[0]


def cross_entropy(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-review cross-entropy; ``p`` is clipped into ``(0, 1)`` (a polynomial may leave it)."""
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))
