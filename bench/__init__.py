"""Benchmarks of the exporter, with their recorded results in RESULTS.md."""
