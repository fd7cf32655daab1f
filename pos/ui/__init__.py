"""The Textual screens, one per job."""
