"""Messages exchanged by stores and HQ: no I/O, used by both ends.

The package holds three modules, imported from here as one namespace:

* :mod:`sync.protocol.canonical` — canonical JSON and the payload hash (standard library only:
  the till's journal hashes its events without loading pydantic);
* :mod:`sync.protocol.messages` — the pydantic models, paths and limits of the HTTP API below,
  loaded on first use of any of their names (``from sync.protocol import PushRequest`` works as
  before);
* :mod:`sync.protocol.catalog_file` — the catalogue file format that HQ and the till both import
  (rows, prices, barcode keys), pure functions.

The event envelope and its hashing live here so that the store's outbox and HQ's ingest agree on
the bytes a payload hash is taken over; every request, response, snapshot line and error body of
the HTTP API under ``/sync/v1`` is a model here, so a client and HQ cannot drift apart.

How a client drives HQ (every call carries ``Authorization: Bearer <device token>``; HQ takes the
store and the device from the token, never from a body):

``POST /sync/v1/push`` — body :class:`PushRequest`, answer :class:`PushResponse`.
    Send pending outbox events in ``seq`` order, at most :data:`MAX_PUSH_BATCH` per request.
    Each event gets one :class:`PushResult`:

    * ``applied``: its effects are committed at HQ, in the same transaction that moved the
      device's ``last_applied_seq``.
    * ``duplicate``: HQ had already processed this ``seq`` with the same ``event_id`` and payload
      hash; ``original_status``/``reason`` say how it went the first time (a re-push of a
      quarantined event answers ``duplicate`` with ``original_status="rejected"``).
    * ``rejected``: a business-rule failure; HQ quarantined the event with ``reason``
      (``"<code>: <words>"``, codes in :data:`REJECT_REASONS`). It still counts as processed:
      ``last_applied_seq`` moved past it and later events are not blocked. The one exception is
      ``idempotency_mismatch`` on a ``seq`` HQ had already processed: that seq's original event
      stays applied and nothing moves (it is a bug alert, never silently overwritten).
    * ``superseded``: an order event under a stale epoch (its stock movements still apply).

    Events after a gap (``seq > last_applied_seq + 1``) get no result and ``stopped_at_gap`` is
    true: resend from ``last_applied_seq + 1``. A ``last_applied_seq`` lower than what the store
    holds acknowledged means HQ was restored from a backup: rewind and re-push from there.

``POST /sync/v1/pull`` — body :class:`PullRequest`, answer :class:`PullResponse`.
    One :class:`StreamPage` per asked stream. Apply a page's changes and store its ``cursor``
    with its ``anchor`` in one local transaction; send the anchors back in
    :attr:`PullRequest.anchors`. A page never ends inside an HQ transaction. ``has_more`` asks
    for another pull. A page with ``reset`` set carries no changes (``reason`` is one of
    :data:`RESET_REASONS`, among them ``history_changed``: HQ was restored from a backup and its
    change at the cursor is another one than the till pulled): fetch that stream's snapshot,
    replace that stream's local rows, and continue from the snapshot's cursor and anchor (other
    streams and the outbox are untouched).

``GET /sync/v1/snapshot/{stream}[?after=KEY]`` — NDJSON (``application/x-ndjson``).
    First line ``{"snapshot": SnapshotHeader}``, then one ``{"key": ..., "row": {...}}`` per row
    in key order, last line ``{"end": SnapshotEnd}``. A body without the end line was cut:
    resume with ``?after=<last key received>`` and keep the cursor and anchor of the FIRST
    header (rows after the resume point may be newer; replaying the changes from the older
    cursor is idempotent and converges).

``GET /sync/v1/reconciliation?business_day=YYYY-MM-DD[&after=SKU&limit=N]``
    :class:`ReconciliationResponse`: HQ's view of the calling store for end of day.

``GET /sync/v1/reconciliation/device?business_day=YYYY-MM-DD[&after=SKU&limit=N]``
    :class:`DeviceReconciliationResponse`: HQ's view of the calling TILL (its own sales and the
    net stock movement of its own events), plus the store's other tills for information. A
    till of a store with several tills can be verified only with this one.

``POST /sync/v1/reconciliation`` — body :class:`EodReport`, answer :class:`EodReceipt`: the
    store's conclusion (verified or the counts of differences), shown by ``hq report``.

``GET /sync/v1/status`` — :class:`DeviceStatus` (``last_applied_seq`` and heads, no writes).

Every failure of a whole request is one JSON shape, :class:`ErrorBody`, with a code from
:data:`ERROR_CODES`; 503 (and 429) mean "retry later with backoff", any other 4xx means the
request itself is wrong and resending it unchanged will fail again.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sync.protocol.canonical import canonical_json as canonical_json
from sync.protocol.canonical import payload_hash as payload_hash

if TYPE_CHECKING:
    from sync.protocol.messages import *  # noqa: F403

_SUBMODULES = frozenset({"canonical", "catalog_file", "messages"})


def __getattr__(name: str) -> Any:
    # the models load on first use: importing the package (or its light submodules) must not
    # pay for pydantic
    if name.startswith("_") or name in _SUBMODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    messages = importlib.import_module("sync.protocol.messages")
    try:
        value = getattr(messages, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    messages = importlib.import_module("sync.protocol.messages")
    return sorted(set(globals()) | {n for n in vars(messages) if not n.startswith("_")})
