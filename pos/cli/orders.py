"""`pos orders`: the store's online orders from the command line (a manager's look without the
till screen): what waits for an answer, what is in progress, open tasks, and steps HQ answered
superseded or refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from pos.cli.store import opened_store
from pos.domain.orders import STAGE_WORDS
from pos.services.orders import OrderService


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Also finished orders.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def orders(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """List this store's online orders."""
    db_path: Path = ctx.obj["db_path"]
    with opened_store(db_path) as store:
        service = OrderService(store)
        inbox = service.inbox(closed=show_all)
        now = datetime.now(UTC)
        if as_json:
            for o in inbox.orders:
                click.echo(
                    json.dumps(
                        {
                            "order_id": o.order_id,
                            "epoch": o.epoch,
                            "assignment": o.assignment,
                            "stage": o.stage,
                            "delivery": o.delivery,
                            "accept_by": o.accept_by.isoformat(),
                            "lines": [
                                {
                                    "line_id": ln.line_id,
                                    "sku": ln.sku,
                                    "qty": ln.qty,
                                    "picked": ln.picked,
                                }
                                for ln in o.lines
                            ],
                        },
                        ensure_ascii=False,
                    )
                )
            return
        if not inbox.orders:
            click.echo("No online orders.")
        for o in inbox.orders:
            when = ""
            if o.stage == "new":
                left = int((o.accept_by - now).total_seconds())
                when = f"  answer within {left // 60} min" if left >= 0 else "  LATE"
            items = ", ".join(f"{ln.sku} x{ln.qty}" for ln in o.lines if ln.qty)
            click.echo(
                f"{o.order_id}  epoch {o.epoch}  {o.delivery:<8}  "
                f"{STAGE_WORDS.get(o.stage, o.stage)} (HQ: {o.assignment})  {items}{when}"
            )
        for task in inbox.tasks:
            click.echo(f"TASK {task.kind} for {task.order_id} (epoch {task.epoch})")
        for step in inbox.troubled:
            click.echo(
                f"HQ {step.state.upper()}: {step.type} of {step.order_id} (epoch {step.epoch})"
                f": {step.reason or ''}"
            )
