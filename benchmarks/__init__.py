"""henn's benchmarks (pytest-benchmark suites, peer comparison, machine limits); not installed."""
