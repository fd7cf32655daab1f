"""Use cases of the store, one transaction each; no UI."""
