"""Enrich: raw CollectorPayloads become canonical enriched events or bad rows."""
