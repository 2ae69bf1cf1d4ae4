"""pytest --datacat."""
