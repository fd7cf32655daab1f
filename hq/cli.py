"""`hq` command line: placeholder until the HQ service lands."""

from __future__ import annotations

import click


@click.group()
def cli() -> None:
    """HQ service: catalogue, stores, online orders, event ingest."""


def main() -> None:
    cli(prog_name="hq")
