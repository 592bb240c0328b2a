"""Fixtures shared across the test suite."""
