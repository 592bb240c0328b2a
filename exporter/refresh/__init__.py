"""Refreshing Codat data: one refresh action, the pure auto-refresh policy, and its executor."""
