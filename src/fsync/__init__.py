"""fsync: keep a local directory tree and any fsspec tree in step, safely."""

__version__ = "0.1.0"
