"""Train XOR with encrypted weights: the smallest end-to-end use of henn.fit.

    python examples/01_xor.py                    # 128-bit CKKS (a few minutes on one core)
    python examples/01_xor.py --scheme plain     # the plaintext twin: instant

The key holder lives in this process (henn warns: trainer and key holder are then one
party); `henn jobs` and the key service keep them apart (see the README).
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np

import henn
from henn import activations
from henn.keyholder import RefreshTerms
from henn.layers import Linear
from henn.module import Sequential
from henn.training.fit import SinglePartyWarning, fit, in_process_keyholder, predict, release_outputs

X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
Y = np.array([[0.0], [1.0], [1.0], [0.0]])


def build(scheme, seed: int) -> Sequential:
    act = activations.sigmoid_lsq(3, 4.0)  # one object, used twice: activations hold no state
    rng = np.random.default_rng(seed)
    return Sequential(Linear.init(scheme, 2, 4, init_scale=2.0, rng=rng), act,
                      Linear.init(scheme, 4, 1, init_scale=2.0, rng=rng, encrypted_input=True), act)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", default="ckks")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=25)
    args = parser.parse_args()

    warnings.simplefilter("ignore", SinglePartyWarning)  # this example is one party on purpose
    shape = build(in_process_keyholder("plain", [1])[0], args.seed)  # the network's depth and sizes
    scheme, keyholder = in_process_keyholder(args.scheme, shape, terms=RefreshTerms(min_aggregate=4))
    model = build(scheme, args.seed)
    history = fit(model, X, Y, keyholder=keyholder, lr=4.0, epochs=args.epochs, batch_size=4, shuffle=False)
    out = release_outputs(keyholder, predict(model, X, keyholder=keyholder))
    print(f"henn {henn.__version__} on {args.scheme}: loss {history.losses[0]:.4f} -> {history.losses[-1]:.4f}, "
          f"{keyholder.refresh_rounds} refreshes, {history.seconds:.1f} s")
    print("predictions", np.round(out.ravel(), 3), "correct", int(((out > 0.5) == (Y > 0.5)).sum()), "of 4")


if __name__ == "__main__":
    main()
