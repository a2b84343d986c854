"""henn.training.keys.in_process_keyholder: keys for a model's sizes (or given sizes) and a key holder in this
process, which warns that trainer and key holder are then one party."""
from __future__ import annotations

import numpy as np
import pytest

import he_core
from henn import Linear, Sequential, activations
from henn.depth import key_requirements
from henn.keyholder import KeyHolder, RefreshTerms
from henn.training.keys import SinglePartyWarning, in_process_keyholder

pytestmark = pytest.mark.filterwarnings("ignore::henn.training.keys.SinglePartyWarning")


def test_the_in_process_key_holder_says_it_is_one_party():
    with pytest.warns(SinglePartyWarning, match="one party"):
        in_process_keyholder("plain", [1, 2])


def test_sizes_give_keys_for_them_and_for_one_value():
    scheme, holder = in_process_keyholder("plain", [3, 5, 3], rng=he_core.SeededRandom(1))
    assert isinstance(holder, KeyHolder) and holder.scheme is scheme
    assert set(scheme.public_keys.requirements.sizes) == {1, 3, 5}
    assert holder.key_id == scheme.public_keys.key_id  # the public half installed is the holder's key's
    x = np.array([[0.5, -1.0, 2.0]])
    assert np.array_equal(scheme.decrypt_exact_local(scheme.encrypt(x), holder.export_secret_key()), x)
    _, again = in_process_keyholder("plain", [3, 5], rng=he_core.SeededRandom(1))
    assert again.key_id == holder.key_id  # seeded (tests); the default is the OS CSPRNG
    assert in_process_keyholder("plain", [3])[1].key_id != holder.key_id


def test_a_model_decides_the_keys_and_the_terms_may_depend_on_the_keyed_scheme():
    shape_scheme = he_core.get_scheme("plain")
    shape_scheme.keygen(he_core.KeyRequirements(sizes=(1, 2, 4)))
    model = Sequential(Linear.init(shape_scheme, 2, 4, init_scale=1.0, rng=np.random.default_rng(0)),
                       activations.square(),
                       Linear.init(shape_scheme, 4, 1, init_scale=1.0, rng=np.random.default_rng(1),
                                   encrypted_input=True))
    seen = []
    scheme, holder = in_process_keyholder("plain", model,
                                          terms=lambda s: seen.append(s) or RefreshTerms(refreshes=9))
    assert seen == [scheme] and holder.terms.refreshes == 9
    assert scheme.public_keys.requirements == key_requirements(model)


def test_a_scheme_instance_is_keyed_as_given():
    given = he_core.get_scheme("plain", precision_bits=12)
    scheme, holder = in_process_keyholder(given, [2])
    assert scheme is given and holder.scheme.params == given.params


def test_bootstrapping_keys_need_the_schemes_name_and_the_model():
    with pytest.raises(ValueError, match="pass the scheme's name and the model"):
        in_process_keyholder("ckks", [1, 2], bootstrap_batch=4)
    with pytest.raises(ValueError, match="pass the scheme's name and the model"):
        in_process_keyholder(he_core.get_scheme("plain"), Sequential(activations.square()), bootstrap_batch=4)
