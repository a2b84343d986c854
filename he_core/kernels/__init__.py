"""Scheme-independent Numba kernels (row gathers and scatters on float arrays)."""
