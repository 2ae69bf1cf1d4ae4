"""DataCat server: a Litestar app over a DuckDB file.

Importing this package costs nothing: the server's dependencies (the ``server`` extra)
are imported by the modules that need them, so ``datacat upload`` works without them.
"""

__version__ = "0.1.0"
