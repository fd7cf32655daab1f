"""The end-of-day screen: sync until nothing is left to send, then compare this till's day with
HQ and show the reconciliation ("VERIFIED", or each thing pending or different), what was
compared, and the store's other tills with their last sync.

The work runs on the sync worker (pos.ui.sync_link); the screen only waits for the report."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from pos.services.eod import EodReport, end_of_day, report_lines, verdict

if TYPE_CHECKING:
    from pos.ui.sync_link import SyncLink


class EodScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "check", "Check again"),
        Binding("escape", "app.pop_screen", "Back"),
    ]
    DEFAULT_CSS = """
    EodScreen #eod-report { padding: 1 2; }
    EodScreen #eod-verdict { padding: 0 2; text-style: bold; height: auto; }
    EodScreen #eod-verdict.verified { color: $success; }
    EodScreen #eod-verdict.not-verified { color: $error; }
    """

    def __init__(self, link: SyncLink, business_day: date | None = None) -> None:
        super().__init__()
        self.link = link
        self.business_day = business_day
        self.report: EodReport | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="eod-verdict")
        with VerticalScroll():
            yield Static("", id="eod-report")
        yield Footer()

    def on_mount(self) -> None:
        self.action_check()

    def action_check(self) -> None:
        self.query_one("#eod-verdict", Static).update(
            "Syncing with HQ, then checking the day's sales and stock ..."
        )
        self.query_one("#eod-report", Static).update("")
        self.run_worker(self._check(), exclusive=True, group="eod")

    async def _check(self) -> None:
        day = self.business_day or datetime.now(self.app.store.identity.zone).date()  # type: ignore[attr-defined]

        async def job(engine: Any, conn: Any) -> EodReport | None:
            if engine is None:
                return None
            return await end_of_day(engine, conn, day)

        try:
            report = await self.link.run(job)
        except Exception as error:  # shown to the manager; the till goes on
            self._show_verdict(False, f"The end of day could not run: {error}")
            return
        if report is None:
            self._show_verdict(
                False, "This till is not set up to sync with HQ: run `pos sync --hq URL --token T`."
            )
            return
        self.report = report
        lines = report_lines(report)
        self._show_verdict(report.verified, verdict(report))
        self.query_one("#eod-report", Static).update("\n".join(lines))

    def _show_verdict(self, verified: bool, text: str) -> None:
        verdict = self.query_one("#eod-verdict", Static)
        verdict.update(text)
        verdict.set_class(verified, "verified")
        verdict.set_class(not verified, "not-verified")
