"""``henn train sentiment`` and ``henn evaluate sentiment``: the IMDB network with encrypted weights.

``train`` reads the reviews, holds ``--validation`` of them out (fixed ``--split-seed``),
builds the vocabulary on the rest, trains one encrypted network per review with
SGD, predicts the held-out reviews encrypted (the key holder decrypts only the
outputs), and also decrypts the weights to predict in the clear and check the two
agree. ``--twin`` trains the plaintext twin identically for comparison.
``evaluate`` runs a saved encrypted model on a split of a data directory.

The model's life across parties (see :mod:`henn.lifecycle`):

* owner: ``train sentiment --data ROOT --init PLAIN.npz`` writes the initial weights,
  vocabulary, config and validation split; ``henn keygen --model PLAIN.npz`` and
  ``henn encrypt-model`` make the encrypted model file;
* trainer: ``train sentiment --model FILE --data ROOT --part K/M --out FILE`` trains on
  the K-th of M disjoint parts of the training split inside
  :func:`henn.lifecycle.public_only`: no secret key is read and nothing is decrypted.
  With ``--keyholder ADDRESS`` it refreshes through the owner's key service
  (``henn serve-keys``, :mod:`henn.keyservice`): masked re-encryptions only, so a whole
  part trains on ``vhe`` or ``ckks``. Without it a scheme with a budget stops with a
  clear error when the budget runs out (on ``vhe`` after some tens of IMDB reviews; on
  ``ckks`` at the first review, whose logit must be re-encrypted before the sigmoid);
  ``--until-exhausted`` then writes the model trained so far and reports
  ``next_start`` for a file round trip through the owner (``henn decrypt-model`` +
  ``henn encrypt-model``, then ``--start next_start``);
* owner: ``evaluate sentiment --model FILE --keys DIR --split validation`` (or
  ``henn decrypt-model``).

Modules: :mod:`.parsers` (the options), :mod:`.train` (training in one process),
:mod:`.parties` (``--init`` and the trainer's ``--model``/``--out``), :mod:`.evaluate`,
:mod:`.inputs` (data, split, randomness). ``henn.cli`` registers the parsers.
"""
from __future__ import annotations

from .evaluate import run_evaluate
from .parsers import add_evaluate_parser, add_train_parser
from .train import run_train

__all__ = ["add_evaluate_parser", "add_train_parser", "run_evaluate", "run_train"]
