"""he_core.schemes.ckks.context: the objects one parameter set fixes, shared by every role of a scheme."""
import dataclasses
import warnings

import numpy as np
import pytest

from he_core.schemes.ckks import CkksParams, CkksScheme
from he_core.schemes.ckks.context import CkksContext


@pytest.fixture(scope="module")
def params():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CkksParams(poly_degree=1024, levels=3, allow_insecure=True)


def test_the_context_holds_the_sets_ring_switcher_and_scale_ladder(params):
    ctx = CkksContext.for_params("ckks", params)
    assert ctx.ring is ctx.switcher.ring and ctx.ring.n == params.poly_degree
    assert tuple(ctx.ring.q) == tuple(params.q_primes)
    assert ctx.scales.at(params.levels) == params.default_scale
    assert ctx.params_id == params.param_id


def test_its_ciphertexts_are_tagged_with_the_scheme_and_the_set(params):
    ctx = CkksContext.for_params("ckks", params)
    data = np.zeros((1, 2, 2, params.poly_degree), dtype=np.uint64)
    ct = ctx.ciphertext("key", [1, 4], 2**20, data, {"level": 1})
    assert (ct.scheme, ct.params_id, ct.key_id, ct.shape, ct.scale) == ("ckks", params.param_id, "key", (1, 4), 2.0**20)
    assert ct.params is params


def test_it_is_read_only_and_every_role_of_a_scheme_shares_it(params):
    ctx = CkksContext.for_params("ckks", params)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.ring = None
    scheme = CkksScheme(params)
    assert scheme.evaluator.ring is scheme.ring is scheme.rotator.ring is scheme.decryptor.ring
    assert scheme.evaluator.scales is scheme.aligner.scales is scheme.scales
