"""Does a customer get what they came for? Whole scripted conversations, before and after, checked against the
database and the bot's own words.

Why: the understanding and tone benchmarks score single messages; a customer only cares whether the conversation
ends with the fact, the return, the cancellation, the answer or the person they wanted. This benchmark plays
bench/data/conversations.yml (written for this project; provenance in its header): realistic multi-turn
conversations (indirect requests, typos, item names instead of "order", a bare order number or email as the
first message, complaints that hold a request, policy questions mid-form, "stop", wrong emails, unknown orders,
off-topic questions) against the real servers over REST, on a freshly seeded demo shop (shop/seed.py).

The simulated customer behaves like a person: when the bot asks "Did you mean ...?" or "What would you like to do
...?" and one button's payload is the customer's goal intent, the customer clicks it before going on with the
script; a scripted {click: TITLE} clicks that button, or types TITLE when no such button was offered.
Each conversation's outcomes (CHECKS below) are read from the database at run time and from the replies.

"before" is the commit bench.understanding.BASE_REF (bench/before.py: its own tree, code and model), "after" this
tree with models/shop.tar.gz; each side gets its own servers and its own fresh database, one after the other.
Reported per side: conversations that reach their outcome, "Did you mean" questions per customer turn and per
conversation, turns that got the same text twice, turns answered with "that sounds frustrating" (whether the
customer was upset or not), and every conversation's result and transcript.

Usage: python -m bench.conversations [--before REF] [--no-before] [--only ID ...]
Writes bench/results/conversations.json.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Union

import requests
import yaml
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, selectinload

from bench import before as before_tree
from bench.common import write_results
from bench.understanding import BASE_REF, fallback_settings
from shop.db import make_engine
from shop.models import HandoffTicket, Order, OrderLine, Return
from shop.servers import DEFAULT_MODEL, RunningServers, start_servers
from shop.settings import PROJECT_ROOT

SCRIPTS = Path(__file__).resolve().parent / "data" / "conversations.yml"
POLICIES = PROJECT_ROOT / "data" / "knowledge" / "policies.yml"
CLARIFY = "Did you mean"
# Bot questions whose buttons are skills: the customer clicks the one that is their goal.
CHOICE_QUESTIONS = (CLARIFY, "What would you like to do", "What can I do for you")
MAX_GOAL_CLICKS = 3  # per conversation: a bot that keeps asking does not loop the customer forever
SEND_TIMEOUT_S = 120
# What each refusal reason looks like in a reply (actions/responses.yml of both sides).
REFUSALS = {
    "outside_window": ("outside our return window",),
    "final_sale": ("final-sale item",),
    "not_delivered": ("hasn't been delivered",),
    "already_shipped": ("can't be cancelled", "already shipped"),
    "verification_failed": ("couldn't find an order with that number and email",),
}
# A reply that declines: says what the bot cannot do, does not know, or that it stopped.
DECLINES = ("can't help with that", "didn't understand", "don't have an answer", "I've stopped",
            "anything else I can help with")
ACTING = ("What's your order number", "email address you used")  # a reply that starts a skill's form
UPSET = "that sounds frustrating"  # the acknowledgement of an upset customer (actions/responses.yml)
REFUND_STATES = {"waiting_for_item": "once we receive", "processing": "being processed", "issued": "was issued"}

Turn = Union[str, Dict[str, str]]


@dataclass(frozen=True)
class Script:
    id: str
    skill: str
    description: str
    goal: str
    turns: List[Turn]
    expect: List[Dict[str, Any]]


@dataclass
class Exchange:
    """One customer message and everything the bot answered to it."""

    customer: str
    step: Optional[int]  # 1-based index of the scripted turn; None for a click on the goal button
    clicked: Optional[str] = None  # the title of the button the customer clicked
    replies: List[Dict[str, Any]] = field(default_factory=list)
    error: Optional[str] = None

    @property
    def texts(self) -> List[str]:
        return [reply["text"] for reply in self.replies if reply.get("text")]

    @property
    def text(self) -> str:
        return "\n".join(self.texts)

    @property
    def buttons(self) -> List[Dict[str, str]]:
        return [button for reply in self.replies for button in reply.get("buttons") or []]


@dataclass(frozen=True)
class Snapshot:
    """What the conversations can change in the database."""

    statuses: Dict[str, str]
    returns: Set[int]
    tickets: Set[int]


@dataclass(frozen=True)
class Context:
    script: Script
    exchanges: List[Exchange]
    engine: Engine
    before: Snapshot
    after: Snapshot

    @property
    def replies(self) -> List[str]:
        return [text for exchange in self.exchanges for text in exchange.texts]


# ---------------------------------------------------------------- scripts


def policy_answers() -> Dict[str, str]:
    """Each topic's answer in data/knowledge/policies.yml, with shop.yml's values filled in."""
    topics = yaml.safe_load(POLICIES.read_text(encoding="utf-8"))["topics"]
    shop = yaml.safe_load((PROJECT_ROOT / "shop.yml").read_text(encoding="utf-8"))
    values = {"return_window_days": shop["returns"]["window_days"], "shop_name": shop["shop_name"]}
    return {name: " ".join(topic["answer"].format(**values).split()) for name, topic in topics.items()}


def load_scripts(path: Path = SCRIPTS) -> List[Script]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))["conversations"]
    scripts = [Script(id=str(entry["id"]), skill=entry["skill"], description=entry["description"],
                      goal=entry["goal"], turns=list(entry["turns"]), expect=list(entry["expect"])) for entry in raw]
    validate(scripts)
    return scripts


def validate(scripts: List[Script]) -> None:
    """Fail early on a script the checks could not judge: duplicate ids, unknown outcomes or refusals, a policy
    phrase that is not in the policy file."""
    ids = [script.id for script in scripts]
    duplicates = sorted({name for name in ids if ids.count(name) > 1})
    if duplicates:
        raise ValueError(f"duplicate conversation ids: {duplicates}")
    answers = policy_answers()
    for script in scripts:
        for outcome in script.expect:
            kind = outcome.get("type")
            if kind not in CHECKS:
                raise ValueError(f"{script.id}: unknown outcome type {kind!r}")
            if kind == "refusal" and outcome.get("reason") not in REFUSALS:
                raise ValueError(f"{script.id}: unknown refusal reason {outcome.get('reason')!r}")
            if kind == "policy_phrase" and outcome["phrase"] not in answers.get(outcome["topic"], ""):
                raise ValueError(f"{script.id}: {outcome['phrase']!r} is not in the {outcome['topic']} answer")


# ---------------------------------------------------------------- the customer


def goal_button(exchange: Exchange, goal: str) -> Optional[Dict[str, str]]:
    """The button for the customer's goal, when the bot asks which skill they want."""
    if not any(question in exchange.text for question in CHOICE_QUESTIONS):
        return None
    return next((button for button in exchange.buttons if button.get("payload") == f"/{goal}"), None)


def exchange(servers: RunningServers, sender: str, message: str, step: Optional[int],
             clicked: Optional[str] = None) -> Exchange:
    done = Exchange(customer=message, step=step, clicked=clicked)
    try:
        done.replies = servers.send(sender, message, timeout=SEND_TIMEOUT_S)
    except requests.RequestException as error:
        done.error = f"{type(error).__name__}: {error}"
    return done


def scripted_message(turn: Turn, last: Optional[Exchange]) -> tuple[str, Optional[str]]:
    """(message to send, title of the clicked button or None) for one scripted turn."""
    if isinstance(turn, str):
        return turn, None
    title = turn["click"]
    offered = last.buttons if last else []
    button = next((b for b in offered if b.get("title", "").lower() == title.lower()), None)
    return (button["payload"], button["title"]) if button else (title, None)


def talk(servers: RunningServers, script: Script) -> List[Exchange]:
    """Plays the script as the customer would, clicking the goal button when the bot offers it."""
    exchanges: List[Exchange] = []
    goal_clicks = 0
    for step, turn in enumerate(script.turns, start=1):
        message, clicked = scripted_message(turn, exchanges[-1] if exchanges else None)
        exchanges.append(exchange(servers, script.id, message, step, clicked))
        while goal_clicks < MAX_GOAL_CLICKS and (button := goal_button(exchanges[-1], script.goal)):
            goal_clicks += 1
            exchanges.append(exchange(servers, script.id, button["payload"], None, button["title"]))
    return exchanges


# ---------------------------------------------------------------- the database


def snapshot(engine: Engine) -> Snapshot:
    with Session(engine) as session:
        return Snapshot(statuses=dict(session.execute(select(Order.id, Order.status)).all()),
                        returns=set(session.scalars(select(Return.id))),
                        tickets=set(session.scalars(select(HandoffTicket.id))))


def load_order(engine: Engine, order_id: str) -> Order:
    with Session(engine) as session:
        order = session.scalars(select(Order).where(Order.id == order_id).options(
            selectinload(Order.lines), selectinload(Order.refunds))).one()
        session.expunge_all()
        return order


def wrote_anything(context: Context) -> Optional[str]:
    """What the conversation changed in the database, or None."""
    before, after = context.before, context.after
    changed = sorted(order for order, status in after.statuses.items() if before.statuses.get(order) != status)
    new_returns, new_tickets = sorted(after.returns - before.returns), sorted(after.tickets - before.tickets)
    if changed or new_returns or new_tickets:
        return f"changed orders {changed}, new returns {new_returns}, new tickets {new_tickets}"
    return None


# ---------------------------------------------------------------- outcome checks: None when met, else why not


def check_status(context: Context, outcome: Dict[str, Any]) -> Optional[str]:
    order = load_order(context.engine, outcome["order"])
    facts = [order.id, order.status] + ([order.tracking_number] if order.tracking_number else [])
    if any(all(fact in reply for fact in facts) for reply in context.replies):
        return None
    return f"no reply states order {order.id}'s status {order.status!r} and tracking number {order.tracking_number}"


def check_refund(context: Context, outcome: Dict[str, Any]) -> Optional[str]:
    order = load_order(context.engine, outcome["order"])
    text = "\n".join(context.replies)
    if not order.refunds:
        return None if f"no refund on order {order.id}" in text else f"no reply says order {order.id} has no refund"
    missing = [f"{refund.amount:.2f} {REFUND_STATES.get(refund.status, refund.status)}" for refund in order.refunds
               if not any(f"{refund.amount:.2f}" in reply and REFUND_STATES.get(refund.status, refund.status) in reply
                          for reply in context.replies)]
    return f"refunds of order {order.id} not stated: {missing}" if missing else None


def check_return(context: Context, outcome: Dict[str, Any]) -> Optional[str]:
    new = context.after.returns - context.before.returns
    with Session(context.engine) as session:
        rows = session.execute(select(Return.id, OrderLine.order_id, OrderLine.sku).join(OrderLine).where(
            Return.id.in_(new))).all() if new else []
    right = [row.id for row in rows if row.order_id == outcome["order"] and row.sku == outcome["sku"]]
    if not right:
        return f"no new return for {outcome['order']} / {outcome['sku']} (new returns: {[tuple(r) for r in rows]})"
    if len(rows) > 1:
        return f"more than one return created: {[tuple(r) for r in rows]}"
    named = any(f"R-{right[0]}" in reply for reply in context.replies)
    return None if named else f"return R-{right[0]} was created but no reply names it"


def check_refusal(context: Context, outcome: Dict[str, Any]) -> Optional[str]:
    phrases = REFUSALS[outcome["reason"]]
    order = load_order(context.engine, outcome["order"]) if outcome.get("order") else None
    names = [order.id] + [line.item_name for line in order.lines] if order else []
    said = [reply for reply in context.replies if all(phrase in reply for phrase in phrases)]
    if not said:
        return f"no reply gives the reason {outcome['reason']} ({' + '.join(phrases)})"
    if names and not any(name in reply for reply in said for name in names):
        return f"the refusal does not name order {order.id} or its items"
    return wrote_anything(context)


def check_ticket(context: Context, outcome: Dict[str, Any]) -> Optional[str]:
    with Session(context.engine) as session:
        tickets = list(session.scalars(select(HandoffTicket.id).where(
            HandoffTicket.conversation_id == context.script.id)))
    if not tickets:
        return "no handoff ticket for this conversation"
    named = any(f"H-{ticket}" in reply for ticket in tickets for reply in context.replies)
    return None if named else f"ticket(s) {tickets} created but no reply names one"


def check_cancelled(context: Context, outcome: Dict[str, Any]) -> Optional[str]:
    order = load_order(context.engine, outcome["order"])
    if order.status != "cancelled" or context.before.statuses.get(order.id) == "cancelled":
        return f"order {order.id} is {order.status} in the database"
    said = any(order.id in reply and "cancelled" in reply for reply in context.replies)
    return None if said else f"order {order.id} was cancelled but no reply says so"


def check_policy(context: Context, outcome: Dict[str, Any]) -> Optional[str]:
    said = any(outcome["phrase"] in " ".join(reply.split()) for reply in context.replies)
    return None if said else f"no reply quotes the {outcome['topic']} policy: {outcome['phrase']!r}"


def check_declined(context: Context, outcome: Dict[str, Any]) -> Optional[str]:
    step = int(outcome.get("turn", len(context.script.turns)))
    answer = "\n".join(exchange.text for exchange in context.exchanges if exchange.step == step)
    if CLARIFY in answer:
        return f"turn {step} was answered with a question instead of declining"
    if any(phrase in answer for phrase in ACTING):
        return f"turn {step} started a skill instead of declining"
    if not any(phrase in answer for phrase in DECLINES):
        return f"turn {step} was not declined"
    return wrote_anything(context)


def check_no_leak(context: Context, outcome: Dict[str, Any]) -> Optional[str]:
    order = load_order(context.engine, outcome["order"])
    secrets = [line.item_name for line in order.lines] + [f"Order {order.id} is"]
    secrets += [order.tracking_number] if order.tracking_number else []
    leaked = sorted({secret for secret in secrets for reply in context.replies if secret in reply})
    return f"replies show {leaked} of order {order.id}" if leaked else None


CHECKS: Dict[str, Callable[[Context, Dict[str, Any]], Optional[str]]] = {
    "db_fact_status": check_status,
    "db_fact_refund": check_refund,
    "return_created": check_return,
    "refusal": check_refusal,
    "handoff_ticket": check_ticket,
    "cancelled": check_cancelled,
    "policy_phrase": check_policy,
    "declined": check_declined,
    "no_leak": check_no_leak,
}


def judge(context: Context) -> List[str]:
    """Why the conversation did not reach its outcomes; empty when it did."""
    errors = [f"turn {e.step or 'click'}: {e.error}" for e in context.exchanges if e.error]
    return errors + [f"{outcome['type']}: {why}" for outcome in context.script.expect
                     if (why := CHECKS[outcome["type"]](context, outcome))]


# ---------------------------------------------------------------- one side


def transcript(exchanges: List[Exchange]) -> List[Dict[str, Any]]:
    return [{"customer": e.customer, **({"clicked": e.clicked} if e.clicked else {}),
             **({"goal_click": True} if e.step is None else {}), "bot": e.texts,
             "buttons": [button.get("title") for button in e.buttons], **({"error": e.error} if e.error else {})}
            for e in exchanges]


def run_one(servers: RunningServers, engine: Engine, script: Script) -> Dict[str, Any]:
    before = snapshot(engine)
    started = time.perf_counter()
    exchanges = talk(servers, script)
    context = Context(script, exchanges, engine, before, snapshot(engine))
    why = judge(context)
    return {"id": script.id, "skill": script.skill, "passed": not why, "why_failed": why,
            "customer_turns": len(exchanges), "goal_clicks": sum(e.step is None for e in exchanges),
            "clarifying_questions": sum(CLARIFY in e.text for e in exchanges),
            "repeated_text_turns": sum(len(e.texts) != len(set(e.texts)) for e in exchanges),
            "upset_acknowledgements": sum(UPSET in e.text for e in exchanges),
            "seconds": round(time.perf_counter() - started, 1), "transcript": transcript(exchanges)}


def ratio(count: int, total: int) -> Dict[str, Any]:
    return {"count": count, "of": total, "share": round(count / total, 4) if total else None}


def summarise(results: List[Dict[str, Any]]) -> Dict[str, Any]:
    turns = sum(r["customer_turns"] for r in results)
    questions = sum(r["clarifying_questions"] for r in results)
    skills = sorted({r["skill"] for r in results})
    return {
        "reached_outcome": ratio(sum(r["passed"] for r in results), len(results)),
        "by_skill": {skill: ratio(sum(r["passed"] for r in results if r["skill"] == skill),
                                  sum(r["skill"] == skill for r in results)) for skill in skills},
        "customer_turns": turns,
        "clarifying_questions": questions,
        "clarifying_questions_per_customer_turn": round(questions / turns, 4) if turns else None,
        "clarifying_questions_per_conversation": round(questions / len(results), 4) if results else None,
        "conversations_with_a_clarifying_question": sum(r["clarifying_questions"] > 0 for r in results),
        "turns_with_repeated_text": sum(r["repeated_text_turns"] for r in results),
        "turns_acknowledged_as_upset": sum(r["upset_acknowledgements"] for r in results),
        "failed": [r["id"] for r in results if not r["passed"]],
    }


def run_side(label: str, root: Path, model: Path, scripts: List[Script],
             env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Fresh seeded database and servers running `root`'s code with `model`; every script once."""
    with tempfile.TemporaryDirectory(prefix=f"conversations-{label}-") as tmp:
        work = Path(tmp)
        database_url = f"sqlite:///{work / 'shop.db'}"
        engine = make_engine(database_url, seed_demo=True)
        print(f"{label}: starting the servers ({root}, {model.name})...", flush=True)
        servers = start_servers(work, database_url, model, extra_env=env, root=root)
        try:
            servers.send("warm-up", "hi", timeout=SEND_TIMEOUT_S)
            results = []
            for number, script in enumerate(scripts, start=1):
                result = run_one(servers, engine, script)
                results.append(result)
                verdict = "ok" if result["passed"] else "FAILED: " + "; ".join(result["why_failed"])
                print(f"  {label} {number}/{len(scripts)} {script.id}: {verdict} ({result['customer_turns']} turns, "
                      f"{result['clarifying_questions']} questions, {result['seconds']} s)", flush=True)
        finally:
            servers.stop()
            engine.dispose()
    return {"servers_ready_s": round(servers.model_load_s, 1), "summary": summarise(results), "conversations": results}


# ---------------------------------------------------------------- configuration and main


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def side_config(root: Path, model: Path) -> Dict[str, Any]:
    """What a side actually ran: its FallbackClassifier settings, shop.yml `understanding` and model."""
    shop = yaml.safe_load((root / "shop.yml").read_text(encoding="utf-8"))
    return {"tree": str(root), "commit": git(root, "rev-parse", "HEAD"),
            "uncommitted_changes": git(root, "diff", "--name-only", "HEAD").splitlines(),
            "fallback": fallback_settings(root / "config.yml"),
            "understanding": shop.get("understanding"), "model": str(model), "model_sha256": sha256(model)}


def print_summary(label: str, side: Dict[str, Any]) -> None:
    summary = side["summary"]
    reached = summary["reached_outcome"]
    print(f"{label}: outcome reached {reached['count']}/{reached['of']} ({reached['share']:.1%}); "
          f"'Did you mean' {summary['clarifying_questions_per_customer_turn']:.3f} per customer turn, "
          f"{summary['clarifying_questions_per_conversation']:.3f} per conversation; "
          f"turns with the same text twice: {summary['turns_with_repeated_text']}")
    for result in side["conversations"]:
        if not result["passed"]:
            print(f"  {label} failed {result['id']}: {'; '.join(result['why_failed'])}")


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=BASE_REF, help="the commit to compare with (default: %(default)s)")
    parser.add_argument("--no-before", action="store_true", help="only this tree")
    parser.add_argument("--only", nargs="+", metavar="ID", help="only these conversations")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    scripts = load_scripts()
    if args.only:
        unknown = set(args.only) - {script.id for script in scripts}
        if unknown:
            parser.error(f"unknown conversation ids: {sorted(unknown)}")
        scripts = [script for script in scripts if script.id in args.only]
    results: Dict[str, Any] = {
        "command": "python -m bench.conversations" + (f" {' '.join(argv)}" if argv else ""),
        "scripts": {"file": str(SCRIPTS.relative_to(PROJECT_ROOT)), "conversations": len(scripts),
                    "by_skill": {skill: sum(s.skill == skill for s in scripts)
                                 for skill in sorted({s.skill for s in scripts})}},
        "config": {},
    }
    if not args.no_before:
        old = before_tree.prepare(args.before)
        results["config"]["before"] = {"ref": args.before, "sha": old.sha, **side_config(old.tree, old.model)}
        results["before"] = run_side("before", old.tree, old.model, scripts, env=old.environment())
    results["config"]["after"] = side_config(PROJECT_ROOT, DEFAULT_MODEL)
    results["after"] = run_side("after", PROJECT_ROOT, DEFAULT_MODEL, scripts)
    write_results("conversations", results)
    for label in ("before", "after"):
        if label in results:
            print_summary(label, results[label])


if __name__ == "__main__":
    main()
