"""The REST API: one module per resource, wired together in `datacat_server.app`."""
