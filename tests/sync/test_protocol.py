"""The messages both ends speak: every one survives a trip through JSON unchanged, and the
envelope's hash catches a changed payload."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sync import protocol as p

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
SHANGHAI = timezone(timedelta(hours=8))

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
payloads = st.dictionaries(st.text(max_size=10), json_values, max_size=6)
aware = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def sale_payload(**over: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "sale_id": str(uuid4()),
        "sale_no": 7,
        "short_id": "A7",
        "store_id": "S1",
        "device_id": "till-1",
        "business_day": "2026-11-22",
        "completed_at": "2026-11-22T18:30:00+08:00",
        "currency": "CNY",
        "guide_id": None,
        "total": 1250,
        "tax_total": 144,
        "lines": [
            {
                "line_no": 1,
                "sku": "SKU1",
                "name": "乌龙茶 Oolong",
                "qty": 1,
                "unit_price": 1250,
                "tax_rate_bp": 1300,
                "line_total": 1250,
                "tax_amount": 144,
                "movement_id": str(uuid4()),
                "code": "06901234567892",
                "stock_short": False,
            }
        ],
        "payments": [
            {"method": "cash", "amount": 1250, "tendered": 2000, "change": 750, "reference": None}
        ],
    }
    payload.update(over)
    return payload


def roundtrip(message: p.Message) -> None:
    again = type(message).model_validate_json(message.to_json())
    assert again == message
    assert type(message).model_validate(json.loads(json.dumps(message.to_dict()))) == message


def envelope(seq: int = 1, payload: dict[str, Any] | None = None) -> p.EventEnvelope:
    return p.EventEnvelope.build(
        event_id=uuid4(),
        device_id="till-1",
        seq=seq,
        type="sale.completed",
        occurred_at=NOW.astimezone(SHANGHAI),
        payload=payload if payload is not None else sale_payload(),
    )


# --- canonical JSON ---------------------------------------------------------------------------


def test_canonical_json_has_one_spelling_per_value() -> None:
    assert p.canonical_json({"b": 1, "a": "茶"}) == '{"a":"茶","b":1}'
    assert p.payload_hash({"b": 1, "a": 2}) == p.payload_hash({"a": 2, "b": 1})


@pytest.mark.parametrize(
    "bad", [{"amount": 12.5}, {"lines": [{"qty": 1.0}]}, {"t": datetime.now(UTC)}]
)
def test_floats_and_foreign_types_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        p.payload_hash(bad)


@settings(deadline=None, max_examples=40)
@given(payloads)
def test_hash_survives_a_json_trip(payload: dict[str, Any]) -> None:
    assert p.payload_hash(json.loads(json.dumps(payload))) == p.payload_hash(payload)


# --- envelope and push ------------------------------------------------------------------------


@settings(deadline=None, max_examples=40)
@given(
    payload=payloads,
    seq=st.integers(min_value=1, max_value=2**53),
    when=aware,
    version=st.integers(min_value=1, max_value=9),
)
def test_envelope_roundtrips(
    payload: dict[str, Any], seq: int, when: datetime, version: int
) -> None:
    env = p.EventEnvelope.build(
        event_id=uuid4(),
        device_id="till-1",
        seq=seq,
        type="stock.adjusted",
        occurred_at=when,
        payload=payload,
        schema_version=version,
    )
    roundtrip(env)
    again = p.EventEnvelope.model_validate_json(env.to_json())
    assert again.hash_matches()


def test_a_changed_payload_no_longer_matches_its_hash() -> None:
    env = envelope()
    tampered = env.model_copy(update={"payload": {**env.payload, "total": 1}})
    assert env.hash_matches() and not tampered.hash_matches()


@pytest.mark.parametrize(
    "change",
    [
        {"occurred_at": "2026-11-22T10:00:00"},  # naive time
        {"seq": 0},
        {"seq": "3"},
        {"event_id": "not-a-uuid"},
        {"type": "Sale Completed"},
        {"payload_hash": "abc"},
        {"payload": [1, 2]},
    ],
)
def test_envelope_refuses_wrong_shapes(change: dict[str, Any]) -> None:
    data = {**envelope().to_dict(), **change}
    with pytest.raises(ValidationError):
        p.EventEnvelope.model_validate_json(json.dumps(data))


@settings(deadline=None, max_examples=40)
@given(st.lists(payloads, max_size=5), st.integers(min_value=0, max_value=10_000))
def test_push_request_roundtrips(batch_payloads: list[dict[str, Any]], pending: int) -> None:
    batch = [envelope(i + 1, pl) for i, pl in enumerate(batch_payloads)]
    roundtrip(
        p.PushRequest(
            device_time=NOW, batch=batch, pending=pending, oldest_pending_at=NOW, app_version="1"
        )
    )


def test_push_response_roundtrips_with_every_status() -> None:
    results = [
        p.PushResult(event_id=uuid4(), seq=1, status="applied"),
        p.PushResult(
            event_id=uuid4(), seq=2, status="duplicate", original_status="rejected", reason="x: y"
        ),
        p.PushResult(event_id=uuid4(), seq=3, status="rejected", reason="unknown_sku: Z"),
        p.PushResult(event_id=uuid4(), seq=4, status="superseded", reason="stale epoch"),
    ]
    response = p.PushResponse(
        results=results,
        last_applied_seq=4,
        stopped_at_gap=True,
        server_time=NOW,
        clock_offset_s=-12.5,
    )
    roundtrip(response)
    assert [r.effective_status for r in results] == [
        "applied",
        "rejected",
        "rejected",
        "superseded",
    ]
    assert p.reason_code("unknown_sku: Z") == "unknown_sku"


# --- pull and snapshots -----------------------------------------------------------------------


def test_pull_request_and_response_roundtrip() -> None:
    roundtrip(p.PullRequest(device_time=NOW, cursors={"catalog": 0, "prices": 17}, limit=100))
    page = p.StreamPage(
        stream="catalog",
        changes=[
            p.Change(
                seq=1,
                tx=1,
                op="upsert",
                key="SKU1",
                row=p.CatalogRow(sku="SKU1", name="茶", tax_rate_bp=1300, barcodes=["1"]).to_dict(),
            ),
            p.Change(seq=2, tx=2, op="delete", key="SKU2"),
        ],
        cursor=2,
        has_more=True,
    )
    reset = p.StreamPage(
        stream="prices",
        cursor=3,
        reset=p.Reset(stream="prices", snapshot_path="/sync/v1/snapshot/prices", horizon=90),
    )
    roundtrip(
        p.PullResponse(
            pages={"catalog": page, "prices": reset},
            has_more=True,
            server_time=NOW,
            clock_offset_s=0.0,
        )
    )


def test_a_change_carries_a_row_exactly_when_it_upserts() -> None:
    with pytest.raises(ValidationError):
        p.Change(seq=1, tx=1, op="upsert", key="A")
    with pytest.raises(ValidationError):
        p.Change(seq=1, tx=1, op="delete", key="A", row={"sku": "A"})


def test_pull_refuses_an_unknown_stream_and_a_huge_limit() -> None:
    with pytest.raises(ValidationError):
        p.PullRequest.model_validate({"device_time": NOW.isoformat(), "cursors": {"orderz": 0}})
    with pytest.raises(ValidationError):
        p.PullRequest(device_time=NOW, cursors={}, limit=p.MAX_PULL_LIMIT + 1)


@settings(deadline=None, max_examples=40)
@given(st.text(min_size=1, max_size=20), st.text(max_size=30), st.integers(0, 10**9))
def test_snapshot_lines_roundtrip(sku: str, name: str, price: int) -> None:
    header = p.SnapshotHeader(stream="prices", cursor=5, generated_at=NOW, after=None)
    row = p.SnapshotRow(key=sku, row=p.PriceRow(sku=sku, price=price).to_dict())
    end = p.SnapshotEnd(rows=1)
    for item in (header, row, end):
        line = p.snapshot_line(item)
        assert line.endswith("\n") and line.count("\n") == 1
        assert p.parse_snapshot_line(line) == item
    assert p.ConfigRow(key="staff:7", value={"name": name}) == p.ConfigRow.model_validate_json(
        p.ConfigRow(key="staff:7", value={"name": name}).to_json()
    )


# --- status, reconciliation, errors -----------------------------------------------------------


def test_status_and_reconciliation_roundtrip() -> None:
    roundtrip(
        p.DeviceStatus(
            store_id="S1",
            device_id="till-1",
            last_applied_seq=3,
            heads={"catalog": 10, "prices": 2, "config": 0},
            server_time=NOW,
        )
    )
    roundtrip(
        p.ReconciliationResponse(
            store_id="S1",
            business_day=date(2026, 11, 22),
            sales=p.SalesSummary(
                count=2,
                total=2500,
                tax_total=288,
                by_method={"cash": p.MethodTotal(count=1, amount=1250)},
            ),
            on_hand=[p.OnHand(sku="SKU1", on_hand=-2)],
            next_after="SKU1",
            device_id="till-1",
            last_applied_seq=2,
            devices=[p.DeviceSeq(device_id="till-1", last_applied_seq=2)],
            quarantined=1,
            server_time=NOW,
        )
    )


def test_end_of_day_report_roundtrips_and_is_bounded() -> None:
    report = p.EodReport(
        business_day=date(2026, 11, 22),
        device_time=NOW,
        verified=False,
        stock_mismatches=2,
        differences=["SKU1: till 3, HQ 4", "SKU9: till 0, HQ -1"],
    )
    roundtrip(report)
    roundtrip(p.EodReceipt(store_id="S1", business_day=date(2026, 11, 22), received_at=NOW))
    with pytest.raises(ValidationError):
        p.EodReport(
            business_day=date(2026, 11, 22),
            device_time=NOW,
            verified=True,
            differences=["x"] * (p.MAX_EOD_DIFFERENCES + 1),
        )


def test_error_body_roundtrips_and_says_what_to_retry() -> None:
    body = p.ErrorBody.of("unavailable", "HQ's database is not answering; retry later", {"a": 1})
    roundtrip(body)
    assert json.loads(body.to_json())["error"]["code"] == "unavailable"
    assert p.is_retryable(503) and not p.is_retryable(422)
    assert all(400 <= status < 600 for status in p.ERROR_CODES.values())


# --- payloads HQ applies ----------------------------------------------------------------------


def test_the_store_sale_payload_is_accepted_as_is() -> None:
    sale = p.SaleCompletedV1.model_validate(sale_payload())
    assert sale.lines[0].qty == 1 and sale.payments[0].method == "cash"
    assert UUID(sale.sale_id) and sale.sale_id == sale.sale_id.lower()
    roundtrip(sale)


@pytest.mark.parametrize(
    "over",
    [
        {"total": 12.5},
        {"total": "1250"},
        {"lines": []},
        {"payments": [{"method": "cheque", "amount": 1}]},
        {"completed_at": "2026-11-22T18:30:00"},
        {"sale_id": "not-a-uuid"},
        {"sale_id": "6F9619FF-8B86-D011-B42D-00C04FC964FF"},  # not the canonical spelling
    ],
)
def test_a_sale_payload_of_the_wrong_shape_is_refused(over: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        p.SaleCompletedV1.model_validate(sale_payload(**over))


def test_stock_movements_roundtrip_and_refuse_repeated_ids() -> None:
    mid = str(uuid4())
    ok = p.StockMovementsV1.model_validate(
        {"movements": [{"movement_id": mid, "sku": "A", "delta": 5, "reason": "receipt"}]}
    )
    roundtrip(ok)
    with pytest.raises(ValidationError):
        p.StockMovementsV1.model_validate(
            {"movements": [{"movement_id": mid, "sku": "A", "delta": 1}] * 2}
        )
