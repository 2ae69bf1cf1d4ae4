"""``pytest --datacat``: record every test run in DataCat.

Installed with ``datacat``; enabled with ``--datacat``, ``DATACAT_ENABLE=1`` or
``datacat = true`` in the ini file. See the README for the options.
"""
