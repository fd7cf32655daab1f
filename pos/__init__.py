"""The store's point of sale: a terminal app over the store's own SQLite journal."""
