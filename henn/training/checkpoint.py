"""Checkpoints of a long encrypted run: the encrypted model and where the run stands.

A checkpoint is one file in the project's format (a :class:`he_core.serialization.Bundle`):
every parameter's ciphertext, and as metadata the epochs done, the history, the visiting
order's generator state and the key holder's counters (refresh rounds, masked entries
read, the narrowest mask margin, releases), so a resumed run continues the job's
accounting instead of starting it over: its budgets and the hiding it reports still
cover the whole job.

It is the **trainer's** file (written owner-only): the generator state says which rows
fed each released aggregate (differences between epochs would approach single rows),
and the owner, who holds the key, could decrypt the weights from it without the
flooding of a release. Restoring never lowers the key holder's counters: a tampered
file cannot reset the job's accounting.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

import he_core
from he_core import serialization

from ..keyholder import KeyHolder, MaskedRefresh
from ..module import Sequential
from ..tensor import EncTensor

FORMAT = "henn-fit-checkpoint/1"


def save(path: str | Path, model: Sequential, keyholder: MaskedRefresh, *, epochs_done: int, records: list[dict],
         order_rng: np.random.Generator, policy: dict | None = None) -> Path:
    """Write the checkpoint atomically (owner-only: it shows the run's progress)."""
    counters = {"refresh_rounds": keyholder.refresh_rounds, "entries_read": keyholder.entries_read,
                "worst_margin_bits": None if keyholder.worst_margin_bits == math.inf
                else float(keyholder.worst_margin_bits),
                "releases": keyholder.releases if isinstance(keyholder, KeyHolder) else 0}
    meta = {"format": FORMAT, "epochs_done": int(epochs_done), "records": records, "keyholder": counters,
            "order_rng": order_rng.bit_generator.state, "policy": policy or {}}
    bundle = serialization.Bundle({name: p.value.ct for name, p in model.named_parameters()}, _jsonable(meta))
    return serialization.save(bundle, path, secret=True)


def restore(path: str | Path, model: Sequential, keyholder: MaskedRefresh) -> tuple[int, list[dict], dict, dict]:
    """Load a checkpoint into ``model`` and ``keyholder``.

    Returns:
        ``(epochs_done, records, order_rng_state, policy_state)``; the refresh policy's
        state (:meth:`~henn.training.refresh.RefreshPolicy.state`) makes a resumed run
        refresh exactly where an uninterrupted one would.

    Raises:
        he_core.FormatError: not a checkpoint, or one of another model or key.
    """
    scheme = keyholder.scheme
    bundle = serialization.load(path, expect_kind="bundle", expect_key_id=scheme.public_keys.key_id,
                                allow_insecure=scheme.params.security_bits == 0)
    meta = bundle.meta
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise he_core.FormatError(f"cannot resume from {path}: not a henn fit checkpoint")
    params = dict(model.named_parameters())
    if set(params) != set(bundle.ciphertexts):
        raise he_core.FormatError(f"cannot resume from {path}: it holds {sorted(bundle.ciphertexts)}, the model "
                                  f"has {sorted(params)}")
    for name, p in params.items():
        ct = bundle.ciphertexts[name]
        if tuple(ct.shape) != tuple(p.value.shape):
            raise he_core.FormatError(f"cannot resume from {path}: {name} has shape {ct.shape}, the model's "
                                      f"{p.value.shape}")
        scheme.validate(ct)
        p.value, p.grad = EncTensor(p.value.scheme, ct), None
    counters = meta["keyholder"]
    keyholder.refresh_rounds = max(keyholder.refresh_rounds, int(counters["refresh_rounds"]))
    keyholder.entries_read = max(keyholder.entries_read, int(counters["entries_read"]))
    if counters["worst_margin_bits"] is not None:
        keyholder.worst_margin_bits = min(keyholder.worst_margin_bits, float(counters["worst_margin_bits"]))
    if isinstance(keyholder, KeyHolder):  # a key service counts its releases on its own side
        keyholder.releases = max(keyholder.releases, int(counters["releases"]))
    policy = meta.get("policy", {})
    return int(meta["epochs_done"]), list(meta["records"]), meta["order_rng"], policy if isinstance(policy, dict) else {}


def _jsonable(value: Any) -> Any:
    """numpy scalars in a generator state, as plain JSON numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value
