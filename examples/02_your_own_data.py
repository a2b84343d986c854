"""Any MLP on your own tabular data, trained with every weight encrypted.

    python examples/02_your_own_data.py                         # sklearn's wine data, 13 -> 16 -> 3
    python examples/02_your_own_data.py --csv data.csv --label target --hidden 32
    python examples/02_your_own_data.py --scheme plain --epochs 3

The CSV needs a header; the label column may hold any values (classes are sorted).
"""
from __future__ import annotations

import argparse
import csv
import sys
import warnings

import numpy as np

from henn import activations
from henn.keyholder import RefreshTerms
from henn.layers import Linear
from henn.losses import MSELoss, one_hot
from henn.module import Sequential
from henn.training.fit import SinglePartyWarning, fit, in_process_keyholder, release_outputs


def load(path: str | None, label: str) -> tuple[np.ndarray, np.ndarray]:
    if path is None:
        from sklearn.datasets import load_wine
        return load_wine(return_X_y=True)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or label not in rows[0]:
        raise SystemExit(f"{path}: no column {label!r}")
    features = [k for k in rows[0] if k != label]
    return np.array([[float(r[k]) for k in features] for r in rows]), np.array([r[label] for r in rows])


def build(scheme, sizes: list[int], seed: int) -> Sequential:
    act = activations.square()
    rng = np.random.default_rng(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(Linear.init(scheme, a, b, init_scale=np.sqrt(3.0 / a), rng=rng, encrypted_input=i > 0))
        if i < len(sizes) - 2:
            layers.append(act)
    return Sequential(*layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv")
    parser.add_argument("--label", default="label")
    parser.add_argument("--hidden", type=int, nargs="*", default=[16])
    parser.add_argument("--scheme", default="ckks")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    X, labels = load(args.csv, args.label)
    classes, y = np.unique(labels, return_inverse=True)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(X))
    cut = int(0.75 * len(X))
    train, test = order[:cut], order[cut:]
    mean, std = X[train].mean(0), X[train].std(0) + 1e-12
    X = np.clip((X - mean) / (3 * std), -2, 2)  # a stated bound on every input
    sizes = [X.shape[1], *args.hidden, len(classes)]

    warnings.simplefilter("ignore", SinglePartyWarning)
    shape = build(in_process_keyholder("plain", [1])[0], sizes, args.seed)
    scheme, keyholder = in_process_keyholder(args.scheme, shape, terms=RefreshTerms(min_aggregate=min(100, cut)))
    model = build(scheme, sizes, args.seed)
    history = fit(model, X[train], one_hot(y[train], len(classes)), keyholder=keyholder, lr=args.lr,
                  epochs=args.epochs, batch_size=32, loss=MSELoss(reduction="row"), weight_decay=0.02,
                  random_state=args.seed, progress=sys.stderr.isatty())
    # the owner decrypts the trained weights (flooded releases) and evaluates in the clear
    weights = [release_outputs(keyholder, p.value) for p in model.parameters()]  # re-encrypted by the key holder, then flooded
    h = X[test]
    for i, layer in enumerate(l for l in model.layers if isinstance(l, Linear)):
        w, b = weights[2 * i], weights[2 * i + 1]
        h = h @ (w.T if layer.encrypted_input else w) + b
        if i < len(sizes) - 2:
            h = activations.square().value(h)
    accuracy = float((h.argmax(1) == y[test]).mean())
    print(f"{'-'.join(map(str, sizes))} on {args.scheme}: test accuracy {accuracy:.3f}, "
          f"{keyholder.refresh_rounds} refreshes, {history.seconds:.1f} s")


if __name__ == "__main__":
    main()
