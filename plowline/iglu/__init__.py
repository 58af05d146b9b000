"""Iglu: the schema resolver and validator for self-describing JSON."""
