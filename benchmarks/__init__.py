"""swimnet benchmarks: `nox -s bench -- NAME...` (or `python -m benchmarks NAME...`)."""
