"""Small helpers every part of the exporter shares, each with one home.

``listen`` parses listen addresses, ``durations`` reads and writes durations,
``redaction`` masks secrets, ``clock`` tells the time, ``env`` names the
environment variables, ``logs`` sets up logging, ``globs`` matches the config's
include/exclude patterns.
"""
