"""The catalog: datasets, items, team files and tokens, in SQLite or PostgreSQL."""
