"""Benchmarks and the corpora they run on (see bench/README.md)."""
