"""The message models of the sync API (pydantic), and its paths and limits.

Import them from :mod:`sync.protocol`, which loads this module on first use (its docstring says
how a client drives HQ with them). Kept apart from :mod:`sync.protocol.canonical` and
:mod:`sync.protocol.catalog_file` so that the till's journal and the catalogue rules load without
pydantic."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    model_validator,
)

from sync.protocol.canonical import payload_hash

PROTOCOL_VERSION = 1
API_PREFIX = "/sync/v1"
PUSH_PATH = f"{API_PREFIX}/push"
PULL_PATH = f"{API_PREFIX}/pull"
SNAPSHOT_PATH = f"{API_PREFIX}/snapshot"  # + "/{stream}"
RECONCILIATION_PATH = f"{API_PREFIX}/reconciliation"
DEVICE_RECONCILIATION_PATH = f"{API_PREFIX}/reconciliation/device"
"""End of day per till (``GET``, :class:`DeviceReconciliationResponse`). A new path, so a till
that asks the old store-wide question at :data:`RECONCILIATION_PATH` keeps its old answer."""
STATUS_PATH = f"{API_PREFIX}/status"
SNAPSHOT_MEDIA_TYPE = "application/x-ndjson"

MAX_PUSH_BATCH = 500
"""Most events one push may carry; more is a 422 ``batch_too_large``."""
MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest request body HQ reads; more is a 413 ``payload_too_large``."""
DEFAULT_PULL_LIMIT = 5000
MAX_PULL_LIMIT = 20000
CLOCK_SKEW_LIMIT_S = 300.0
"""A device clock further than this from HQ's is flagged (HQ report, store status bar)."""

STREAMS: tuple[str, ...] = ("catalog", "prices", "config", "orders")
Stream = Literal["catalog", "prices", "config", "orders"]
EVENTS_PATH = f"{API_PREFIX}/events"
"""Server-sent events (``GET``): ``event: orders`` whenever the calling store's orders stream
changed. A wake-up only: the store then pulls; pull alone stays correct when SSE fails."""

# ---------------------------------------------------------------------------------------------
# shared bits

_TYPE_RE = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
Identifier = Annotated[str, Field(min_length=1, max_length=64)]
Seq = Annotated[StrictInt, Field(ge=1)]
Cursor = Annotated[StrictInt, Field(ge=0)]
HashHex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def _uuid_text(value: Any) -> Any:
    return str(value) if isinstance(value, UUID) else value


UUIDText = Annotated[
    str,
    BeforeValidator(_uuid_text),
    Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
]
"""A UUID inside a payload, kept as its canonical text (lowercase, hyphenated: what
``str(uuid4())`` gives). A UUID object is accepted and turned into that text."""


class Message(BaseModel):
    """Base of every message: immutable; unknown fields are ignored so either end may add
    optional fields without breaking the other."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_json(self) -> str:
        return self.model_dump_json()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# ---------------------------------------------------------------------------------------------
# the event envelope


class EventEnvelope(Message):
    """One store event as it travels: the outbox row of the store, the event row of HQ.

    ``occurred_at`` is the device's clock: for reports only, never for ordering (that is
    ``(device_id, seq)``). ``payload_hash`` is :func:`payload_hash` of ``payload``; HQ checks it
    (see :meth:`hash_matches`) and quarantines an event whose hash does not match."""

    event_id: UUID
    device_id: Identifier
    seq: Seq
    type: Annotated[str, Field(min_length=1, max_length=64, pattern=_TYPE_RE)]
    schema_version: Annotated[StrictInt, Field(ge=1)]
    occurred_at: AwareDatetime
    payload: dict[str, Any]
    payload_hash: HashHex

    @classmethod
    def build(
        cls,
        *,
        event_id: UUID,
        device_id: str,
        seq: int,
        type: str,
        occurred_at: datetime,
        payload: dict[str, Any],
        schema_version: int = 1,
    ) -> EventEnvelope:
        """An envelope with its hash computed (raises TypeError on floats in the payload)."""
        return cls(
            event_id=event_id,
            device_id=device_id,
            seq=seq,
            type=type,
            schema_version=schema_version,
            occurred_at=occurred_at,
            payload=payload,
            payload_hash=payload_hash(payload),
        )

    def hash_matches(self) -> bool:
        try:
            return payload_hash(self.payload) == self.payload_hash
        except TypeError:
            return False


# ---------------------------------------------------------------------------------------------
# push

PushStatus = Literal["applied", "duplicate", "rejected", "superseded"]
FirstStatus = Literal["applied", "rejected", "superseded"]

REJECT_REASONS: dict[str, str] = {
    "idempotency_mismatch": "this event id or seq was already used by a different event",
    "payload_hash_mismatch": "the payload hash does not match the payload",
    "invalid_payload": "the payload does not have the shape its type and version require",
    "unsupported_event_type": "HQ does not know this event type",
    "unsupported_schema_version": "HQ does not know this schema version of the event type",
    "unknown_sku": "a SKU that HQ's catalogue has never had",
    "store_mismatch": "the payload names another store or device than the token",
    "movement_id_reused": "a stock movement id that HQ has already recorded",
    "sale_id_reused": "a sale id that HQ has already recorded from another event",
    "unknown_order": "an order event naming an order or epoch HQ never assigned to this store",
    "illegal_transition": "an order step that cannot follow the assignment's current state",
}


SUPERSEDED_OTHER_TILL = "other_till"
"""The code of a ``superseded`` answer (``"other_till: accepted at till-1 ..."``) to an order
step of a till when another till of the same store answered that assignment first: the order
is that till's, the step changes nothing (its stock movements still count), and the till
shows the order as handled at another till."""


def reason_code(reason: str | None) -> str | None:
    """The code part of a reject reason ``"<code>: <words>"``."""
    if reason is None:
        return None
    return reason.split(":", 1)[0].strip()


class PushRequest(Message):
    """A batch of events of the calling device, in ``seq`` order.

    ``device_time`` is the device's clock when it sent the request (HQ measures the offset);
    ``pending`` is how many events the device's outbox holds unacknowledged (including this
    batch), ``oldest_pending_at`` the ``occurred_at`` of the oldest: HQ reports them as outbox
    lag."""

    device_time: AwareDatetime
    batch: list[EventEnvelope]
    pending: Annotated[StrictInt, Field(ge=0)] | None = None
    oldest_pending_at: AwareDatetime | None = None
    app_version: Annotated[str, Field(max_length=64)] | None = None


class PushResult(Message):
    event_id: UUID
    seq: Seq
    status: PushStatus
    reason: str | None = None
    original_status: FirstStatus | None = None
    """Set on ``duplicate``: how HQ processed the event the first time."""

    @property
    def effective_status(self) -> FirstStatus:
        """What the store should record for this event: the first outcome for a duplicate,
        ``rejected`` for an idempotency mismatch."""
        if self.status == "duplicate":
            return self.original_status or "applied"
        return self.status


class PushResponse(Message):
    results: list[PushResult]
    last_applied_seq: Cursor
    stopped_at_gap: StrictBool = False
    server_time: AwareDatetime
    clock_offset_s: float
    """Device clock minus HQ clock at receipt, in seconds (positive: the device runs ahead)."""


# ---------------------------------------------------------------------------------------------
# pull


class CatalogRow(Message):
    """Row of the ``catalog`` stream (key = sku). ``barcodes`` are the codes as HQ holds them;
    the store derives its lookup keys."""

    sku: str
    name: str
    tax_rate_bp: StrictInt
    barcodes: list[str] = []
    active: StrictBool = True


class PriceRow(Message):
    """Row of the ``prices`` stream (key = sku)."""

    sku: str
    price: StrictInt
    currency: str = "CNY"


class ConfigRow(Message):
    """Row of the ``config`` stream. Keys: a setting name, or ``staff:<staff_id>`` whose value
    is ``{"staff_id", "name", "role", "active"}`` (only the calling store's staff and chain-wide
    staff are sent to a store)."""

    key: str
    value: Any


ChangeOp = Literal["upsert", "delete"]


class Change(Message):
    """One committed change of a stream. ``seq`` is the stream's change number (commit order),
    ``tx`` the HQ transaction it belongs to; ``row`` is None for a delete."""

    seq: Seq
    tx: Annotated[StrictInt, Field(ge=1)]
    op: ChangeOp
    key: str
    row: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _row_matches_op(self) -> Change:
        if self.op == "upsert" and self.row is None:
            raise ValueError("an upsert carries its row")
        if self.op == "delete" and self.row is not None:
            raise ValueError("a delete carries no row")
        return self


Anchor = Annotated[str, Field(min_length=1, max_length=64)]
"""Opaque text naming the change at a cursor's seq in HQ's change log (see :class:`StreamPage`).
A cursor is a number AND the history it was taken on: after HQ is restored from a backup and
writes again, the same number can name other changes."""

RESET_REASONS: dict[str, str] = {
    "cursor_expired": "the changes after this cursor were compacted away (retention)",
    "cursor_ahead_of_hq": "the cursor is past HQ's last change: HQ was restored from a backup",
    "history_changed": "the change at this cursor is not the one the till pulled: HQ was "
    "restored from a backup and has written other changes under the same numbers since",
}
"""Why a stream was reset (:attr:`Reset.reason`). A till handles every reason the same way."""


class PullRequest(Message):
    """Cursors per stream (0 = from the beginning). Streams not named are not pulled.

    ``anchors``: for each stream, the :attr:`StreamPage.anchor` (or
    :attr:`SnapshotHeader.anchor`) the till stored with its cursor. HQ checks that the change
    at the cursor's seq is still that one and answers a ``history_changed`` reset when it is
    not. A stream without an anchor (cursor 0, a till that never got one, an older till) is
    served without the check. Added within protocol version 1: an HQ that does not know the
    field ignores it, a till that does not know it sends none."""

    device_time: AwareDatetime
    cursors: dict[Stream, Cursor]
    anchors: dict[Stream, Anchor] = {}
    limit: Annotated[StrictInt, Field(ge=1, le=MAX_PULL_LIMIT)] = DEFAULT_PULL_LIMIT


class Reset(Message):
    """The till cannot continue this stream from its cursor (``reason``, one of
    :data:`RESET_REASONS`): re-download the stream's snapshot from ``snapshot_path`` and
    continue from the snapshot's cursor (and anchor)."""

    stream: Stream
    snapshot_path: str
    reason: str = "cursor_expired"
    horizon: Cursor
    """Changes up to this seq have been compacted away."""


class StreamPage(Message):
    stream: Stream
    changes: list[Change] = []
    cursor: Cursor
    """The cursor to store together with these changes (unchanged when there were none)."""
    anchor: Anchor | None = None
    """Store it beside ``cursor`` and send it back in :attr:`PullRequest.anchors`. None: the
    cursor names no change (0, or a change written before HQ kept anchors)."""
    has_more: StrictBool = False
    reset: Reset | None = None


class PullResponse(Message):
    pages: dict[Stream, StreamPage]
    has_more: StrictBool
    server_time: AwareDatetime
    clock_offset_s: float


# ---------------------------------------------------------------------------------------------
# snapshots (NDJSON lines)


class SnapshotHeader(Message):
    stream: Stream
    cursor: Cursor
    """Continue pulling this stream from here once every row is loaded."""
    anchor: Anchor | None = None
    """The anchor of ``cursor`` (see :attr:`StreamPage.anchor`): stored with it."""
    protocol: StrictInt = PROTOCOL_VERSION
    after: str | None = None
    """The resume point this body starts after (None: the whole stream)."""
    generated_at: AwareDatetime


class SnapshotRow(Message):
    key: str
    row: dict[str, Any]


class SnapshotEnd(Message):
    rows: Annotated[StrictInt, Field(ge=0)]
    """Rows in this body (after ``after``)."""


SnapshotLine = SnapshotHeader | SnapshotRow | SnapshotEnd


def snapshot_line(item: SnapshotLine) -> str:
    """The NDJSON line (with its newline) for a header, a row or the end."""
    if isinstance(item, SnapshotHeader):
        return json.dumps({"snapshot": item.to_dict()}, ensure_ascii=False) + "\n"
    if isinstance(item, SnapshotEnd):
        return json.dumps({"end": item.to_dict()}) + "\n"
    return json.dumps({"key": item.key, "row": item.row}, ensure_ascii=False) + "\n"


def parse_snapshot_line(line: str | bytes) -> SnapshotLine:
    """Parse one NDJSON line. For millions of rows, a client may ``json.loads`` row lines
    itself and use this only for the first and the last line."""
    data = json.loads(line)
    if "snapshot" in data:
        return SnapshotHeader.model_validate(data["snapshot"])
    if "end" in data:
        return SnapshotEnd.model_validate(data["end"])
    return SnapshotRow.model_validate(data)


# ---------------------------------------------------------------------------------------------
# status and end-of-day reconciliation


class DeviceStatus(Message):
    store_id: str
    device_id: str
    last_applied_seq: Cursor
    heads: dict[Stream, Cursor]
    server_time: AwareDatetime


class MethodTotal(Message):
    count: Annotated[StrictInt, Field(ge=0)]
    """Payments with this method."""
    amount: StrictInt


class SalesSummary(Message):
    count: Annotated[StrictInt, Field(ge=0)]
    total: StrictInt
    tax_total: StrictInt
    by_method: dict[str, MethodTotal]


class OnHand(Message):
    sku: str
    on_hand: StrictInt


class DeviceSeq(Message):
    device_id: str
    last_applied_seq: Cursor


class ReconciliationResponse(Message):
    """HQ's side of the end-of-day comparison for the calling store: the business day's sales
    (``business_day`` as the store put it in each sale) and on-hand per SKU from HQ's ledger,
    for SKUs with any movement at this store, in SKU order, ``limit`` per page; ask for the next
    page with ``after=next_after`` until it is None. ``sales`` and ``devices`` are repeated on
    every page."""

    store_id: str
    business_day: date
    sales: SalesSummary
    on_hand: list[OnHand]
    next_after: str | None = None
    device_id: str
    last_applied_seq: Cursor
    """The calling device's."""
    devices: list[DeviceSeq]
    quarantined: Annotated[StrictInt, Field(ge=0)] = 0
    """Events of this store HQ holds in quarantine."""
    server_time: AwareDatetime


class SkuMovement(Message):
    sku: str
    net: StrictInt
    """Sum of the deltas of the calling device's stock movements HQ applied, over its whole
    history (every event up to its ``last_applied_seq``)."""


class StoreDevice(Message):
    """A till of the store as HQ last heard from it (for information at end of day)."""

    device_id: str
    last_applied_seq: Cursor
    last_push_at: AwareDatetime | None = None
    """When HQ last received a push from it (its sales reach HQ only by push)."""
    last_seen_at: AwareDatetime | None = None
    pending_reported: Annotated[StrictInt, Field(ge=0)] | None = None
    """Events its outbox still held at that push, as it reported them."""
    quarantined: Annotated[StrictInt, Field(ge=0)] = 0


class DeviceReconciliationResponse(Message):
    """HQ's side of the end-of-day comparison for the calling TILL (``device_id`` from its
    token): its sales of ``business_day`` (as the till put the day in each sale) with payments
    per method, and per SKU the net stock movement of its applied events (``movements``, in
    SKU order, ``limit`` per page; ask for the next page with ``after=next_after`` until it is
    None). For information only, the store-wide sales of the day and every till of the store
    (``devices``, the caller included). Everything but ``movements`` is repeated on every page;
    a single till compares only the ``device`` figures, which are what it alone produced."""

    store_id: str
    device_id: str
    business_day: date
    sales: SalesSummary
    """This device's sales of the day."""
    movements: list[SkuMovement]
    next_after: str | None = None
    last_applied_seq: Cursor
    quarantined: Annotated[StrictInt, Field(ge=0)] = 0
    """Events of this device HQ holds in quarantine."""
    store_sales: SalesSummary
    """Every till of the store, this one included."""
    devices: list[StoreDevice]
    server_time: AwareDatetime


EodScope = Literal["store", "device"]


class EodReport(Message):
    """What a store concluded at end of day, sent back to HQ (``POST /sync/v1/reconciliation``)
    so that ``hq report`` can show stock mismatches. ``differences`` lists up to
    :data:`MAX_EOD_DIFFERENCES` of them in the store's words."""

    business_day: date
    device_time: AwareDatetime
    verified: StrictBool
    pending_events: Annotated[StrictInt, Field(ge=0)] = 0
    sales_mismatches: Annotated[StrictInt, Field(ge=0)] = 0
    stock_mismatches: Annotated[StrictInt, Field(ge=0)] = 0
    differences: Annotated[list[Annotated[str, Field(max_length=500)]], Field(max_length=200)] = []
    scope: EodScope = "store"
    """What was compared: ``store`` (an old till: the store's figures) or ``device`` (this
    till's own sales and stock movements). Absent from an old till's report: ``store``."""


MAX_EOD_DIFFERENCES = 200


class EodReceipt(Message):
    store_id: str
    business_day: date
    received_at: AwareDatetime


# ---------------------------------------------------------------------------------------------
# payloads HQ applies (schema_version 1)


class SaleLineV1(Message):
    line_no: Annotated[StrictInt, Field(ge=1)]
    sku: Annotated[str, Field(min_length=1)]
    name: str
    qty: Annotated[StrictInt, Field(ge=1)]
    unit_price: StrictInt
    tax_rate_bp: StrictInt
    line_total: StrictInt
    tax_amount: StrictInt
    movement_id: UUIDText
    code: str | None = None
    stock_short: StrictBool = False


class SalePaymentV1(Message):
    method: Literal["cash", "card", "wallet"]
    amount: StrictInt
    tendered: StrictInt | None = None
    change: StrictInt | None = None
    reference: str | None = None


class SaleCompletedV1(Message):
    """``sale.completed`` schema_version 1: exactly the store's payload (contract-store)."""

    sale_id: UUIDText
    sale_no: StrictInt
    short_id: str
    store_id: str
    device_id: str
    business_day: date
    completed_at: AwareDatetime
    currency: str = "CNY"
    guide_id: str | None = None
    total: StrictInt
    tax_total: StrictInt
    lines: Annotated[list[SaleLineV1], Field(min_length=1)]
    payments: list[SalePaymentV1]

    @model_validator(mode="after")
    def _lines_distinct(self) -> SaleCompletedV1:
        if len({line.movement_id for line in self.lines}) != len(self.lines):
            raise ValueError("two lines share a movement_id")
        return self


class MovementV1(Message):
    movement_id: UUIDText
    sku: Annotated[str, Field(min_length=1)]
    delta: StrictInt
    reason: str | None = None


class StockMovementsV1(Message):
    """``stock.adjusted`` / ``stock.received`` (and any ``stock.*`` movement event) v1."""

    movements: Annotated[list[MovementV1], Field(min_length=1)]

    @model_validator(mode="after")
    def _distinct(self) -> StockMovementsV1:
        if len({m.movement_id for m in self.movements}) != len(self.movements):
            raise ValueError("two movements share a movement_id")
        return self


SALE_COMPLETED = "sale.completed"
STOCK_MOVEMENT_TYPES: tuple[str, ...] = ("stock.adjusted", "stock.received")

# ---------------------------------------------------------------------------------------------
# online orders: the orders stream (HQ -> store) and the order events (store -> HQ)
#
# Rows of the ``orders`` stream are partitioned per store: a store receives only orders
# assigned to it now or taken from it (``revoked``) or called off (``cancelled``); the key is
# the order id, ``lines`` are only the lines (and quantities) this store is to fulfil under
# ``epoch``. Every order event carries the epoch the store acted under; HQ answers an event of
# an epoch that is no longer the store's current assignment ``superseded`` and still applies
# its stock movements. Coordinates inside EVENT payloads are decimal text ("31.2304"): payloads
# carry no floats (see :func:`canonical_json`); rows of the stream carry numbers.

OrderAssignment = Literal[
    "assigned", "accepted", "cancel_requested", "revoked", "completed", "cancelled"
]
DeliveryKind = Literal["pickup", "delivery"]
REJECT_ORDER_REASONS: tuple[str, ...] = ("out_of_stock", "damaged", "no_staff", "closing", "other")


def _coordinate(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


Latitude = Annotated[float, BeforeValidator(_coordinate), Field(ge=-90, le=90)]
Longitude = Annotated[float, BeforeValidator(_coordinate), Field(ge=-180, le=180)]
OrderId = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
Qty = Annotated[StrictInt, Field(ge=1)]


class OrderCustomer(Message):
    name: Annotated[str, Field(max_length=200)]
    phone: Annotated[str, Field(max_length=64)]


class OrderAddress(Message):
    text: Annotated[str, Field(max_length=500)]
    lat: Latitude
    lon: Longitude


class OrderRowLine(Message):
    line_id: str
    sku: str
    name: str
    qty: Qty


class OrderRow(Message):
    """Row of the ``orders`` stream (key = order_id), as the contract between HQ and stores
    says. ``revoked``/``cancelled``: void the holds (and, if picked, return to shelf)."""

    order_id: str
    platform: str
    platform_order_id: str
    epoch: Annotated[StrictInt, Field(ge=1)]
    assignment: OrderAssignment
    accept_by: AwareDatetime
    promised_at: AwareDatetime | None = None
    delivery: DeliveryKind
    customer: OrderCustomer
    address: OrderAddress | None = None
    lines: list[OrderRowLine]
    pickup_code_hash: HashHex | None = None
    note: str | None = None


class _OrderEvent(Message):
    order_id: OrderId
    epoch: Annotated[StrictInt, Field(ge=1)]


class OrderAcceptedV1(_OrderEvent):
    pass


class OrderRejectedV1(_OrderEvent):
    reason: Literal["out_of_stock", "damaged", "no_staff", "closing", "other"]
    note: Annotated[str, Field(max_length=500)] | None = None


class PickedLineV1(Message):
    line_id: str
    sku: str
    qty_ordered: Qty
    qty_picked: Annotated[StrictInt, Field(ge=0)]
    substitute_sku: str | None = None
    reason: Annotated[str, Field(max_length=200)] | None = None


class OrderPickedV1(_OrderEvent):
    lines: Annotated[list[PickedLineV1], Field(min_length=1)]


class OrderReadyV1(_OrderEvent):
    pass


class OrderMovementV1(MovementV1):
    delta: Annotated[StrictInt, Field(lt=0)]


class OrderHandedOverV1(_OrderEvent):
    movements: list[OrderMovementV1] = []

    @model_validator(mode="after")
    def _distinct(self) -> OrderHandedOverV1:
        if len({m.movement_id for m in self.movements}) != len(self.movements):
            raise ValueError("two movements share a movement_id")
        return self


class OrderShippedV1(OrderHandedOverV1):
    tracking: Annotated[str, Field(min_length=1, max_length=128)]


class OrderCancelAcceptedV1(_OrderEvent):
    pass


class OrderCancelRefusedV1(_OrderEvent):
    reason: Annotated[str, Field(max_length=500)] = ""


class OrderHoldAtRiskV1(_OrderEvent):
    sku: str
    shortfall: Qty
    sale_id: UUIDText | None = None


class OrderReturnedToShelfV1(_OrderEvent):
    pass


class RequestedLineV1(Message):
    sku: Annotated[str, Field(min_length=1)]
    qty: Qty


class OrderRequestedV1(Message):
    """``order.requested`` (endless aisle): a till asks HQ for a delivery order; HQ creates a
    normal order attributed to ``origin_store``, idempotent by ``request_id``."""

    request_id: OrderId
    lines: Annotated[list[RequestedLineV1], Field(min_length=1, max_length=200)]
    customer: OrderCustomer
    address: OrderAddress
    delivery: Literal["delivery"] = "delivery"
    origin_store: str
    note: Annotated[str, Field(max_length=500)] | None = None


ORDER_ACCEPTED = "order.accepted"
ORDER_REJECTED = "order.rejected"
ORDER_PICKED = "order.picked"
ORDER_READY = "order.ready"
ORDER_HANDED_OVER = "order.handed_over"
ORDER_SHIPPED = "order.shipped"
ORDER_CANCEL_ACCEPTED = "order.cancel_accepted"
ORDER_CANCEL_REFUSED = "order.cancel_refused"
ORDER_HOLD_AT_RISK = "order.hold_at_risk"
ORDER_RETURNED_TO_SHELF = "order.returned_to_shelf"
ORDER_REQUESTED = "order.requested"
ORDER_EVENT_MODELS: dict[str, type[Message]] = {
    ORDER_ACCEPTED: OrderAcceptedV1,
    ORDER_REJECTED: OrderRejectedV1,
    ORDER_PICKED: OrderPickedV1,
    ORDER_READY: OrderReadyV1,
    ORDER_HANDED_OVER: OrderHandedOverV1,
    ORDER_SHIPPED: OrderShippedV1,
    ORDER_CANCEL_ACCEPTED: OrderCancelAcceptedV1,
    ORDER_CANCEL_REFUSED: OrderCancelRefusedV1,
    ORDER_HOLD_AT_RISK: OrderHoldAtRiskV1,
    ORDER_RETURNED_TO_SHELF: OrderReturnedToShelfV1,
    ORDER_REQUESTED: OrderRequestedV1,
}
"""schema_version 1 of every order event type."""


def pickup_qr(order_id: str, code: str) -> str:
    """The text of the customer's pickup QR (the scanner reads it as kind ``pickup``)."""
    return f"PICKUP:{order_id}:{code}"


def pickup_code_hash(code: str) -> str:
    """What a store keeps of a pickup code: sha256 hex of the digits."""
    return hashlib.sha256(code.strip().encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------
# errors

ERROR_CODES: dict[str, int] = {
    "malformed_json": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "validation_error": 422,
    "batch_too_large": 422,
    "batch_out_of_order": 422,
    "device_mismatch": 403,
    "too_many_requests": 429,
    "unavailable": 503,
    "internal_error": 500,
}
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


class ErrorDetail(Message):
    code: str
    message: str
    detail: Any = None


class ErrorBody(Message):
    """The one JSON shape of every failed request: ``{"error": {code, message, detail?}}``."""

    error: ErrorDetail

    @classmethod
    def of(cls, code: str, message: str, detail: Any = None) -> ErrorBody:
        return cls(error=ErrorDetail(code=code, message=message, detail=detail))


def is_retryable(status_code: int) -> bool:
    """True when a failed request should be retried later with backoff (HQ down or busy)."""
    return status_code in RETRYABLE_STATUS
