"""Benchmarks (not tests): run by the Makefile's bench-* targets, results in docs/performance.md."""
