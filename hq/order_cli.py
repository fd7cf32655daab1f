"""`hq platform ...` and `hq order ...`: online orders from the command line (for people who
take an order by phone, and for tests and demos), and the incidents `hq report` lists."""

from __future__ import annotations

import json
import random
from datetime import datetime
from typing import Any

import click


def _db(ctx: click.Context) -> Any:
    from hq.cli import _db as db_of

    return db_of(ctx)


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise click.BadParameter(f"{value!r} needs a time zone (e.g. +08:00)")
    return when


@click.group()
def platform() -> None:
    """E-commerce platforms that submit orders."""


@platform.command("add")
@click.argument("name")
@click.pass_context
def platform_add(ctx: click.Context, name: str) -> None:
    """Register a platform; prints its API key ONCE (HQ keeps only a hash)."""
    from hq import orders

    key = orders.add_platform(_db(ctx), name)
    click.echo(f"Platform {name} added. Its API key (shown once):", err=True)
    click.echo(key)


@platform.command("webhook")
@click.argument("name")
@click.argument("url", required=False)
@click.option("--off", is_flag=True, help="Stop pushing (the feed stays).")
@click.option("--from-start", is_flag=True, help="Send every notification HQ holds, from 1.")
@click.pass_context
def platform_webhook(
    ctx: click.Context, name: str, url: str | None, off: bool, from_start: bool
) -> None:
    """Push the platform's notifications to URL (hq serve delivers them in the background)."""
    from hq import webhooks
    from hq.errors import HQError

    if off:
        gone = webhooks.remove(_db(ctx), name)
        click.echo(f"Webhook of {name} {'removed' if gone else 'was not set'}.")
        return
    if not url:
        raise click.UsageError("give the URL, or --off")
    try:
        webhooks.set_url(_db(ctx), name, url, from_start=from_start)
    except HQError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"Notifications of {name} go to {url}.")


@platform.command("webhooks")
@click.pass_context
def platform_webhooks(ctx: click.Context) -> None:
    """Each platform's webhook and how far delivery stands."""
    from hq import webhooks

    for w in webhooks.state(_db(ctx)):
        late = (
            f", retry at {w['next_attempt_at'][:19]}: {w['last_error']}" if w["last_error"] else ""
        )
        click.echo(
            f"{w['platform']}  {w['url']}  delivered {w['delivered_seq']} of {w['head']}{late}"
        )


@click.group()
def order() -> None:
    """Online orders: create, show, reassign, cancel, notifications, and the periodic duty."""


@order.command("create")
@click.option("--platform", "platform_name", default="phone", show_default=True)
@click.option("--ref", "ref", required=True, help="The platform's order id (idempotency key).")
@click.option("--line", "lines", multiple=True, required=True, help="SKU:QTY (repeat).")
@click.option("--pickup", "pickup", help="Pickup in this store.")
@click.option("--address", help="Delivery address (with --lat and --lon).")
@click.option("--lat", type=float)
@click.option("--lon", type=float)
@click.option("--name", "customer", required=True, help="Customer's name.")
@click.option("--phone", required=True)
@click.option("--promised", help="Promised time, ISO with zone.")
@click.option("--note")
@click.option("--at", "at", help="HQ time to act at (ISO, tests).")
@click.pass_context
def order_create(
    ctx: click.Context,
    platform_name: str,
    ref: str,
    lines: tuple[str, ...],
    pickup: str | None,
    address: str | None,
    lat: float | None,
    lon: float | None,
    customer: str,
    phone: str,
    promised: str | None,
    note: str | None,
    at: str | None,
) -> None:
    """Take an order and dispatch it; prints the order id."""
    from hq import orders

    parsed = []
    for item in lines:
        sku, _, qty = item.rpartition(":")
        if not sku or not qty.isdigit() or int(qty) < 1:
            raise click.BadParameter(f"{item!r}: write SKU:QTY, e.g. 6901234567890:2")
        parsed.append({"sku": sku, "qty": int(qty)})
    if pickup:
        delivery: dict[str, Any] = {"type": "pickup", "store_id": pickup}
    elif address and lat is not None and lon is not None:
        delivery = {"type": "delivery", "address": {"text": address, "lat": lat, "lon": lon}}
    else:
        raise click.UsageError("give --pickup STORE or --address with --lat and --lon")
    intake = orders.OrderIntake.model_validate(
        {
            "platform_order_id": ref,
            "lines": parsed,
            "delivery": delivery,
            "customer": {"name": customer, "phone": phone},
            "promised_at": promised,
            "note": note,
        }
    )
    order_id, created = orders.submit(_db(ctx), platform_name, intake, now=_when(at))
    view = orders.view(_db(ctx), order_id)
    click.echo(
        f"{'Created' if created else 'Already known'}: {order_id} ({view['state']})", err=True
    )
    click.echo(order_id)


@order.command("demo")
@click.option("--count", default=10, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--lines", "max_lines", default=3, show_default=True)
@click.pass_context
def order_demo(ctx: click.Context, count: int, seed: int, max_lines: int) -> None:
    """Create COUNT delivery orders near random stores, for SKUs the stores hold."""
    from sqlalchemy import select

    from hq import orders
    from hq.db import stock_on_hand, stores

    db = _db(ctx)
    rng = random.Random(seed)
    with db.read() as conn:
        places = [
            (r.store_id, r.lat, r.lon)
            for r in conn.execute(select(stores).where(stores.c.lat.is_not(None)))
        ]
        held = [
            (r.store_id, r.sku)
            for r in conn.execute(
                select(stock_on_hand.c.store_id, stock_on_hand.c.sku)
                .where(stock_on_hand.c.on_hand > 0)
                .limit(100_000)
            )
        ]
    if not places or not held:
        raise click.ClickException("no stores with a location and stock yet")
    where = {s: (la, lo) for s, la, lo in places}
    made = 0
    for n in range(count):
        store, sku = rng.choice(held)
        lat, lon = where.get(store, places[0][1:])
        skus = {sku} | {rng.choice(held)[1] for _ in range(rng.randrange(max_lines))}
        intake = orders.OrderIntake.model_validate(
            {
                "platform_order_id": f"DEMO-{seed}-{n}",
                "lines": [{"sku": s, "qty": 1} for s in sorted(skus)],
                "delivery": {
                    "type": "delivery",
                    "address": {
                        "text": f"demo address {n}",
                        "lat": lat + rng.uniform(-0.02, 0.02),
                        "lon": lon + rng.uniform(-0.02, 0.02),
                    },
                },
                "customer": {"name": f"Demo {n}", "phone": "13800000000"},
            }
        )
        order_id, _ = orders.submit(db, "demo", intake)
        click.echo(order_id)
        made += 1
    click.echo(f"{made} demo order(s) created.", err=True)


@order.command("show")
@click.argument("order_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def order_show(ctx: click.Context, order_id: str, as_json: bool) -> None:
    """The order, its pickup code, its assignments, its full timeline and what the platform
    was told."""
    from hq import notify, orders

    v = orders.view(_db(ctx), order_id)
    if as_json:
        click.echo(json.dumps(v, ensure_ascii=False, indent=2))
        return
    click.echo(f"Order {v['order_id']}  ({v['platform']} {v['platform_order_id']})")
    click.echo(f"  state {v['state']}, epoch {v['epoch']}, {v['delivery']}")
    if v["pickup_store"]:
        click.echo(f"  pickup at {v['pickup_store']}")
    if v["address"]:
        a = v["address"]
        click.echo(f"  deliver to {a['text']} ({a['lat']}, {a['lon']})")
    click.echo(f"  customer {v['customer']['name']} {v['customer']['phone']}")
    if v["pickup_code"]:
        click.echo(f"  pickup code {v['pickup_code']}   QR: {v['pickup_qr']}")
    click.echo("  lines:")
    for ln in v["lines"]:
        click.echo(f"    {ln['line_id']} {ln['sku']} x{ln['qty']} ({ln['fulfilled']} fulfilled)")
    click.echo("  timeline (HQ time):")
    for t in v["timeline"]:
        where = f" {t['store_id']}" if t["store_id"] else ""
        epoch = f" epoch {t['epoch']}" if t["epoch"] is not None else ""
        detail = f"  {json.dumps(t['detail'], ensure_ascii=False)}" if t["detail"] else ""
        click.echo(f"    {t['at']}  {t['kind']}{where}{epoch}{detail}")
    for i in v["incidents"]:
        click.echo(f"  INCIDENT {i['kind']} stores {', '.join(i['stores'])} at {i['opened_at']}")
    told = notify.of_order(_db(ctx), order_id)
    if told:
        click.echo(f"  told the platform ({v['platform']}):")
        for n in told:
            click.echo(f"    #{n['seq']}  {n['at']}  {n['kind']}  {_summary(n)}")


@order.command("list")
@click.option("--state", help="open, backorder, cancelling, completed or cancelled.")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def order_list(ctx: click.Context, state: str | None, limit: int, as_json: bool) -> None:
    """The latest orders."""
    from sqlalchemy import select

    from hq.db import orders as table

    q = select(table).order_by(table.c.created_at.desc(), table.c.order_id).limit(limit)
    if state:
        q = q.where(table.c.state == state)
    with _db(ctx).read() as conn:
        rows = list(conn.execute(q))
    for r in rows:
        item = {
            "order_id": r.order_id,
            "platform": r.platform,
            "platform_order_id": r.platform_order_id,
            "state": r.state,
            "epoch": int(r.epoch),
            "created_at": r.created_at.isoformat(),
        }
        if as_json:
            click.echo(json.dumps(item, ensure_ascii=False))
        else:
            click.echo(
                f"{r.order_id}  {r.state:<9}  epoch {r.epoch}  {r.platform} {r.platform_order_id}"
            )


@order.command("tick")
@click.option("--at", "at", help="HQ time to act at (ISO with zone; default now).")
@click.pass_context
def order_tick(ctx: click.Context, at: str | None) -> None:
    """Run the periodic duty once: timeouts, forced reassignments, backorder retries."""
    from hq import orders

    r = orders.tick(_db(ctx), now=_when(at))
    click.echo(f"expired {r.expired}, forced {r.forced}, backorders retried {r.retried}", err=True)


@order.command("reassign")
@click.argument("order_id")
@click.option("--store", "store_id", help="Only the part at this store.")
@click.option("--cancel", is_flag=True, help="Call the order off instead of re-dispatching.")
@click.option("--at", "at", help="HQ time to act at (ISO with zone; default now).")
@click.pass_context
def order_reassign(
    ctx: click.Context, order_id: str, store_id: str | None, cancel: bool, at: str | None
) -> None:
    """Take an order from its store(s): at once if not yet accepted, else by asking the store
    (forced when it has been unreachable too long)."""
    from hq import orders

    for line in orders.reassign(
        _db(ctx), order_id, store_id=store_id, now=_when(at), cancel=cancel
    ):
        click.echo(line)


@order.command("cancel")
@click.argument("order_id", required=False)
@click.option("--platform", "platform_name", help="With --ref: the platform's order.")
@click.option("--ref", "ref", help="The platform's order id.")
@click.option("--reason", help="Why (the customer's words), kept with the order.")
@click.option("--at", "at", help="HQ time to act at (ISO with zone; default now).")
@click.pass_context
def order_cancel(
    ctx: click.Context,
    order_id: str | None,
    platform_name: str | None,
    ref: str | None,
    reason: str | None,
    at: str | None,
) -> None:
    """Cancel an order as its platform would (the customer changed their mind): at once when
    no store accepted it yet, else HQ asks the store and the outcome comes as a notification.
    Give HQ's ORDER_ID, or --platform and --ref."""
    from sqlalchemy import select

    from hq import platform_orders
    from hq.db import orders as table
    from hq.errors import HQError

    db = _db(ctx)
    if order_id:
        with db.read() as conn:
            row = conn.execute(
                select(table.c.platform, table.c.platform_order_id).where(
                    table.c.order_id == order_id
                )
            ).first()
        if row is None:
            raise click.ClickException(f"no order {order_id}")
        platform_name, ref = row.platform, row.platform_order_id
    elif not (platform_name and ref):
        raise click.UsageError("give ORDER_ID, or --platform and --ref")
    assert platform_name is not None and ref is not None
    try:
        done = platform_orders.cancel(db, platform_name, ref, reason=reason, now=_when(at))
    except HQError as error:
        raise click.ClickException(error.message) from None
    if done.status == "cancelled":
        click.echo(f"{done.order_id}: cancelled")
    else:
        click.echo(
            f"{done.order_id}: cancel requested, waiting for {', '.join(done.waiting_for)} "
            "(the store agrees or refuses; `hq order show` tells)"
        )


@order.command("notifications")
@click.option("--platform", "platform_name", required=True)
@click.option("--after", default=0, show_default=True, help="Cursor: the last seq seen.")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One notification per line, as sent.")
@click.pass_context
def order_notifications(
    ctx: click.Context, platform_name: str, after: int, limit: int, as_json: bool
) -> None:
    """What a platform's customers should hear (the feed the platform reads), oldest first."""
    from hq import notify

    page = notify.feed(_db(ctx), platform_name, after, limit)
    for n in page["notifications"]:
        if as_json:
            click.echo(json.dumps(n, ensure_ascii=False))
        else:
            click.echo(f"{n['seq']:>6}  {n['at'][:19]}  {n['kind']:<16} {_summary(n)}")
    click.echo(
        f"cursor {page['cursor']}, head {page['head']}"
        + (" (more: --after {})".format(page["cursor"]) if page["has_more"] else ""),
        err=True,
    )


def _summary(n: dict[str, Any]) -> str:
    text = f"{n['order_id']} ({n['platform_order_id']})"
    if n.get("store"):
        text += f" at {n['store']['store_id']}"
    if n.get("tracking"):
        text += f" tracking {n['tracking']}"
    if n.get("pickup_code"):
        text += f" code {n['pickup_code']}"
    if n.get("reason"):
        text += f": {n['reason']}"
    if n.get("outstanding"):
        text += " (partial)"
    return text


def print_incidents(db: Any, as_json: bool) -> None:
    """Open order incidents, after the per-till lines of `hq report`."""
    from hq import orders

    found = orders.incidents(db)
    if as_json:
        for i in found:
            click.echo(json.dumps({"incident": i}, ensure_ascii=False))
        return
    if not found:
        return
    click.echo("")
    click.echo(f"Open order incidents ({len(found)}):")
    for i in found:
        click.echo(
            f"  {i['opened_at'][:19]}  {i['kind']}  order {i['order_id']}  "
            f"stores {', '.join(i['stores'])}"
        )
