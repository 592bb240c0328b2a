"""Grafana dashboards of codat-exporter and their generator (``python -m grafana.build``)."""
