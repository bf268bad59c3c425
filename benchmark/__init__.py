"""The fer-sklearn benchmark harness: ``python -m benchmark run|list|report``."""
