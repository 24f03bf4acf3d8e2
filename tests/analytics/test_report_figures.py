"""The report's figures on conversations whose every event is known (bench/report_speed.py writes them in the shapes
Rasa stores), the masking of emails and order numbers, and the page's self-containment. No servers."""

from __future__ import annotations

import html
import json
import random
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable, Dict

import pytest
from sqlalchemy import create_engine, text

from analytics.__main__ import main
from analytics.figures import DEFINITIONS, masker
from bench.report_speed import (
    ConversationWriter,
    fill,
    handoff_after_failures,
    kept_cancellation,
    misunderstood,
    order_status,
    policy_questions,
    refused_return,
)
from shop.order_numbers import OrderNumberFormat

NOW = 1_790_000_000.0  # fixed, so that --since/--until below select exactly these conversations


RATED: Dict[str, int] = {}  # satisfaction answers each written store holds, by its path


def write_store(path: Path, kinds: Dict[str, Callable[[ConversationWriter], None]], start: float = NOW - 3600,
                ) -> str:
    """A tracker store (and shop tables) with one conversation of each kind, in the shapes Rasa stores."""
    rows, tickets, feedback = [], [], []
    for index, (sender, build) in enumerate(kinds.items()):
        writer = ConversationWriter(sender, start + index * 60, random.Random(index))
        writer.session_start()
        build(writer)
        rows += writer.rows
        created = datetime.fromtimestamp(writer.clock, UTC).replace(tzinfo=None)
        tickets += [(sender, reason, created) for reason in writer.tickets]
        feedback += [(sender, rating, answer, created) for answer, rating in writer.ratings]
    url = f"sqlite:///{path}"
    engine = create_engine(url, future=True)
    fill(engine, rows, tickets, feedback)
    engine.dispose()
    RATED[str(path)] = len(feedback)
    return url


def report(tmp_path: Path, url: str, *extra: str) -> Dict:
    out = tmp_path / "out"
    assert main(["report", "--since", "2026-09-21", "--until", "2026-09-23", "--tracker-store", url, "--database", url,
                 "--out", str(out), *extra]) == 0
    return json.loads((out / "report.json").read_text())


@pytest.fixture
def six(tmp_path) -> Dict:
    """One conversation of each synthetic kind."""
    url = write_store(tmp_path / "tracker.db", {
        "status": order_status, "return": refused_return, "cancel": kept_cancellation,
        "locked": handoff_after_failures, "unclear": misunderstood, "policy": policy_questions})
    return {**report(tmp_path, url), "rated": RATED[str(tmp_path / "tracker.db")]}


def test_six_known_conversations_give_their_figures(six):
    figures = six["figures"]
    assert figures["volume"]["conversations"] == 6
    # Contained: status, return (refused by a rule), cancel (kept), policy. Handed off: locked, unclear.
    assert figures["containment"] == {"conversations": 6, "contained": 4, "rate": round(4 / 6, 4), "handed_off": 2,
                                      "neither": 0}
    assert figures["handoffs"]["by_reason"] == {"could not verify order number and email": 1,
                                                "customer asked for a person": 1}
    assert figures["handoffs"]["reason_source"] == "handoff_tickets"
    assert figures["fallback"]["messages"] == 1 and figures["fallback"]["conversations"] == 1
    assert figures["clarification"]["messages"] == 1
    funnel = figures["funnel"]
    assert {key: funnel["order_status"][key] for key in ("started", "verified", "completed")} == \
           {"started": 1, "verified": 1, "completed": 1}
    assert funnel["return"]["refusals"] == {"return_refused_outside_window": 1} and funnel["return"]["verified"] == 1
    assert funnel["cancel"]["completed"] == 1
    assert funnel["refund"] == {"title": "Where is my refund", "started": 1, "verified": 0, "completed": 0,
                                "refused": 1, "unfinished": 0, "refusals": {"verification_locked": 1}}
    assert figures["csat"]["asked"] == six["rated"] == figures["csat"]["answers"] >= 1  # policy always rates
    assert figures["csat"]["source"] == "satisfaction_feedback"
    # The frustrated refund request and the "ok, bye" after a refused return (negative sentiment).
    assert figures["negative"]["conversations"] == 2
    assert figures["negative"]["next"] == {"handoff": 1, "resolved": 0, "abandoned": 1}
    assert figures["latency"]["messages"] > 0 and figures["latency"]["p50_s"] <= figures["latency"]["p95_s"]
    assert sum(figures["intents"]["confidence_counts"]) == figures["intents"]["messages_scored"]


def test_without_the_shop_tables_reasons_and_ratings_come_from_the_conversations(tmp_path):
    url = write_store(tmp_path / "tracker.db", {"locked": handoff_after_failures, "status": order_status})
    empty = tmp_path / "empty-shop.db"
    create_engine(f"sqlite:///{empty}").connect().close()
    figures = report(tmp_path, url, "--database", f"sqlite:///{empty}")
    assert figures["figures"]["handoffs"]["by_reason"] == {"could not verify order number and email": 1}
    assert figures["figures"]["handoffs"]["reason_source"] == "handoff_reason slot"
    assert figures["figures"]["csat"]["answers"] == RATED[str(tmp_path / "tracker.db")]
    assert figures["figures"]["csat"]["source"].startswith("conversations")
    assert any("shop tables" in note for note in figures["notes"])


def test_the_page_defines_every_figure_and_needs_nothing_from_outside(tmp_path, six):
    page = (tmp_path / "out" / "report.html").read_text()
    for definition in DEFINITIONS.values():
        assert html.escape(definition) in page
    assert page.count("<img src='data:image/png;base64,") == 8
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", page)
    assert "<script" not in page and "<link" not in page
    assert "2026-09-21 00:00 to 2026-09-23 00:00 UTC" in page


@pytest.mark.parametrize("pattern, example, text, masked", [
    (r"\d{5,8}", "10001", "order 10002 for alice@example.com", "order [order number] for [email]"),
    (r"\d{5,8}", "10001", "#10002/10003 and ALICE.M+x@Example.co.uk", "#[order number]/[order number] and [email]"),
    (r"\d{5,8}", "10001", "order no. 10002, 12.50 EUR, return R-2", "order no. [order number], 12.50 EUR, return R-2"),
    (r"NW-\d{4}-\d{5}", "NW-2024-00017", "it's nw 2024 00017 or NW-2024-00002!",
     "it's [order number] or [order number]!"),
    (r"NW-\d{4}-\d{5}", "NW-2024-00017", "nw202400017", "[order number]"),
])
def test_masking_uses_the_shops_order_number_pattern(pattern, example, text, masked):
    assert masker(OrderNumberFormat(pattern, example))(text) == masked


def test_example_messages_are_masked(tmp_path):
    def leaky(writer: ConversationWriter) -> None:
        writer.user("my order 10002 and alice@example.com ???", "nlu_fallback", 0.8)
        writer.action("action_fallback")
        writer.bot("Sorry, I didn't understand that.", "default")
        writer.listen()

    url = write_store(tmp_path / "tracker.db", {"leaky": leaky})
    figures = report(tmp_path, url)
    assert figures["figures"]["fallback"]["examples"] == ["my order [order number] and [email] ???"]
    for name in ("report.json", "report.html"):
        content = (tmp_path / "out" / name).read_text()
        assert "alice@example.com" not in content and not re.search(r"(?<![\d.])10002(?!\d)", strip_images(content))


def strip_images(page: str) -> str:
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)


def test_a_conversation_split_by_the_period_counts_only_its_part_inside(tmp_path):
    url = write_store(tmp_path / "tracker.db", {"status": order_status})
    engine = create_engine(url, future=True)
    with engine.connect() as connection:
        third = connection.execute(text("select timestamp from events where type_name = 'user' order by id")).all()[2]
    engine.dispose()
    until = datetime.fromtimestamp(third.timestamp, UTC).isoformat()
    out = tmp_path / "early"
    assert main(["report", "--since", "2026-09-21", "--until", until, "--tracker-store", url, "--database", url,
                 "--out", str(out)]) == 0
    figures = json.loads((out / "report.json").read_text())["figures"]
    assert figures["volume"]["conversations"] == 1 and figures["volume"]["messages"] == 2


def test_a_change_splits_the_period_into_before_and_after(tmp_path):
    """Two misunderstood conversations before a retrain, two order-status conversations after: the report's
    comparison shows each half's own figures, and the page shows the table."""
    path = tmp_path / "tracker.db"
    write_store(path, {"unclear-1": misunderstood, "unclear-2": misunderstood}, start=NOW - 7200)
    url = write_store(path, {"status-1": order_status, "status-2": order_status}, start=NOW - 1800)
    change = datetime.fromtimestamp(NOW - 3600, UTC).strftime("%Y-%m-%dT%H:%M")
    result = report(tmp_path, url, "--change", change)
    before, after = result["comparison"]["before"], result["comparison"]["after"]
    assert (before["conversations"], before["containment"], before["handoff_rate"]) == (2, 0.0, 1.0)
    assert (after["conversations"], after["containment"], after["handoff_rate"]) == (2, 1.0, 0.0)
    assert result["figures"]["volume"]["conversations"] == 4
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Before and after the change of" in page


def test_a_change_outside_the_period_is_one_clear_line(tmp_path, capsys):
    url = write_store(tmp_path / "tracker.db", {"status": order_status})
    assert main(["report", "--since", "2026-09-21", "--until", "2026-09-23", "--tracker-store", url,
                 "--out", str(tmp_path / "out"), "--change", "2026-10-01"]) == 2
    assert "--change" in capsys.readouterr().err
