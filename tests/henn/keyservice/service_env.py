"""What the key service tests share: a job for a scheme and key, and a service answering in a thread."""
from __future__ import annotations

import contextlib
import math
import threading

import numpy as np

from henn import jobs
from henn.keyholder import RefreshTerms
from henn.keyservice import KeyService

SHAPE = (2, 3)


@contextlib.contextmanager
def serving(service: KeyService, address: str):
    """The service answering on ``address`` in a thread while the block runs."""
    ready = threading.Event()
    thread = threading.Thread(target=service.serve, args=(address,), kwargs={"ready": lambda _: ready.set()},
                              daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield
    finally:
        service.stop()
        thread.join(10)


def make_job(scheme, secret, keys_dir, **terms) -> jobs.JobSpec:
    probe = scheme.encrypt(np.zeros(SHAPE))
    spec = jobs.JobSpec(job_id=jobs.new_job_id(), key_id=secret.key_id, scheme=scheme.name,
                        params_id=scheme.params_id,
                        terms=RefreshTerms(**{"refreshes": 50, "releases": 5, "min_aggregate": 10, **terms}),
                        targets=[scheme.refresh_target_signature(probe, None)], scale_log2=math.log2(probe.scale),
                        model={"task": "test"})
    keys_dir.mkdir(mode=0o700, exist_ok=True)
    jobs.write_spec(keys_dir, spec)
    return spec
