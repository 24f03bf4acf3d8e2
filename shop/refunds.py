"""Where a customer's money is: the refunds of a verified order, in words a customer understands."""

from __future__ import annotations

from typing import List

from shop.models import Order
from shop.orders import format_day

STATUS_WORDS = {
    "waiting_for_item": "will be issued once we receive the returned item",
    "processing": "is being processed and usually reaches you within 5 business days",
    "issued": "was issued on {issued}",
}


def describe_refunds(order: Order, method_labels: dict) -> List[str]:
    """One sentence per refund of the order, newest last; empty when there is none."""
    sentences = []
    for refund in order.refunds:
        ret = refund.return_
        what = f"the return {ret.public_id} ({ret.line.item_name})" if ret else "the cancellation"
        state = STATUS_WORDS.get(refund.status, refund.status).format(
            issued=format_day(refund.issued_at)
        )
        method = method_labels.get(refund.method, refund.method)
        sentences.append(f"The refund of {refund.amount:.2f} for {what} to {method} {state}.")
    return sentences
