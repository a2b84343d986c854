"""Attacks on the files and the jobs: substituted keys and models, a second job on a key, retries, stalled peers.

Before: files carried a SHA-256 anyone can recompute and random key ids, the key
service answered any request under its key for as long as it ran, and a retried
request was decrypted again. After: owner-signed files with key ids derived from the
public key, one job per key with a journaled budget, cached answers for retries, and
per-frame deadlines.
"""
from __future__ import annotations

import math
import socket
import time

import numpy as np
import pytest

import he_core
from he_core import serialization as ser
from henn import jobs
from henn import lifecycle as lc
from henn.keyholder import RefreshTerms
from henn.keyservice import REENCRYPT, KeyService, KeyServiceError
from henn.keyservice import protocol
from henn.keyservice.transport import connect, listen


def _model(tmp_path, signer=None):
    keys = tmp_path / "keys"
    pair = lc.keygen("plain", keys, sizes=(1, 2), signer=signer)
    scheme, public = lc.load_public(keys, allow_insecure=True)
    bundle = lc.encrypt_model(lc.PlainModel({"w": np.array([[1.0, -2.0]])}, {"task": "t"}), scheme)
    return pair, scheme, bundle


def test_substituted_public_keys_in_a_model_file_are_refused_by_a_pinned_trainer(tmp_path):
    """The man in the middle swaps the owner's public keys for its own (it can then read what the trainer
    sends back): unpinned, the trainer takes the file; pinned to the owner's key, it refuses it."""
    owner = lc.owner_init(tmp_path / "owner")
    signer = lc.load_signer(tmp_path / "owner")
    _pair, _scheme, bundle = _model(tmp_path, signer)
    lc.save_encrypted_model(tmp_path / "model.henn", bundle, signer=signer)
    mallory = he_core.get_scheme("plain")
    mallory.keygen(he_core.KeyRequirements(sizes=(1, 2)))
    swapped = ser.Bundle({"w": mallory.encrypt(np.array([[1.0, -2.0]]))}, dict(bundle.meta), mallory.public_keys)
    lc.save_encrypted_model(tmp_path / "swapped.henn", swapped)  # unsigned, or signed by mallory: the same
    assert lc.load_encrypted_model(tmp_path / "swapped.henn", allow_insecure=True)  # the old trust: accepted
    with pytest.raises(he_core.FormatError, match="sign"):
        lc.load_encrypted_model(tmp_path / "swapped.henn", owner_key=owner, allow_insecure=True)
    assert lc.load_encrypted_model(tmp_path / "model.henn", owner_key=owner, allow_insecure=True)


def test_a_key_id_that_does_not_match_the_public_key_is_refused(tmp_path):
    """Key ids are a hash of the public key: pairing the owner's id with another key shows on load."""
    pair, scheme, _bundle = _model(tmp_path)
    other = he_core.get_scheme("plain")
    other.keygen()
    forged = he_core.PublicKeys("plain", scheme.params_id, pair.public.key_id, other.public_keys.data,
                                pair.public.requirements)
    blob = ser.dumps(forged, params=scheme)
    with pytest.raises(he_core.FormatError, match="key id"):
        ser.loads(blob, allow_insecure=True)


def _job(tmp_path, scheme, secret, **terms):
    probe = scheme.encrypt(np.zeros((1, 3)))
    spec = jobs.JobSpec(job_id=jobs.new_job_id(), key_id=secret.key_id, scheme=scheme.name,
                        params_id=scheme.params_id, terms=RefreshTerms(**terms),
                        targets=[scheme.refresh_target_signature(probe, None)], scale_log2=math.log2(probe.scale),
                        model={"task": "test"})
    jobs.write_spec(tmp_path, spec)
    return spec


def test_a_closed_job_is_never_served_and_its_key_is_gone(tmp_path):
    keys = tmp_path / "job"
    lc.keygen("vhe", keys, sizes=(1, 3))
    scheme, _, secret = lc.load_owner(keys, allow_insecure=True)
    spec = _job(keys, scheme, secret)
    lc.destroy_secret(keys)
    spec.state = "closed"
    jobs.write_spec(keys, spec)
    with pytest.raises(jobs.JobError, match="closed"):
        KeyService.from_job(keys, allow_insecure=True)
    assert not (keys / lc.SECRET_FILE).exists()


def test_a_retried_request_neither_spends_twice_nor_shows_a_second_view(tmp_path):
    scheme = he_core.get_scheme("vhe")
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, 3)))
    spec = _job(tmp_path, scheme, secret, refreshes=10)
    service = KeyService(scheme, secret, spec, jobs.Journal(tmp_path))
    payload = protocol.pack({"request_id": "ab" * 16, "target": None}, ser.dumps(scheme.encrypt(np.ones((1, 3)))))
    seen = []
    real = scheme.reencrypt_masked
    scheme.reencrypt_masked = lambda *a, **k: seen.append(1) or real(*a, **k)
    try:
        answers = [service.handle(REENCRYPT, payload)[1] for _ in range(3)]
    finally:
        del scheme.reencrypt_masked
    assert len(set(answers)) == 1 and len(seen) == 1 and service.journal.refreshes == 1
    service.journal.close()


def test_a_stalled_client_is_dropped_within_the_frame_deadline(tmp_path):
    """A peer that sends one byte at a time would hold the single-threaded service forever; it is cut off."""
    address = f"unix:{tmp_path / 'run' / 's.sock'}"
    with listen(address, frame_seconds=0.5) as listener:
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.connect(str(tmp_path / "run" / "s.sock"))
        conn = listener.accept(timeout=5)
        raw.send(b"H")  # the first byte of a frame, then nothing
        start = time.monotonic()
        with pytest.raises(KeyServiceError):
            conn.recv()
        assert time.monotonic() - start < 3
        raw.close()
    with pytest.raises(KeyServiceError):
        connect(address, timeout=1)  # the listener is gone and its socket with it
