"""The demo shop: 24 orders that cover every state the skills handle.

Dates are relative to the moment of seeding so "delivered recently" stays recent in a fresh database.
Customer emails use the reserved example.com domain.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Optional, Tuple

from sqlalchemy.orm import Session

from shop.models import Customer, Order, OrderLine, Refund, Return

CUSTOMERS = {
    "alice": ("alice@example.com", "Alice Martin"),
    "bob": ("bob@example.com", "Bob Chen"),
    "carol": ("carol@example.com", "Carol Diaz"),
    "dan": ("dan@example.com", "Dan Okafor"),
    "eve": ("eve@example.com", "Eve Novak"),
    "farid": ("farid@example.com", "Farid Haddad"),
}

Line = Tuple[str, str, int, str, bool]  # sku, name, quantity, unit price, final sale

# order id, customer, status, days ago ordered, days ago shipped, days ago delivered, carrier, lines
ORDERS: Tuple[Tuple[str, str, str, int, Optional[int], Optional[int], Optional[str], Tuple[Line, ...]], ...] = (
    ("10001", "alice", "delivered", 9, 7, 5, "UPS", (("MUG-01", "Ceramic coffee mug", 2, "12.50", False),)),
    ("10002", "alice", "shipped", 4, 2, None, "DHL", (("LAMP-02", "Desk lamp", 1, "39.90", False),)),
    ("10003", "bob", "pending", 1, None, None, None,
     (("TEE-M-BLK", "Black T-shirt (M)", 2, "15.00", False), ("SOCK-03", "Wool socks", 3, "8.00", False))),
    ("10004", "bob", "delivered", 50, 48, 45, "UPS", (("BOOT-42", "Hiking boots (42)", 1, "119.00", False),)),
    ("10005", "carol", "delivered", 14, 12, 10, "FedEx", (("SCARF-SALE", "Silk scarf (sale)", 1, "19.00", True),)),
    ("10006", "carol", "cancelled", 20, None, None, None, (("TENT-2P", "Two-person tent", 1, "149.00", False),)),
    ("10007", "dan", "delivered", 16, 14, 12, "USPS", (("BOTTLE-01", "Steel water bottle", 1, "24.00", False),)),
    ("10008", "dan", "delivered", 6, 4, 3, "UPS",
     (("KETTLE-01", "Electric kettle", 1, "49.00", False), ("TEA-SET", "Tea sampler", 2, "14.50", False),
      ("APRON-SALE", "Linen apron (sale)", 1, "9.00", True))),
    ("10009", "eve", "delivered", 24, 22, 20, "DHL", (("RUG-S", "Small wool rug", 1, "89.00", False),)),
    ("10010", "eve", "pending", 0, None, None, None, (("CANDLE-3", "Soy candle, 3-pack", 1, "22.00", False),)),
    ("10011", "farid", "shipped", 3, 1, None, "FedEx",
     (("JACKET-L", "Rain jacket (L)", 1, "79.00", False), ("CAP-01", "Baseball cap", 1, "18.00", False))),
    ("10012", "farid", "delivered", 40, 37, 33, "USPS", (("BELT-01", "Leather belt", 1, "35.00", False),)),
    ("10013", "alice", "delivered", 31, 29, 28, "UPS", (("PAN-24", "Cast-iron pan", 1, "45.00", False),)),
    ("10014", "bob", "shipped", 6, 5, None, "USPS", (("BACKPACK-20", "Day backpack 20 L", 1, "64.00", False),)),
    ("10015", "carol", "delivered", 4, 3, 1, "DHL",
     (("PLANT-POT", "Terracotta pot", 2, "11.00", False), ("SOIL-5L", "Potting soil 5 L", 1, "7.50", False))),
    ("10016", "dan", "pending", 2, None, None, None, (("HEADPH-01", "Wireless headphones", 1, "129.00", False),)),
    ("10017", "eve", "delivered", 70, 68, 65, "UPS", (("DESK-ORG", "Desk organiser", 1, "27.00", False),)),
    ("10018", "farid", "cancelled", 12, None, None, None, (("WATCH-01", "Field watch", 1, "159.00", False),)),
    ("10019", "alice", "delivered", 11, 9, 7, "FedEx",
     (("TOWEL-SET", "Bath towel set", 1, "42.00", False), ("SOAP-3", "Olive soap, 3-pack", 1, "12.00", True))),
    ("10020", "bob", "delivered", 35, 33, 31, "DHL", (("GLOVES-M", "Winter gloves (M)", 1, "29.00", False),)),
    ("10021", "carol", "shipped", 2, 1, None, "UPS", (("BLANKET-01", "Throw blanket", 1, "55.00", False),)),
    ("10022", "dan", "delivered", 8, 6, 5, "USPS", (("GRINDER-01", "Coffee grinder", 1, "69.00", False),)),
    ("10023", "eve", "pending", 1, None, None, None,
     (("NOTEBOOK-A5", "A5 notebook", 4, "6.50", False), ("PEN-SET", "Fountain pen set", 1, "32.00", False))),
    ("10024", "farid", "delivered", 18, 16, 14, "DHL", (("SUNGL-01", "Sunglasses", 1, "58.00", True),)),
)

CARRIER_PREFIX = {"UPS": "1Z999AA1", "DHL": "JD0146000", "FedEx": "7489", "USPS": "9400111"}


def _tracking_number(carrier: Optional[str], order_id: str) -> Optional[str]:
    return f"{CARRIER_PREFIX[carrier]}{order_id}" if carrier else None


def seed_demo_shop(session: Session, now: Optional[datetime] = None) -> None:
    now = (now or datetime.utcnow()).replace(microsecond=0)

    def days_ago(days: Optional[int]) -> Optional[datetime]:
        return None if days is None else now - timedelta(days=days, hours=3)

    customers = {key: Customer(email=email, name=name) for key, (email, name) in CUSTOMERS.items()}
    session.add_all(customers.values())
    orders = {}
    for order_id, who, status, ordered, shipped, delivered, carrier, lines in ORDERS:
        order = Order(
            id=order_id,
            customer=customers[who],
            status=status,
            ordered_at=days_ago(ordered),
            shipped_at=days_ago(shipped),
            delivered_at=days_ago(delivered),
            estimated_delivery=(days_ago(shipped) + timedelta(days=4)).date() if status == "shipped" else None,
            cancelled_at=days_ago(ordered - 1) if status == "cancelled" else None,
            carrier=carrier,
            tracking_number=_tracking_number(carrier, order_id),
            lines=[_line(*line) for line in lines],
        )
        orders[order_id] = order
    session.add_all(orders.values())
    session.flush()

    # 10007: returned and refunded. 10009: return received, refund being processed.
    # 10006: cancelled after payment, refund issued. 10018: cancelled, refund still processing.
    _returned(session, orders["10007"].lines[0], "damaged", "issued", now - timedelta(days=5))
    _returned(session, orders["10009"].lines[0], "doesn't fit", "processing", None)
    for order_id, status, issued in (("10006", "issued", now - timedelta(days=17)), ("10018", "processing", None)):
        order = orders[order_id]
        session.add(Refund(order=order, amount=order.total, method="original_payment", status=status,
                           created_at=order.cancelled_at, issued_at=issued))


def _line(sku: str, name: str, quantity: int, price: str, final_sale: bool) -> OrderLine:
    return OrderLine(sku=sku, item_name=name, quantity=quantity, unit_price=Decimal(price), final_sale=final_sale)


def _returned(session: Session, line: OrderLine, reason: str, refund_status: str, issued_at) -> None:
    return_status = "refunded" if refund_status == "issued" else "received"
    ret = Return(line=line, reason=reason, refund_method="original_payment", status=return_status)
    session.add(ret)
    session.add(Refund(order=line.order, return_=ret, amount=line.unit_price * line.quantity,
                       method="original_payment", status=refund_status, issued_at=issued_at))

