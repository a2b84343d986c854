"""The history plot."""
from __future__ import annotations

import pytest

from henn.plotting import plot_history


def test_writes_a_png(tmp_path):
    history = [{"epoch": i, "loss": 1.0 / (i + 1), "correct": min(4, i)} for i in range(10)]
    path = plot_history(history, str(tmp_path / "h.png"), title="t", secondary="correct")
    data = (tmp_path / "h.png").read_bytes()
    assert path.endswith("h.png") and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_missing_metric_is_a_key_error(tmp_path):
    with pytest.raises(KeyError):
        plot_history([{"epoch": 0}], str(tmp_path / "h.png"), title="t")
