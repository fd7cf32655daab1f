"""The sync screen: how the till stands with HQ, and the events HQ refused with its reason.

Refused (quarantined) events never block the others; they stay here until support has looked at
them. F5 syncs now, F8 opens the end of day, Esc goes back to the sale."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Static

from pos.domain.money import format_amount
from sync.ports import RejectedEvent

if TYPE_CHECKING:
    from pos.services.sync import SyncStatus
    from pos.ui.sync_link import SyncLink


def describe(event: RejectedEvent) -> str:
    """What a manager recognises an event by."""
    try:
        payload: dict[str, Any] = json.loads(event.payload)
    except ValueError:
        payload = {}
    if event.type == "sale.completed" and "sale_no" in payload:
        total = payload.get("total")
        money = format_amount(total) if isinstance(total, int) else "?"
        return f"Sale {payload['sale_no']} ({payload.get('short_id', '')}) {money}"
    if "movements" in payload and isinstance(payload["movements"], list):
        return f"{len(payload['movements'])} stock movement(s)"
    return event.type


def _ago(moment: datetime | None, now: datetime | None) -> str:
    if moment is None:
        return "never"
    local = moment.astimezone()
    if now is None:
        return local.strftime("%H:%M:%S")
    seconds = max(0.0, (now - moment).total_seconds())
    if seconds < 90:
        ago = f"{seconds:.0f} s ago"
    elif seconds < 90 * 60:
        ago = f"{seconds / 60:.0f} min ago"
    else:
        ago = f"{seconds / 3600:.1f} h ago"
    return f"{local.strftime('%Y-%m-%d %H:%M:%S')} ({ago})"


def status_lines(status: SyncStatus | None) -> list[str]:
    if status is None:
        return ["Starting the link to HQ ..."]
    if not status.configured:
        return [
            "This till is not set up to sync with HQ.",
            "Run `pos sync --hq URL --token TOKEN` once (the token comes from `hq store add`).",
        ]
    link = "online" if status.online else "OFFLINE"
    if status.syncing:
        link += ", syncing now"
    lines = [f"Link to HQ:      {link}"]
    lines.append(f"Last sync:       {_ago(status.last_success_at, status.checked_at)}")
    if not status.online and status.last_error:
        lines.append(f"Last problem:    {status.last_error}")
    waiting = f"{status.pending} event(s)"
    if status.pending and status.oldest_pending_age is not None:
        minutes = status.oldest_pending_age.total_seconds() / 60
        waiting += f", the oldest from {minutes:.0f} min ago"
    lines.append(f"Waiting to send: {waiting}")
    if status.clock_offset_s is not None:
        offset = status.clock_offset_s
        way = "ahead of" if offset > 0 else "behind"
        text = f"{abs(offset) / 60:.0f} min {way} HQ" if abs(offset) >= 60 else "right"
        if status.clock_skewed:
            text += "  <- set this till's clock right"
        lines.append(f"Clock:           {text}")
    lines.append(f"Refused by HQ:   {status.rejected} event(s)")
    return lines


class SyncScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "sync_now", "Sync now"),
        Binding("f8", "end_of_day", "End of day"),
        Binding("escape", "app.pop_screen", "Back to sale"),
    ]
    DEFAULT_CSS = """
    SyncScreen #sync-status { height: auto; padding: 1 2; }
    SyncScreen #refused-title { padding: 0 2; text-style: bold; }
    SyncScreen #refused { height: 1fr; margin: 0 1; }
    """

    def __init__(self, link: SyncLink) -> None:
        super().__init__()
        self.link = link

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("", id="sync-status")
            yield Label("Events HQ refused (they do not hold up the others):", id="refused-title")
            yield DataTable(id="refused", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#refused", DataTable)
        table.add_columns("Seq", "When", "What", "HQ's reason")
        self.show_status()
        self.set_interval(1.0, self.show_status)
        self.load_refused()

    def show_status(self) -> None:
        self.query_one("#sync-status", Static).update("\n".join(status_lines(self.link.status)))

    def load_refused(self) -> None:
        self.run_worker(self._load_refused(), exclusive=True, group="refused")

    async def _load_refused(self) -> None:
        async def job(engine: Any, _conn: Any) -> list[RejectedEvent]:
            return [] if engine is None else list(engine.outbox.rejected())

        refused = await self.link.run(job)
        table = self.query_one("#refused", DataTable)
        table.clear()
        for event in refused:
            when = event.occurred_at[:19].replace("T", " ")
            table.add_row(str(event.seq), when, describe(event), event.reason, key=str(event.seq))

    def action_sync_now(self) -> None:
        self.link.sync_now()
        self.notify("Syncing with HQ now.", timeout=3)
        self.load_refused()

    def action_end_of_day(self) -> None:
        from pos.ui.eod_screen import EodScreen

        self.app.push_screen(EodScreen(self.link))
