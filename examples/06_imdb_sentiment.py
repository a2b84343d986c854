"""IMDB sentiment with encrypted weights: a text model from general layers, trained by henn.fit.

    python examples/06_imdb_sentiment.py --scheme vhe                 # 20,000 reviews, about half a minute
    python examples/06_imdb_sentiment.py --scheme ckks --limit 2000   # 128-bit CKKS, ~6 reviews/s on one core
    python examples/06_imdb_sentiment.py --data PATH/aclImdb-parent   # default ../shared/data/imdb or $HENN_IMDB

A review is the set of its vocabulary words: a sparse row (henn.Bags). The first layer
sums the encrypted table rows a review names (henn.EmbeddingBag: one gather forward, one
scatter of the gradient backward); a linear layer gives the logit; the loss is the
logistic loss through a polynomial sigmoid. The key holder lives in this process (one
party): `henn job create` and `henn serve-keys` keep it apart, and
`fit(..., keyholder="unix:PATH")` trains through the owner's service.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

import he_core
from henn import Bags, EmbeddingBag, Linear, Sequential, activations, fit, predict
from henn.data.imdb import load_imdb
from henn.losses import PolyLogisticLoss
from henn.tasks.sentiment import prepare, terms_for, whole_entries
from henn.tensor import EncTensor
from henn.training.fit import SinglePartyWarning, in_process_keyholder

HIDDEN = 8


def build(scheme, vocab: int, w12: np.ndarray) -> Sequential:
    """The tutorial's network: every word starts neutral, the output weights at random."""
    # The output weight is a one-row *table*: it meets the gathered rows in the table's
    # packing (for CKKS, coefficients), which a refresh cannot move it out of or into.
    out = EncTensor.encrypt(scheme, w12.reshape(1, -1), layout="table")
    return Sequential(EmbeddingBag.init(scheme, vocab, HIDDEN), Linear(out, None, encrypted_input=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("HENN_IMDB", "../shared/data/imdb"))
    parser.add_argument("--scheme", default="vhe")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N training reviews")
    parser.add_argument("--validation", type=int, default=5000)
    args = parser.parse_args()

    data = prepare(load_imdb(args.data), validation=args.validation, limit=args.limit, seed=0)
    vocab = len(data.vocab)
    w12 = he_core.OsRandom().normal(HIDDEN)
    loss = PolyLogisticLoss(activations.make("sigmoid_lsq", 5, 20.0))

    warnings.simplefilter("ignore", SinglePartyWarning)  # this example is one party on purpose
    shape = build(in_process_keyholder("plain", [1])[0], vocab, w12)

    def terms(keyed):  # the job's budgets: refreshes, releases and masked entries of this run
        return terms_for(len(data.train_ids), 1, HIDDEN, vocab=vocab, validation=len(data.val_ids),
                         whole_entries=whole_entries(keyed) if keyed.supports(he_core.Capability.REFRESH) else 1)

    scheme, keyholder = in_process_keyholder(args.scheme, shape, terms=terms)
    model = build(scheme, vocab, w12)
    history = fit(model, Bags(data.train_ids, vocab), data.train_labels, keyholder=keyholder, lr=0.002,
                  batch_size=1, loss=loss, shuffle=False, progress=sys.stderr.isatty() and "imdb")
    print(f"trained {len(data.train_ids)} reviews on {args.scheme} in {history.seconds:.1f} s "
          f"({len(data.train_ids) / history.seconds:.0f} reviews/s), {keyholder.refresh_rounds} refreshes; "
          f"released mean |p - y| {history.aggregates[-1]['value']:.3f}" if history.aggregates else "")

    # Validation: encrypted predictions, each released (flooded) to the key holder's owner.
    packed = not scheme.in_default_layout(model[0].weight.value.ct)  # a CKKS table: one review at a time
    step, p = (1 if packed else 1000), []
    for lo in range(0, len(data.val_ids), step):
        part = Bags(data.val_ids[lo:lo + step], vocab)
        p.extend(keyholder.release(predict(model, part, keyholder=keyholder, loss=loss))[:, 0])
    accuracy = float(np.mean((np.array(p) > 0.5) == (data.val_labels == 1)))
    print(f"validation accuracy {accuracy:.4f} on {len(data.val_ids)} reviews (encrypted predictions)")


if __name__ == "__main__":
    main()
