"""The kernel back end the vhe scheme calls: native C when built, else the NumPy reference.

Set ``HENN_VHE_KERNELS=reference`` to force the reference (slow, exact) kernels.
"""
from __future__ import annotations

import os

from . import reference

BACKEND = "reference"
if os.environ.get("HENN_VHE_KERNELS", "native") != "reference":
    try:
        from . import native as _impl
        BACKEND = "native"
    except ImportError:  # the module is not compiled: stay correct, just slow
        _impl = reference
else:
    _impl = reference

add = _impl.add
scale = _impl.scale
combine = _impl.combine
lincomb = _impl.lincomb
gather_sum = _impl.gather_sum
scatter_add = _impl.scatter_add
tensor = _impl.tensor
keyswitch = _impl.keyswitch
mul = _impl.mul
encrypt_secret = _impl.encrypt_secret
decrypt = _impl.decrypt
