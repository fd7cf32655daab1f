"""Store <-> HQ synchronisation: protocol (no I/O), client and engine."""
