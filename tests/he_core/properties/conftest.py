"""One campaign context per scheme, shared by the campaign's modules (key generation once per session)."""
import pytest

from .campaign import Ctx

_made: dict[str, Ctx] = {}

LABELS = ["plain", "vhe", "ckks", pytest.param("ckks128", marks=pytest.mark.slow)]


@pytest.fixture(scope="session", params=LABELS)
def ctx(request) -> Ctx:
    label = request.param
    if label not in _made:
        _made[label] = Ctx(label)
    return _made[label]
