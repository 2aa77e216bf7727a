"""``python -m tests.bench bench|loadtest``: see :mod:`tests.bench.cli`."""

from tests.bench.cli import main

main()
