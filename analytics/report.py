"""`python -m analytics report`: how the bot did in a period, as one self-contained HTML page and a JSON of every
figure, from Rasa's SQL tracker store (SQLite or PostgreSQL) and the shop's own tables.

    python -m analytics report --since 7d --out var/report

The figures and their definitions are in analytics/figures.py; this module reads the databases, draws the plots
(matplotlib, Agg, embedded as base64 PNG: the page needs nothing else) and writes report.html and report.json.
No email address or order number reaches either file: example messages are masked with the shop's own order-number
pattern (shop.yml `order_numbers`) and an email pattern.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import logging
import os
import re
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Template
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from analytics import UsageProblem
from analytics.conversations import read_conversations
from analytics.figures import DEFINITIONS, ShopData, compute, masker

TEMPLATE = Path(__file__).with_name("templates") / "report.html"
DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
COLOURS = {"blue": "#2f6fb0", "green": "#3f9142", "red": "#c0392b", "grey": "#8a99a8", "orange": "#e08a1e",
           "purple": "#7d5ba6"}


# ---------------------------------------------------------------------------------------------------------- CLI


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="how the bot did in a period: one HTML page and a JSON of every figure",
        description="Reads the conversations of a period from Rasa's tracker store and the shop's tables, and writes "
                    "report.html (self-contained, plots embedded) and report.json.")
    parser.add_argument("--since", default="7d",
                        help="start of the period: a time ago (30m, 24h, 7d, 2w), a UTC date or time "
                             "(2024-05-01, 2024-05-01T08:00) or 'all' (default: 7d)")
    parser.add_argument("--until", default="now", help="end of the period, same forms (default: now)")
    parser.add_argument("--change", default=None,
                        help="when the bot changed (a retrain, a new release), same forms: the report adds the main "
                             "figures before and after it side by side")
    parser.add_argument("--out", default="var/report", type=Path, help="folder for report.html and report.json "
                                                                       "(default: var/report)")
    parser.add_argument("--tracker-store", dest="tracker_store", default=None,
                        help="SQLAlchemy URL of Rasa's tracker store (default: TRACKER_STORE_URL, else "
                             "sqlite:///var/tracker.db)")
    parser.add_argument("--database", default=None,
                        help="the shop's database, for handoff tickets and satisfaction answers (default: "
                             "DATABASE_URL, else shop.yml's database_url)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    since = parse_moment(args.since, now, "--since", allow_all=True)
    until = parse_moment(args.until, now, "--until")
    change = parse_moment(args.change, now, "--change") if args.change else None
    report = build_report(tracker_store_url(args.tracker_store), since, until,
                          database_url=args.database, database_explicit=args.database is not None, change=change)
    paths = write_report(report, args.out)
    volume = report["figures"]["volume"]
    print(f"{volume['conversations']} conversations, {volume['messages']} customer messages, "
          f"{report['period']['label']}")
    if not volume["conversations"]:
        print("no conversations in this period: the report says so")
    for note in report["notes"]:
        print(f"note: {note}")
    for path in paths:
        print(f"wrote {path}")
    return 0


def parse_moment(value: str, now: datetime, option: str, allow_all: bool = False) -> Optional[datetime]:
    """A point in time (UTC) from '7d', '24h', 'now', 'all', '2024-05-01' or '2024-05-01T08:00[+02:00]'."""
    raw = (value or "").strip()
    lowered = raw.lower()
    if lowered == "now":
        return now
    if lowered == "all" and allow_all:
        return None
    match = DURATION.match(lowered)
    if match:
        return now - timedelta(**{UNITS[match.group(2)]: float(match.group(1))})
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise UsageProblem(f"{option} {value!r}: give a time ago (30m, 24h, 7d, 2w), a date or time such as "
                           f"2024-05-01 or 2024-05-01T08:00 (UTC){', or all' if allow_all else ''}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def tracker_store_url(given: Optional[str]) -> str:
    if given:
        return given
    if os.environ.get("TRACKER_STORE_URL"):
        return os.environ["TRACKER_STORE_URL"]
    from shop.settings import PROJECT_ROOT

    return f"sqlite:///{PROJECT_ROOT / 'var' / 'tracker.db'}"


def shop_database_url(given: Optional[str]) -> Optional[str]:
    if given:
        return given
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    try:
        from shop.settings import get_settings

        return get_settings().database_url
    except Exception:  # noqa: BLE001 - a broken shop.yml only costs the report its shop tables
        return None


def shown(url: str) -> str:
    """The URL without its user and password, for messages and the page (user@host would look like an email)."""
    try:
        parsed = make_url(url)
        return URL.create(parsed.drivername, host=parsed.host, port=parsed.port, database=parsed.database,
                          query=parsed.query).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unreadable URL)"


def open_engine(url: str, what: str) -> Engine:
    """An engine for an existing database; a missing SQLite file is an error, never silently created."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageProblem(f"{what}: {url!r} is not a database URL (e.g. sqlite:///var/tracker.db or "
                           f"postgresql://user@host:5432/db)") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).is_file():
            raise UsageProblem(f"{what}: no such SQLite file: {parsed.database}")
    try:
        engine = create_engine(url, future=True)
        with engine.connect() as connection:
            connection.execute(text("select 1"))
    except (SQLAlchemyError, ImportError) as error:
        raise UsageProblem(f"{what}: cannot open {shown(url)}: {first_line(error)}") from None
    return engine


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [error.__class__.__name__])[0][:300]


# ------------------------------------------------------------------------------------------------------ reading


def read_shop(url: Optional[str], since: Optional[datetime], until: datetime, explicit: bool) -> ShopData:
    """Handoff reasons and satisfaction ratings of the period from the shop's tables; a ShopData with a problem
    (and the figures taken from the conversations instead) when they cannot be read and were not asked for."""
    if not url:
        return ShopData(problem="no shop database configured")
    try:
        engine = open_engine(url, "--database")
    except UsageProblem as problem:
        if explicit:
            raise
        return ShopData(problem=str(problem))
    conditions, params = ["created_at < :until"], {"until": until.astimezone(UTC).replace(tzinfo=None)}
    if since is not None:
        conditions.append("created_at >= :since")
        params["since"] = since.astimezone(UTC).replace(tzinfo=None)
    where = " AND ".join(conditions)
    data, missing = ShopData(), []
    try:
        tables = inspect(engine)
        if tables.has_table("handoff_tickets"):
            data.tickets = {}
            with engine.connect() as connection:
                for row in connection.execute(text(f"SELECT conversation_id, reason FROM handoff_tickets "
                                                   f"WHERE {where} ORDER BY id"), params):
                    data.tickets.setdefault(row.conversation_id, []).append(row.reason)
        else:
            missing.append("handoff_tickets")
        if tables.has_table("satisfaction_feedback"):
            with engine.connect() as connection:
                data.ratings = [valid_rating(row.rating) for row in connection.execute(
                    text(f"SELECT rating FROM satisfaction_feedback WHERE {where} ORDER BY id"), params)]
        else:
            missing.append("satisfaction_feedback")
    except SQLAlchemyError as error:
        if explicit:
            raise UsageProblem(f"--database: cannot read {shown(url)}: {first_line(error)}") from None
        return ShopData(problem=f"cannot read the shop's tables in {shown(url)}: {first_line(error)}")
    finally:
        engine.dispose()
    if missing:
        data.problem = f"{shown(url)} has no {' or '.join(missing)} table"
    return data


def valid_rating(value: Any) -> Optional[int]:
    try:
        rating = int(value)
    except (TypeError, ValueError):
        return None
    return rating if 1 <= rating <= 5 else None


def build_report(tracker_url: str, since: Optional[datetime], until: datetime, database_url: Optional[str] = None,
                 database_explicit: bool = False, now: Optional[datetime] = None,
                 change: Optional[datetime] = None) -> Dict[str, Any]:
    """Every figure of the period, its definitions, the period and the sources: what report.json holds. With
    `change`, also the main figures of the conversations that started before it and of those that started after."""
    if since is not None and since >= until:
        raise UsageProblem(f"the period is empty: --since ({iso(since)}) is not before --until ({iso(until)})")
    if change is not None and not ((since is None or since < change) and change < until):
        raise UsageProblem(f"--change ({iso(change)}) must fall inside the period")
    from shop.feedback import parse_rating
    from shop.settings import get_settings

    started = time.perf_counter()
    engine = open_engine(tracker_url, "--tracker-store")
    try:
        result = read_conversations(engine, since.timestamp() if since else None, until.timestamp())
    except SQLAlchemyError as error:
        raise UsageProblem(f"--tracker-store: cannot read the events of {shown(tracker_url)}: "
                           f"{first_line(error)}") from None
    finally:
        engine.dispose()
    if not result.table_found:
        raise UsageProblem(f"--tracker-store: {shown(tracker_url)} has no events table: not a Rasa tracker store, "
                           f"or Rasa has not stored a conversation there yet")
    read_s = time.perf_counter() - started
    shop = read_shop(shop_database_url(database_url), since, until, database_explicit)
    try:
        settings = get_settings()
        order_numbers, shop_name = settings.order_numbers, settings.shop_name
    except Exception as error:  # noqa: BLE001 - the report works without shop.yml; masking falls back to digits
        from shop.order_numbers import OrderNumberFormat

        logging.getLogger(__name__).warning(f"shop.yml unreadable ({error}); masking 5-8 digit order numbers")
        order_numbers, shop_name = OrderNumberFormat(), "The shop"
    figures = compute(result.conversations, since, until, shop, masker(order_numbers), parse_rating)
    figures["intents"]["thresholds"] = thresholds()
    comparison = None
    if change is not None:
        halves = {}
        for name, start, end in (("before", since, change), ("after", change, until)):
            part = [c for c in result.conversations
                    if (start is None or c.started_at >= start.timestamp()) and c.started_at < end.timestamp()]
            halves[name] = headline(compute(part, start, end, read_shop(shop_database_url(database_url), start, end,
                                                                          database_explicit),
                                            masker(order_numbers), parse_rating))
        comparison = {"change": iso(change), **halves}
    notes = []
    if result.skipped_rows:
        notes.append(f"{result.skipped_rows} event row(s) could not be read (broken JSON) and were skipped")
    if shop.problem:
        notes.append(f"shop tables: {shop.problem}; handoff reasons come from the handoff_reason slot and "
                     f"satisfaction ratings from the conversations")
    first_day = since or (datetime.fromtimestamp(min(c.started_at for c in result.conversations), UTC)
                          if result.conversations else until)
    return {
        "title": f"{shop_name} assistant: conversation report",
        "generated_at": iso(now or datetime.now(UTC)),
        "period": {"since": iso(since) if since else None, "until": iso(until), "timezone": "UTC",
                   "label": period_label(first_day, until, since is None)},
        "source": {"tracker_store": shown(tracker_url),
                   "database": None if shop.problem else shown(shop_database_url(database_url) or ""),
                   "skipped_rows": result.skipped_rows, "read_s": round(read_s, 2)},
        "notes": notes,
        "definitions": DEFINITIONS,
        "figures": figures,
        "comparison": comparison,
    }


COMPARED = (("conversations", "Conversations"), ("containment", "Containment"), ("handoff_rate", "Handoff rate"),
            ("fallback_rate", "Fallback rate (per message)"), ("clarification_rate", "\"Did you mean\" rate"),
            ("csat_average", "CSAT average"), ("latency_p95_s", "Latency p95 (s)"))


def headline(figures: Dict[str, Any]) -> Dict[str, Any]:
    """The figures compared before and after a change."""
    return {"conversations": figures["volume"]["conversations"], "containment": figures["containment"]["rate"],
            "handoff_rate": figures["handoffs"]["rate"], "fallback_rate": figures["fallback"]["rate_per_message"],
            "clarification_rate": figures["clarification"]["rate_per_message"],
            "csat_average": figures["csat"]["average"], "latency_p95_s": figures["latency"]["p95_s"]}


def comparison_table(comparison: Dict[str, Any]) -> str:
    def shown_value(key: str, value: Any) -> str:
        if value is None:
            return "–"
        return percent(value) if key.endswith(("rate", "containment")) else number(value)

    body = "".join(f"<tr><td>{esc(label)}</td><td>{esc(shown_value(key, comparison['before'][key]))}</td>"
                   f"<td>{esc(shown_value(key, comparison['after'][key]))}</td></tr>" for key, label in COMPARED)
    return (f"<section><h2>Before and after the change of {esc(comparison['change'])}</h2>"
            f"<p class='definition'>Conversations that started before the change, and those that started after it; "
            f"each figure as defined below.</p><table><tr><th>figure</th><th>before</th><th>after</th></tr>"
            f"{body}</table></section>")


def thresholds() -> Dict[str, float]:
    """Where the bot acts (FallbackClassifier's threshold, config.yml) and asks "Did you mean" (shop.yml), for the
    confidence histogram; whichever cannot be read is left out."""
    found: Dict[str, float] = {}
    try:
        import yaml

        from shop.settings import PROJECT_ROOT, get_settings

        config = yaml.safe_load((PROJECT_ROOT / "config.yml").read_text(encoding="utf-8")) or {}
        for step in config.get("pipeline") or []:
            if step.get("name") == "FallbackClassifier" and step.get("threshold") is not None:
                found["acts at"] = float(step["threshold"])
        found["asks \"Did you mean\" from"] = get_settings().understanding.clarify_min_confidence
    except Exception:  # noqa: BLE001 - decoration only
        pass
    return found


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def period_label(since: datetime, until: datetime, from_start: bool) -> str:
    start = "the first conversation" if from_start else f"{since:%Y-%m-%d %H:%M}"
    return f"{start} to {until:%Y-%m-%d %H:%M} UTC"


# ------------------------------------------------------------------------------------------------------ writing


def write_report(report: Dict[str, Any], out: Path) -> List[Path]:
    try:
        out.mkdir(parents=True, exist_ok=True)
        html_path, json_path = out / "report.html", out / "report.json"
        json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        html_path.write_text(render_html(report), encoding="utf-8")
    except OSError as error:
        raise UsageProblem(f"--out {out}: cannot write the report: {error.strerror or error}") from None
    return [html_path, json_path]


def percent(value: Optional[float]) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def number(value: Any, unit: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:,}{unit}" if isinstance(value, int) else f"{value:,.2f}{unit}"


def esc(value: Any) -> str:
    return html.escape(str(value))


def rows(entries: Sequence[Tuple[str, str, str]]) -> str:
    """A table of (figure, value, one-line definition)."""
    body = "".join(f"<tr><td>{esc(label)}</td><td class='num'>{esc(value)}</td><td class='def'>{esc(definition)}"
                   f"</td></tr>" for label, value, definition in entries)
    return f"<table><tr><th>figure</th><th>value</th><th>definition</th></tr>{body}</table>"


def section(title: str, definition: str, content: str, image: Optional[str], alt: str) -> str:
    figure = (f"<figure><img src='data:image/png;base64,{image}' alt='{esc(alt)}'></figure>" if image else "")
    return (f"<section><h2>{esc(title)}</h2><p class='definition'>{esc(definition)}</p>{content}{figure}"
            f"</section>")


def examples(items: List[str], heading: str) -> str:
    if not items:
        return ""
    return f"<p>{esc(heading)}</p><ul class='examples'>" + "".join(f"<li>{esc(item)}</li>" for item in items) + \
        "</ul>"


def render_html(report: Dict[str, Any]) -> str:
    figures, period = report["figures"], report["period"]["label"]
    plots = Plots(period)
    volume = figures["volume"]
    notes = "".join(f"<p>{esc(note)}</p>" for note in report["notes"])
    body = [f"<div class='notes'>{notes}</div>" if notes else ""]
    if not volume["conversations"]:
        body.append("<p class='empty'>No conversations in this period.</p>")
    else:
        body.append(summary(figures))
        if report.get("comparison"):
            body.append(comparison_table(report["comparison"]))
        body.extend(sections(figures, plots))
    source = report["source"]
    database = f"; shop tables: {source['database']}" if source["database"] else ""
    return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        title=esc(report["title"]), period=esc(f"Period: {period}"),
        source=esc(f"Conversations: {source['tracker_store']}{database}"),
        body="\n".join(body),
        footer=esc(f"Generated {report['generated_at']} by python -m analytics report. Every figure and its "
                   f"definition is also in report.json."))


def summary(figures: Dict[str, Any]) -> str:
    csat = figures["csat"]
    cards = [
        ("Conversations", number(figures["volume"]["conversations"]), DEFINITIONS["conversations"].split(";")[0]),
        ("Containment", percent(figures["containment"]["rate"]), "reached a skill's outcome, no handoff"),
        ("Handoff rate", percent(figures["handoffs"]["rate"]), "conversations with a handoff ticket"),
        ("Fallback rate", percent(figures["fallback"]["rate_per_message"]),
         "customer messages the bot could not help with"),
        ("CSAT", "–" if csat["average"] is None else f"{csat['average']:.2f} / 5",
         f"average of {csat['ratings']} satisfaction ratings"),
        ("Latency p95", number(figures["latency"]["p95_s"], " s"), "customer message to the bot's last answer"),
    ]
    return "<div class='summary'>" + "".join(
        f"<div class='card'><div class='label'>{esc(label)}</div><div class='value'>{esc(value)}</div>"
        f"<div class='definition'>{esc(definition)}</div></div>" for label, value, definition in cards) + "</div>"


def sections(figures: Dict[str, Any], plots: Plots) -> List[str]:
    volume, containment, handoffs = figures["volume"], figures["containment"], figures["handoffs"]
    fallback, clarification, funnel = figures["fallback"], figures["clarification"], figures["funnel"]
    csat, negative, intents, latency = figures["csat"], figures["negative"], figures["intents"], figures["latency"]
    out = [
        section("Conversations and messages", DEFINITIONS["conversations"] + " " + DEFINITIONS["messages"],
                rows([("conversations", number(volume["conversations"]), "sender ids with a customer message"),
                      ("customer messages", number(volume["messages"]), "user events, button clicks included"),
                      ("messages per conversation", number(volume["messages_per_conversation"]),
                       "customer messages / conversations")]),
                plots.volume(volume["per_day"]), "conversations and customer messages per day"),
        section("Containment and handoffs", DEFINITIONS["containment"] + " " + DEFINITIONS["handoff_rate"],
                rows([("containment", f"{percent(containment['rate'])} ({containment['contained']})",
                       "outcome reached, no handoff / conversations"),
                      ("handoff rate", f"{percent(handoffs['rate'])} ({handoffs['conversations']})",
                       "conversations with a handoff ticket / conversations"),
                      ("neither", number(containment["neither"]), "no outcome and no handoff: greetings only, "
                                                                   "off-topic, abandoned"),
                      ("handoff tickets", number(handoffs["tickets"]), DEFINITIONS["handoffs_by_reason"])]
                     + [(f"reason: {reason}", number(count), f"tickets with this reason ({handoffs['reason_source']})")
                        for reason, count in handoffs["by_reason"].items()]),
                plots.outcomes(containment, handoffs), "conversation outcomes and handoffs by reason"),
        section("Fallbacks and \"Did you mean ...?\"",
                DEFINITIONS["fallback_rate"] + " " + DEFINITIONS["clarification_rate"],
                rows([("fallback messages", f"{percent(fallback['rate_per_message'])} ({fallback['messages']})",
                       "fallback answers / customer messages"),
                      ("conversations with a fallback",
                       f"{percent(fallback['rate_per_conversation'])} ({fallback['conversations']})",
                       "conversations with at least one / conversations"),
                      ("clarification messages",
                       f"{percent(clarification['rate_per_message'])} ({clarification['messages']})",
                       "\"Did you mean\" questions / customer messages"),
                      ("conversations with a clarification",
                       f"{percent(clarification['rate_per_conversation'])} ({clarification['conversations']})",
                       "conversations with at least one / conversations")])
                + examples(fallback["examples"], "Recent messages the bot could not help with (masked):"),
                plots.rates(fallback, clarification), "fallback and clarification rates"),
        section("Skill funnel", DEFINITIONS["funnel"],
                funnel_table(funnel), plots.funnel(funnel), "funnel per skill"),
        section("Customer satisfaction (CSAT)", DEFINITIONS["csat"],
                rows([("average rating", "–" if csat["average"] is None else f"{csat['average']:.2f}",
                       "mean of the 1-5 ratings"),
                      ("ratings", number(csat["ratings"]), "answers with a 1-5 rating"),
                      ("answers without a rating", number(csat["without_rating"]), "stored, no number in them"),
                      ("asked", number(csat["asked"]), "conversations in which the bot asked the question")]
                     + [(f"rating {value}", number(count), "answers with this rating")
                        for value, count in csat["distribution"].items()]),
                plots.csat(csat), "satisfaction ratings"),
        section("Conversations that turned negative", DEFINITIONS["negative"],
                rows([("turned negative", f"{percent(negative['share'])} ({negative['conversations']})",
                       "negative or frustrated message / conversations")]
                     + [(f"then: {key}", number(count), NEXT_DEFINITIONS[key])
                        for key, count in negative["next"].items()])
                + examples(negative["examples"], "The first negative message of some of them (masked):"),
                plots.negative(negative), "what happened after a conversation turned negative"),
        section("Intents", DEFINITIONS["intent_confidence"] + " " + DEFINITIONS["top_intents"],
                rows([(f"{entry['intent']}", f"{entry['messages']} ({percent(entry['share'])})",
                       f"e.g. \u201c{entry['example']}\u201d" if entry["example"] else "button clicks only")
                      for entry in intents["top"]]),
                plots.intents(intents), "intent confidence histogram and top intents"),
        section("Turn latency", DEFINITIONS["latency"],
                rows([("p50", number(latency["p50_s"], " s"), "half the answers took at most this long"),
                      ("p95", number(latency["p95_s"], " s"), "95 % of the answers took at most this long"),
                      ("max", number(latency["max_s"], " s"), "the slowest answer"),
                      ("answered messages", number(latency["messages"]), "customer messages the bot acted on")]),
                plots.latency(latency), "turn latency histogram"),
    ]
    return out


NEXT_DEFINITIONS = {"handoff": "a handoff ticket at or after the first negative message",
                    "resolved": "no handoff; a skill's outcome at or after it",
                    "abandoned": "neither a handoff nor an outcome after it"}


def funnel_table(funnel: Dict[str, Any]) -> str:
    head = "<tr><th>skill</th><th>started</th><th>verified</th><th>completed</th><th>refused</th>" \
           "<th>unfinished</th><th>refusals</th></tr>"
    body = "".join(
        f"<tr><td>{esc(step['title'])}</td>" + "".join(f"<td class='num'>{step[key]}</td>" for key in
                                                         ("started", "verified", "completed", "refused", "unfinished"))
        + f"<td class='def'>{esc(', '.join(f'{name}: {count}' for name, count in step['refusals'].items()) or '–')}"
          f"</td></tr>" for step in funnel.values())
    return f"<table>{head}{body}</table>"


# ------------------------------------------------------------------------------------------------------ plots


class Plots:
    """The report's plots as base64 PNG, drawn with matplotlib's Agg canvas (no display, no global state)."""

    def __init__(self, period: str) -> None:
        self.period = period

    def _draw(self, draw: Callable[..., None], width: float = 9.0, height: float = 3.4, columns: int = 1) -> str:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(width, height), dpi=90)
        FigureCanvasAgg(figure)
        axes = figure.subplots(1, columns)
        draw(*(axes if columns > 1 else [axes]))
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return base64.b64encode(buffer.getvalue()).decode("ascii")

    def title(self, axes, what: str) -> None:
        axes.set_title(f"{what}\n{self.period}", fontsize=10)

    @staticmethod
    def whole(axis) -> None:
        """Counts are whole numbers: no 0.5 ticks."""
        from matplotlib.ticker import MaxNLocator

        axis.set_major_locator(MaxNLocator(integer=True))

    @staticmethod
    def nothing(axes, message: str) -> None:
        axes.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color=COLOURS["grey"],
                  transform=axes.transAxes)
        axes.set_xticks([])
        axes.set_yticks([])

    def volume(self, per_day: List[Dict[str, Any]]) -> str:
        def draw(axes) -> None:
            days = [entry["day"][5:] for entry in per_day]
            positions = list(range(len(days)))
            bars = axes.bar(positions, [entry["conversations"] for entry in per_day], color=COLOURS["blue"],
                            label="conversations")
            axes.bar_label(bars, labels=[str(entry["conversations"]) if entry["conversations"] else ""
                                         for entry in per_day], fontsize=8, padding=2)
            axes.set_ylabel("conversations")
            self.whole(axes.yaxis)
            axes.set_xlabel("day (UTC, month-day)")
            step = max(1, len(days) // 16)
            axes.set_xticks(positions[::step], days[::step], rotation=45 if len(days) > 10 else 0, fontsize=8)
            twin = axes.twinx()
            twin.plot(positions, [entry["messages"] for entry in per_day], color=COLOURS["orange"], marker="o",
                      label="customer messages")
            twin.set_ylabel("customer messages")
            twin.set_ylim(bottom=0)
            self.whole(twin.yaxis)
            axes.legend(handles=[bars, twin.get_lines()[0]], loc="upper left", fontsize=8)
            self.title(axes, "Conversations and customer messages per day")

        return self._draw(draw)

    def outcomes(self, containment: Dict[str, Any], handoffs: Dict[str, Any]) -> str:
        def draw(left, right) -> None:
            labels = ["contained", "handed off", "neither"]
            values = [containment["contained"], containment["handed_off"], containment["neither"]]
            bars = left.bar(labels, values, color=[COLOURS["green"], COLOURS["red"], COLOURS["grey"]])
            total = max(1, containment["conversations"])
            left.bar_label(bars, labels=[f"{value} ({value / total:.0%})" for value in values], fontsize=8,
                           padding=2)
            left.set_ylabel("conversations")
            self.whole(left.yaxis)
            left.set_ylim(top=max(values + [1]) * 1.2)
            self.title(left, "How conversations ended")
            reasons = list(handoffs["by_reason"].items())
            if not reasons:
                self.nothing(right, "no handoffs in this period")
            else:
                names = [textwrap.fill(shorten(reason, 70), 30) for reason, _ in reasons][::-1]
                bars = right.barh(names, [count for _, count in reasons][::-1], color=COLOURS["red"])
                right.bar_label(bars, fontsize=8, padding=2)
                right.set_xlabel("handoff tickets")
                self.whole(right.xaxis)
                right.tick_params(axis="y", labelsize=8)
                right.set_xlim(right=max(count for _, count in reasons) * 1.2)
            self.title(right, "Handoffs by reason")

        return self._draw(draw, width=10.5, height=3.6, columns=2)

    def rates(self, fallback: Dict[str, Any], clarification: Dict[str, Any]) -> str:
        def draw(axes) -> None:
            groups = ["per customer message", "per conversation"]
            width = 0.38
            for offset, (label, figure, colour) in enumerate(
                    [("fallback", fallback, COLOURS["red"]),
                     ("\"Did you mean ...?\"", clarification, COLOURS["orange"])]):
                values = [100 * (figure["rate_per_message"] or 0), 100 * (figure["rate_per_conversation"] or 0)]
                bars = axes.bar([index + (offset - 0.5) * width for index in range(2)], values, width,
                                label=label, color=colour)
                axes.bar_label(bars, labels=[f"{value:.1f} %" for value in values], fontsize=8, padding=2)
            axes.set_xticks(range(2), groups)
            axes.set_ylabel("share (%)")
            axes.set_ylim(0, max(5.0, axes.get_ylim()[1] * 1.15))
            axes.legend(fontsize=8)
            self.title(axes, "Fallback and clarification rates")

        return self._draw(draw, width=7.5)

    def funnel(self, funnel: Dict[str, Any]) -> str:
        def draw(axes) -> None:
            steps = [("started", COLOURS["blue"]), ("verified", COLOURS["purple"]), ("completed", COLOURS["green"]),
                     ("refused", COLOURS["red"]), ("unfinished", COLOURS["grey"])]
            skills = list(funnel.values())
            height = 0.16
            for offset, (step, colour) in enumerate(steps):
                positions = [index + (offset - 2) * height for index in range(len(skills))]
                values = [skill[step] for skill in skills]
                bars = axes.barh(positions, values, height, label=step, color=colour)
                axes.bar_label(bars, labels=[str(value) if value else "" for value in values], fontsize=7, padding=2)
            axes.set_yticks(range(len(skills)), [skill["title"] for skill in skills])
            axes.invert_yaxis()
            axes.set_xlabel("conversations")
            self.whole(axes.xaxis)
            axes.legend(fontsize=8, loc="lower right")
            self.title(axes, "Order skills: started, verified, completed, refused")

        return self._draw(draw, height=4.4)

    def csat(self, csat: Dict[str, Any]) -> str:
        def draw(axes) -> None:
            values = [csat["distribution"][str(value)] for value in range(1, 6)]
            colours = [COLOURS["red"], COLOURS["orange"], COLOURS["grey"], COLOURS["blue"], COLOURS["green"]]
            bars = axes.bar([str(value) for value in range(1, 6)], values, color=colours)
            axes.bar_label(bars, fontsize=8, padding=2)
            axes.set_xlabel("rating (1 = not at all happy, 5 = very happy)")
            axes.set_ylabel("answers")
            self.whole(axes.yaxis)
            axes.set_ylim(top=max(values + [1]) * 1.2)
            average = "no ratings" if csat["average"] is None else f"average {csat['average']:.2f} of " \
                                                                    f"{csat['ratings']} ratings"
            self.title(axes, f"Satisfaction ratings ({average})")

        return self._draw(draw, width=7.5)

    def negative(self, negative: Dict[str, Any]) -> str:
        def draw(axes) -> None:
            labels = list(negative["next"])
            values = list(negative["next"].values())
            bars = axes.bar(labels, values, color=[COLOURS["red"], COLOURS["green"], COLOURS["grey"]])
            axes.bar_label(bars, fontsize=8, padding=2)
            axes.set_xlabel("what happened after the first negative or frustrated message")
            axes.set_ylabel("conversations")
            self.whole(axes.yaxis)
            axes.set_ylim(top=max(values + [1]) * 1.2)
            self.title(axes, f"{negative['conversations']} conversations turned negative "
                             f"({percent(negative['share'])})")

        return self._draw(draw, width=7.5)

    def intents(self, intents: Dict[str, Any]) -> str:
        def draw(left, right) -> None:
            edges = intents["confidence_bins"]
            bars = left.bar(edges[:-1], intents["confidence_counts"], width=edges[1] - edges[0], align="edge",
                            color=COLOURS["blue"], edgecolor="white")
            left.bar_label(bars, labels=[str(count) if count else "" for count in intents["confidence_counts"]],
                           fontsize=8, padding=2)
            left.set_xlim(0, 1)
            left.set_xticks([edge for edge in edges[::2]])
            left.set_ylim(top=max(intents["confidence_counts"] + [1]) * 1.2)
            for label, value in (intents.get("thresholds") or {}).items():
                left.axvline(value, color=COLOURS["red"] if label.startswith("act") else COLOURS["orange"],
                             linestyle="--", linewidth=1, label=f"{label} ({value:g})")
            if intents.get("thresholds"):
                left.legend(fontsize=8, loc="upper left")
            left.set_xlabel("confidence in the best intent")
            left.set_ylabel("customer messages")
            self.whole(left.yaxis)
            self.title(left, f"Intent confidence ({intents['messages_scored']} typed messages)")
            top = intents["top"][::-1]
            if top:
                bars = right.barh([entry["intent"] for entry in top], [entry["messages"] for entry in top],
                                  color=COLOURS["purple"])
                right.bar_label(bars, fontsize=8, padding=2)
                right.tick_params(axis="y", labelsize=8)
                right.set_xlim(right=max(entry["messages"] for entry in top) * 1.2)
            right.set_xlabel("customer messages")
            self.whole(right.xaxis)
            self.title(right, "Top intents")

        return self._draw(draw, width=10.5, height=3.8, columns=2)

    def latency(self, latency: Dict[str, Any]) -> str:
        def draw(axes) -> None:
            edges = latency["bucket_edges_s"]
            labels = [f"{low:g}-{high:g}" for low, high in zip(edges, edges[1:], strict=False)] + [f">{edges[-1]:g}"]
            bars = axes.bar(labels, latency["bucket_counts"], color=COLOURS["blue"])
            axes.bar_label(bars, fontsize=8, padding=2)
            axes.set_xlabel("seconds from the customer's message to the bot's answer")
            axes.set_ylabel("customer messages")
            self.whole(axes.yaxis)
            axes.set_ylim(top=max(latency["bucket_counts"] + [1]) * 1.2)
            self.title(axes, f"Turn latency (p50 {number(latency['p50_s'], ' s')}, "
                             f"p95 {number(latency['p95_s'], ' s')})")

        return self._draw(draw, width=7.5)


def shorten(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit - 1] + "…"
