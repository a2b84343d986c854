"""Concrete schemes. Import them through :func:`he_core.get_scheme`, not directly."""
