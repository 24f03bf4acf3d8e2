"""SQLAlchemy models of the shop: what the assistant may read and the few things it may write."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import List, Optional

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import declarative_base, relationship

Base = declarative_base()

CENT = Decimal("0.01")


class Money(TypeDecorator):
    """A Decimal amount stored as integer cents: exact on every database (SQLite has no decimal type)."""

    impl = Integer
    cache_ok = True

    def process_bind_param(self, value: Optional[Decimal], dialect) -> Optional[int]:
        return None if value is None else int((Decimal(value) * 100).to_integral_value())

    def process_result_value(self, value: Optional[int], dialect) -> Optional[Decimal]:
        return None if value is None else (Decimal(value) / 100).quantize(CENT)

ORDER_STATUSES = ("pending", "shipped", "delivered", "cancelled")


class Customer(Base):
    __tablename__ = "customers"

    id = Column(Integer, primary_key=True)
    email = Column(String(254), nullable=False, unique=True)
    name = Column(String(200), nullable=False)

    orders: List[Order] = relationship("Order", back_populates="customer")


class Order(Base):
    __tablename__ = "orders"

    id = Column(String(40), primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=False)
    status = Column(String(20), nullable=False)
    ordered_at = Column(DateTime, nullable=False)
    shipped_at = Column(DateTime)
    delivered_at = Column(DateTime)
    estimated_delivery: Optional[date] = Column(Date)
    cancelled_at = Column(DateTime)
    carrier = Column(String(60))
    tracking_number = Column(String(80))

    customer: Customer = relationship("Customer", back_populates="orders")
    lines: List[OrderLine] = relationship(
        "OrderLine", back_populates="order", order_by="OrderLine.id", cascade="all, delete-orphan"
    )
    refunds: List[Refund] = relationship("Refund", back_populates="order", order_by="Refund.id")

    @property
    def total(self) -> Decimal:
        return sum((line.unit_price * line.quantity for line in self.lines), Decimal("0"))


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (UniqueConstraint("order_id", "sku", name="uq_order_line_sku"),)

    id = Column(Integer, primary_key=True)
    order_id = Column(String(40), ForeignKey("orders.id"), nullable=False)
    sku = Column(String(60), nullable=False)
    item_name = Column(String(200), nullable=False)
    quantity = Column(Integer, nullable=False)
    unit_price = Column(Money(), nullable=False)
    final_sale = Column(Boolean, nullable=False, default=False)

    order: Order = relationship("Order", back_populates="lines")
    returns: List[Return] = relationship("Return", back_populates="line")


class Return(Base):
    __tablename__ = "returns"

    id = Column(Integer, primary_key=True)
    order_line_id = Column(Integer, ForeignKey("order_lines.id"), nullable=False)
    reason = Column(String(200), nullable=False)
    refund_method = Column(String(40), nullable=False)
    # requested -> received -> refunded
    status = Column(String(20), nullable=False, default="requested")
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)

    line: OrderLine = relationship("OrderLine", back_populates="returns")
    refund: Optional[Refund] = relationship("Refund", back_populates="return_", uselist=False)

    @property
    def public_id(self) -> str:
        return f"R-{self.id}"


class Refund(Base):
    __tablename__ = "refunds"

    id = Column(Integer, primary_key=True)
    order_id = Column(String(40), ForeignKey("orders.id"), nullable=False)
    return_id = Column(Integer, ForeignKey("returns.id"))
    amount = Column(Money(), nullable=False)
    method = Column(String(40), nullable=False)
    # waiting_for_item -> processing -> issued
    status = Column(String(20), nullable=False)
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)
    issued_at = Column(DateTime)

    order: Order = relationship("Order", back_populates="refunds")
    return_: Optional[Return] = relationship("Return", back_populates="refund")


class HandoffTicket(Base):
    __tablename__ = "handoff_tickets"

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(255), nullable=False, index=True)
    reason = Column(String(200), nullable=False)
    transcript = Column(Text, nullable=False)
    status = Column(String(20), nullable=False, default="open")
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)

    @property
    def public_id(self) -> str:
        return f"H-{self.id}"


class OutboxEmail(Base):
    """Emails the shop owes a customer; a mailer (not part of this project) sends and stamps them."""

    __tablename__ = "email_outbox"

    id = Column(Integer, primary_key=True)
    to_address = Column(String(254), nullable=False)
    subject = Column(String(300), nullable=False)
    body = Column(Text, nullable=False)
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)
    sent_at = Column(DateTime)


class ConversationSentiment(Base):
    """How each customer message felt (the NLU's sentiment), one row per message, for later analysis."""

    __tablename__ = "conversation_sentiment"
    __table_args__ = (UniqueConstraint("conversation_id", "message_key", name="uq_conversation_message"),)

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(255), nullable=False, index=True)
    # Rasa's message id when there is one, else the message's position in the conversation.
    message_key = Column(String(64), nullable=False)
    turn = Column(Integer, nullable=False)
    label = Column(String(10), nullable=False)
    confidence = Column(Float, nullable=False)
    negative = Column(Float, nullable=False)
    neutral = Column(Float, nullable=False)
    positive = Column(Float, nullable=False)
    intent = Column(String(100))
    recorded_at = Column(DateTime, nullable=False, default=datetime.utcnow)


class SatisfactionFeedback(Base):
    """The answer to the one satisfaction question a happy conversation ends with."""

    __tablename__ = "satisfaction_feedback"

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(255), nullable=False, index=True)
    rating = Column(Integer)  # 1-5 when the answer contained one
    answer = Column(Text, nullable=False)
    answer_sentiment = Column(String(10))
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)
