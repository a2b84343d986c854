"""he_core.schemes.ckks.role_alias: a scheme attribute that is a role's method, read, replaced and restored."""
from he_core.schemes.ckks.role_alias import RoleMethod


class Role:
    def twice(self, x):
        return 2 * x


class Holder:
    _twice = RoleMethod("role", "twice")

    def __init__(self):
        self.role = Role()

    def run(self, x):  # what a role's other callers do: call the role, never the alias
        return self.role.twice(x)


def test_reading_gives_the_roles_bound_method():
    h = Holder()
    assert h._twice(4) == 8 and h._twice.__self__ is h.role
    assert isinstance(Holder._twice, RoleMethod)


def test_a_replacement_reaches_the_role_and_deleting_it_restores_the_method():
    h, other = Holder(), Holder()
    h._twice = lambda x: -x
    assert h.run(3) == -3 and h._twice(3) == -3
    assert other.run(3) == 6  # only that scheme's role
    del h._twice
    assert h.run(3) == 6 and "twice" not in vars(h.role)
