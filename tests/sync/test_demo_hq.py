"""`pos demo` brings its own HQ: a real `hq serve` process on loopback with the demo store
registered and the demo catalogue loaded; the demo till syncs with it and closes its day."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from pos.cli import cli
from pos.cli.demo_hq import start_demo_hq
from pos.services.demo import create_demo_store
from pos.store import open_store


def test_the_demo_hq_serves_the_demo_store(tmp_path: Path) -> None:
    demo = create_demo_store(tmp_path / "store.db", 300)
    hq = start_demo_hq(tmp_path, demo.path)
    try:
        assert hq.url.startswith("http://127.0.0.1:")
        runner = CliRunner()
        result = runner.invoke(cli, ["--db", str(demo.path), "sync"])
        assert result.exit_code == 0, result.output
        result = runner.invoke(cli, ["--db", str(demo.path), "eod"])
        # the demo's initial stock went to HQ too: till and HQ agree on every SKU
        assert result.exit_code == 0, result.output
        assert "VERIFIED" in result.output
    finally:
        hq.stop()
    assert hq.process.poll() is not None

    # the next start reuses HQ's database and the till's token
    again = start_demo_hq(tmp_path, demo.path)
    try:
        with open_store(demo.path) as store:
            assert store.get_config("hq.url") == again.url
        result = CliRunner().invoke(cli, ["--db", str(demo.path), "sync"])
        assert result.exit_code == 0, result.output
    finally:
        again.stop()
