"""The store's SQLite file: the only place that knows tables."""
