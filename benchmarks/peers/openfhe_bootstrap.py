"""OpenFHE's CKKS bootstrapping at the setting henn is compared with: one JSON line per secret.

    OMP_NUM_THREADS=1 taskset -c 1 /work/venv-ofhe/bin/python benchmarks/peers/openfhe_bootstrap.py \\
        --secret uniform sparse [--inputs 3] [--digits auto]

The ``openfhe`` wheel imports on Python 3.10 only, so this runs in its own virtual
environment and imports nothing from henn (:mod:`benchmarks.peers.bootstrap_side_by_side`
starts it as a subprocess and reads its lines). The setting is issue #15's:
``HEStd_128_classic``, N = 2^16, FLEXIBLEAUTO scaling with 59-bit scaling primes and a
60-bit first prime, hybrid key switching, level budget [4, 4] (OpenFHE lowers each to
log2(slots)), sparse packing (8 slots), ``--levels-after`` levels left for the caller.
``--digits auto`` takes the fewest key-switching digits OpenFHE accepts at that N under
the 128-bit table (fewer digits make P, hence log QP, larger). One thread: OpenFHE's
wheel parallelises with OpenMP only, so ``OMP_NUM_THREADS`` is set before it is imported.

Inputs are uniform in [-1, 1], encrypted at the last level (OpenFHE's own examples do the
same), bootstrapped once each; precision = -log2 |error| per slot, as henn's figures
(:mod:`benchmarks.he_core.schemes.ckks.bootstrap_figures`) define it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import sys
import tempfile
import time

SECRETS = {"uniform": "UNIFORM_TERNARY", "sparse": "SPARSE_TERNARY"}
# OpenFHE's SPARSE_TERNARY key generation samples exactly this many non-zero coefficients
# (src/pke/lib/schemebase/base-pke.cpp, KeyGen; 192 since the fix for its issue 311).
SPARSE_WEIGHT = 192
# a ring OpenFHE accepts at HEStd_NotSet: its keys show the special primes P of a set
PROXY_RING = 1 << 10
MODULUS_FIELD = re.compile(r'"cm": \{[^{}\[]*?"v": (\d+)')


def _openfhe(threads: int):
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by OpenMP when the library loads
    import openfhe
    return openfhe


def parameters(ofhe, secret: str, ring: int, digits: int, depth: int, scale_bits: int, secure: bool):
    p = ofhe.CCParamsCKKSRNS()
    p.SetSecretKeyDist(getattr(ofhe, SECRETS[secret]))
    p.SetSecurityLevel(ofhe.HEStd_128_classic if secure else ofhe.HEStd_NotSet)
    p.SetRingDim(ring)
    p.SetScalingTechnique(ofhe.FLEXIBLEAUTO)
    p.SetScalingModSize(scale_bits)
    p.SetFirstModSize(60)
    p.SetKeySwitchTechnique(ofhe.HYBRID)
    p.SetNumLargeDigits(digits)
    p.SetMultiplicativeDepth(depth)
    return p


def context(ofhe, params):
    cc = ofhe.GenCryptoContext(params)
    for feature in (ofhe.PKE, ofhe.KEYSWITCH, ofhe.LEVELEDSHE, ofhe.ADVANCEDSHE, ofhe.FHE):
        cc.Enable(feature)
    return cc


def _moduli(text: str) -> set[int]:
    return {int(v) for v in MODULUS_FIELD.findall(text)}


def log_q(ofhe, cc) -> float:
    """log2 Q from the context's own serialised moduli (Q alone: P is not serialised)."""
    return sum(math.log2(q) for q in _moduli(ofhe.Serialize(cc, ofhe.JSON)))


def log_p(ofhe, secret: str, digits: int, depth: int, scale_bits: int) -> float:
    """log2 P: the same set on a small ring, read from a relinearisation key's moduli.

    OpenFHE sizes P from the bit sizes of Q's primes and the digit count, not from N,
    so the small ring's P has the same primes' sizes (60 bits each here).
    """
    cc = context(ofhe, parameters(ofhe, secret, PROXY_RING, digits, depth, scale_bits, secure=False))
    keys = cc.KeyGen()
    cc.EvalMultKeyGen(keys.secretKey)
    key = cc.GetEvalMultKeyVector(keys.secretKey.GetKeyTag())[0]
    q_and_p = _moduli(ofhe.Serialize(key, ofhe.JSON))
    return sum(math.log2(m) for m in q_and_p - _moduli(ofhe.Serialize(cc, ofhe.JSON)))


def secure_context(ofhe, secret, ring, digits, depth, scale_bits, secure=True):
    """(digits, context): the given digit count, or with ``digits=0`` the fewest OpenFHE accepts."""
    tries = [digits] if digits else range(1, depth + 2)
    for d in tries:
        try:
            return d, context(ofhe, parameters(ofhe, secret, ring, d, depth, scale_bits, secure))
        except RuntimeError as exc:  # what OpenFHE raises when N is below its table's
            reason = str(exc).strip().splitlines()[-1]
    raise SystemExit(f"cannot build a 128-bit context at N = {ring} with digits {list(tries)}: {reason}")


def key_bytes(cc, tag: str) -> int:
    """Bytes of the evaluation keys (relinearisation + rotations) in OpenFHE's binary format."""
    import openfhe as ofhe
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        paths = [os.path.join(tmp, "mult.bin"), os.path.join(tmp, "rot.bin")]
        cc.SerializeEvalMultKey(paths[0], ofhe.BINARY, tag)
        cc.SerializeEvalAutomorphismKey(paths[1], ofhe.BINARY, tag)
        return sum(os.path.getsize(p) for p in paths)


def measure(secret: str, ring: int, slots: int, inputs: int, levels_after: int, budget: list[int],
            digits: int, scale_bits: int, seed: int, threads: int, with_key_bytes: bool, secure: bool = True) -> dict:
    import numpy as np
    ofhe = _openfhe(threads)
    dist = getattr(ofhe, SECRETS[secret])
    effective = [max(1, min(b, int(math.log2(slots)))) for b in budget]  # OpenFHE's own lowering
    boot_depth = ofhe.CryptoContext.GetBootstrapDepth(effective, dist)
    depth = levels_after + boot_depth
    load_before = [round(v, 2) for v in os.getloadavg()]
    digits, cc = secure_context(ofhe, secret, ring, digits, depth, scale_bits, secure)
    start = time.perf_counter()
    cc.EvalBootstrapSetup(budget, [0, 0], slots)
    setup_s = time.perf_counter() - start
    start, start_cpu = time.perf_counter(), time.process_time()
    keys = cc.KeyGen()
    cc.EvalMultKeyGen(keys.secretKey)
    cc.EvalBootstrapKeyGen(keys.secretKey, slots)
    keygen_s, keygen_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    tag = keys.secretKey.GetKeyTag()
    rng = np.random.default_rng(seed)
    times, cpu, mins, medians, left = [], [], [], [], []
    for _ in range(inputs):
        x = rng.uniform(-1, 1, slots)
        pt = cc.MakeCKKSPackedPlaintext(x.tolist(), 1, depth - 1, None, slots)
        ct = cc.Encrypt(keys.publicKey, pt)
        start, start_cpu = time.perf_counter(), time.process_time()
        out = cc.EvalBootstrap(ct)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        # FLEXIBLEAUTO leaves a ciphertext at scaling degree 2 until its next product: one level spent
        left.append(depth - out.GetLevel() - (out.GetNoiseScaleDeg() - 1))
        dec = cc.Decrypt(keys.secretKey, out)
        dec.SetLength(slots)
        err = np.abs(np.array(dec.GetRealPackedValue()) - x)
        bits = -np.log2(np.maximum(err, 2.0**-60))
        mins.append(float(bits.min()))
        medians.append(float(np.median(bits)))
    row = {
        "library": "OpenFHE", "version": getattr(ofhe, "__version__", "1.6.1 (wheel)"), "secret": SECRETS[secret],
        "hamming_weight": SPARSE_WEIGHT if secret == "sparse" else None, "N": cc.GetRingDimension(),
        "slots": slots, "security": "HEStd_128_classic (OpenFHE's ternary table)" if secure else "insecure (trial ring)", "scaling": "FLEXIBLEAUTO",
        "scale_bits": scale_bits, "first_mod_bits": 60, "level_budget": budget, "level_budget_effective": effective,
        "depth": depth, "bootstrap_depth": boot_depth, "dnum": digits,
        "log2_q": round(log_q(ofhe, cc), 1), "log2_p": round(log_p(ofhe, secret, digits, depth, scale_bits), 1),
        "levels_left": min(left), "setup_s": round(setup_s, 2), "keygen_s": round(keygen_s, 2),
        "keygen_cpu_s": round(keygen_cpu, 2), "rotation_keys": len(cc.GetExistingEvalAutomorphismKeyIndices(tag)),
        "bootstrap_s_median": round(float(np.median(times)), 3),
        "bootstrap_cpu_s_median": round(float(np.median(cpu)), 3), "inputs": inputs,
        "precision_bits_min": round(min(mins), 2), "precision_bits_median": round(float(np.median(medians)), 2),
        "threads": threads, "load_before": load_before,
    }
    row["log2_qp"] = round(row["log2_q"] + row["log2_p"], 1)
    row["key_bytes"] = key_bytes(cc, tag) if with_key_bytes else None
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    row["load_after"] = [round(v, 2) for v in os.getloadavg()]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--secret", nargs="+", choices=sorted(SECRETS), default=["uniform", "sparse"])
    ap.add_argument("--ring", type=int, default=1 << 16)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--inputs", type=int, default=3)
    ap.add_argument("--levels-after", type=int, default=2)
    ap.add_argument("--level-budget", type=int, nargs=2, default=[4, 4])
    ap.add_argument("--digits", default="auto", help="key-switching digits (dnum), or auto")
    ap.add_argument("--scale-bits", type=int, default=59)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--insecure", action="store_true", help="HEStd_NotSet: a trial run on a small ring")
    ap.add_argument("--no-key-bytes", action="store_true", help="skip serialising the keys to measure them")
    a = ap.parse_args(argv)
    digits = 0 if a.digits == "auto" else int(a.digits)
    for secret in a.secret:
        row = measure(secret, a.ring, a.slots, a.inputs, a.levels_after, a.level_budget, digits, a.scale_bits,
                      a.seed, a.threads, not a.no_key_bytes, not a.insecure)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
