"""Benchmarks, run as `python -m minibert bench <name>`: `speed` measures minibert against transformers."""
