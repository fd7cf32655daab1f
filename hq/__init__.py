"""The HQ service the stores talk to."""
