"""Import a shop's own orders from a CSV file (one row per order line) into the shop database.

Why: the assistant can only answer about orders it can find, and a shop's real orders live in its
shop system, which can export CSV. This importer is the one way in for them, so it is strict:
every row is checked first and every problem is reported with its line and column; a file with
any bad row imports nothing, and a good file is written in one transaction. Importing the same
file again changes nothing (customers are matched by email, orders by id, lines by order and sku),
so a shop can re-export and re-import freely. Orders that are not in the file are never touched.

Usage: python -m shop.importer PATH [--database-url URL]
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

from shop.db import make_engine, session_scope
from shop.models import ORDER_STATUSES, Customer, Order, OrderLine
from shop.order_numbers import OrderNumberFormat, suggest_pattern
from shop.orders import EMAIL_PATTERN, ORDER_ID_PATTERN, RETURN_ID_PATTERN
from shop.settings import get_settings

COLUMNS: Tuple[str, ...] = (
    "order_id", "email", "customer_name", "status", "ordered_at", "shipped_at", "delivered_at",
    "carrier", "tracking_number", "sku", "item_name", "quantity", "unit_price", "final_sale",
)
# Columns that describe the order rather than the line: every row of one order must agree on them.
ORDER_COLUMNS: Tuple[str, ...] = (
    "email", "customer_name", "status", "ordered_at", "shipped_at", "delivered_at", "carrier", "tracking_number",
)
LINE_COLUMNS: Tuple[str, ...] = ("sku", "item_name", "quantity", "unit_price", "final_sale")

QUANTITY_RE = re.compile(r"^[0-9]+$")
PRICE_RE = re.compile(r"^[0-9]+(\.[0-9]{1,2})?$")
MAX_QUANTITY = 2**31 - 1  # the column is a 32-bit integer on PostgreSQL
MAX_PRICE = Decimal("99999999.99")  # Numeric(10, 2)
BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False, "": False}
# Column widths of the models; longer values would fail on PostgreSQL and be silently kept on SQLite.
MAX_LENGTH = {"email": 254, "customer_name": 200, "carrier": 60, "tracking_number": 80, "sku": 60, "item_name": 200}
IN_CHUNK = 500  # keeps IN (...) lists under every database's bound-parameter limit

PathLike = Union[str, Path]


class ImportFailed(Exception):
    """The file was not imported; `errors` lists every problem found, each naming its line and column."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors: List[str] = list(errors)
        shown = "; ".join(self.errors[:5]) + ("; ..." if len(self.errors) > 5 else "")
        super().__init__(f"{len(self.errors)} error(s), nothing imported: {shown}")


@dataclass
class ImportResult:
    """What one import did; `unchanged` counts rows that were already exactly as in the file."""

    orders_created: int = 0
    orders_updated: int = 0
    orders_unchanged: int = 0
    lines_created: int = 0
    lines_updated: int = 0
    lines_unchanged: int = 0
    lines_removed: int = 0
    customers_created: int = 0
    customers_updated: int = 0
    customers_unchanged: int = 0
    # Lines missing from the file that were kept because they have returns, as "ORDER/SKU".
    lines_kept_with_returns: List[str] = field(default_factory=list)

    @property
    def orders(self) -> int:
        return self.orders_created + self.orders_updated + self.orders_unchanged

    @property
    def lines(self) -> int:
        return self.lines_created + self.lines_updated + self.lines_unchanged

    def counts(self) -> Dict[str, int]:
        """The integer counts, e.g. for comparing two imports."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.type in (int, "int")}

    def summary(self) -> str:
        """One line for people."""
        text = (
            f"Imported {self.orders} orders ({self.orders_created} created, {self.orders_updated} updated, "
            f"{self.orders_unchanged} unchanged) with {self.lines} lines ({self.lines_created} created, "
            f"{self.lines_updated} updated, {self.lines_unchanged} unchanged, {self.lines_removed} removed); "
            f"customers: {self.customers_created} created, {self.customers_updated} updated"
        )
        if self.lines_kept_with_returns:
            text += f"; kept {len(self.lines_kept_with_returns)} line(s) not in the file because they have " \
                    f"returns: {', '.join(self.lines_kept_with_returns)}"
        return text


@dataclass
class LineRecord:
    """One validated order line."""

    line_no: int
    sku: str
    item_name: str
    quantity: int
    unit_price: Decimal
    final_sale: bool


@dataclass
class OrderRecord:
    """One validated order with its lines, as the file describes it."""

    line_no: int  # the first line of the file that mentions the order
    order_id: str
    email: str
    customer_name: str
    status: str
    ordered_at: datetime
    shipped_at: Optional[datetime]
    delivered_at: Optional[datetime]
    carrier: Optional[str]
    tracking_number: Optional[str]
    lines: List[LineRecord] = field(default_factory=list)


class _BadValue(ValueError):
    """A value that fails its column's rule; the message says why."""


# --- parsing single values ------------------------------------------------------------------------------


def _got(value: str) -> str:
    return f"got {value!r}"


def _text(value: str, column: str, required: bool = True) -> Optional[str]:
    if not value:
        if required:
            raise _BadValue("is required")
        return None
    limit = MAX_LENGTH.get(column)
    if limit is not None and len(value) > limit:
        raise _BadValue(f"must be at most {limit} characters, got {len(value)}")
    return value


def _order_id(value: str) -> str:
    if not value:
        raise _BadValue("is required")
    order_id = value.upper()
    if not ORDER_ID_PATTERN.match(order_id) or RETURN_ID_PATTERN.match(order_id):
        raise _BadValue(
            f"must be 3-40 letters, digits or '-' with at least one digit, not like a return id (R-12), {_got(value)}"
        )
    return order_id


def _email(value: str) -> str:
    if not value:
        raise _BadValue("is required")
    email = value.lower()
    if not EMAIL_PATTERN.match(email) or len(email) > MAX_LENGTH["email"]:
        raise _BadValue(f"must be an email address, {_got(value)}")
    return email


def _status(value: str) -> str:
    status = value.lower()
    if status not in ORDER_STATUSES:
        raise _BadValue(f"must be one of {', '.join(ORDER_STATUSES)}, {_got(value)}")
    return status


def _datetime(value: str, required: bool = False) -> Optional[datetime]:
    """ISO 8601 date or date-time; naive values are taken as UTC, offsets are converted to UTC."""
    if not value:
        if required:
            raise _BadValue("is required")
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _BadValue(f"must be an ISO 8601 date or date-time such as 2026-11-02 or 2026-11-02T14:30:00, "
                        f"{_got(value)}") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _quantity(value: str) -> int:
    if not QUANTITY_RE.match(value) or int(value) < 1:
        raise _BadValue(f"must be a positive integer, {_got(value)}")
    if int(value) > MAX_QUANTITY:
        raise _BadValue(f"must be at most {MAX_QUANTITY}, {_got(value)}")
    return int(value)


def _price(value: str) -> Decimal:
    if not PRICE_RE.match(value):
        raise _BadValue(f"must be a non-negative decimal with at most 2 decimals, such as 12.50, {_got(value)}")
    price = Decimal(value)
    if price > MAX_PRICE:
        raise _BadValue(f"must be at most {MAX_PRICE}, {_got(value)}")
    return price


def _final_sale(value: str) -> bool:
    try:
        return BOOLEANS[value.lower()]
    except KeyError:
        raise _BadValue(f"must be true/false, yes/no or 1/0 (empty means false), {_got(value)}") from None


PARSERS: Dict[str, Callable[[str], object]] = {
    "order_id": _order_id,
    "email": _email,
    "customer_name": lambda v: _text(v, "customer_name"),
    "status": _status,
    "ordered_at": lambda v: _datetime(v, required=True),
    "shipped_at": _datetime,
    "delivered_at": _datetime,
    "carrier": lambda v: _text(v, "carrier", required=False),
    "tracking_number": lambda v: _text(v, "tracking_number", required=False),
    "sku": lambda v: _text(v, "sku"),
    "item_name": lambda v: _text(v, "item_name"),
    "quantity": _quantity,
    "unit_price": _price,
    "final_sale": _final_sale,
}


# --- reading and validating the file --------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImportFailed([f"{path}: no such file"]) from None
    except IsADirectoryError:
        raise ImportFailed([f"{path}: is a directory, not a CSV file"]) from None
    except OSError as exc:
        raise ImportFailed([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ImportFailed([f"line {line}: the file must be UTF-8 text (byte {exc.start} is not valid UTF-8)"]) \
            from None
    if not text.strip():
        raise ImportFailed([f"{path}: the file is empty; expected a header row: {','.join(COLUMNS)}"])
    return text


def _rows(text: str) -> Iterable[Tuple[int, List[str]]]:
    """(first line of the record, fields) for each CSV record; a quoted field may span lines."""
    reader = csv.reader(io.StringIO(text, newline=""))
    end = 0
    while True:
        start = end + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFailed([f"line {start}: not valid CSV: {exc}"]) from None
        end = reader.line_num
        yield start, row


def _check_header(header: List[str]) -> List[str]:
    names = [name.strip().lower() for name in header]
    errors = []
    seen = set()
    for name in names:
        if name in seen:
            errors.append(f"line 1, column {name}: appears more than once in the header")
        seen.add(name)
    for name in COLUMNS:
        if name not in seen:
            errors.append(f"line 1, column {name}: missing from the header")
    for name in names:
        if name not in COLUMNS:
            shown = name or "(empty name)"
            errors.append(f"line 1, column {shown}: unexpected column; the columns must be exactly: "
                          f"{', '.join(COLUMNS)}")
    if errors and len(header) == 1 and ";" in header[0]:
        errors.append("line 1: the header has semicolons but no commas; the file must be comma-separated")
    return errors


def _check_dates(values: Dict[str, object], problems: Dict[str, str]) -> None:
    """Shipped/delivered orders need their dates, and ordered <= shipped <= delivered."""
    status = values.get("status")
    for column, needed_for in (("shipped_at", ("shipped", "delivered")), ("delivered_at", ("delivered",))):
        if status in needed_for and column in values and values[column] is None:
            problems.setdefault(column, f"is required when status is {status}")
    previous_column, previous = "ordered_at", values.get("ordered_at")
    for column in ("shipped_at", "delivered_at"):
        current = values.get(column)
        if not isinstance(current, datetime):
            continue
        if isinstance(previous, datetime) and current < previous:
            problems.setdefault(column, f"{current.isoformat()} is before {previous_column} {previous.isoformat()}; "
                                        f"dates must not go backwards")
        previous_column, previous = column, current


def _shown(value: object) -> str:
    if value is None:
        return "empty"
    if isinstance(value, datetime):
        return repr(value.isoformat())
    return repr(value)


def _pattern_hint(order_ids: Sequence[str], numbers: OrderNumberFormat) -> str:
    """The last error line when order numbers are not in the shop's format: how to tell the shop's format."""
    suggestion = suggest_pattern(order_ids)
    hint = (f"{len(order_ids)} order number(s) do not match shop.yml order_numbers.pattern {numbers.pattern!r} "
            f"(e.g. {numbers.example}), so customers could not ask about them in chat")
    if suggestion:
        hint += (f"; if these are your shop's order numbers, set in shop.yml: order_numbers: {{pattern: "
                 f"'{suggestion}', example: '{order_ids[0]}'}}")
    return hint


def parse_orders(path: PathLike, numbers: Optional[OrderNumberFormat] = None) -> List[OrderRecord]:
    """Read and validate the whole file; raise ImportFailed with every problem, or return the orders.
    Order numbers must be in the shop's format (`numbers`, default shop.yml `order_numbers`): what is imported
    must be recognisable in chat."""
    path = Path(path)
    numbers = numbers or get_settings().order_numbers
    unrecognisable: Dict[str, None] = {}  # order numbers outside the shop's format, in file order
    text = _read_text(path)
    rows = _rows(text)
    for _line, header in rows:
        if any(name.strip() for name in header):
            break
    else:  # pragma: no cover - _read_text already refused a file with nothing in it
        raise ImportFailed([f"{path}: the file is empty"])
    if _line != 1:
        raise ImportFailed([f"line 1: the header row must be the first line, found it on line {_line}"])
    header_errors = _check_header(header)
    if header_errors:
        raise ImportFailed(header_errors)
    names = [name.strip().lower() for name in header]

    errors: List[str] = []
    orders: Dict[str, OrderRecord] = {}
    order_rows: Dict[str, Dict[str, Tuple[int, object]]] = {}  # order id -> column -> (first line, value)
    customer_names: Dict[str, Tuple[int, str]] = {}  # email -> (first line, name)
    skus: Dict[Tuple[str, str], int] = {}  # (order id, sku) -> line
    count = 0
    for line_no, row in rows:
        raw = [value.strip() for value in row]
        if not any(raw):
            continue  # blank line, or a row of empty cells as spreadsheets sometimes write
        count += 1
        if len(raw) != len(names):
            errors.append(f"line {line_no}: expected {len(names)} fields, got {len(raw)}")
            continue
        values: Dict[str, object] = {}
        problems: Dict[str, str] = {}  # column -> the first problem found with it on this line
        for name, value in zip(names, raw, strict=True):
            try:
                values[name] = PARSERS[name](value)
            except _BadValue as exc:
                problems[name] = str(exc)
        _check_dates(values, problems)
        order_id = values.get("order_id")
        if isinstance(order_id, str) and not numbers.accepts(order_id):
            problems["order_id"] = f"{order_id!r} is not in the shop's order number format"
            unrecognisable[order_id] = None
        if isinstance(order_id, str):
            _check_agreement(line_no, order_id, values, order_rows, customer_names, problems)
            sku = values.get("sku")
            if isinstance(sku, str):
                first = skus.setdefault((order_id, sku), line_no)
                if first != line_no:
                    problems.setdefault("sku", f"{sku!r} appears twice in order {order_id} (also on line {first})")
        errors.extend(f"line {line_no}, column {column}: {problem}" for column, problem in problems.items())
        if errors or not isinstance(order_id, str):
            continue  # nothing will be written, so only keep looking for errors
        order = orders.get(order_id)
        if order is None:
            order = orders[order_id] = OrderRecord(
                line_no=line_no, order_id=order_id, **{k: values[k] for k in ORDER_COLUMNS}
            )
        order.lines.append(LineRecord(line_no=line_no, **{k: values[k] for k in LINE_COLUMNS}))
    if not errors and count == 0:
        errors.append(f"{path}: the file has a header but no order lines")
    if unrecognisable:
        errors.append(_pattern_hint(list(unrecognisable), numbers))
    if errors:
        raise ImportFailed(errors)
    return list(orders.values())


def _check_agreement(line_no: int, order_id: str, values: Dict[str, object],
                     order_rows: Dict[str, Dict[str, Tuple[int, object]]],
                     customer_names: Dict[str, Tuple[int, str]], problems: Dict[str, str]) -> None:
    """Rows of one order must agree on the order's columns, and one email must keep one name in a file."""
    first_values = order_rows.setdefault(order_id, {})
    for column in ORDER_COLUMNS:
        if column not in values:
            continue  # the value itself is bad and already reported
        first = first_values.setdefault(column, (line_no, values[column]))
        if first[1] != values[column]:
            problems.setdefault(column, f"order {order_id} has {_shown(first[1])} on line {first[0]} but "
                                        f"{_shown(values[column])} here; all lines of an order must agree")
    email, name = values.get("email"), values.get("customer_name")
    first_row_of_order = first_values.get("customer_name", (0, None))[0] == line_no  # later rows checked above
    if isinstance(email, str) and isinstance(name, str) and first_row_of_order:
        first_name = customer_names.setdefault(email, (line_no, name))
        if first_name[1] != name:
            problems.setdefault("customer_name", f"{email} is named {first_name[1]!r} on line {first_name[0]} but "
                                                 f"{name!r} here; one customer must have one name in a file")


# --- writing --------------------------------------------------------------------------------------------


def _assign(obj: object, changes: Dict[str, object]) -> bool:
    """Set the attributes that differ; True when any did."""
    changed = False
    for name, value in changes.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), IN_CHUNK):
        yield items[start:start + IN_CHUNK]


def _load_customers(session: Session, emails: Sequence[str]) -> Dict[str, Customer]:
    """Existing customers by lower-cased email (the oldest one wins if case variants exist)."""
    found: Dict[str, Customer] = {}
    for chunk in _chunks(emails):
        query = session.query(Customer).filter(func.lower(Customer.email).in_(chunk)).order_by(Customer.id)
        for customer in query:
            found.setdefault(customer.email.lower(), customer)
    return found


def _load_orders(session: Session, order_ids: Sequence[str]) -> Dict[str, Order]:
    found: Dict[str, Order] = {}
    for chunk in _chunks(order_ids):
        query = session.query(Order).filter(Order.id.in_(chunk)).options(
            selectinload(Order.lines).selectinload(OrderLine.returns)
        )
        found.update((order.id, order) for order in query)
    return found


def write_orders(engine: Engine, records: Sequence[OrderRecord]) -> ImportResult:
    """Upsert validated orders in one transaction: all of them or, on any database error, none."""
    result = ImportResult()
    with session_scope(engine) as session:
        names = {record.email: record.customer_name for record in records}
        customers = _load_customers(session, sorted(names))
        for email, name in names.items():
            customer = customers.get(email)
            if customer is None:
                customers[email] = Customer(email=email, name=name)
                session.add(customers[email])
                result.customers_created += 1
            elif _assign(customer, {"name": name}):
                result.customers_updated += 1
            else:
                result.customers_unchanged += 1

        existing = _load_orders(session, sorted(record.order_id for record in records))
        for record in records:
            order = existing.get(record.order_id)
            fields_ = {
                "customer": customers[record.email],
                "status": record.status,
                "ordered_at": record.ordered_at,
                "shipped_at": record.shipped_at,
                "delivered_at": record.delivered_at,
                "carrier": record.carrier,
                "tracking_number": record.tracking_number,
            }
            if order is None:
                order = Order(id=record.order_id, **fields_)
                session.add(order)
                result.orders_created += 1
                _write_lines(order, record, result)
                continue
            changed = _assign(order, fields_)
            changed = _write_lines(order, record, result) or changed
            if changed:
                result.orders_updated += 1
            else:
                result.orders_unchanged += 1
    return result


def _write_lines(order: Order, record: OrderRecord, result: ImportResult) -> bool:
    """Make the order's lines those of the file (keeping lines with returns); True when any changed."""
    changed = False
    by_sku = {line.sku: line for line in order.lines}
    for item in record.lines:
        values = {"item_name": item.item_name, "quantity": item.quantity, "unit_price": item.unit_price,
                  "final_sale": item.final_sale}
        line = by_sku.get(item.sku)
        if line is None:
            order.lines.append(OrderLine(sku=item.sku, **values))
            result.lines_created += 1
            changed = True
        elif _assign(line, values):
            result.lines_updated += 1
            changed = True
        else:
            result.lines_unchanged += 1
    wanted = {item.sku for item in record.lines}
    for line in list(order.lines):
        if line.sku in wanted:
            continue
        if line.returns:
            result.lines_kept_with_returns.append(f"{order.id}/{line.sku}")
            continue
        order.lines.remove(line)  # delete-orphan removes the row
        result.lines_removed += 1
        changed = True
    return changed


def import_orders(engine: Engine, path: PathLike, numbers: Optional[OrderNumberFormat] = None) -> ImportResult:
    """Validate the whole file, then write it in one transaction; raise ImportFailed and write nothing
    when any row is bad."""
    return write_orders(engine, parse_orders(path, numbers))


# --- command line ---------------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The CLI: 0 and a summary on stdout after an import, 1 and the errors on stderr otherwise."""
    parser = argparse.ArgumentParser(
        prog="python -m shop.importer",
        description="Import orders from a CSV file (one row per order line, columns: " + ", ".join(COLUMNS) + ").",
    )
    parser.add_argument("path", help="the CSV file")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: database_url of shop.yml / DATABASE_URL)")
    args = parser.parse_args(argv)
    try:
        records = parse_orders(args.path)
    except ImportFailed as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{args.path}: {len(exc.errors)} error(s); nothing was imported", file=sys.stderr)
        return 1
    url = args.database_url or get_settings().database_url
    engine = None
    try:
        engine = make_engine(url, seed_demo=False)
        result = write_orders(engine, records)
    except SQLAlchemyError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        print(f"database error, nothing was imported: {detail}", file=sys.stderr)
        return 1
    finally:
        if engine is not None:
            engine.dispose()
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
