"""An online order as this store sees it: its stages, the one table of moves between them, and
the rules of picking by scan. Pure values and functions; the store keeps the rows and the
services run each step in one transaction.

Two kinds of moves share the table: the staff's steps (accept, reject, pick, ready, ship, hand
over, answer a cancel request) and what HQ says (another till of the store accepted, HQ took
the order away, called it off, or saw it completed). Anything not in the table is refused and
changes nothing.

Several tills of one store all receive the store's orders. Until someone answers, each till
holds the order's stock (any of them may end up fulfilling it); the first till whose answer
HQ applies has the order, and every other till moves it to ``elsewhere`` ("handled at another
till"): read-only there, holding nothing (see pos.store.orders for why)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from pos.domain.errors import DomainError

Stage = Literal[
    "new",  # assigned to this store; nobody here has answered yet
    "accepted",  # holds made; waiting to be picked
    "picked",  # picked into a bin (order.picked sent); waiting to be packed
    "ready",  # packed, waiting for the customer (pickup)
    "handed_over",  # the customer took it (stock moved)
    "shipped",  # the courier took it (stock moved)
    "rejected",  # this store said no
    "cancelled",  # called off (the store agreed to HQ's cancel request, or HQ called it off)
    "revoked",  # HQ took it away from this store (reassigned)
    "completed",  # HQ says it was completed, but not by this till (another till of the store)
    "elsewhere",  # another till of this store answered it first and works on it
]
Action = Literal[
    # the staff's steps
    "accept",
    "reject",
    "pick",
    "ready",
    "ship",
    "hand_over",
    "cancel_accept",
    "cancel_refuse",
    # what HQ's row says
    "assigned",  # a new assignment (a new epoch) of this order to this store
    "accepted_elsewhere",  # another till of this store has it (its answer came first)
    "revoke",
    "call_off",
    "completed_elsewhere",
]

STAGES: tuple[Stage, ...] = (
    "new",
    "accepted",
    "picked",
    "ready",
    "handed_over",
    "shipped",
    "rejected",
    "cancelled",
    "revoked",
    "completed",
    "elsewhere",
)
ACTIVE: frozenset[Stage] = frozenset({"new", "accepted", "picked", "ready"})
"""Stages that still expect something of the store."""
FULFILLED: frozenset[Stage] = frozenset({"handed_over", "shipped"})
"""The goods left the store: a fact no later row can undo."""
HOLDING: frozenset[Stage] = frozenset({"new", "accepted", "picked", "ready"})
"""Stages in which the order's holds are pending: from the moment HQ assigns the order to this
store (HQ counts it against the store from then on), until it leaves or is no longer this
till's."""
SET_ASIDE: frozenset[Stage] = frozenset({"picked", "ready"})
"""The goods are in a bin, off the shelf: a walk-in sale cannot have taken them."""

_ACTIVE_TO = {"revoke": "revoked", "call_off": "cancelled", "completed_elsewhere": "completed"}

TRANSITIONS: dict[tuple[Stage, Action], Stage] = {
    ("new", "accept"): "accepted",
    ("new", "reject"): "rejected",
    ("accepted", "reject"): "rejected",
    ("accepted", "pick"): "picked",
    ("picked", "ready"): "ready",
    ("picked", "ship"): "shipped",
    ("ready", "hand_over"): "handed_over",
    ("accepted", "cancel_accept"): "cancelled",
    ("picked", "cancel_accept"): "cancelled",
    ("ready", "cancel_accept"): "cancelled",
    ("accepted", "cancel_refuse"): "accepted",
    ("picked", "cancel_refuse"): "picked",
    ("ready", "cancel_refuse"): "ready",
    **{(s, "accepted_elsewhere"): "elsewhere" for s in ACTIVE},  # type: ignore[misc]
    **{(s, a): _ACTIVE_TO[a] for s in (*ACTIVE, "elsewhere") for a in _ACTIVE_TO},  # type: ignore[misc]
    **{(s, "assigned"): "new" for s in STAGES},
}
"""(stage, action) -> next stage. A handed-over or shipped order never goes back: HQ's later
rows about it only say what HQ thinks (its events come back ``superseded``)."""

REJECT_REASONS: dict[str, str] = {
    "out_of_stock": "Out of stock",
    "damaged": "Damaged goods",
    "no_staff": "No staff to pick it",
    "closing": "Store closing",
    "other": "Other reason",
}
"""The reason codes HQ knows (sync.protocol.REJECT_ORDER_REASONS) and their words."""

STAGE_WORDS: dict[str, str] = {
    "new": "NEW",
    "accepted": "to pick",
    "picked": "picked, to pack",
    "ready": "ready for pickup",
    "handed_over": "handed over",
    "shipped": "shipped",
    "rejected": "rejected",
    "cancelled": "cancelled",
    "revoked": "taken away by HQ",
    "completed": "completed at another till",
    "elsewhere": "handled at another till",
}


class OrderError(DomainError):
    """A step on an online order that the rules refuse; the message says what to do."""


class OrderStateError(OrderError):
    """The order is not in a stage that allows this step (nothing was changed)."""


class WrongItemError(OrderError):
    """A scanned item that this order does not need (any more)."""


class PickupCodeError(OrderError):
    """A pickup code that matches no order ready here, or one already used."""


def advance(stage: str, action: str) -> Stage:
    """The stage after ``action``; raises OrderStateError when the table has no such move."""
    nxt = TRANSITIONS.get((stage, action))  # type: ignore[arg-type]
    if nxt is None:
        raise OrderStateError(
            f"This order is {STAGE_WORDS.get(stage, stage)}: it cannot be "
            f"{_ACTION_WORDS.get(action, action)} now. Nothing was changed."
        )
    return nxt


def allowed(stage: str, action: str) -> bool:
    return (stage, action) in TRANSITIONS


_ACTION_WORDS = {
    "accept": "accepted",
    "reject": "rejected",
    "pick": "marked picked",
    "ready": "marked ready",
    "ship": "shipped",
    "hand_over": "handed over",
    "cancel_accept": "cancelled",
    "cancel_refuse": "kept (cancel refused)",
}


# ---------------------------------------------------------------------------------------------
# picking


@dataclass(frozen=True, slots=True)
class PickLine:
    """One line of a pick list: ``qty`` units of ``sku`` to fulfil, ``picked`` so far. A line
    switched to a substitute counts units of ``substitute_sku`` instead."""

    line_id: str
    sku: str
    name: str
    qty: int
    picked: int = 0
    substitute_sku: str | None = None
    reason: str | None = None
    location: str | None = None

    @property
    def wanted_sku(self) -> str:
        return self.substitute_sku or self.sku

    @property
    def remaining(self) -> int:
        return max(0, self.qty - self.picked)

    @property
    def short(self) -> bool:
        return self.picked < self.qty


def walk_order(lines: Iterable[PickLine]) -> tuple[PickLine, ...]:
    """The order to walk the shop in: by shelf location when the store has one for the item,
    the rest after them by SKU (a chain's SKUs group by department), then by name."""
    return tuple(
        sorted(lines, key=lambda ln: (ln.location is None, ln.location or "", ln.sku, ln.name))
    )


def match_scan(lines: Iterable[PickLine], sku: str, name: str | None = None) -> PickLine:
    """The line a scanned unit of ``sku`` counts for (the first one still missing units).

    Raises WrongItemError when no line wants that item, or when every line that wants it is
    already complete."""
    lines = tuple(lines)
    wanting = [ln for ln in lines if ln.wanted_sku == sku]
    if not wanting:
        what = f"{name} ({sku})" if name else sku
        needed = ", ".join(f"{ln.name} x{ln.remaining}" for ln in lines if ln.remaining)
        raise WrongItemError(
            f"WRONG ITEM: {what} is not on this order. Put it back."
            + (f" Still to pick: {needed}." if needed else "")
        )
    for ln in wanting:
        if ln.remaining > 0:
            return ln
    first = wanting[0]
    raise WrongItemError(f"All {first.qty} of {first.name} are already picked. Put this one back.")


def count_unit(lines: Iterable[PickLine], line_id: str, n: int = 1) -> tuple[PickLine, ...]:
    """The lines with ``n`` more units picked on ``line_id`` (never above its quantity)."""
    out = []
    for ln in lines:
        if ln.line_id == line_id:
            if ln.picked + n > ln.qty or ln.picked + n < 0:
                raise WrongItemError(
                    f"{ln.name}: {ln.qty} ordered, {ln.picked} picked; {n:+d} does not fit."
                )
            ln = replace(ln, picked=ln.picked + n)
        out.append(ln)
    return tuple(out)


def short_lines(lines: Iterable[PickLine]) -> tuple[PickLine, ...]:
    return tuple(ln for ln in lines if ln.short)


def missing_reasons(lines: Iterable[PickLine], reasons: Mapping[str, str]) -> list[PickLine]:
    """Short lines without a reason (given now or recorded with a substitution)."""
    return [
        ln
        for ln in lines
        if ln.short and not (reasons.get(ln.line_id) or "").strip() and not ln.reason
    ]
