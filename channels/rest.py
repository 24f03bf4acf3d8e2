"""Rasa's REST channel, with the request body checked before Rasa reads it.

Stock RestInput answers 500 to a body that is not a JSON object, and files a request without `sender`
under the shared conversation "default", where strangers would see each other's order details. This
channel answers 400 with the reason instead, and apologises when a part behind Rasa fails (channels/guard.py)
where stock Rasa answers `[]`; everything else (URL, replies, streaming) is Rasa's. A client address that sends
more than shop.yml `rate_limits` allows gets 429 with Retry-After (channels/ratelimit.py), and each message carries
its client address in its metadata (`client_address`) for the verification throttle.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from rasa.core.channels.rest import RestInput
from sanic import Blueprint
from sanic.exceptions import InvalidUsage as BadRequest  # 400; sanic 21.12 has no BadRequest yet
from sanic.request import Request
from sanic.response import HTTPResponse

from channels.guard import Handler, answering_on_failure
from channels.ratelimit import get_rate_limiter, request_client, with_client

MAX_SENDER_CHARS = 255


def payload(request: Request) -> Dict[str, Any]:
    """The JSON object of the request, or a 400 that says what is wrong with it."""
    try:
        body = request.json
    except Exception as exc:  # noqa: BLE001 - sanic raises several types for broken JSON
        raise BadRequest("The body must be JSON: {\"sender\": \"...\", \"message\": \"...\"}") from exc
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object: {\"sender\": \"...\", \"message\": \"...\"}")
    return body


class ValidatingRestInput(RestInput):
    @classmethod
    def name(cls) -> str:
        return "rest"

    def blueprint(self, on_new_message: Handler) -> Blueprint:
        webhook = super().blueprint(answering_on_failure(on_new_message))

        @webhook.middleware("request")
        async def rate_limit(request: Request) -> Optional[HTTPResponse]:
            """Before the body is even read: a client past its limit costs nothing more."""
            if request.method != "POST":
                return None
            limiter = get_rate_limiter()
            retry_after = limiter.retry_after(request_client(request))
            return limiter.too_many_requests(retry_after) if retry_after else None

        return webhook

    async def _extract_sender(self, req: Request) -> Optional[str]:
        sender = payload(req).get("sender")
        if isinstance(sender, int) and not isinstance(sender, bool):
            sender = str(sender)
        if not isinstance(sender, str) or not sender.strip() or len(sender) > MAX_SENDER_CHARS:
            raise BadRequest(f"'sender' must be a non-empty string of at most {MAX_SENDER_CHARS} characters")
        return sender

    def _extract_message(self, req: Request) -> Optional[str]:
        message = payload(req).get("message")
        if not isinstance(message, str):
            raise BadRequest("'message' must be a string")
        return message

    def _extract_input_channel(self, req: Request) -> str:
        channel = payload(req).get("input_channel")
        return channel if isinstance(channel, str) and channel else self.name()

    def get_metadata(self, request: Request) -> Optional[Dict[str, Any]]:
        metadata = payload(request).get("metadata")
        return with_client(metadata if isinstance(metadata, dict) else None, request_client(request))
