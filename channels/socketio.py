"""Rasa's socket.io channel (the web chat's), made to work on this stack and to keep conversations apart.

Rasa 3.6.21's SocketIOInput fails silently here:
- its `session_request` handler calls `sio.enter_room()` without awaiting it; python-socketio 5 made that a
  coroutine, so with session_persistence a browser never joins its conversation's room and never gets an answer;
- Sanic 21.12's WebSocket code passes coroutines to asyncio.wait(), which Python 3.11 refuses: the upgrade from
  long-polling fails and drops the connection. This server offers long-polling only, so clients never try.
It also lets any connection speak as any conversation id it names, e.g. a REST conversation (`alice`) whose
order is already verified. Here a connection speaks only for the session it joined, and a session id must look
like the random ones the server hands out (32 hex digits), else the client gets a new one.
A client address past shop.yml `rate_limits` (channels/ratelimit.py) is refused a connection with the polite message
as the connect error's text, and a message over the limit is answered with that message instead of the bot; every
message carries the client address in its metadata (`client_address`) for the verification throttle.
URL: /socket.io (engine.io); health check /webhooks/socketio/; the credentials.yml settings are Rasa's.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any, Awaitable, Callable, Dict, Optional

from rasa.core.channels.channel import UserMessage, decode_bearer_token
from rasa.core.channels.socketio import SocketIOInput, SocketIOOutput
from sanic import Blueprint, response
from socketio.exceptions import ConnectionRefusedError

from channels.guard import answering_on_failure
from channels.ratelimit import environ_client, get_rate_limiter, with_client
from shop.throttle import CLIENT_ADDRESS

logger = logging.getLogger(__name__)

SESSION_ID = re.compile(r"[0-9a-f]{32}")


def session_id_from(data: Any) -> str:
    """The session a client asks to resume when it is one this server could have issued, else a new one."""
    wanted = data.get("session_id") if isinstance(data, dict) else None
    return wanted if isinstance(wanted, str) and SESSION_ID.fullmatch(wanted) else uuid.uuid4().hex


INVALID_PACKET = "Not a packet a socket.io client sends in this session."


def refusing_invalid_packets(handle_request: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """python-engineio 4 answers two client mistakes badly: an OPEN packet posted by the client is never answered
    (Sanic's 60 s timeout, then 503), and a POST after the client closed its session raises KeyError (500). Both get
    400 at once here; everything else goes to engine.io unchanged."""

    async def handle(request: Any, *args: Any, **kwargs: Any) -> Any:
        if request.method == "POST" and any(packet[:1] == b"0" for packet in (request.body or b"").split(b"\x1e")):
            return response.text(INVALID_PACKET, status=400)
        try:
            return await handle_request(request, *args, **kwargs)
        except KeyError:
            return response.text(INVALID_PACKET, status=400)

    return handle


class SessionSocketIOInput(SocketIOInput):
    @classmethod
    def name(cls) -> str:
        return "socketio"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """Rasa's blueprint (health check, JWT check on connect), with long-polling only and our two handlers."""
        on_new_message = answering_on_failure(on_new_message)  # an apology when a part behind Rasa fails
        socketio_webhook = super().blueprint(on_new_message)
        sio = self.sio
        sio.eio.transports, sio.eio.allow_upgrades = ["polling"], False
        sio.eio.handle_request = refusing_invalid_packets(sio.eio.handle_request)  # before Sanic registers it

        @sio.on("connect", namespace=self.namespace)  # replaces Rasa's handler: its token check, then the limit
        async def connect(sid: str, environ: Dict[str, Any], auth: Optional[Dict[str, Any]] = None) -> bool:
            if self.jwt_key and not self._token_is_valid(auth):
                return False
            client = environ_client(environ)
            limiter = get_rate_limiter()
            retry_after = limiter.retry_after(client)
            if retry_after:
                raise ConnectionRefusedError(limiter.message(retry_after), {"retry_after": retry_after})
            await sio.save_session(sid, {CLIENT_ADDRESS: client}, namespace=self.namespace)
            return True

        @sio.on("session_request", namespace=self.namespace)  # replaces Rasa's handler
        async def session_request(sid: str, data: Any) -> None:
            session_id = session_id_from(data)
            if self.session_persistence:
                await sio.enter_room(sid, session_id, namespace=self.namespace)
            session = await sio.get_session(sid, namespace=self.namespace)
            await sio.save_session(sid, {**session, "session_id": session_id}, namespace=self.namespace)
            await sio.emit("session_confirm", session_id, room=sid, namespace=self.namespace)

        @sio.on(self.user_message_evt, namespace=self.namespace)  # replaces Rasa's handler
        async def handle_message(sid: str, data: Any) -> None:
            if not isinstance(data, dict) or not isinstance(data.get("message", ""), str):
                logger.warning("Ignored a socket.io message that is not {message: text, session_id: ...}.")
                return
            sender_id = sid
            session = await sio.get_session(sid, namespace=self.namespace)
            if self.session_persistence:
                joined = session.get("session_id")
                if joined is None or data.get("session_id") != joined:
                    logger.warning("Ignored a socket.io message for a session this connection has not joined.")
                    return
                sender_id = joined
            client = str(session.get(CLIENT_ADDRESS) or "unknown")
            limiter = get_rate_limiter()
            retry_after = limiter.retry_after(client)
            if retry_after:
                await sio.emit(self.bot_message_evt, {"text": limiter.message(retry_after)}, room=sid,
                               namespace=self.namespace)
                return
            await on_new_message(UserMessage(
                data.get("message", ""), SocketIOOutput(sio, self.bot_message_evt), sender_id,
                input_channel=self.name(), metadata=with_client(self._metadata(data), client),
            ))

        return socketio_webhook

    def _token_is_valid(self, auth: Optional[Dict[str, Any]]) -> bool:
        """Rasa's check of the JWT a client sends when it connects (credentials.yml `jwt_key`)."""
        token = auth.get("token") if isinstance(auth, dict) else None
        return bool(token and decode_bearer_token(token, self.jwt_key, self.jwt_algorithm))

    def _metadata(self, data: Dict[str, Any]) -> Dict[str, Any]:
        """The message's metadata object (sent as an object or as JSON text); anything else is dropped."""
        metadata = data.get(self.metadata_key)
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except json.JSONDecodeError:
                metadata = None
        return metadata if isinstance(metadata, dict) else {}
