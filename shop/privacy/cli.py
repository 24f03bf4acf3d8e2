"""`python -m shop.privacy`: retention from cron, and a customer's export and erasure on request (docs/privacy.md).

    python -m shop.privacy retention [--dry-run]
    python -m shop.privacy export EMAIL --out FILE
    python -m shop.privacy erase EMAIL [--dry-run] [--export FILE]

Exit status: 0 done (also when there was nothing to do), 1 a database or the export file could not be used,
2 bad arguments or settings (a malformed email, an invalid shop.yml). Every failure is one line on stderr, never a
traceback. Databases: DATABASE_URL (or shop.yml), TRACKER_STORE_URL, EVENTS_DATABASE_URL, or the options below.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

import yaml
from sqlalchemy.exc import SQLAlchemyError

from shop.privacy.customer import CustomerData, find_customer_data
from shop.privacy.erasure import Change, erase, plan_erasure
from shop.privacy.export import export_document, write_export
from shop.privacy.matching import valid_email
from shop.privacy.retention import apply_retention
from shop.privacy.stores import DatabaseError, Databases, first_line, open_databases
from shop.settings import config_path, get_settings

logger = logging.getLogger("shop.privacy")

DONE = {"delete": "deleted", "anonymise": "anonymised", "keep": "kept"}
WOULD = {"delete": "would delete", "anonymise": "would anonymise", "keep": "would keep"}


class UsageError(Exception):
    """Bad input from the person running the command (exit status 2)."""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database-url", help="the shop database (default: DATABASE_URL, else shop.yml)")
    common.add_argument("--tracker-store-url", help="Rasa's conversations (default: TRACKER_STORE_URL, else "
                                                    "var/tracker.db)")
    common.add_argument("--events-database-url", help="the event consumer's conversation_events (default: "
                                                      "EVENTS_DATABASE_URL, else var/events.db)")
    parser = argparse.ArgumentParser(prog="python -m shop.privacy", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{retention,export,erase}")
    retention = commands.add_parser("retention", parents=[common],
                                    help="delete or anonymise what is older than shop.yml privacy.retention_days")
    retention.add_argument("--dry-run", action="store_true", help="count what would change, change nothing")
    export = commands.add_parser("export", parents=[common], help="write everything stored about a customer")
    export.add_argument("email")
    export.add_argument("--out", required=True, help="the JSON file to write ('-': standard output)")
    erase_parser = commands.add_parser("erase", parents=[common], help="erase a customer's personal data")
    erase_parser.add_argument("email")
    erase_parser.add_argument("--dry-run", action="store_true", help="list what would change, change nothing")
    erase_parser.add_argument("--export", metavar="FILE", help="first write the customer's export to FILE")
    return parser


def format_changes(changes: List[Change], dry_run: bool) -> List[str]:
    verbs = WOULD if dry_run else DONE
    width = max((len(verbs[change.action]) for change in changes), default=0)
    digits = max((len(str(change.count)) for change in changes), default=1)
    lines = []
    for change in changes:
        detail = f" ({change.detail})" if change.detail else ""
        lines.append(f"  {verbs[change.action]:<{width}} {change.count:>{digits}} {change.what}{detail}")
    return lines


def _settings() -> None:
    """An invalid shop.yml is a usage error, reported before any database is opened."""
    try:
        get_settings()
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise UsageError(f"invalid settings in {config_path()}: {error}") from error


def _email(text: str) -> str:
    email = valid_email(text)
    if email is None:
        raise UsageError(f"{text!r} is not an email address")
    return email


def _conversation_lines(found: CustomerData) -> List[str]:
    lines = []
    for sender_id in sorted(found.conversations):
        conversation = found.conversations[sender_id]
        lines.append(f"  {sender_id} ({len(conversation.tracker_events)} events, {len(conversation.stream_events)} "
                     f"in the event stream): {'; '.join(sorted(conversation.reasons))}")
    return lines


def _summary(found: CustomerData) -> str:
    """'1 customer record, 4 orders, ...': what an export holds, for the person who ran it."""
    parts = [(len(found.customers), "customer record"), (len(found.orders), "orders"),
             (len(found.returns), "returns"), (len(found.emails), "emails"),
             (len(found.handoff_tickets), "handoff tickets"),
             (len(found.satisfaction_feedback), "satisfaction answers"),
             (len(found.sentiment), "message sentiment rows")]
    text = ", ".join(f"{count} {what}" for count, what in parts if count)
    if found.conversations:
        text += (f"{', ' if text else ''}{len(found.conversations)} conversations ({found.tracker_event_count} events, "
                 f"{found.stream_event_count} in the event stream)")
    return text


def _print_notes(found: CustomerData, stream=None) -> None:
    """Where nothing could be looked at (no tracker store yet, no events table), so that the reader knows."""
    for note in found.notes:
        print(f"Note: {note}.", file=stream or sys.stdout)


def run_retention(databases: Databases, dry_run: bool) -> int:
    settings = get_settings()
    for note in databases.notes:
        logger.info(f"retention: {note}")
    keep_s = settings.throttle.window_minutes * 60
    changes = apply_retention(databases, settings.privacy, settings.returns.reasons, limit_keep_s=keep_s,
                              dry_run=dry_run)
    if dry_run and any(change.count for change in changes):
        logger.info("retention: dry run, nothing was changed")
    return 0


def run_export(databases: Databases, email: str, out: str) -> int:
    found = find_customer_data(databases, email)
    where = write_export(export_document(found, get_settings().shop_name), out)
    stream = sys.stderr if out == "-" else sys.stdout
    _print_notes(found, stream)
    if found.found_anything:
        print(f"Exported the data of {email} to {where}: {_summary(found)}.", file=stream)
    else:
        print(f"Nothing found for {email}; wrote an empty export to {where}.", file=stream)
    logger.info("export: %s found=%s", email, found.found_anything)
    return 0


def run_erase(databases: Databases, email: str, dry_run: bool, export_to: Optional[str]) -> int:
    settings = get_settings()
    found = find_customer_data(databases, email)
    if export_to:
        where = write_export(export_document(found, settings.shop_name), export_to)
        print(f"Exported the data of {email} to {where} before erasing.", file=sys.stderr if export_to == "-"
              else sys.stdout)
    _print_notes(found)
    if not found.found_anything:
        print(f"Nothing found for {email}: no customer, conversation, ticket, answer or email with this address "
              "(already erased, or never stored).")
        return 0
    plan = plan_erasure(found, settings.privacy, settings.returns.reasons)
    if plan.nothing_to_do:
        kept = [change for change in plan.changes if change.action == "keep" and change.count]
        print(f"Nothing to erase for {email}: what is left is kept as configured." + (" Kept:" if kept else ""))
        print("\n".join(format_changes(kept, dry_run=False)) if kept else "", end="\n" if kept else "")
        return 0
    if not dry_run:
        erase(databases, plan)  # before the report: a failure must not be reported as done
        erased = sum(change.count for change in plan.changes if change.action != "keep")
        logger.info("erase: %s: %d rows and events deleted or anonymised", email, erased)
    print(f"Erase {email}" + (": dry run, nothing was changed" if dry_run else ""))
    print("\n".join(format_changes(plan.changes, dry_run)))
    if found.conversations:
        print("Conversations:")
        print("\n".join(_conversation_lines(found)))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    databases: Optional[Databases] = None
    try:
        _settings()
        email = _email(args.email) if args.command in ("export", "erase") else ""
        databases = open_databases(args.database_url, args.tracker_store_url, args.events_database_url)
        if args.command == "retention":
            return run_retention(databases, args.dry_run)
        if args.command == "export":
            return run_export(databases, email, args.out)
        return run_erase(databases, email, args.dry_run, args.export)
    except UsageError as error:
        print(f"python -m shop.privacy {args.command}: {error}", file=sys.stderr)
        return 2
    except DatabaseError as error:
        print(f"python -m shop.privacy {args.command}: {error}", file=sys.stderr)
        return 1
    except SQLAlchemyError as error:
        print(f"python -m shop.privacy {args.command}: a database failed: {first_line(error)}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"python -m shop.privacy {args.command}: cannot write the export: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if databases is not None:
            databases.dispose()
