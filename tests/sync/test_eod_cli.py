"""`pos eod --json` for each of two tills of one store, against HQ on a real uvicorn socket,
and `hq report` listing both tills' end of day."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from hq.cli import cli as hq_cli
from pos.domain.cart import Cart, Payment
from pos.services.sale import SaleService
from pos.store import open_store
from tests.sync.support import HQ, ean_of
from tests.sync.test_cli import pos, served  # noqa: F401  (the fixture)


def till(tmp_path: Path, hq: HQ, url: str, device_id: str, sku: str) -> tuple[Path, str]:
    """A till file of store S1 with its own token, synced once, that sold one `sku`."""
    db = tmp_path / f"{device_id}.db"
    code, out = pos(db, "init", "--store-id", "S1", "--device-id", device_id)
    assert code == 0, out
    code, out = pos(db, "sync", "--hq", url, "--token", hq.register("S1", device_id))
    assert code == 0, out
    with open_store(db) as store:
        service = SaleService(store)
        product = service.lookup(ean_of(sku))
        assert product is not None
        cart = Cart().add(product, 1)
        day = service.complete(cart, [Payment.cash(cart.total)]).business_day
    return db, day


def test_each_till_closes_its_own_day_from_the_command_line(
    served: tuple[HQ, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    hq, url = served
    db1, day = till(tmp_path, hq, url, "till-1", "A1")
    db2, _ = till(tmp_path, hq, url, "till-2", "A2")
    code, out = pos(db2, "sync")
    assert code == 0, out

    code, out = pos(db1, "eod", "--day", day, "--json")
    assert code == 0, out
    report = json.loads(out.splitlines()[-1])
    assert report["verified"] is True and report["scope"] == "device"
    assert (report["store_id"], report["device_id"]) == ("S1", "till-1")
    assert report["store"]["count"] == 1 and report["hq_store"]["count"] == 2
    assert [t["device_id"] for t in report["other_tills"]] == ["till-2"]
    assert report["other_tills"][0]["last_push_at"] is not None

    code, out = pos(db2, "eod", "--day", day)
    assert code == 0, out
    assert "VERIFIED: this till and HQ agree on its sales and stock movements." in out
    assert "till-1: last synced" in out

    result = CliRunner().invoke(hq_cli, ["--db", str(hq.path), "report"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("S1")]
    assert len(rows) == 2 and all(row.rstrip().endswith(f"{day} verified") for row in rows)
