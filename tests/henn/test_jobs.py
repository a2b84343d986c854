"""henn.jobs: job records, the targets a job allows, and the journal a restarted service replays."""
import json
import os
import stat

import pytest

from he_core.errors import FormatError
from henn.jobs import (JOB_FILE, JOURNAL_FILE, JobError, JobSpec, Journal, new_job_id, payload_digest, read_spec,
                       unique_signatures, write_spec)
from henn.keyholder import RefreshTerms


def spec(**kw):
    base = dict(job_id=new_job_id(), key_id="k" * 32, scheme="ckks", params_id="ckks-x", terms=RefreshTerms(),
                targets=[{"layout": "slots", "level_in": 2, "level_out": 5}], scale_log2=40.0, model={"task": "t"})
    return JobSpec(**{**base, **kw})


def test_a_job_round_trips_through_its_file_owner_only(tmp_path):
    s = spec()
    path = write_spec(tmp_path, s)
    assert path.name == JOB_FILE and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    back = read_spec(tmp_path)
    assert back == s and back.terms == s.terms
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_the_public_part_holds_no_model_or_state():
    public = spec().public()
    assert set(public) == {"job_id", "key_id", "terms", "targets", "scale_log2"}


def test_targets_allow_the_same_refresh_from_its_level_or_above():
    s = spec()
    assert s.allows({"layout": "slots", "level_in": 2, "level_out": 5})
    assert s.allows({"layout": "slots", "level_in": 4, "level_out": 5})
    assert not s.allows({"layout": "slots", "level_in": 1, "level_out": 5})
    assert not s.allows({"layout": "slots", "level_in": 2, "level_out": 6})
    assert not s.allows({"layout": "coeff", "level_in": 2, "level_out": 5})


def test_unique_signatures_keep_the_lowest_source_level():
    sigs = [{"a": 1, "level_in": 3}, {"a": 1, "level_in": 1}, {"a": 2}, {"a": 1, "level_in": 2}]
    assert unique_signatures(sigs) == [{"a": 1, "level_in": 1}, {"a": 2}]


def test_a_missing_or_damaged_job_is_refused(tmp_path):
    with pytest.raises(JobError, match="holds no job"):
        read_spec(tmp_path)
    (tmp_path / JOB_FILE).write_text("{not json")
    with pytest.raises(FormatError, match="cannot read the job"):
        read_spec(tmp_path)
    (tmp_path / JOB_FILE).write_text(json.dumps({"format": "other"}))
    with pytest.raises(FormatError, match="not a henn-job-1"):
        read_spec(tmp_path)
    damaged = spec().to_dict()
    del damaged["targets"]
    (tmp_path / JOB_FILE).write_text(json.dumps(damaged))
    with pytest.raises(FormatError, match="malformed"):
        read_spec(tmp_path)


def test_a_restarted_journal_remembers_its_budget_and_request_ids(tmp_path):
    j = Journal(tmp_path)
    j.record("r1", payload_digest(b"a"), "refresh", entries=8)
    j.record("r2", payload_digest(b"b"), "release", count=500, value=1.5, scale=1.0)
    j.record("r3", payload_digest(b"c"), "refresh", entries=4)
    j.close()
    assert stat.S_IMODE(os.stat(tmp_path / JOURNAL_FILE).st_mode) == 0o600
    again = Journal(tmp_path)
    assert (again.refreshes, again.releases, again.entries) == (2, 1, 12)
    assert again.seen == {"r1": payload_digest(b"a"), "r2": payload_digest(b"b"), "r3": payload_digest(b"c")}
    assert again.aggregates[0]["value"] == 1.5 and again.aggregates[0]["count"] == 500
    again.close()


def test_a_damaged_journal_is_refused_by_line(tmp_path):
    j = Journal(tmp_path)
    j.record("r1", "d", "refresh")
    j.close()
    with open(tmp_path / JOURNAL_FILE, "a") as fh:
        fh.write("{broken\n")
    with pytest.raises(FormatError, match="line 2 is damaged"):
        Journal(tmp_path)


def test_job_ids_and_digests():
    assert len({new_job_id() for _ in range(100)}) == 100
    assert payload_digest(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
