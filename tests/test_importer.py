"""The CSV order importer: good files land exactly, bad files land not at all, re-imports change nothing."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Dict, List, Sequence

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shop.importer import COLUMNS, ImportFailed, import_orders
from shop.models import Customer, Order, OrderLine, Refund, Return
from shop.settings import PROJECT_ROOT, get_settings

EXAMPLE = PROJECT_ROOT / "examples" / "orders.csv"

# order_id, email, customer_name, status, ordered_at, shipped_at, delivered_at, carrier, tracking_number,
# sku, item_name, quantity, unit_price, final_sale
GOOD: List[List[str]] = [
    ["a-100", "Zoe@Example.com", "Zoe Adams", "delivered", "2026-10-01T10:00:00", "2026-10-02", "2026-10-05T09:30:00",
     "UPS", "1ZA100", "MUG-01", "Mug", "2", "12.50", "false"],
    ["A-100", "zoe@example.com", "Zoe Adams", "delivered", "2026-10-01T10:00:00", "2026-10-02T00:00:00",
     "2026-10-05T09:30:00", "UPS", "1ZA100", "SCARF-SALE", "Scarf (sale)", "1", "19", "Yes"],
    ["A-101", "zoe@example.com", "Zoe Adams", "shipped", "2026-11-20T23:30:00-02:00", "2026-11-22T08:00:00Z", "",
     "DHL", "JD101", "LAMP-02", "Desk lamp", "1", "39.9", ""],
    ["A-102", "yann@example.com", "Yann Li", "pending", "2026-11-27", "", "", "", "", "TEE-M", "T-shirt, black (M)",
     "3", "15.00", "0"],
    ["A-103", "yann@example.com", "Yann Li", "cancelled", "2026-11-01", "", "", "", "", "TENT-2P", "Tent", "1",
     "149.00", "TRUE"],
]


@pytest.fixture(autouse=True)
def shop_numbering(monkeypatch, tmp_path):
    """The shop of these tests numbers its orders like 'A-100' (and keeps the demo shop's 5-digit numbers)."""
    config = tmp_path / "shop.yml"
    config.write_text((PROJECT_ROOT / "shop.yml").read_text(encoding="utf-8").replace(
        "pattern: '\\d{5,8}'", "pattern: '\\d{5}|[A-Z]-\\d{1,3}'").replace("example: '10001'", "example: 'A-100'"))
    monkeypatch.setenv("SHOP_CONFIG", str(config))
    get_settings.cache_clear()
    assert get_settings().order_numbers.example == "A-100"
    yield
    get_settings.cache_clear()


def write_csv(path: Path, rows: Sequence[Sequence[str]], header: Sequence[str] = COLUMNS, bom: bool = False) -> Path:
    """Write a CSV file the way a spreadsheet would: header first, one row per order line."""
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def snapshot(engine: Engine) -> Dict[str, List[tuple]]:
    """Every row the importer could touch, in a stable order, for before/after comparisons."""
    with Session(engine, future=True) as session:
        return {
            "customers": sorted((c.id, c.email, c.name) for c in session.query(Customer)),
            "orders": sorted(
                (o.id, o.customer_id, o.status, o.ordered_at, o.shipped_at, o.delivered_at, o.estimated_delivery,
                 o.cancelled_at, o.carrier, o.tracking_number)
                for o in session.query(Order)
            ),
            "lines": sorted(
                (ln.id, ln.order_id, ln.sku, ln.item_name, ln.quantity, ln.unit_price, ln.final_sale)
                for ln in session.query(OrderLine)
            ),
            "returns": sorted((r.id, r.order_line_id, r.status) for r in session.query(Return)),
            "refunds": sorted((r.id, r.order_id, r.amount, r.status) for r in session.query(Refund)),
        }


def errors_of(engine: Engine, path: Path) -> List[str]:
    with pytest.raises(ImportFailed) as failed:
        import_orders(engine, path)
    return failed.value.errors


def test_good_file_imports_expected_values(empty_engine, tmp_path):
    result = import_orders(empty_engine, write_csv(tmp_path / "orders.csv", GOOD, bom=True))

    created = (result.orders_created, result.orders_updated, result.lines_created, result.customers_created)
    assert created == (4, 0, 5, 2)
    with Session(empty_engine, future=True) as session:
        customers = {c.email: c.name for c in session.query(Customer)}
        assert customers == {"zoe@example.com": "Zoe Adams", "yann@example.com": "Yann Li"}

        delivered = session.get(Order, "A-100")
        assert delivered.customer.email == "zoe@example.com"
        assert delivered.status == "delivered"
        assert delivered.ordered_at == datetime(2026, 10, 1, 10, 0)
        assert delivered.shipped_at == datetime(2026, 10, 2)
        assert delivered.delivered_at == datetime(2026, 10, 5, 9, 30)
        assert (delivered.carrier, delivered.tracking_number) == ("UPS", "1ZA100")
        lines = {ln.sku: (ln.item_name, ln.quantity, ln.unit_price, ln.final_sale) for ln in delivered.lines}
        assert lines == {"MUG-01": ("Mug", 2, Decimal("12.50"), False),
                         "SCARF-SALE": ("Scarf (sale)", 1, Decimal("19.00"), True)}
        assert all(isinstance(ln.unit_price, Decimal) for ln in delivered.lines)
        assert delivered.total == Decimal("44.00")

        shipped = session.get(Order, "A-101")
        assert shipped.ordered_at == datetime(2026, 11, 21, 1, 30)  # -02:00 converted to UTC
        assert shipped.shipped_at == datetime(2026, 11, 22, 8, 0)
        assert shipped.delivered_at is None
        assert shipped.lines[0].unit_price == Decimal("39.90")
        assert shipped.lines[0].final_sale is False

        pending = session.get(Order, "A-102")
        assert (pending.status, pending.shipped_at, pending.carrier, pending.tracking_number) == (
            "pending", None, None, None)
        assert pending.lines[0].item_name == "T-shirt, black (M)"
        assert session.get(Order, "A-103").lines[0].final_sale is True


def test_importing_twice_changes_nothing(empty_engine, tmp_path):
    path = write_csv(tmp_path / "orders.csv", GOOD)
    first = import_orders(empty_engine, path)
    before = snapshot(empty_engine)
    second = import_orders(empty_engine, path)

    assert snapshot(empty_engine) == before
    assert {k: len(v) for k, v in before.items()} == {"customers": 2, "orders": 4, "lines": 5, "returns": 0,
                                                      "refunds": 0}
    assert (first.orders, first.lines) == (second.orders, second.lines) == (4, 5)
    assert second.counts() == {**{k: 0 for k in second.counts()}, "orders_unchanged": 4, "lines_unchanged": 5,
                               "customers_unchanged": 2}


def test_reimport_updates_changed_values(empty_engine, tmp_path):
    import_orders(empty_engine, write_csv(tmp_path / "v1.csv", GOOD))
    before = snapshot(empty_engine)
    changed = [row[:] for row in GOOD]
    changed[0][11] = "5"  # A-100 / MUG-01 quantity 2 -> 5
    for row in changed[:2]:
        row[7] = "FedEx"  # order-level change on both rows of A-100
    changed[3][2] = "Yann Li-Smith"  # customer rename (both of Yann's orders)
    changed[4][2] = "Yann Li-Smith"

    result = import_orders(empty_engine, write_csv(tmp_path / "v2.csv", changed))

    assert (result.orders_updated, result.orders_unchanged) == (1, 3)
    assert (result.lines_updated, result.lines_unchanged, result.lines_created, result.lines_removed) == (1, 4, 0, 0)
    assert (result.customers_updated, result.customers_created) == (1, 0)
    with Session(empty_engine, future=True) as session:
        order = session.get(Order, "A-100")
        assert {ln.sku: ln.quantity for ln in order.lines} == {"MUG-01": 5, "SCARF-SALE": 1}
        assert order.carrier == "FedEx"
        assert session.query(Customer).filter_by(email="yann@example.com").one().name == "Yann Li-Smith"
    after = snapshot(empty_engine)
    # same rows (ids included), only the changed values differ
    assert [row[0] for row in after["lines"]] == [row[0] for row in before["lines"]]
    assert [row[0] for row in after["customers"]] == [row[0] for row in before["customers"]]


def test_reimport_removes_missing_lines_but_keeps_lines_with_returns(shop_engine, tmp_path):
    # Demo order 10008 has three lines and no returns; 10007's only line has a return.
    rows = [
        ["10008", "dan@example.com", "Dan Okafor", "delivered", "2026-10-01", "2026-10-02", "2026-10-03", "UPS",
         "1Z999AA110008", "KETTLE-01", "Electric kettle", "1", "49.00", "false"],
        ["10007", "dan@example.com", "Dan Okafor", "delivered", "2026-10-01", "2026-10-02", "2026-10-03", "USPS",
         "940011110007", "CUP-01", "Cup", "1", "5.00", "false"],
    ]
    result = import_orders(shop_engine, write_csv(tmp_path / "orders.csv", rows))

    assert result.lines_removed == 2
    assert result.lines_kept_with_returns == ["10007/BOTTLE-01"]
    with Session(shop_engine, future=True) as session:
        assert [ln.sku for ln in session.get(Order, "10008").lines] == ["KETTLE-01"]
        assert [ln.sku for ln in session.get(Order, "10007").lines] == ["BOTTLE-01", "CUP-01"]
        assert session.query(Return).count() == 2


def test_import_leaves_other_orders_alone_and_matches_customers_by_email(shop_engine, tmp_path):
    before = snapshot(shop_engine)
    rows = [["N-1", "ALICE@example.com", "Alice M. Martin", "pending", "2026-11-27", "", "", "", "", "X-1", "Thing",
             "1", "1.00", ""]]
    result = import_orders(shop_engine, write_csv(tmp_path / "orders.csv", rows))
    after = snapshot(shop_engine)

    assert (result.customers_created, result.customers_updated, result.orders_created) == (0, 1, 1)
    assert [o for o in after["orders"] if o[0] != "N-1"] == before["orders"]
    assert [ln for ln in after["lines"] if ln[1] != "N-1"] == before["lines"]
    assert after["returns"] == before["returns"] and after["refunds"] == before["refunds"]
    alice = [c for c in after["customers"] if c[1] == "alice@example.com"]
    assert len(after["customers"]) == len(before["customers"]) and alice[0][2] == "Alice M. Martin"


def _bad(column: str, value: str, row: int = 2) -> List[List[str]]:
    rows = [r[:] for r in GOOD]
    rows[row][COLUMNS.index(column)] = value
    return rows


@pytest.mark.parametrize(
    "rows, expected",
    [
        (_bad("status", "lost"), "line 4, column status: must be one of pending, shipped, delivered, cancelled, "
                                 "got 'lost'"),
        (_bad("ordered_at", "2026-13-01"), "line 4, column ordered_at: must be an ISO 8601 date"),
        (_bad("ordered_at", "01/11/2026"), "line 4, column ordered_at: must be an ISO 8601 date"),
        (_bad("quantity", "-1"), "line 4, column quantity: must be a positive integer, got '-1'"),
        (_bad("quantity", "two"), "line 4, column quantity: must be a positive integer, got 'two'"),
        (_bad("quantity", "0"), "line 4, column quantity: must be a positive integer, got '0'"),
        (_bad("unit_price", "12.505"), "line 4, column unit_price: must be a non-negative decimal"),
        (_bad("unit_price", "-3.00"), "line 4, column unit_price: must be a non-negative decimal"),
        (_bad("final_sale", "maybe"), "line 4, column final_sale: must be true/false"),
        (_bad("email", "zoe.example.com"), "line 4, column email: must be an email address, got 'zoe.example.com'"),
        (_bad("order_id", "A_101"), "line 4, column order_id: must be 3-40 letters, digits or '-'"),
        (_bad("order_id", "X" * 41), "line 4, column order_id: must be 3-40 letters, digits or '-'"),
        (_bad("order_id", "R-12"), "line 4, column order_id: must be 3-40 letters, digits or '-'"),
        (_bad("order_id", "ABCD"), "line 4, column order_id: must be 3-40 letters, digits or '-'"),
        (_bad("order_id", ""), "line 4, column order_id: is required"),
        (_bad("sku", ""), "line 4, column sku: is required"),
        (_bad("shipped_at", "2026-11-20T12:00:00"),
         "line 4, column shipped_at: 2026-11-20T12:00:00 is before ordered_at 2026-11-21T01:30:00; dates must not "
         "go backwards"),
        (_bad("delivered_at", "2026-11-22T07:59:00"),
         "line 4, column delivered_at: 2026-11-22T07:59:00 is before shipped_at 2026-11-22T08:00:00"),
        (_bad("shipped_at", ""), "line 4, column shipped_at: is required when status is shipped"),
        (_bad("delivered_at", "", row=1), "line 3, column delivered_at: is required when status is delivered"),
        (_bad("status", "shipped", row=1),
         "line 3, column status: order A-100 has 'delivered' on line 2 but 'shipped' here; all lines of an order "
         "must agree"),
        (_bad("carrier", "DHL", row=1), "line 3, column carrier: order A-100 has 'UPS' on line 2 but 'DHL' here"),
        (_bad("email", "other@example.com", row=1), "line 3, column email: order A-100 has 'zoe@example.com'"),
        (_bad("sku", "MUG-01", row=1), "line 3, column sku: 'MUG-01' appears twice in order A-100 (also on line 2)"),
        (_bad("customer_name", "Zoe B. Adams"),
         "line 4, column customer_name: zoe@example.com is named 'Zoe Adams' on line 2 but 'Zoe B. Adams' here"),
        (_bad("item_name", "x" * 201), "line 4, column item_name: must be at most 200 characters, got 201"),
    ],
)
def test_one_bad_row_imports_nothing_and_names_line_and_column(shop_engine, tmp_path, rows, expected):
    before = snapshot(shop_engine)
    errors = errors_of(shop_engine, write_csv(tmp_path / "orders.csv", rows))

    assert len(errors) == 1, errors
    assert errors[0].startswith(expected), errors
    assert snapshot(shop_engine) == before


def test_all_errors_of_a_file_are_reported(empty_engine, tmp_path):
    rows = [r[:] for r in GOOD]
    rows[0][11] = "two"
    rows[3][3] = "lost"
    rows[4][1] = "nobody"
    rows.append(["A-104", "x@example.com", "X", "pending", "2026-11-01"])  # too few fields
    errors = errors_of(empty_engine, write_csv(tmp_path / "orders.csv", rows))

    assert errors == [
        "line 2, column quantity: must be a positive integer, got 'two'",
        "line 5, column status: must be one of pending, shipped, delivered, cancelled, got 'lost'",
        "line 6, column email: must be an email address, got 'nobody'",
        "line 7: expected 14 fields, got 5",
    ]
    assert snapshot(empty_engine)["orders"] == []


def test_line_numbers_count_physical_lines(empty_engine, tmp_path):
    rows = [r[:] for r in GOOD]
    rows[0][10] = "Mug\nwith a lid"  # a quoted field spanning two lines of the file
    rows[2][11] = "x"
    path = write_csv(tmp_path / "orders.csv", rows)
    assert errors_of(empty_engine, path) == ["line 5, column quantity: must be a positive integer, got 'x'"]


def test_header_must_have_exactly_the_columns(empty_engine, tmp_path):
    header = [c for c in COLUMNS if c != "unit_price"] + ["price"]
    rows = [r[:12] + r[13:] + [r[12]] for r in GOOD]
    errors = errors_of(empty_engine, write_csv(tmp_path / "orders.csv", rows, header=header))

    assert errors[0] == "line 1, column unit_price: missing from the header"
    assert errors[1].startswith("line 1, column price: unexpected column")
    assert len(errors) == 2


def test_header_columns_may_come_in_any_order_with_whitespace(empty_engine, tmp_path):
    order = list(reversed(range(len(COLUMNS))))
    header = [f" {COLUMNS[i].upper()} " for i in order]
    rows = [[f"  {r[i]} " for i in order] for r in GOOD]
    result = import_orders(empty_engine, write_csv(tmp_path / "orders.csv", rows, header=header))
    assert (result.orders_created, result.lines_created) == (4, 5)
    with Session(empty_engine, future=True) as session:
        assert session.get(Order, "A-100").tracking_number == "1ZA100"


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "the file is empty"),
        (b"\xef\xbb\xbf\n  \n", "the file is empty"),
        (",".join(COLUMNS).encode() + b"\n", "the file has a header but no order lines"),
        (",".join(COLUMNS).encode() + b"\n10001,caf\xe9", "line 2: the file must be UTF-8 text"),
    ],
)
def test_empty_or_unreadable_files_are_clear_errors(empty_engine, tmp_path, content, expected):
    path = tmp_path / "orders.csv"
    path.write_bytes(content)
    errors = errors_of(empty_engine, path)
    assert len(errors) == 1 and expected in errors[0], errors


def test_missing_file_is_a_clear_error(empty_engine, tmp_path):
    assert errors_of(empty_engine, tmp_path / "nope.csv") == [f"{tmp_path / 'nope.csv'}: no such file"]


def test_example_file_imports_cleanly(empty_engine):
    result = import_orders(empty_engine, EXAMPLE)
    assert (result.orders_created, result.lines_created) == (6, 9)
    with Session(empty_engine, future=True) as session:
        orders = session.query(Order).all()
        assert {o.status for o in orders} == {"pending", "shipped", "delivered", "cancelled"}
        assert max(len(o.lines) for o in orders) > 1
        assert session.query(OrderLine).filter_by(final_sale=True).count() == 1
    assert import_orders(empty_engine, EXAMPLE).counts()["orders_unchanged"] == 6


def test_example_file_leaves_the_demo_shop_alone(shop_engine):
    before = snapshot(shop_engine)
    import_orders(shop_engine, EXAMPLE)
    after = snapshot(shop_engine)
    demo_ids = {o[0] for o in before["orders"]}
    assert [o for o in after["orders"] if o[0] in demo_ids] == before["orders"]
    assert len(after["orders"]) == len(before["orders"]) + 6


# --- the command line -------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shop.importer", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120)


def test_cli_imports_a_good_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    done = run_cli(str(write_csv(tmp_path / "orders.csv", GOOD)), "--database-url", url)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("Imported 4 orders (4 created, 0 updated, 0 unchanged) with 5 lines")
    assert len(done.stdout.strip().splitlines()) == 1
    engine = create_engine(url, future=True)
    try:
        assert len(snapshot(engine)["lines"]) == 5
    finally:
        engine.dispose()


def test_cli_reports_bad_file_and_imports_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    done = run_cli(str(write_csv(tmp_path / "orders.csv", _bad("quantity", "two"))), "--database-url", url)

    assert done.returncode == 1
    assert "line 4, column quantity: must be a positive integer, got 'two'" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "cli.db").exists()  # validated before even opening the database


@pytest.mark.parametrize("name, content", [("missing.csv", None), ("empty.csv", b"")])
def test_cli_missing_or_empty_file(tmp_path, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    done = run_cli(str(path), "--database-url", f"sqlite:///{tmp_path / 'cli.db'}")
    assert done.returncode == 1
    assert ("no such file" if content is None else "the file is empty") in done.stderr
    assert "Traceback" not in done.stderr


def test_numbers_outside_the_shops_format_are_refused_with_the_pattern_that_would_fit(empty_engine, tmp_path):
    rows = [["NW-2024-00017", "ann@example.com", "Ann", "pending", "2026-11-27", "", "", "", "", "X-1", "Thing", "1",
             "5", ""],
            ["nw-2023-00101", "ann@example.com", "Ann", "pending", "2026-11-27", "", "", "", "", "X-1", "Thing", "1",
             "5", ""]]
    errors = errors_of(empty_engine, write_csv(tmp_path / "orders.csv", rows))
    assert errors[0] == "line 2, column order_id: 'NW-2024-00017' is not in the shop's order number format"
    assert "2 order number(s) do not match shop.yml order_numbers.pattern" in errors[-1]
    assert "pattern: 'NW-\\d{4}-\\d{5}', example: 'NW-2024-00017'" in errors[-1]
    assert snapshot(empty_engine)["orders"] == []
