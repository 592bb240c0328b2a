"""Polling Codat into immutable snapshots: scheduler, state and counter accounting."""
