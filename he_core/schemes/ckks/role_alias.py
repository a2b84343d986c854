"""A scheme attribute that stands for a method of one of its role objects.

The CKKS scheme keeps a few private names (``_scale_at``, ``_rotate_ct``, ...) that tests
call on it, each the method of a role; this descriptor is that alias, so the names need no
wrapper functions and a replacement reaches the role.
"""
from __future__ import annotations


class RoleMethod:
    """A scheme attribute that is the method ``name`` of its role ``role`` (tests use these).

    Reading it gives the role's bound method; replacing or deleting it (a test's spy or stand-in)
    does so on the role, so the role's own callers see the replacement as the scheme's did.
    """

    def __init__(self, role: str, name: str) -> None:
        self.role, self.name = role, name

    def __get__(self, scheme, owner=None):
        return self if scheme is None else getattr(getattr(scheme, self.role), self.name)

    def __set__(self, scheme, value) -> None:
        setattr(getattr(scheme, self.role), self.name, value)

    def __delete__(self, scheme) -> None:
        delattr(getattr(scheme, self.role), self.name)
