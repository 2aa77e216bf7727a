"""Benchmarks and load tests (``python -m tests.bench``, ``python -m tests.bench.loadtest``).

They drive the real product components as child processes; nothing in the product packages imports
this package. Sample-data modules shared by the benchmarks and the test suite live here too.
"""
