"""``henn job create|close|status`` and ``henn serve-keys``: the owner's side of a training job.

* ``henn job create --keys DIR --model PLAIN.npz --out TO_TRAINER.henn [--owner OWNER_DIR] [--budget N]``:
  a fresh key pair in DIR (which must not hold one: a key serves one job), the model
  encrypted under it with the job's public terms attached (signed when ``--owner`` is
  given), and the refresh targets its training asks for, learnt from a dry run;
* ``henn serve-keys --keys DIR --listen unix:PATH|tls://HOST:PORT``: serve the job;
* ``henn job close --keys DIR [--model FROM_TRAINER.henn --out PLAIN.npz]``: release the
  returned model (noise-flooded for the job's release budget), then destroy the job's
  secret key; a closed job is never served again;
* ``henn job status --keys DIR``: budgets spent, the aggregates released to the owner.

Every handler returns an exit status: 0, or 1 with one ``henn <command>: error: ...``
line on stderr (2 is argparse's usage error).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import signal
from pathlib import Path

import he_core

from .. import jobs
from .. import lifecycle as lc
from ..keyservice import KeyService
from ..keyservice.pki import make_pki
from ..tasks import sentiment as T
from ..tasks.sentiment import SentimentConfig
from .common import guarded


def _passphrase(args: argparse.Namespace) -> bytes | None:
    path = getattr(args, "passphrase_file", None)
    return None if path is None else lc.read_passphrase(path)


# ---------------------------------------------------------------------------- create
def _create(args: argparse.Namespace) -> int:
    keys = Path(args.keys)
    if (keys / lc.SECRET_FILE).exists() or jobs.job_path(keys).exists():
        raise jobs.JobError(f"cannot create a job in {keys}: it already holds a key; a key serves one job only, "
                            "and nothing there is deleted (choose a new directory for the new job)")
    signer = lc.load_signer(args.owner, _passphrase(args)) if args.owner else None
    if args.from_job is not None:
        bundle, secret, meta = _rekeyed(args, keys, signer)
    else:
        bundle, secret, meta = _encrypted(args, keys, signer)
    spec = _spec(args, keys, bundle, secret, meta)
    bundle.meta["job"] = spec.public()
    lc.save_encrypted_model(args.out, bundle, signer=signer)
    if args.tls_names:
        make_pki(keys / "tls", server_names=tuple(args.tls_names))
    print(f"job create: job {spec.job_id}, {spec.scheme} key {spec.key_id} in {keys}; budget {spec.terms.refreshes} "
          f"refreshes, {spec.terms.releases} releases, {len(spec.targets)} refresh targets; model -> {args.out}"
          f"{' (signed)' if signer else ''}")
    if args.json:
        print(json.dumps({"job": spec.public(), "model": str(args.out), "signed": signer is not None}))
    return 0


def _sentiment_meta(meta: dict, source) -> dict:
    if not isinstance(meta, dict) or meta.get("task") != "sentiment":
        raise jobs.JobError(f"cannot create a job for {source}: jobs serve the sentiment trainer (henn train "
                            "sentiment --init makes its model)")
    return meta


def _encrypted(args: argparse.Namespace, keys: Path, signer):
    """A fresh key pair and the plaintext model encrypted under it."""
    plain = lc.read_plain_model(args.model)
    meta = _sentiment_meta(plain.meta, args.model)
    params = he_core.scheme_class(args.scheme).params_for_depth(int(meta.get("depth", T.STEP_DEPTH)))
    pair = lc.keygen(args.scheme, keys, sizes=lc.required_sizes(plain), params=params,
                     passphrase=_passphrase(args), signer=signer)
    scheme, _public = lc.load_public(keys, allow_insecure=args.allow_insecure)
    return lc.encrypt_model(plain, scheme), pair.secret, meta


def _rekeyed(args: argparse.Namespace, keys: Path, signer):
    """A fresh key pair and a model returned under an earlier job's key, moved to it without decrypting."""
    source = lc.load_encrypted_model(args.model, allow_insecure=args.allow_insecure)
    meta = _sentiment_meta(source.bundle.meta.get("model"), args.model)
    public = source.bundle.public
    pair = lc.keygen(source.scheme.name, keys, sizes=public.requirements.sizes, params=source.scheme.params,
                     passphrase=_passphrase(args), signer=signer)
    switch = lc.make_switch_key(args.from_job, keys, passphrase=_passphrase(args), allow_insecure=args.allow_insecure)
    moved = lc.rekey_model(source, switch, pair.public)
    moved.bundle.meta.pop("job", None)
    return moved.bundle, pair.secret, meta


def _spec(args: argparse.Namespace, keys: Path, bundle, secret, meta: dict) -> jobs.JobSpec:
    """The job's terms and targets (a dry run of the training step under the job's own key), written to job.json."""
    scheme, _public = lc.load_public(keys, allow_insecure=args.allow_insecure)
    config = SentimentConfig.from_dict(meta["config"])
    split = meta.get("split", {})
    reviews = int(split.get("reviews", 0)) - int(split.get("validation", 0))
    vocab = bundle.ciphertexts["W01"].shape[0]
    terms = T.terms_for(max(reviews, 1), args.epochs, config.hidden, vocab=vocab,
                        statistical_bits=args.statistical_bits, whole_entries=T.whole_entries(scheme))
    if args.budget is not None:
        terms = dataclasses.replace(terms, refreshes=args.budget)
    W01, w12 = bundle.ciphertexts["W01"], bundle.ciphertexts["w12"]
    spec = jobs.JobSpec(job_id=jobs.new_job_id(), key_id=secret.key_id, scheme=scheme.name,
                        params_id=scheme.params_id, terms=terms,
                        targets=T.learn_targets(scheme, secret, W01, w12, config, terms),
                        scale_log2=math.log2(W01.scale), model={"task": "sentiment", "source": str(args.model)})
    jobs.write_spec(keys, spec)
    return spec


# ---------------------------------------------------------------------------- serve
def _serve(args: argparse.Namespace) -> int:
    """Owner: serve a job until SIGTERM / SIGINT, then report the traffic."""
    service = KeyService.from_job(args.keys, passphrase=_passphrase(args), allow_insecure=args.allow_insecure)
    tls_dir = args.tls_dir or (Path(args.keys) / "tls" if str(args.listen).startswith("tls://") else None)

    def stop(signum, frame):  # noqa: ARG001 - signal handler signature
        service.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    hello = service.hello()
    try:
        service.serve(args.listen, tls_dir=None if tls_dir is None else str(tls_dir), ready=lambda where: print(
            f"serve-keys: job {hello['job']['job_id']} ({hello['scheme']} key {hello['key_id']}) listening on "
            f"{where}; masked re-encryptions and flooded aggregates only; stop with SIGTERM or Ctrl-C", flush=True),
            max_bytes=args.max_mb << 20, idle_seconds=args.idle_seconds)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        service.journal.close()
    counters = service.counters()
    if args.json:
        print(json.dumps({"key_id": hello["key_id"], "scheme": hello["scheme"], **counters}), flush=True)
    else:
        print(f"serve-keys: stopped after {counters['refresh_rounds']} refreshes and {counters['releases']} released "
              f"aggregates for job {counters['job_id']}, {counters['connections']} connections, {counters['errors']} "
              "refused requests", flush=True)
    return 0


# ---------------------------------------------------------------------------- close and status
def _close(args: argparse.Namespace) -> int:
    spec = jobs.read_spec(args.keys)
    if spec.state == "closed":
        raise jobs.JobError(f"cannot close job {spec.job_id}: it is closed already (its key is destroyed)")
    if (args.model is None) != (args.out is None):
        raise ValueError("cannot close the job: --model and --out go together (release the returned model)")
    released = None
    if args.model is not None:
        released = _release_model(args, spec)
    destroyed = lc.destroy_secret(args.keys)
    spec.state = "closed"
    jobs.write_spec(args.keys, spec)
    print(f"job close: job {spec.job_id} closed; secret key {destroyed} overwritten and removed"
          + ("" if released is None else f"; model released to {args.out} (min precision {released:.1f} bits)"))
    return 0


def _release_model(args: argparse.Namespace, spec: jobs.JobSpec) -> float:
    """Release the trainer's model: every tensor flooded for the job's release budget; returns the least precision."""
    model = lc.load_encrypted_model(args.model, allow_insecure=args.allow_insecure)
    _scheme, _public, secret = lc.load_owner(args.keys, _passphrase(args), allow_insecure=args.allow_insecure)
    flooding = he_core.Flooding(spec.terms.statistical_bits, spec.terms.releases,
                                min_precision_bits=he_core.flooding.MIN_PRECISION_BITS)
    plain = lc.decrypt_model(model, secret, args.keys, flooding=flooding)
    precision = {}
    for name, ct in model.bundle.ciphertexts.items():
        sigma = model.scheme.release_report(ct, flooding).get("value_sigma")
        top = float(abs(plain.arrays[name]).max()) if plain.arrays[name].size else 0.0
        if sigma and top > 0:
            precision[name] = round(math.log2(top / sigma), 2)
    plain.meta["release"] = {"job_id": spec.job_id, **flooding.describe(), "precision_bits": precision}
    lc.write_plain_model(args.out, plain)
    return min(precision.values(), default=math.inf)


def _status(args: argparse.Namespace) -> int:
    spec = jobs.read_spec(args.keys)
    journal = jobs.Journal(args.keys)
    journal.close()
    status = {"job_id": spec.job_id, "state": spec.state, "key_id": spec.key_id,
              "refreshes": [journal.refreshes, spec.terms.refreshes],
              "releases": [journal.releases, spec.terms.releases], "aggregates": journal.aggregates}
    if args.json:
        print(json.dumps(status))
    else:
        print(f"job {spec.job_id} ({spec.state}): {journal.refreshes} of {spec.terms.refreshes} refreshes, "
              f"{journal.releases} of {spec.terms.releases} releases")
        for entry in journal.aggregates:
            per_sample = entry["value"] / (entry.get("scale", 1.0) * entry["count"])
            print(f"  aggregate over {entry['count']} samples: {per_sample:.4f} per sample")
    return 0


# ---------------------------------------------------------------------------- parsers
def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``henn job ...`` and ``henn serve-keys``."""
    job = subparsers.add_parser("job", help="owner: create, close or inspect a training job (one fresh key each)")
    commands = job.add_subparsers(dest="job_command", metavar="ACTION", required=True)

    p = commands.add_parser("create", help="fresh keys, the encrypted model for the trainer, the job's terms")
    p.add_argument("--keys", required=True, type=Path, help="new key directory for the job (must not hold a key)")
    p.add_argument("--model", required=True, type=Path,
                   help="plaintext model (henn train sentiment --init), or with --from-job an encrypted model a "
                        "trainer returned")
    p.add_argument("--from-job", type=Path, metavar="KEYS",
                   help="re-key the --model file from this earlier job's key to the new one, without decrypting")
    p.add_argument("--out", required=True, type=Path, help="encrypted model file to send to the trainer")
    p.add_argument("--owner", type=Path, help="owner identity directory (henn owner init): sign the model file")
    p.add_argument("--scheme", default="ckks", help="scheme (default ckks; vhe needs --allow-insecure)")
    p.add_argument("--epochs", type=_positive, default=1, help="epochs the budget is sized for (default 1)")
    p.add_argument("--budget", type=_positive, help="refresh budget (default: the schedule's count plus 10%%)")
    p.add_argument("--statistical-bits", type=int, default=30, help="lambda for masks and flooding (default 30)")
    p.add_argument("--tls-names", nargs="+", metavar="NAME",
                   help="also make mutual-TLS certificates for these server names (for tls:// serving)")
    p.add_argument("--passphrase-file", type=Path, help="seal the job's secret key with this passphrase")
    p.add_argument("--allow-insecure", action="store_true", help="allow an insecure scheme (tests only)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=guarded(_create, "job create"))

    p = commands.add_parser("close", help="release the returned model (optional), destroy the job's secret key")
    p.add_argument("--keys", required=True, type=Path, help="the job's key directory")
    p.add_argument("--model", type=Path, help="the trainer's returned model, to release")
    p.add_argument("--out", type=Path, help="plaintext model to write (mode 600), noise-flooded")
    p.add_argument("--passphrase-file", type=Path)
    p.add_argument("--allow-insecure", action="store_true")
    p.set_defaults(func=guarded(_close, "job close"))

    p = commands.add_parser("status", help="budgets spent and aggregates released so far")
    p.add_argument("--keys", required=True, type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=guarded(_status, "job status"))

    p = subparsers.add_parser("serve-keys", help="owner: serve a job's masked refreshes (trainers: --keyholder)",
                              description="Hold a job's secret key in this process; answer masked re-encryptions "
                                          "within the job's terms and log the aggregates trainers release, until "
                                          "SIGTERM or Ctrl-C.")
    p.add_argument("--keys", required=True, type=Path, help="the job's key directory (henn job create)")
    p.add_argument("--listen", required=True, metavar="ADDRESS",
                   help="unix:PATH (a path in a 0700 directory; peers must be this user) or tls://HOST:PORT "
                        "(mutual TLS with the job's certificates)")
    p.add_argument("--tls-dir", type=Path, help="server certificates (default: the job's tls/ directory)")
    p.add_argument("--passphrase-file", type=Path)
    p.add_argument("--allow-insecure", action="store_true", help="serve a job under insecure parameters (tests)")
    p.add_argument("--max-mb", type=int, default=256, help="largest request accepted, in MiB (default 256)")
    p.add_argument("--idle-seconds", type=float, default=300.0, help="drop a connection silent this long")
    p.add_argument("--json", action="store_true", help="print the traffic counters as JSON when stopped")
    p.set_defaults(func=guarded(_serve, "serve-keys"))
