"""The HTTP boundary: a generic server, the exporter's endpoints, the landing page, the web config.

``exporter.http.server.HttpServer`` routes ``(METHOD, path)`` to handlers and knows
nothing of metrics; ``exporter.http.exporter.ExporterServer`` puts the exporter's
endpoints (``exporter.http.endpoints``) on it; the webhook listener puts the webhook
route and /healthz on another one. This package module imports nothing, so the
webhook side can use the generic server without loading the exporter's endpoints.
"""
