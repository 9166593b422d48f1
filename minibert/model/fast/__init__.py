"""The speed work, apart from the textbook code it speeds up (lecture 1.1; benchmarks/README.md, "Speed").

Importing it registers the "sdpa" attention kernel (sdpa.py). packing.py runs the encoder on the real tokens
only. tests/test_fast_path.py proves every piece equal to the textbook path (model/attention.py, encoder.py).
"""
from . import sdpa  # noqa: F401  (registers "sdpa")
