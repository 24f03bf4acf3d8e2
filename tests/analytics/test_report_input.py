"""Bad input to `python -m analytics report`: one clear line and exit status 2, or a valid report that says there is
nothing to report; never a traceback."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import List

import pytest
from sqlalchemy import create_engine

from analytics.__main__ import main
from bench.report_speed import EVENTS, ConversationWriter, fill, order_status


def run(capsys, *argv: str) -> tuple:
    status = main(["report", *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return status, captured.out, captured.err


def tracker(path: Path, conversations: int = 1, start: float = 1_790_000_000.0) -> str:
    rows: List = []
    for index in range(conversations):
        writer = ConversationWriter(f"c{index}", start + index * 600, random.Random(index))
        writer.session_start()
        order_status(writer)
        rows += writer.rows
    url = f"sqlite:///{path}"
    engine = create_engine(url, future=True)
    fill(engine, rows, [], [])
    engine.dispose()
    return url


def test_a_missing_sqlite_file_is_reported_and_not_created(tmp_path, capsys):
    missing = tmp_path / "nowhere.db"
    status, _, err = run(capsys, "--tracker-store", f"sqlite:///{missing}", "--out", str(tmp_path / "out"))
    assert status == 2 and "no such SQLite file" in err and str(missing) in err
    assert not missing.exists()


def test_a_database_without_an_events_table_is_not_a_tracker_store(tmp_path, capsys):
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("create table orders (id text)").connection.close()
    status, _, err = run(capsys, "--tracker-store", f"sqlite:///{path}", "--out", str(tmp_path / "out"))
    assert status == 2 and "has no events table" in err
    assert err.count("\n") == 1


def test_an_empty_events_table_gives_a_valid_report_that_says_so(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'tracker.db'}"
    engine = create_engine(url, future=True)
    EVENTS.metadata.create_all(engine)
    engine.dispose()
    out = tmp_path / "out"
    status, printed, _ = run(capsys, "--tracker-store", url, "--database", url, "--out", str(out))
    assert status == 0 and "no conversations in this period" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["figures"]["volume"]["conversations"] == 0
    assert report["figures"]["containment"]["rate"] is None and report["figures"]["csat"]["average"] is None
    assert "No conversations in this period." in (out / "report.html").read_text()


def test_a_period_without_conversations_gives_an_empty_report(tmp_path, capsys):
    url = tracker(tmp_path / "tracker.db", start=1_700_000_000.0)  # November 2023
    out = tmp_path / "out"
    status, printed, _ = run(capsys, "--since", "7d", "--tracker-store", url, "--database", url, "--out", str(out))
    assert status == 0 and "no conversations in this period" in printed
    assert json.loads((out / "report.json").read_text())["figures"]["volume"]["per_day"][0]["conversations"] == 0


def test_a_corrupt_event_row_is_skipped_and_counted(tmp_path, capsys):
    url = tracker(tmp_path / "tracker.db", conversations=2)
    connection = sqlite3.connect(tmp_path / "tracker.db")
    connection.execute("update events set data = '{not json' where id = (select min(id) from events "
                       "where type_name = 'user' and sender_id = 'c1')")
    connection.execute("insert into events (sender_id, type_name, timestamp, data) values "
                       "('c1', 'slot', 1790000700, '[1, 2]'), ('c2', 'user', 'yesterday', '{}')")
    connection.commit()
    connection.close()
    out = tmp_path / "out"
    status, printed, _ = run(capsys, "--since", "2026-09-01", "--until", "2026-10-01", "--tracker-store", url,
                             "--database", url, "--out", str(out))
    assert status == 0 and "2 event row(s) could not be read" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["source"]["skipped_rows"] == 2
    assert report["figures"]["volume"]["conversations"] == 2
    assert "could not be read" in (out / "report.html").read_text()


@pytest.mark.parametrize("argv, complaint", [
    (["--since", "last tuesday"], "--since 'last tuesday': give a time ago"),
    (["--until", "all"], "--until 'all'"),
    (["--since", "2026-05-02", "--until", "2026-05-01"], "the period is empty"),
    (["--tracker-store", "not a url"], "is not a database URL"),
    (["--tracker-store", "postgresql://postgres@127.0.0.1:1/nothing"], "cannot open postgresql://"),
])
def test_bad_arguments_are_one_clear_line(tmp_path, capsys, argv, complaint):
    url = tracker(tmp_path / "tracker.db")
    status, _, err = run(capsys, "--tracker-store", url, *argv, "--out", str(tmp_path / "out"))
    assert status == 2 and complaint in err and err.startswith("analytics report: ")


def test_a_shop_database_that_was_asked_for_must_exist(tmp_path, capsys):
    url = tracker(tmp_path / "tracker.db")
    status, _, err = run(capsys, "--tracker-store", url, "--database", f"sqlite:///{tmp_path / 'no-shop.db'}",
                         "--out", str(tmp_path / "out"))
    assert status == 2 and "--database: no such SQLite file" in err


def test_an_unwritable_output_folder_is_one_clear_line(tmp_path, capsys):
    url = tracker(tmp_path / "tracker.db")
    blocker = tmp_path / "file"
    blocker.write_text("")
    status, _, err = run(capsys, "--since", "2026-09-01", "--tracker-store", url, "--database", url,
                         "--out", str(blocker / "out"))
    assert status == 2 and "cannot write the report" in err


def test_rows_without_a_usable_timestamp_are_skipped_when_reading(tmp_path):
    from analytics.conversations import read_conversations

    url = tracker(tmp_path / "tracker.db")
    connection = sqlite3.connect(tmp_path / "tracker.db")
    connection.execute("insert into events (sender_id, type_name, timestamp, data) values "
                       "('c9', 'user', 'yesterday', '{\"text\": \"hi\"}'), ('c9', 'user', NULL, '{}')")
    connection.commit()
    connection.close()
    result = read_conversations(url)
    assert [conversation.sender_id for conversation in result.conversations] == ["c0"]
    assert result.skipped_rows == 2
