"""Codat Platform API: typed models, errors and the HTTP client."""
