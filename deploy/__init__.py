"""Deployment files of codat-exporter; the Python here are tools run with ``python -m``."""
