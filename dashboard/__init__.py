"""DataCat dashboard."""
