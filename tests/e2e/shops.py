"""The shops the end-to-end conversations run against: the demo shop (seeded, 5-digit order numbers) and a second
shop whose order numbers are alphanumeric (NW-2024-00017), imported through the CSV importer's command line.

The second shop holds the demo shop's orders under other numbers, exported to CSV the way a shop system would,
so the same conversations (and the same facts in the replies) can run against both.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict

from sqlalchemy.orm import Session, selectinload

from shop.db import make_engine
from shop.importer import COLUMNS
from shop.models import Order
from shop.settings import PROJECT_ROOT

ALNUM_CONFIG = PROJECT_ROOT / "tests" / "fixtures" / "alnum_shop" / "shop.yml"


def alnum_number(demo_number: str) -> str:
    """10002 -> NW-2024-00002."""
    return f"NW-2024-{int(demo_number) - 10000:05d}"


def alnum_typed(demo_number: str) -> str:
    """How a customer might type it: lower case, spaces for dashes (10002 -> 'nw 2024 00002')."""
    return alnum_number(demo_number).lower().replace("-", " ")


@dataclass(frozen=True)
class ShopProfile:
    name: str
    config: Path | None  # SHOP_CONFIG for the servers; None: shop.yml
    number: Callable[[str], str]  # a demo order number -> this shop's number for the same order, as stored
    typed: Callable[[str], str]  # ... as a customer types it
    example: str  # the example the prompts quote


DEMO = ShopProfile("demo", None, str, str, "10001")
ALNUM = ShopProfile("alnum", ALNUM_CONFIG, alnum_number, alnum_typed, "NW-2024-00017")


def export_orders(database_url: str, path: Path, number: Callable[[str], str]) -> Path:
    """The orders of a database as the importer's CSV (one row per order line), numbered by `number`."""
    engine = make_engine(database_url)
    with Session(engine) as session, path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        orders = session.query(Order).options(selectinload(Order.lines), selectinload(Order.customer)).all()
        for order in orders:
            for line in order.lines:
                writer.writerow([
                    number(order.id), order.customer.email, order.customer.name, order.status,
                    order.ordered_at.isoformat(), order.shipped_at.isoformat() if order.shipped_at else "",
                    order.delivered_at.isoformat() if order.delivered_at else "", order.carrier or "",
                    order.tracking_number or "", line.sku, line.item_name, line.quantity, f"{line.unit_price:.2f}",
                    "yes" if line.final_sale else "no"])
    engine.dispose()
    return path


def build_alnum_shop(work: Path) -> Dict[str, str]:
    """A fresh database for the alphanumeric shop, filled by `python -m shop.importer`; returns the server
    environment (database, shop configuration)."""
    demo_url = f"sqlite:///{work / 'demo-source.db'}"
    make_engine(demo_url, seed_demo=True).dispose()
    csv_file = export_orders(demo_url, work / "orders.csv", alnum_number)
    database_url = f"sqlite:///{work / 'alnum-shop.db'}"
    env = {**os.environ, "SHOP_CONFIG": str(ALNUM_CONFIG), "PYTHONPATH": str(PROJECT_ROOT)}
    imported = subprocess.run([sys.executable, "-m", "shop.importer", str(csv_file), "--database-url", database_url],
                              cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    return {"DATABASE_URL": database_url, "SHOP_CONFIG": str(ALNUM_CONFIG), "SHOP_SEED_DEMO": "0"}
