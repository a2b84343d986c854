"""Training-level comparison: encrypted logistic regression on the breast-cancer data.

The recipe is the one of TenSEAL's encrypted-training tutorial, re-implemented here:
standardised features, an 80/20 split, the degree-3 sigmoid approximation
``0.5 + 0.197 x - 0.004 x^3``, data *and* weights encrypted, full-batch gradient steps
(one update per epoch: ``w <- w - lr (mean gradient + 0.05 w)``; ``lr = 0.1`` where the
tutorial has 1, see :data:`LR`), and after each epoch the key holder refreshes the
weights (decrypts and re-encrypts them), as the tutorial does.
Three runs share the initial weights and the split:

* ``clear``   — the same arithmetic in numpy (the polynomial sigmoid included);
* ``tenseal`` — TenSEAL CKKSVector, one vector per sample, N = 8192, primes
  ``[40, 21 x 6, 40]`` bits and scale 2^21 (the tutorial's parameters), one thread;
* ``henn``    — the ``he_core`` scheme interface: the whole training set in one batched
  ciphertext (rows = samples), ``inner``, ``polyval``, ``mul``, ``row_sum``. With ``ckks``
  it runs with the tutorial's ring and primes (``tutorial``) and with the smallest
  128-bit set of the same depth at scale 2^40 (``N16384``).

Each reports seconds per epoch (encryption of the data set is done once, before the
first epoch, and reported separately) and test accuracy after every epoch, measured
on the clear test set with the decrypted weights. For every henn run a last line gives
the speed-up over TenSEAL (ratio of the median seconds per epoch; the issue's goal is
at least 10x) and the largest accuracy gap to the clear run over the epochs (goal: at
most 0.5 point), each marked "meets" or "misses".

    python -m benchmarks.peers train --quick          # 2 epochs on 32 samples
    python -m benchmarks.peers train --scheme ckks    # the full 5 epochs
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import time
from typing import Sequence

import numpy as np

SIGMOID3 = (0.5, 0.197, 0.0, -0.004)
REG = 0.05
# The tutorial steps with learning rate 1. On this data set (30 correlated features) that
# diverges even in the clear: max |x.w| grows 1.8, 24, 149, 3e4, 3e11 over five epochs, far
# outside the range where the cubic approximates a sigmoid, and TenSEAL's 40-bit first
# prime at scale 2^21 wraps around (test accuracy 0.37 after epoch 3 in our run).
# With 0.1, max |x.w| stays below 7 and the clear run reaches 0.93.
LR = 0.1
# The goals: henn at least this many times faster per epoch than TenSEAL's recipe,
# and within this many points (percent) of the clear run's test accuracy after every epoch.
GOAL_SPEEDUP = 10.0
GOAL_GAP_POINTS = 0.5
TENSEAL_BITS = (40, 21, 21, 21, 21, 21, 21, 40)
TENSEAL_SCALE = 2.0**21


@dataclasses.dataclass
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclasses.dataclass
class Run:
    """One library's training: per-epoch seconds and test accuracy."""

    name: str
    status: str = "ok"
    reason: str = ""
    encrypt_s: float | None = None
    seconds: list[float] = dataclasses.field(default_factory=list)
    accuracy: list[float] = dataclasses.field(default_factory=list)
    # The (decrypted) weights after the last epoch, the bias last: for checking runs against each other.
    weights: list[float] = dataclasses.field(default_factory=list)


def load_data(samples: int | None = None, seed: int = 0) -> Data:
    """Breast-cancer data (shipped with scikit-learn), standardised on the training split.

    Args:
        samples: keep only this many training samples (quick runs).
        seed: seed of the split.
    """
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y.astype(np.float64), test_size=0.2, random_state=seed,
                                              stratify=y)
    scaler = StandardScaler().fit(x_tr)
    x_tr, x_te = scaler.transform(x_tr), scaler.transform(x_te)
    if samples is not None:
        x_tr, y_tr = x_tr[:samples], y_tr[:samples]
    return Data(x_tr, y_tr, x_te, y_te)


def initial_weights(features: int, seed: int = 0) -> tuple[np.ndarray, float]:
    gen = np.random.default_rng(seed)
    return gen.uniform(-0.1, 0.1, features), 0.0


def accuracy(data: Data, w: np.ndarray, b: float) -> float:
    """Test accuracy of the (decrypted) weights; sigmoid(z) > 0.5 exactly when z > 0."""
    return float(np.mean(((data.x_test @ w + b) > 0) == (data.y_test > 0.5)))


def sigmoid3(z: np.ndarray) -> np.ndarray:
    return np.polyval(SIGMOID3[::-1], z)


def step(w: np.ndarray, b: float, grad_w: np.ndarray, grad_b: float, n: int,
         lr: float = LR) -> tuple[np.ndarray, float]:
    """The tutorial's regularised full-batch update, with learning rate ``lr``."""
    return w - lr * (grad_w / n + REG * w), b - lr * grad_b / n


# --------------------------------------------------------------------------- clear
def train_clear(data: Data, epochs: int, lr: float = LR) -> Run:
    run = Run("clear")
    w, b = initial_weights(data.x_train.shape[1])
    for _ in range(epochs):
        start = time.perf_counter()
        err = sigmoid3(data.x_train @ w + b) - data.y_train
        w, b = step(w, b, data.x_train.T @ err, float(err.sum()), len(err), lr)
        run.seconds.append(time.perf_counter() - start)
        run.accuracy.append(accuracy(data, w, b))
    run.weights = [*map(float, w), float(b)]
    return run


# --------------------------------------------------------------------------- TenSEAL
def train_tenseal(data: Data, epochs: int, lr: float = LR) -> Run:
    """TenSEAL's tutorial recipe: one CKKSVector per sample, a Python loop over the samples.

    Its accuracies need not match the clear run: at the tutorial's scale 2^21 TenSEAL's
    own arithmetic is coarse (measured here on the first training sample: fresh
    encryption error about 2e-3, a 30-feature ``dot`` off by 0.5 to 1.7; at N = 16384 and
    scale 2^40 the same ``dot`` is right to 1e-5), so its gradient is noisy. That is
    the peer's result with its published parameters, not a difference in the recipe.
    """
    run = Run("tenseal")
    try:
        ts = importlib.import_module("tenseal")
    except ImportError as exc:
        return Run("tenseal", "skipped", f"tenseal not installed ({exc})")
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=list(TENSEAL_BITS), n_threads=1)
    ctx.global_scale = TENSEAL_SCALE
    ctx.generate_galois_keys()
    start = time.perf_counter()
    xs = [ts.ckks_vector(ctx, row.tolist()) for row in data.x_train]
    ys = [ts.ckks_vector(ctx, [float(v)]) for v in data.y_train]
    run.encrypt_s = time.perf_counter() - start
    w0, b0 = initial_weights(data.x_train.shape[1])
    w, b = ts.ckks_vector(ctx, w0.tolist()), ts.ckks_vector(ctx, [b0])
    n = len(xs)
    for _ in range(epochs):
        start = time.perf_counter()
        grad_w, grad_b = 0, 0
        for x, y in zip(xs, ys):
            err = (x.dot(w) + b).polyval(list(SIGMOID3)) - y
            grad_w = x * err + grad_w
            grad_b = err + grad_b
        w = w - (grad_w * (lr / n) + w * (lr * REG))
        b = b - grad_b * (lr / n)
        # Key-holder refresh: the depth is spent, so the weights are decrypted and re-encrypted.
        w_clear, b_clear = np.array(w.decrypt()), float(b.decrypt()[0])
        w, b = ts.ckks_vector(ctx, w_clear.tolist()), ts.ckks_vector(ctx, [b_clear])
        run.seconds.append(time.perf_counter() - start)
        run.accuracy.append(accuracy(data, w_clear, b_clear))
    run.weights = [*map(float, w_clear), b_clear] if epochs else []
    return run


# --------------------------------------------------------------------------- henn
# henn's ckks runs twice: with the tutorial's ring and primes (equal to TenSEAL's), and
# with the smallest 128-bit set that gives the same depth at scale 2^40.
CKKS_SETTINGS = {
    "tutorial": (8192, TENSEAL_BITS, TENSEAL_SCALE),
    "N16384": (16384, (60, 40, 40, 40, 40, 40, 40, 60), 2.0**40),
}


def _henn_scheme(name: str, setting: str | None):
    """The scheme; ``ckks`` with one of :data:`CKKS_SETTINGS`, other schemes with their defaults."""
    import he_core

    if name != "ckks":
        return he_core.get_scheme(name)
    from .adapters import Setting, ckks_parameters

    return he_core.get_scheme(name, ckks_parameters(Setting(*CKKS_SETTINGS[setting])))


def _labels_like_inner(scheme, y: np.ndarray, features: int):
    """The encrypted labels, shape (n, 1), laid out as ``scheme.inner`` lays out its result.

    A scheme may place the n inner products differently from a freshly encrypted (n, 1)
    batch (ckks leaves each one in its row's first slot, a stride of the row width apart),
    and subtracting differently laid out ciphertexts costs a gather every epoch (6.9 of
    7.7 s per epoch on N = 16384). So the labels go through one ``inner`` once, before
    training: a matrix holding y in its first column, against a row of ones.
    """
    matrix = np.zeros((len(y), features))
    matrix[:, 0] = y
    return scheme.inner(scheme.encrypt(matrix), scheme.encrypt(np.ones((1, features))))


def train_henn(data: Data, epochs: int, scheme_name: str, setting: str | None = None, lr: float = LR,
               scheme=None) -> Run:
    """The recipe, batched, through the ``he_core`` interface.

    One epoch is a handful of whole-batch operations on the ciphertext of the training
    matrix (rows = samples), not a loop over samples: ``inner`` (the weights' single row
    broadcasts over the samples), ``polyval``, ``mul`` (the error's size 1 broadcasts over
    the features) and ``row_sum``. The depth of one epoch is 5 (inner 1, cubic 2, mul 1,
    lr/n 1); the key holder then decrypts and re-encrypts the weights, as in the tutorial.

    Args:
        data: the split.
        epochs: full-batch gradient steps.
        scheme_name: registered scheme name (``plain``, ``ckks``, ...), also the run's label.
        setting: a key of :data:`CKKS_SETTINGS` (ckks only).
        lr: learning rate.
        scheme: an already built scheme instance to use instead (tests: a small insecure ring).

    Returns:
        The run; an error (too few levels, precision lost, ...) is recorded in
        ``status``/``reason`` rather than raised, so the other runs still report.
    """
    import he_core

    run = Run(f"henn-{scheme_name}" + (f"-{setting}" if setting else ""))
    n, features = data.x_train.shape
    try:
        scheme = scheme if scheme is not None else _henn_scheme(scheme_name, setting)
        keys = scheme.keygen(he_core.KeyRequirements(sizes=(features, 1), multiply=True))
        start = time.perf_counter()
        x_enc = scheme.encrypt(data.x_train)
        # lr/n multiplies the summed gradient, as in TenSEAL's recipe. Folding it into the
        # labels and the sigmoid's coefficients instead would save that level, but at the
        # tutorial's scale 2^21 the folded cubic coefficient (0.004 * 0.1 / 455 ~ 2^-20)
        # rounds to 2 units and the training drifts 30 points from the clear run.
        y_enc = _labels_like_inner(scheme, data.y_train, features)
        run.encrypt_s = time.perf_counter() - start
        w0, b0 = initial_weights(features)
        w, b = scheme.encrypt(w0[None, :]), scheme.encrypt([[b0]])
        for _ in range(epochs):
            start = time.perf_counter()
            z = scheme.add(scheme.inner(x_enc, w), b)  # (n, 1): rows of x against the one row of w
            err = scheme.sub(scheme.polyval(z, SIGMOID3), y_enc)  # sigmoid(z) - y, one row per sample
            # err's size 1 broadcasts over the features; row_sum adds up the samples.
            grad_sum = scheme.row_sum(scheme.mul(x_enc, err))
            # w - lr (grad_sum / n + REG w) = w - (lr / n) (grad_sum + n REG w): one multiplication
            # by lr/n for both terms, so they meet at one level and scale (n REG is a small factor,
            # which the ckks scheme absorbs into the scale without spending a level).
            step_w = scheme.mul_plain(scheme.add(grad_sum, scheme.mul_plain(w, n * REG)), lr / n)
            w = scheme.sub(w, step_w)
            b = scheme.sub(b, scheme.mul_plain(scheme.row_sum(err), lr / n))
            w_clear = scheme.decrypt_exact_local(w, keys.secret)[0]
            b_clear = float(scheme.decrypt_exact_local(b, keys.secret)[0, 0])
            w, b = scheme.encrypt(w_clear[None, :]), scheme.encrypt([[b_clear]])
            run.seconds.append(time.perf_counter() - start)
            run.accuracy.append(accuracy(data, w_clear, b_clear))
        run.weights = [*map(float, w_clear), b_clear]
    except Exception as exc:
        run.status, run.reason = "error", f"{type(exc).__name__}: {exc}"
    return run


def _default_scheme() -> str:
    from henn.bench.runner import available_schemes

    return "ckks" if "ckks" in available_schemes() else "plain"


def summary(runs: Sequence[Run], epochs: int) -> str:
    """Seconds per epoch and accuracy after every epoch, one line per run."""
    lines = [f"{'run':<14} {'encrypt data':>12} {'s/epoch':>9}  test accuracy after epoch 1..{epochs}"]
    for r in runs:
        if r.status != "ok":
            lines.append(f"{r.name:<14} {r.status}: {r.reason}")
            continue
        enc = "-" if r.encrypt_s is None else f"{r.encrypt_s:.2f} s"
        per_epoch = f"{np.median(r.seconds):.3g} s" if r.seconds else "-"
        lines.append(f"{r.name:<14} {enc:>12} {per_epoch:>9}  " + " ".join(f"{a:.3f}" for a in r.accuracy))
    lines.extend(comparison_lines(runs))
    return "\n".join(lines)


def speedup(peer: Run, run: Run) -> float | None:
    """How many times faster ``run`` is than ``peer`` per epoch (medians), or None if either did not run."""
    if peer.status != "ok" or run.status != "ok" or not peer.seconds or not run.seconds:
        return None
    return float(np.median(peer.seconds) / np.median(run.seconds))


def max_gap(reference: Run, run: Run) -> float | None:
    """Largest difference in test accuracy, in points (percent), over the epochs both ran."""
    if reference.status != "ok" or run.status != "ok" or not run.accuracy:
        return None
    pairs = zip(reference.accuracy, run.accuracy)
    return max(abs(a - b) for a, b in pairs) * 100


def comparison_lines(runs: Sequence[Run]) -> list[str]:
    """For every henn run: the speed-up over TenSEAL and the accuracy gap to the clear run.

    The issue's goals are a speed-up of at least :data:`GOAL_SPEEDUP` and a gap of at most
    :data:`GOAL_GAP_POINTS` points after every epoch; each line says whether they are met.
    """
    by_name = {r.name: r for r in runs}
    clear, peer = by_name.get("clear"), by_name.get("tenseal")
    lines = []
    for r in runs:
        if not r.name.startswith("henn"):
            continue
        ratio = speedup(peer, r) if peer else None
        gap = max_gap(clear, r) if clear else None
        ratio_text = "-" if ratio is None else f"{ratio:.1f}x ({'meets' if ratio >= GOAL_SPEEDUP else 'misses'} " \
            f">= {GOAL_SPEEDUP:g}x)"
        gap_text = "-" if gap is None else f"{gap:.2f} points ({'meets' if gap <= GOAL_GAP_POINTS else 'misses'} " \
            f"<= {GOAL_GAP_POINTS:g})"
        lines.append(f"{r.name}: tenseal s/epoch / henn s/epoch = {ratio_text}; "
                     f"max accuracy gap to clear = {gap_text}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers train", description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=LR, help=f"learning rate (default {LR}; the tutorial's 1 diverges)")
    parser.add_argument("--samples", type=int, help="use only this many training samples")
    parser.add_argument("--scheme", help="henn scheme (default: ckks when installed, else plain)")
    parser.add_argument("--skip-tenseal", action="store_true")
    parser.add_argument("--ckks-settings", nargs="+", choices=sorted(CKKS_SETTINGS),
                        help="henn ckks parameter sets (default: all; tutorial only with --quick)")
    parser.add_argument("--quick", action="store_true", help="2 epochs on 32 training samples")
    parser.add_argument("--json", dest="json_path", metavar="FILE")
    args = parser.parse_args(argv)
    epochs = 2 if args.quick else args.epochs
    samples = 32 if args.quick and args.samples is None else args.samples
    data = load_data(samples)
    scheme = args.scheme or _default_scheme()
    if scheme != "ckks" and args.scheme is None:
        print(f"note: henn's ckks scheme is not available yet; the henn run uses {scheme!r}", file=sys.stderr)
    runs = [train_clear(data, epochs, args.lr)]
    runs.append(Run("tenseal", "skipped", "--skip-tenseal") if args.skip_tenseal
                else train_tenseal(data, epochs, args.lr))
    if scheme == "ckks":
        settings = args.ckks_settings or (["tutorial"] if args.quick else list(CKKS_SETTINGS))
        runs.extend(train_henn(data, epochs, scheme, name, args.lr) for name in settings)
    else:
        runs.append(train_henn(data, epochs, scheme, lr=args.lr))
    print(f"logistic regression, breast cancer: {len(data.y_train)} train / {len(data.y_test)} test samples, "
          f"{epochs} epochs, learning rate {args.lr}, one thread")
    print(summary(runs, epochs))
    if args.json_path:
        from henn.bench import report

        with open(args.json_path, "w", encoding="utf-8") as fh:
            json.dump({"header": report.header(kind="peers-training", epochs=epochs, samples=len(data.y_train)),
                       "runs": [dataclasses.asdict(r) for r in runs]}, fh, indent=2)
    return 1 if any(r.status == "error" for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
