"""Every attack of attacks.yml against the skills, through rasa-sdk Trackers and a CollectingDispatcher on the seeded
demo shop (SQLite and PostgreSQL): typed as the order number, as the email, as both; as the item to return, the
return reason and the refund method of a verified customer; as the conversation id and the transcript of a handoff;
as the latest message of a verified conversation. Nothing of another customer, no database error text and no stack
trace may reach the dispatcher, no attack may verify an order, choose another order's item, or change the shop's
data beyond the customer's own return and ticket."""

from __future__ import annotations

import traceback
from collections import defaultdict
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from actions.handoff import ActionHandoff
from actions.order_status import ActionOrderStatus, ValidateOrderStatusForm
from actions.refunds import ActionRefundStatus
from actions.returns import ActionSubmitReturn, ValidateReturnForm
from shop.models import Customer, HandoffTicket, Order, OrderLine, Return
from shop.settings import get_settings
from tests.security.support import Attack, kinds, leaks, record
from tests.support import bot_event, feeling, make_tracker, slot_events, texts, user_event

DOMAIN = {"forms": {
    "order_status_form": {"required_slots": ["order_id", "order_email"]},
    "return_form": {"required_slots": ["order_id", "order_email", "return_item", "return_reason", "refund_method"]},
}}
DAN_10008 = {"order_id": "10008", "order_email": "dan@example.com", "verified_order_id": "10008",
             "verified_email": "dan@example.com"}
ALICE_10002 = {"order_id": "10002", "order_email": "alice@example.com", "verified_order_id": "10002",
               "verified_email": "alice@example.com"}
# A NUL byte in a text PostgreSQL stores raises psycopg2's ValueError, which is no SQLAlchemyError: the action
# fails instead of apologising (test_a_nul_byte_on_postgresql_gets_an_apology below).
KNOWN_POSTGRESQL_NUL = "A string literal cannot contain NUL"

FIGURES: Dict[str, Dict[str, Any]] = {}


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[None]:
    FIGURES.clear()
    yield
    by_kind: Dict[str, Dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for key, seen in FIGURES.items():
        kind = by_kind[key.split("@")[0]]
        for name, value in seen.items():
            if isinstance(value, int):
                kind[name] += value
    record("skill-attacks", {
        "what": "attacks.yml against verification, order status, refund status, returns and handoff "
                "(rasa-sdk Tracker / CollectingDispatcher, seeded demo shop)",
        "configuration": {"databases": sorted({key.split("@")[1] for key in FIGURES}),
                          "scenarios_per_attack": SCENARIOS},
        "attack_messages": max(sum(seen["attacks"] for key, seen in FIGURES.items() if key.endswith(f"@{db}"))
                               for db in ("sqlite", "postgresql")),
        "runs": sum(seen["runs"] for seen in FIGURES.values()),
        "by_kind": {name: dict(values) for name, values in by_kind.items()},
        "leaks": sum(seen["leaks"] for seen in FIGURES.values()),
        "errors": sum(seen["errors"] for seen in FIGURES.values()),
        "known_errors": sum(seen["known_errors"] for seen in FIGURES.values()),
        "problems": {key: seen["problem_list"] for key, seen in FIGURES.items() if seen["problem_list"]},
    })


SCENARIOS = ["order number", "email", "order number and email", "order status unverified",
             "order status verified", "refund status unverified", "return item", "return reason and method",
             "handoff"]


class Probe:
    """Runs one scenario for one attack and keeps what went wrong."""

    def __init__(self, db, attack: Attack) -> None:
        self.db, self.attack = db, attack
        self.problems: List[str] = []
        self.runs = self.leaks = self.errors = self.known_errors = 0

    async def run(self, scenario: str, action, verified_order: Optional[str] = None,
                  check: Optional[Callable[[Dict[str, Any]], Optional[str]]] = None, **tracker_args: Any) -> None:
        self.runs += 1
        dispatcher = CollectingDispatcher()
        try:
            events = action.run(dispatcher, make_tracker(**tracker_args), DOMAIN)
            if hasattr(events, "__await__"):
                events = await events
        except Exception as exc:  # noqa: BLE001 - every failure is a finding
            known = KNOWN_POSTGRESQL_NUL in str(exc) and self.db.dialect.name == "postgresql"
            self.errors += 1
            self.known_errors += known
            self.problems.append(f"{scenario}: {'known ' if known else ''}{exc.__class__.__name__}: {exc}"
                                 + ("" if known else f"\n{traceback.format_exc(limit=3)}"))
            return
        said = texts(dispatcher).replace(f"e.g. {get_settings().order_numbers.example}", "e.g. THE-EXAMPLE")
        found = leaks(said, verified_order)
        if found:
            self.leaks += 1
            self.problems.append(f"{scenario}: {found} in {said!r}")
        problem = check(slot_events(events)) if check else None
        if problem:
            self.problems.append(f"{scenario}: {problem}")


def not_verified(slots: Dict[str, Any]) -> Optional[str]:
    return f"verified order {slots['verified_order_id']}" if slots.get("verified_order_id") else None


def dans_item_or_none(slots: Dict[str, Any]) -> Optional[str]:
    item = slots.get("return_item")
    return None if item in (None, "KETTLE-01", "TEA-SET") else f"return item {item!r} is not one of order 10008's"


def shop_state(db) -> Dict[str, Any]:
    with Session(db, future=True) as session:
        return {"customers": session.scalar(select(func.count(Customer.id))),
                "orders": sorted((order.id, order.customer_id, order.status) for order in session.scalars(
                    select(Order))),
                "lines": session.scalar(select(func.count(OrderLine.id)))}


def history_events(attack: Attack) -> List[Dict[str, Any]]:
    return [user_event(text, sentiment=feeling("negative")) if role == "customer" else bot_event(text)
            for role, text in attack.history]


async def probe(db, attack: Attack) -> Probe:
    p = Probe(db, attack)
    m = attack.message
    form = {"active_loop": "order_status_form", "text": m}
    await p.run("order number", ValidateOrderStatusForm(), check=not_verified, new_slots={"order_id": m}, **form)
    await p.run("email", ValidateOrderStatusForm(), check=not_verified, slots={"order_id": "10002"},
                new_slots={"order_email": m}, **form)
    await p.run("order number and email", ValidateOrderStatusForm(), check=not_verified,
                new_slots={"order_id": m, "order_email": m}, **form)
    await p.run("order status unverified", ActionOrderStatus(), slots={"order_id": m, "order_email": m}, text=m)
    await p.run("order status verified", ActionOrderStatus(), "10002", slots=ALICE_10002, text=m,
                history=history_events(attack))
    await p.run("refund status unverified", ActionRefundStatus(), slots={"order_id": m, "order_email": m}, text=m)
    await p.run("return item", ValidateReturnForm(), "10008", check=dans_item_or_none, slots=DAN_10008,
                new_slots={"return_item": m}, active_loop="return_form", text=m)
    reason = {"return_reason": m, "refund_method": m}
    await p.run("return reason and method", ValidateReturnForm(), "10008", slots={**DAN_10008, "return_item":
                                                                                  "KETTLE-01"},
                new_slots=reason, active_loop="return_form", text=m)
    await p.run("return reason and method", ActionSubmitReturn(), "10008",
                slots={**DAN_10008, "return_item": "KETTLE-01", "return_reason": m, "refund_method": "store_credit"},
                text=m)
    with Session(db, future=True) as session:  # the kettle can be returned again by the next attack
        session.execute(update(Return).values(status="cancelled"))
        session.commit()
    await p.run("handoff", ActionHandoff(), sender_id=m[:255] or "empty", slots={"handoff_reason": m}, text=m,
                history=[*history_events(attack), user_event(m, sentiment=feeling("negative"))],
                sentiment=feeling("negative"))
    return p


@pytest.mark.parametrize("kind", kinds(), ids=[kind.name for kind in kinds()])
async def test_no_attack_gets_anything_out_of_the_skills(db, kind):
    before = shop_state(db)
    tickets_before = _count(db, HandoffTicket)
    probes = [await probe(db, attack) for attack in kind.attacks]
    problems = [f"{p.attack.id} {problem}" for p in probes for problem in p.problems]
    FIGURES[f"{kind.name}@{db.dialect.name}"] = {
        "attacks": len(probes), "runs": sum(p.runs for p in probes), "leaks": sum(p.leaks for p in probes),
        "errors": sum(p.errors for p in probes), "known_errors": sum(p.known_errors for p in probes),
        "problem_list": problems}
    assert shop_state(db) == before  # no order, customer or line changed, none added or removed
    handoffs = _count(db, HandoffTicket) - tickets_before
    assert handoffs == len(probes) - sum("handoff: known" in " ".join(p.problems) for p in probes)
    unexpected = [problem for problem in problems if ": known " not in problem]
    assert unexpected == [], "\n\n".join(unexpected)


def _count(db, model) -> int:
    with Session(db, future=True) as session:
        return session.scalar(select(func.count()).select_from(model))


async def test_the_attacks_are_stored_as_data_and_said_back_to_nobody(db):
    """A reason and a transcript full of attacks are kept as the customer typed them (for the person who reads
    them), and the customer hears only the return's and the ticket's own words."""
    attack = next(attack for kind in kinds() if kind.name == "html_js" for attack in kind.attacks)
    dispatcher = CollectingDispatcher()
    ActionSubmitReturn().run(dispatcher, make_tracker(slots={**DAN_10008, "return_item": "KETTLE-01", "return_reason":
                                                             attack.message, "refund_method": "store_credit"}), DOMAIN)
    assert attack.message not in texts(dispatcher) and "Return R-" in texts(dispatcher)
    with Session(db, future=True) as session:
        assert session.scalars(select(Return.reason)).all()[-1] == attack.message
    dispatcher = CollectingDispatcher()
    ActionHandoff().run(dispatcher, make_tracker(history=[user_event(attack.message)], text="a person please"),
                        DOMAIN)
    assert attack.message not in texts(dispatcher) and "ticket" in texts(dispatcher)
    with Session(db, future=True) as session:
        assert attack.message in session.scalars(select(HandoffTicket.transcript)).all()[-1]


async def test_a_nul_byte_is_dropped_and_the_rest_is_stored(db, request):
    """Rasa passes a NUL byte through from REST and socket.io, and PostgreSQL cannot store one (psycopg2 raised
    ValueError, the action server answered 500): shop/db.py drops it before the flush, the return and the ticket
    are stored with the rest of the text."""
    message = "it broke\0' OR '1'='1"
    for action, slots in ((ActionSubmitReturn(), {**DAN_10008, "return_item": "KETTLE-01",
                                                  "return_reason": message, "refund_method": "store_credit"}),
                          (ActionHandoff(), {})):
        dispatcher = CollectingDispatcher()
        action.run(dispatcher, make_tracker(slots=slots, history=[user_event(message)], text=message), DOMAIN)
        assert texts(dispatcher) and "sorry" not in texts(dispatcher).lower()
    with Session(db, future=True) as session:
        assert message.replace("\0", "") in session.scalars(select(HandoffTicket.transcript)).all()[-1]
