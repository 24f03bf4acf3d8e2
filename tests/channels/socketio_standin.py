"""A socket.io server that speaks Rasa's session protocol but never answers: for what the web chat shows when
the bot is silent or the server goes away, which the real server cannot be made to do on purpose."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any, Dict, List, Optional

import socketio
from aiohttp import web

from shop.servers import free_port


class SilentSocketIO:
    """Confirms sessions and records messages; `stop()` and `start()` again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.session_requests: List[Optional[str]] = []
        self.messages: List[Dict[str, Any]] = []
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        self._runner: Optional[web.AppRunner] = None

    def _app(self) -> web.Application:
        sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")

        @sio.on("session_request")
        async def session_request(sid: str, data: Optional[Dict[str, Any]]) -> None:
            session_id = (data or {}).get("session_id") or uuid.uuid4().hex
            self.session_requests.append((data or {}).get("session_id"))
            await sio.emit("session_confirm", session_id, room=sid)

        @sio.on("user_uttered")
        async def user_uttered(sid: str, data: Dict[str, Any]) -> None:
            self.messages.append(data)

        app = web.Application()
        sio.attach(app)
        return app

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def start(self) -> None:
        async def serve() -> web.AppRunner:
            runner = web.AppRunner(self._app(), shutdown_timeout=1)  # drop open connections at once
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            return runner

        self._runner = self._run(serve())

    def wait_for_messages(self, count: int, timeout_s: float = 10) -> List[Dict[str, Any]]:
        """The messages received once there are `count` (they arrive on the server's own thread, possibly after
        the page already shows the message as sent); fails after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.messages) >= count, f"{len(self.messages)} of {count} messages arrived in {timeout_s} s"
        return list(self.messages)

    def stop(self) -> None:
        if self._runner is not None:
            self._run(self._runner.cleanup())
            self._runner = None

    def close(self) -> None:
        """Stop serving and end the engine.io servers' background tasks with the loop."""
        self.stop()

        async def cancel_the_rest() -> None:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._run(cancel_the_rest())
        self._loop.call_soon_threadsafe(self._loop.stop)
