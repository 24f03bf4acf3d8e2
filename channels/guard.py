"""Every customer message gets an answer, even when something behind Rasa fails.

Stock Rasa 3.6 is silent when a part is down: the REST channel answers `200 []` when the tracker store, the lock
store or the model fails (or silently starts the conversation over: shop/tracker_store.py), socket.io and Slack
answer nothing, and when the action server cannot be reached Rasa
logs the error, drops the action's events and carries on, so the customer sees no reply or an unrelated one. Each
of the project's channels passes Rasa's message handler through `answering_on_failure`, which adds the bot's
apology (`technical_problem` in actions/responses.yml) to the turn in both cases, and logs what failed.

How a failed action is noticed without patching Rasa: its processor logs "Encountered an exception while running
action ..." on the `rasa.core.processor` logger, inside the task that handles the message. A logging handler on
that logger marks the turn the handler set in a context variable, which that task (and tasks it starts) sees.
tests/e2e/test_cluster_faults.py proves it on the pinned Rasa: if the message changed, those tests would fail.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, List, Optional

from rasa.core.channels.channel import UserMessage

from actions.messages import render
from shop.tracker_store import TrackerStoreUnavailable

logger = logging.getLogger(__name__)

Handler = Callable[[UserMessage], Awaitable[Any]]

FAILED_ACTION_LOG = "Encountered an exception while running action '"


@dataclass
class Turn:
    """What went wrong while one customer message was handled."""

    failed_actions: List[str] = field(default_factory=list)


CURRENT_TURN: ContextVar[Optional[Turn]] = ContextVar("shop_current_turn", default=None)


class FailedActionRecorder(logging.Handler):
    """Marks the current turn when Rasa reports that a custom action could not be run."""

    def emit(self, record: logging.LogRecord) -> None:
        turn = CURRENT_TURN.get()
        message = str(record.msg)
        if turn is not None and message.startswith(FAILED_ACTION_LOG):
            turn.failed_actions.append(message[len(FAILED_ACTION_LOG):].split("'", 1)[0])


def _install_recorder() -> None:
    processor_logger = logging.getLogger("rasa.core.processor")
    if not any(isinstance(handler, FailedActionRecorder) for handler in processor_logger.handlers):
        processor_logger.addHandler(FailedActionRecorder(level=logging.ERROR))


def answering_on_failure(on_new_message: Handler) -> Handler:
    """Rasa's message handler, with an apology to the customer when the turn could not be completed."""
    _install_recorder()

    async def handle(message: UserMessage) -> None:
        turn = Turn()
        token = CURRENT_TURN.set(turn)
        failed = False
        try:
            await on_new_message(message)
        except (Exception, TrackerStoreUnavailable):  # noqa: BLE001 - whatever broke, the customer is answered
            failed = True
            logger.exception(f"Conversation {message.sender_id}: the message could not be handled "
                             f"(tracker store, lock store or model); the customer got the apology.")
        finally:
            CURRENT_TURN.reset(token)
        if turn.failed_actions:
            logger.error(f"Conversation {message.sender_id}: action(s) {', '.join(turn.failed_actions)} failed "
                         f"(is the action server up?); the customer got the apology.")
        if failed or turn.failed_actions:
            await message.output_channel.send_text_message(message.sender_id, render("technical_problem"))

    return handle
