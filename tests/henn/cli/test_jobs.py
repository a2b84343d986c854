"""henn.cli.jobs in process: ``henn job create | status | close`` on the plain and vhe schemes.

The whole multi-process workflow (trainers, ``serve-keys``, re-keyed jobs) is in
tests/henn/cli/sentiment/test_parties.py; here each command's own promises: what create writes
(the key, the job's terms and targets, the model under the job's key), the one-line errors and exit
codes, that status reports the budgets, and that close releases the model (compared with the plaintext
model it came from) and destroys the key, once.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from henn import jobs
from henn import lifecycle as lc
from henn.cli import main
from henn.data.synthetic import make_reviews, write_aclimdb

SMALL = ["--seed", "5", "--hidden", "4", "--validation", "20", "--min-count", "3", "--polarity-cutoff", "0.3",
         "--init-scale", "0.5"]
INSECURE = ["--allow-insecure"]


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory):
    """An initial sentiment model (``henn train sentiment --init``) on a small synthetic corpus."""
    root = tmp_path_factory.mktemp("jobs")
    write_aclimdb(root / "data", make_reviews(100, seed=3, purity=0.8))
    assert main(["train", "sentiment", "--data", str(root / "data"), "--init", str(root / "plain.npz"), "--quiet",
                 *SMALL]) == 0
    return root / "plain.npz"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def create(capsys, tmp_path, plain_model, scheme, *extra):
    return run(capsys, "job", "create", "--keys", tmp_path / "job", "--model", plain_model, "--out",
               tmp_path / "model.henn", "--scheme", scheme, *INSECURE, *extra)


@pytest.mark.parametrize("scheme", ["plain", "vhe"])
def test_create_status_close_round_trip(tmp_path, capsys, plain_model, scheme):
    code, out, err = create(capsys, tmp_path, plain_model, scheme, "--budget", "77", "--json")
    assert code == 0, err
    made = json.loads(out.strip().splitlines()[-1])
    spec = jobs.read_spec(tmp_path / "job")
    assert made["job"]["job_id"] == spec.job_id and spec.state != "closed" and not made["signed"]
    assert spec.scheme == scheme and spec.terms.refreshes == 77 and spec.targets  # the dry run's targets
    assert (tmp_path / "job" / lc.SECRET_FILE).exists()
    sent = lc.load_encrypted_model(tmp_path / "model.henn", allow_insecure=True)
    assert sent.key_id == spec.key_id and sent.bundle.meta["job"]["job_id"] == spec.job_id

    code, out, _ = run(capsys, "job", "status", "--keys", tmp_path / "job", "--json")
    status = json.loads(out)
    assert code == 0 and status["refreshes"] == [0, 77] and status["aggregates"] == []
    assert status["state"] == spec.state and status["key_id"] == spec.key_id

    code, out, err = run(capsys, "job", "close", "--keys", tmp_path / "job", "--model", tmp_path / "model.henn",
                         "--out", tmp_path / "released.npz", *INSECURE)
    assert code == 0, err
    assert "closed" in out and not (tmp_path / "job" / lc.SECRET_FILE).exists()
    assert jobs.read_spec(tmp_path / "job").state == "closed"
    released, original = lc.read_plain_model(tmp_path / "released.npz"), lc.read_plain_model(plain_model)
    assert released.meta["release"]["job_id"] == spec.job_id
    tol = 0.0 if scheme == "plain" else 2.0**-14  # vhe: its 2^-16 grid plus the flooding (measured 2^-17.1)
    for name, array in original.arrays.items():
        np.testing.assert_allclose(released.arrays[name], array, atol=tol + 1e-12, rtol=0, err_msg=name)


def test_a_key_directory_serves_one_job(tmp_path, capsys, plain_model):
    assert create(capsys, tmp_path, plain_model, "plain")[0] == 0
    before = (tmp_path / "job" / lc.SECRET_FILE).read_bytes()
    code, _, err = create(capsys, tmp_path, plain_model, "plain")
    assert code == 1 and err.count("\n") == 1 and "already holds a key" in err
    assert (tmp_path / "job" / lc.SECRET_FILE).read_bytes() == before  # nothing there is replaced


def test_close_refuses_half_a_release_and_a_second_close(tmp_path, capsys, plain_model):
    assert create(capsys, tmp_path, plain_model, "plain")[0] == 0
    code, _, err = run(capsys, "job", "close", "--keys", tmp_path / "job", "--model", tmp_path / "model.henn")
    assert code == 1 and "--model and --out go together" in err
    assert (tmp_path / "job" / lc.SECRET_FILE).exists()  # refused before anything was destroyed
    assert run(capsys, "job", "close", "--keys", tmp_path / "job")[0] == 0
    code, _, err = run(capsys, "job", "close", "--keys", tmp_path / "job")
    assert code == 1 and "closed already" in err


@pytest.mark.parametrize("flag, value", [("--budget", "0"), ("--epochs", "-1"), ("--budget", "x")])
def test_budgets_must_be_positive_integers(tmp_path, capsys, plain_model, flag, value):
    with pytest.raises(SystemExit) as info:
        create(capsys, tmp_path, plain_model, "plain", flag, value)
    assert info.value.code == 2 and not (tmp_path / "job").exists()


def test_status_of_a_directory_without_a_job_is_a_clear_error(tmp_path, capsys):
    code, _, err = run(capsys, "job", "status", "--keys", tmp_path)
    assert code == 1 and err.startswith("henn job status: error:")
