"""The sentiment model on disk: encrypted weights, public keys, vocabulary and config, with the secret key.

Written through :func:`henn.io.save_model` (the secret key in its own ``0o600`` file);
the weights are stored under the tutorial's names ``W01`` and ``w12``.
"""
from __future__ import annotations

from pathlib import Path

from ... import io
from ...data.text import Vocabulary
from ...keyholder import KeyHolder, RefreshTerms
from ...module import Parameter, Sequential
from .network import SentimentConfig, model_from, weights


class _FileNames:
    """The network's weights under the file's names (what :func:`henn.io.save_model` stores)."""

    def __init__(self, model: Sequential):
        self._params = [(name, Parameter(t, name)) for name, t in weights(model).items()]

    def named_parameters(self):
        return list(self._params)


def save_sentiment(directory, model: Sequential, keyholder: KeyHolder, vocab: Vocabulary,
                   config: SentimentConfig, summary: dict | None = None) -> Path:
    """Write the encrypted model (weights, public keys, vocabulary, config) and the 0600 secret key."""
    scheme = weights(model)["W01"].scheme
    meta = {"task": "sentiment", "config": config.to_dict(), "vocab": vocab.to_dict(),
            "layout": {"W01": "(vocab, hidden)", "w12": "(1, hidden): w12 transposed"},
            "summary": summary or {}}
    return io.save_model(directory, _FileNames(model), scheme, meta=meta, secret=keyholder.export_secret_key())


def load_sentiment(directory, *, terms: RefreshTerms | None = None, allow_insecure: bool = False,
                   passphrase: bytes | None = None) -> tuple[Sequential, KeyHolder, Vocabulary, SentimentConfig]:
    """Read a model written by :func:`save_sentiment`, with the key holder of its saved key.

    Raises:
        FileNotFoundError: missing model or key file.
        he_core.FormatError: corrupt files, or a key that is not the model's.
        ValueError: the model is not a sentiment model.
    """
    loaded = io.load_model(directory, allow_insecure=allow_insecure)
    meta = loaded.meta
    if meta.get("task") != "sentiment" or set(loaded.tensors) != {"W01", "w12"}:
        raise ValueError(f"cannot load a sentiment model from {directory}: it holds a {meta.get('task')!r} model")
    config = SentimentConfig.from_dict(meta["config"])
    vocab = Vocabulary.from_dict(meta["vocab"])
    secret = io.load_secret(directory, key_id=loaded.key_id, expect_scheme=loaded.scheme.name,
                            passphrase=passphrase, allow_insecure=allow_insecure)
    model = model_from(loaded.tensors["W01"], loaded.tensors["w12"])
    if model[0].in_features != len(vocab):
        raise ValueError(f"cannot load a sentiment model from {directory}: W01 has {model[0].in_features} rows "
                         f"but the vocabulary {len(vocab)} words")
    return model, KeyHolder(loaded.scheme, secret, terms=terms), vocab, config
