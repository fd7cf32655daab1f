"""Pushes each platform's notifications (:mod:`hq.notify`) to the platform's webhook URL, for
platforms that prefer being called to reading the feed. The feed stays the contract: the
webhook only saves the platform a poll, and a platform may use both.

Each notification is one ``POST`` of its JSON to the URL, in ``seq`` order, with the header
``Idempotency-Key: <notification_id>`` (the same on every retry). A 2xx answer counts as
delivered; anything else stops the round at that notification, which is sent again later
(at least once: the platform drops a key it has seen). Inside a round a transport error, 408,
429 or 5xx is retried a few times with backoff (stamina); after a failed round the platform
waits ``backoff_s`` doubled per failed round (up to ``backoff_max_s``) before the next one.
Progress (``delivered_seq``) is kept in ``platform_webhooks`` after each round, so a restart
of HQ resumes where delivery stood.

``hq serve`` runs the rounds in the background every ``poll_s``. With several HQ processes
(``--workers N``) a platform is delivered by one of them at a time: a round takes a lease on
the platform's row (``lease_until``) and the others skip it until it is released or runs
out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import stamina
from sqlalchemy import and_, or_, select, update
from starlette.concurrency import run_in_threadpool

from hq import notify
from hq.db import Database, platform_notify_heads, platform_webhooks, platforms, utcnow
from hq.errors import Invalid, NotFound

IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class WebhookSettings:
    poll_s: float = 2.0
    batch: int = 50  # notifications per platform per round
    timeout_s: float = 10.0
    attempts: int = 3  # per notification inside a round
    wait_initial_s: float = 0.5
    wait_max_s: float = 5.0
    backoff_s: float = 5.0
    backoff_max_s: float = 600.0
    lease_s: float = 120.0


class Transient(Exception):
    """The platform did not take it now (network, 408, 429, 5xx): try again."""


class Refused(Exception):
    """The platform answered another 4xx: retried in a later round only."""


def set_url(db: Database, platform: str, url: str, *, from_start: bool = False) -> None:
    """Deliver the platform's notifications to ``url`` from now on (``from_start``: every
    notification HQ holds for it, from seq 1)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(f"{url!r} is not an http(s) URL")
    with db.write() as conn:
        if (
            conn.execute(
                select(platforms.c.platform).where(platforms.c.platform == platform)
            ).first()
            is None
        ):
            raise NotFound(f"no platform {platform} (`hq platform add {platform}`)")
        head = conn.execute(
            select(platform_notify_heads.c.head).where(platform_notify_heads.c.platform == platform)
        ).scalar()
        db.upsert(
            conn,
            platform_webhooks,
            [
                {
                    "platform": platform,
                    "url": url,
                    "delivered_seq": 0 if from_start else int(head or 0),
                    "attempts": 0,
                    "next_attempt_at": None,
                    "last_error": None,
                    "lease_until": None,
                }
            ],
            ["platform"],
        )


def remove(db: Database, platform: str) -> bool:
    with db.write() as conn:
        done = conn.execute(
            platform_webhooks.delete().where(platform_webhooks.c.platform == platform)
        )
    return bool(done.rowcount)


def state(db: Database) -> list[dict[str, Any]]:
    """Every webhook with how far delivery stands (for ``hq platform webhooks``)."""
    with db.read() as conn:
        rows = conn.execute(
            select(platform_webhooks, platform_notify_heads.c.head)
            .select_from(
                platform_webhooks.outerjoin(
                    platform_notify_heads,
                    platform_notify_heads.c.platform == platform_webhooks.c.platform,
                )
            )
            .order_by(platform_webhooks.c.platform)
        )
        return [
            {
                "platform": r.platform,
                "url": r.url,
                "delivered_seq": int(r.delivered_seq),
                "head": int(r.head or 0),
                "attempts": int(r.attempts),
                "next_attempt_at": None
                if r.next_attempt_at is None
                else r.next_attempt_at.isoformat(),
                "last_error": r.last_error,
            }
            for r in rows
        ]


def _due(db: Database, now: datetime) -> list[str]:
    with db.read() as conn:
        return [
            r[0]
            for r in conn.execute(
                select(platform_webhooks.c.platform)
                .select_from(
                    platform_webhooks.join(
                        platform_notify_heads,
                        platform_notify_heads.c.platform == platform_webhooks.c.platform,
                    )
                )
                .where(
                    platform_notify_heads.c.head > platform_webhooks.c.delivered_seq,
                    or_(
                        platform_webhooks.c.next_attempt_at.is_(None),
                        platform_webhooks.c.next_attempt_at <= now,
                    ),
                    or_(
                        platform_webhooks.c.lease_until.is_(None),
                        platform_webhooks.c.lease_until < now,
                    ),
                )
                .order_by(platform_webhooks.c.platform)
            )
        ]


def _lease(db: Database, platform: str, now: datetime, lease_s: float) -> tuple[str, int] | None:
    with db.write() as conn:
        row = conn.execute(
            db.lock_rows(select(platform_webhooks).where(platform_webhooks.c.platform == platform))
        ).first()
        if row is None or (row.lease_until is not None and row.lease_until >= now):
            return None
        if row.next_attempt_at is not None and row.next_attempt_at > now:
            return None
        conn.execute(
            update(platform_webhooks)
            .where(platform_webhooks.c.platform == platform)
            .values(lease_until=now + timedelta(seconds=lease_s))
        )
        return str(row.url), int(row.delivered_seq)


def _release(
    db: Database,
    platform: str,
    delivered: int,
    error: str | None,
    now: datetime,
    settings: WebhookSettings,
) -> None:
    with db.write() as conn:
        row = conn.execute(
            select(platform_webhooks.c.attempts).where(platform_webhooks.c.platform == platform)
        ).first()
        if row is None:  # removed meanwhile
            return
        values: dict[str, Any] = {"lease_until": None}
        values["delivered_seq"] = delivered
        if error is None:
            values.update(attempts=0, next_attempt_at=None, last_error=None)
        else:
            attempts = int(row.attempts) + 1
            wait = min(settings.backoff_s * 2 ** (attempts - 1), settings.backoff_max_s)
            values.update(
                attempts=attempts,
                next_attempt_at=now + timedelta(seconds=wait),
                last_error=error[:500],
            )
        conn.execute(
            update(platform_webhooks)
            .where(
                and_(
                    platform_webhooks.c.platform == platform,
                    platform_webhooks.c.delivered_seq <= delivered,
                )
            )
            .values(**values)
        )


async def _post(
    client: httpx.AsyncClient, url: str, item: dict[str, Any], settings: WebhookSettings
) -> None:
    body = json.dumps(item, ensure_ascii=False).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: str(item["notification_id"]),
    }
    async for attempt in stamina.retry_context(
        on=Transient,
        attempts=settings.attempts,
        timeout=None,
        wait_initial=settings.wait_initial_s,
        wait_max=settings.wait_max_s,
        wait_jitter=settings.wait_initial_s,
    ):
        with attempt:
            try:
                r = await client.post(
                    url, content=body, headers=headers, timeout=settings.timeout_s
                )
            except httpx.TransportError as error:
                raise Transient(f"{type(error).__name__}: {error}") from error
            if r.status_code in (408, 429) or r.status_code >= 500:
                raise Transient(f"HTTP {r.status_code}")
            if not r.is_success:
                raise Refused(f"HTTP {r.status_code}: {r.text[:200]}")


@dataclass(frozen=True)
class Round:
    platform: str
    sent: int
    error: str | None = None


async def deliver(
    db: Database,
    platform: str,
    client: httpx.AsyncClient,
    *,
    now: datetime | None = None,
    settings: WebhookSettings | None = None,
) -> Round | None:
    """One round for one platform: up to ``batch`` notifications, in order, stopping at the
    first the platform does not take. None when another process holds the platform or it is
    not due."""
    settings = settings or WebhookSettings()
    now = now or utcnow()
    leased = await run_in_threadpool(_lease, db, platform, now, settings.lease_s)
    if leased is None:
        return None
    url, delivered = leased
    sent, error = 0, None
    try:
        page = await run_in_threadpool(notify.feed, db, platform, delivered, settings.batch)
        for item in page["notifications"]:
            await _post(client, url, item, settings)
            delivered = int(item["seq"])
            sent += 1
    except (Transient, Refused) as failure:
        error = str(failure)
    finally:
        await run_in_threadpool(_release, db, platform, delivered, error, now, settings)
    return Round(platform, sent, error)


async def run_once(
    db: Database,
    client: httpx.AsyncClient,
    *,
    now: datetime | None = None,
    settings: WebhookSettings | None = None,
) -> list[Round]:
    """A round for every platform that has undelivered notifications and is due."""
    now = now or utcnow()
    done = []
    for platform in await run_in_threadpool(_due, db, now):
        r = await deliver(db, platform, client, now=now, settings=settings)
        if r is not None:
            done.append(r)
    return done


__all__ = [
    "IDEMPOTENCY_HEADER",
    "Round",
    "WebhookSettings",
    "deliver",
    "remove",
    "run_once",
    "set_url",
    "state",
]
