"""The ``coeffs`` deploy layout: a single linear layer answered on coefficient-packed queries.

The client packs each query's features into the coefficients of a block of the
plaintext polynomial (several queries per ciphertext, in disjoint blocks) and encrypts
under its own secret key; its keys are a public key only (no product key, no rotation
key). The server answers with one plaintext-polynomial product per ciphertext, the bias
at the output coefficients, a uniform one-time pad on every other coefficient (they hold
shifted correlations of the query and the weights) and the sanitisation (flooding and
re-randomisation). The scheme's side is :class:`he_core.protocols.CoeffAnswers`; a scheme
without it is refused here. Only a circuit of one linear layer deploys this way (a
logistic regression's logits, several outputs allowed).
"""
from __future__ import annotations

import math

import numpy as np

import he_core
from he_core import CapabilityError, Ciphertext, Flooding, protocols

from .circuit import Circuit, DeployError


def linear_layer(circuit: Circuit) -> tuple[np.ndarray, np.ndarray]:
    """The circuit's one layer ``(weight (features, outputs), bias (outputs,))``.

    Raises:
        DeployError: a circuit of more than one layer, or whose layer is not linear.
    """
    kinds = [layer[0] for layer in circuit.layers]
    if kinds != ["linear"]:
        raise DeployError(f"cannot deploy the coeffs layout: it answers a single linear layer, the circuit has "
                          f"layers {kinds}; use the rows or columns layout")
    return circuit.layers[0][1], circuit.layers[0][2]


def answering(scheme: he_core.Scheme) -> protocols.CoeffAnswers:
    """``scheme`` as a coefficient answerer.

    Raises:
        DeployError: the scheme lacks :class:`he_core.protocols.CoeffAnswers`.
    """
    try:
        return protocols.view(scheme, protocols.CoeffAnswers)
    except CapabilityError as exc:
        raise DeployError(f"cannot deploy the coeffs layout on {scheme.name}: {exc}") from None


def parameter_sets(scheme: he_core.Scheme):
    """The scheme's candidate sets for coefficient answers, smallest ring first."""
    view, step = answering(scheme), 0
    while (params := view.coeff_answer_params(step)) is not None:
        yield params
        step += 1


def encrypt(scheme: he_core.Scheme, x: np.ndarray, outputs: int, secret: he_core.SecretKey, bound: float,
            rng) -> Ciphertext:
    """One coefficient-packed query batch under the client's secret key (``bound``: public, on ``|x|``)."""
    return answering(scheme).encrypt_coeff_query(x, outputs, secret, bound=bound, rng=rng)


def answer(scheme: he_core.Scheme, circuit: Circuit, query: Ciphertext, bound: float, flooding: Flooding,
           rng=None) -> Ciphertext:
    """The sanitised answer to a query, its values taken to lie within the server's ``bound``.

    Raises:
        DeployError: the scheme refuses the query (not fresh, wrong layout or shape) or the weights.
    """
    weight, bias = linear_layer(circuit)
    try:
        return answering(scheme).answer_coeff_query(query, weight, bias, bound=bound, flooding=flooding, rng=rng)
    except (he_core.MismatchError, he_core.EncodingError) as exc:
        raise DeployError(f"cannot answer: {exc}") from None


def trial_error(scheme: he_core.Scheme, circuit: Circuit, flooding: Flooding, bound: float, declared: float,
                rows: int) -> float:
    """The largest error of flooded trial answers (throwaway seeded keys, inputs drawn in ``[-bound, bound]``,
    received as the server receives them: within its ``declared`` input bound, which sizes the flood).

    Returns ``math.inf`` for answers that do not decrypt.
    """
    secret, _ = scheme.keygen(client_keys(), rng=he_core.SeededRandom(0))
    x = np.random.default_rng(0).uniform(-bound, bound, (rows, circuit.n_features))
    query = encrypt(scheme, x, circuit.n_outputs, secret, max(bound, declared), he_core.SeededRandom(1))
    out = answer(scheme, circuit, query, declared, flooding, he_core.SeededRandom(2))
    try:
        got = scheme.decrypt_exact_local(out, secret)
    except he_core.HEOverflowError:
        return math.inf
    return float(np.max(np.abs(got - circuit.evaluate_prepared(x))))


def client_keys() -> he_core.KeyRequirements:
    """A public key and nothing else: no product, no rotation."""
    return he_core.KeyRequirements(sizes=(1,), multiply=False, minimal=True)
