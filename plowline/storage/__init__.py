"""Storage: loaders that keep enriched events and bad rows (files, Parquet, DuckDB, PostgreSQL)."""
