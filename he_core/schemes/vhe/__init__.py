"""The vhe scheme (Zhou-Wornell integer-vector HE): exact, native-accelerated, NOT secure.

Import it through ``he_core.get_scheme("vhe")``. See :mod:`.scheme` for the bounds of
the default parameters and ``SECURITY.md`` for why it gives no security.
"""
from .params import VheParams
from .scheme import VheScheme

__all__ = ["VheParams", "VheScheme"]
