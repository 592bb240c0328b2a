"""codat-exporter: a Prometheus exporter for the freshness of Codat companies' data."""

__version__ = "0.1.0"
