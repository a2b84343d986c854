"""Numba row kernels vs their NumPy references (a 5,000 x 8 table, 150 selected rows, as in IMDB training)."""
import numpy as np
import pytest

from he_core.kernels import rows as K

TABLE = np.random.default_rng(0).standard_normal((5000, 8))
ROWS = np.random.default_rng(1).integers(0, 5000, 150).astype(np.int64)
UPDATE = np.full((1, 8), 0.5)


@pytest.mark.parametrize("impl", ["numba", "numpy"])
def test_gather_sum(benchmark, impl):
    fn = K.gather_sum if impl == "numba" else K.gather_sum_reference
    fn(TABLE, ROWS)  # compile outside the timed region
    benchmark.group = "rows-gather_sum"
    benchmark(fn, TABLE, ROWS)


@pytest.mark.parametrize("impl", ["numba", "numpy"])
def test_scatter_add(benchmark, impl):
    fn = K.scatter_add if impl == "numba" else K.scatter_add_reference
    table = TABLE.copy()
    fn(table, ROWS, UPDATE)
    benchmark.group = "rows-scatter_add"
    benchmark(fn, table, ROWS, UPDATE)
