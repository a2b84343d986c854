"""``henn --threads N``: sets the native kernels' threads for the command; bad counts are usage errors."""
from __future__ import annotations

import pytest

from he_core import threads
from henn.cli import main


def test_threads_option_sets_the_kernels_threads(capsys):
    before = threads.get_threads()
    try:
        assert main(["--threads", "3", "train", "xor", "--scheme", "vhe", "--epochs", "2", "--seed", "1"]) == 0
        assert threads.get_threads() == 3
    finally:
        threads.set_threads(before)


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_bad_thread_counts_are_usage_errors(capsys, bad):
    with pytest.raises(SystemExit) as exc:
        main(["--threads", bad, "train", "xor"])
    assert exc.value.code == 2
    assert "cannot use --threads=" in capsys.readouterr().err
