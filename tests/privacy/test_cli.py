"""`python -m shop.privacy` as an operator and cron use it: exit status, messages, files; bad input gets one clear
line and never a traceback. SQLite files (the command takes URLs; PostgreSQL is covered by the other tests)."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from shop.privacy.cli import main
from shop.settings import PROJECT_ROOT, get_settings
from tests.privacy.world import ALICE, OTHER_CONVERSATIONS, World

pytestmark = pytest.mark.parametrize("empty_engine", ["sqlite"], indirect=True)


def args(world: World, *command: str) -> List[str]:
    urls = [item for pair in world.urls.items() for item in pair]
    return [*command, *urls]


def test_erase_dry_run_then_erase_with_export_then_nothing_left(world: World, capsys, tmp_path: Path) -> None:
    before = world.snapshot()
    assert main(args(world, "erase", ALICE, "--dry-run")) == 0
    out = capsys.readouterr().out
    assert world.snapshot() == before
    assert out.startswith(f"Erase {ALICE}: dry run, nothing was changed\n")
    assert "\n  would delete     2 handoff tickets\n" in out
    assert "\n  would anonymise  1 customer record (name, email)\n" in out
    assert "\n  would keep       4 orders (the shop's records, with 1 return(s) and their refunds)\n" in out
    assert ("\n  alice-order-only (11 events, 11 in the event stream): verified order 10002 (event stream); "
            "verified order 10002 (tracker store)\n") in out

    export = tmp_path / "alice.json"
    assert main(args(world, "erase", "Alice@Example.com", "--export", str(export))) == 0
    out = capsys.readouterr().out
    assert f"Exported the data of {ALICE} to {export} before erasing." in out
    assert "\n  deleted     2 handoff tickets\n" in out and "\n  anonymised  1 customer record" in out
    assert stat.S_IMODE(export.stat().st_mode) == 0o600
    document = json.loads(export.read_text(encoding="utf-8"))
    assert document["customer_records"][0]["email"] == ALICE and len(document["conversations"]) == 5
    assert world.senders("events") == sorted(OTHER_CONVERSATIONS)

    after = world.snapshot()
    assert main(args(world, "erase", ALICE)) == 0
    assert capsys.readouterr().out.startswith(f"Nothing found for {ALICE}")
    assert world.snapshot() == after


def test_export_writes_a_readable_file_and_changes_nothing(world: World, capsys, tmp_path: Path) -> None:
    before = world.snapshot()
    out_file = tmp_path / "export.json"
    assert main(args(world, "export", ALICE, "--out", str(out_file))) == 0
    message = capsys.readouterr().out
    assert message == (f"Exported the data of {ALICE} to {out_file}: 1 customer record, 4 orders, 1 returns, 1 emails, "
                       "2 handoff tickets, 1 satisfaction answers, 3 message sentiment rows, 5 conversations "
                       "(34 events, 35 in the event stream).\n")
    text = out_file.read_text(encoding="utf-8")
    assert text.startswith("{\n  \"about\": \"Personal data held by Northwind Goods about alice@example.com")
    assert json.loads(text)["summary"]["handoff_tickets"] == 2
    assert world.snapshot() == before


def test_unknown_email_is_reported_not_an_error(world: World, capsys, tmp_path: Path) -> None:
    assert main(args(world, "erase", "nobody@example.com")) == 0
    assert capsys.readouterr().out.startswith("Nothing found for nobody@example.com")
    assert main(args(world, "export", "nobody@example.com", "--out", str(tmp_path / "none.json"))) == 0
    assert "Nothing found for nobody@example.com; wrote an empty export" in capsys.readouterr().out
    assert json.loads((tmp_path / "none.json").read_text())["conversations"] == []


def test_retention_with_nothing_to_do_logs_so_and_exits_0(world: World, caplog) -> None:
    caplog.set_level(logging.INFO, logger="shop.privacy")
    assert main(args(world, "retention")) == 0
    assert "retention: nothing to do" in caplog.text


@pytest.mark.parametrize(("command", "expected"), [
    (["erase", "not-an-email"], "'not-an-email' is not an email address"),
    (["export", "alice@", "--out", "x.json"], "'alice@' is not an email address"),
])
def test_malformed_email_exits_2_with_one_line(world: World, capsys, command, expected) -> None:
    assert main(args(world, *command)) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://nobody@127.0.0.1:1/none", "cannot reach the shop database at postgresql://nobody@127.0.0.1:1/none"),
    ("not a url", "DATABASE_URL is not a database URL"),
    ("nosuchdb://host/x", "cannot use DATABASE_URL=nosuchdb://host/x"),
    ("sqlite:////nonexistent/shop.db", "no shop database at /nonexistent/shop.db"),
])
def test_bad_database_url_exits_1_with_one_line(world: World, capsys, url: str, expected: str) -> None:
    command = args(world, "retention", "--dry-run")
    command[command.index("--database-url") + 1] = url
    assert main(command) == 1
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err


def test_unwritable_export_exits_1_and_erases_nothing(world: World, capsys) -> None:
    before = world.snapshot()
    assert main(args(world, "erase", ALICE, "--export", "/nonexistent/dir/alice.json")) == 1
    assert "cannot write the export" in capsys.readouterr().err
    assert world.snapshot() == before


def test_from_cron_the_real_command(world: World) -> None:
    """As cron runs it: a new process, settings from the environment; logs on stderr, exit status for the mailer."""
    env = {**os.environ, "DATABASE_URL": world.urls["--database-url"],
           "TRACKER_STORE_URL": world.urls["--tracker-store-url"],
           "EVENTS_DATABASE_URL": world.urls["--events-database-url"], "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([sys.executable, "-m", "shop.privacy", "retention"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "INFO shop.privacy: retention: nothing to do" in done.stderr
    env["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"
    failed = subprocess.run([sys.executable, "-m", "shop.privacy", "retention"], env=env, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert "cannot reach the shop database" in failed.stderr and "Traceback" not in failed.stderr


def test_keeping_contact_data_a_second_erasure_says_what_is_kept(world: World, capsys, tmp_path: Path,
                                                                  monkeypatch) -> None:
    config = tmp_path / "shop.yml"
    config.write_text((PROJECT_ROOT / "shop.yml").read_text(encoding="utf-8").replace(
        "order_contact_data: anonymise", "order_contact_data: keep"), encoding="utf-8")
    monkeypatch.setenv("SHOP_CONFIG", str(config))
    get_settings.cache_clear()
    try:
        assert main(args(world, "erase", ALICE)) == 0
        assert "\n  kept     1 customer record (name, email; privacy.order_contact_data: keep)\n" in \
            capsys.readouterr().out
        assert main(args(world, "erase", ALICE)) == 0
        assert capsys.readouterr().out == (
            f"Nothing to erase for {ALICE}: what is left is kept as configured. Kept:\n"
            "  kept 1 customer record (name, email; privacy.order_contact_data: keep)\n"
            "  kept 1 return reasons in the customer's words\n"
            "  kept 4 orders (the shop's records, with 1 return(s) and their refunds)\n")
    finally:
        get_settings.cache_clear()
