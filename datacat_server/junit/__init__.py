"""JUnit XML in and out: other test runners' results as DataCat runs, and any run as JUnit.

- `read_document` (``parse.py``) reads one document safely (no DTD, no entities) and
  incrementally (a document cut short gives what came before the break);
- `build_import` (``records.py``) turns a set of documents into the wire records of
  one run, numbered so that importing the same files again stores nothing;
- `export_run` (``export.py``) writes a stored run, pytest's included, as JUnit XML.

The API (``api/junit.py``) and ``datacat import junit`` (``commands/import_junit.py``) use them.
"""

from __future__ import annotations

from datacat_server.junit.export import Family, export_run
from datacat_server.junit.parse import Document, read_document
from datacat_server.junit.records import ImportOptions, JunitImport, build_import

__all__ = [
    "Document",
    "Family",
    "ImportOptions",
    "JunitImport",
    "build_import",
    "export_run",
    "read_document",
]
