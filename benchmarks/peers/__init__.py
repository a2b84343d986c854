"""henn's CKKS next to other HE libraries, with equal parameters, in one process.

``python -m benchmarks.peers`` runs the op-level comparison (``compare``) and the
encrypted logistic-regression training comparison (``training``); ``--help`` lists the
options. Peers that are not installed are reported as skipped.

Every library runs on one thread: the environment variables below are set before any
peer is imported (an explicit setting by the caller is kept and recorded).
"""
import os

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "HENN_THREADS")
for _var in THREAD_VARS:
    os.environ.setdefault(_var, "1")
