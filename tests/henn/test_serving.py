"""henn.serving: the answer count a server keeps across runs (never reset silently) and its frame limit."""
import json

import pytest

from henn.circuit import DeployError
from henn.serving import read_answer_count, write_answer_count


def test_the_count_round_trips_atomically(tmp_path):
    state = tmp_path / "state.json"
    assert read_answer_count(None) == 0 and read_answer_count(state) == 0
    write_answer_count(state, 17)
    assert read_answer_count(state) == 17 and json.loads(state.read_text()) == {"answered": 17}
    assert not list(tmp_path.glob("*.tmp"))
    write_answer_count(None, 5)  # nothing to write without a file


@pytest.mark.parametrize("text", ["", "{", "[]", '{"other": 1}', '{"answered": -1}', '{"answered": 1.5}',
                                  '{"answered": true}', '{"answered": "3"}'])
def test_a_damaged_count_is_refused_not_reset(tmp_path, text):
    state = tmp_path / "state.json"
    state.write_text(text)
    with pytest.raises(DeployError, match="answer count"):
        read_answer_count(state)
