"""The query layer: every read the JSON API and the dashboard make.

Pages and API handlers call these functions and nothing else, so a number on a page
and the same number from the API cannot disagree. Each function takes a DuckDB cursor
(the caller's thread's own) and returns msgspec Structs.
"""
