"""Kubernetes manifests and their PrometheusRule generator (a ``python -m`` tool)."""
