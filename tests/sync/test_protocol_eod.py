"""The per-till end-of-day messages: they round-trip, an old till's report still parses (as a
store-wide one), and a new till's report stays readable by an HQ that ignores the new field."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from sync import protocol as p

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
DAY = date(2026, 11, 22)


def sales(count: int, total: int) -> p.SalesSummary:
    return p.SalesSummary(
        count=count,
        total=total,
        tax_total=total // 10,
        by_method={"cash": p.MethodTotal(count=count, amount=total)},
    )


def test_the_per_till_answer_roundtrips() -> None:
    answer = p.DeviceReconciliationResponse(
        store_id="S1",
        device_id="till-1",
        business_day=DAY,
        sales=sales(2, 900),
        movements=[p.SkuMovement(sku="C1", net=-2), p.SkuMovement(sku="C2", net=5)],
        next_after="C2",
        last_applied_seq=7,
        quarantined=1,
        store_sales=sales(3, 1350),
        devices=[
            p.StoreDevice(device_id="till-1", last_applied_seq=7, last_push_at=NOW),
            p.StoreDevice(device_id="till-2", last_applied_seq=3, pending_reported=2),
        ],
        server_time=NOW,
    )
    again = p.DeviceReconciliationResponse.model_validate_json(answer.to_json())
    assert again == answer
    assert again.devices[1].last_push_at is None  # a till that never pushed
    assert p.DEVICE_RECONCILIATION_PATH == "/sync/v1/reconciliation/device"
    assert p.DEVICE_RECONCILIATION_PATH != p.RECONCILIATION_PATH  # the old question is kept


def test_an_old_tills_report_is_a_store_wide_one_and_scope_is_checked() -> None:
    old = {"business_day": "2026-11-22", "device_time": NOW.isoformat(), "verified": True}
    assert p.EodReport.model_validate(old).scope == "store"
    new = p.EodReport(business_day=DAY, device_time=NOW, verified=True, scope="device")
    assert json.loads(new.to_json())["scope"] == "device"
    with pytest.raises(ValidationError):
        p.EodReport.model_validate({**old, "scope": "chain"})
