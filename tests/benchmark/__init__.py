"""Benchmarks: ``make bench`` (``python -m tests.benchmark --help``). They print, never assert."""
