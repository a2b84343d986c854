"""henn on Dask: encrypted batch inference and data-parallel training over a cluster's workers (issue #14).

* :mod:`~henn.distributed.cluster`: which cluster (a local one on loopback by default,
  an existing one over TLS), and the checks that keep an unauthenticated scheduler out;
* :mod:`~henn.distributed.wire`: ciphertexts and public keys cross processes in the
  project's own format; secret keys never do;
* :mod:`~henn.distributed.inference`: the server role spread over workers, the answer
  budget kept by the driver;
* :mod:`~henn.distributed.isolation`: the key holder keeps its secret key in a process
  that never runs a Dask client; a child process runs the server role.
* :mod:`~henn.distributed.training` (with :mod:`.training_worker`, :mod:`henn.keyservice.local_job`,
  :mod:`.sentiment`): data-parallel encrypted-weight training in synchronous FedAvg rounds.

Needs the ``distributed`` extra (``pip install "henn[distributed]"``).
"""
from .cluster import Cluster, ClusterError, ClusterUnreachableError, cores, resolve
from .inference import ClusterReport, ClusterServer, InferencePlugin, audit_worker
from .isolation import ClusterProcess, predict_on_cluster
from .training import ClusterTrainReport, DistributedTrainingError, train_on_cluster
from .wire import Wire, accept_insecure

__all__ = ["Cluster", "ClusterError", "ClusterProcess", "ClusterReport", "ClusterServer", "ClusterTrainReport",
           "ClusterUnreachableError", "DistributedTrainingError", "InferencePlugin", "Wire", "accept_insecure",
           "audit_worker", "cores", "predict_on_cluster", "resolve", "train_on_cluster"]
