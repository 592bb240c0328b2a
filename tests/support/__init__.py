"""Helpers shared by the tests: real tools, free ports, real Prometheus."""
