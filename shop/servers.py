"""Starting the action server and the Rasa server as child processes, on free ports, with a given
database: what the end-to-end tests and the benchmarks share."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence
from urllib.parse import quote

import requests

from shop.settings import PROJECT_ROOT

RASA = str(Path(sys.executable).with_name("rasa"))
DEFAULT_MODEL = PROJECT_ROOT / "models" / "shop.tar.gz"
# endpoints.yml's settings for one process (scripts/env.sh has the same defaults): no Redis, no broker.
EMBEDDED_PROFILE = {"LOCK_STORE_TYPE": "in_memory", "REDIS_HOST": "localhost", "REDIS_PORT": "6379",
                    "REDIS_PASSWORD": "", "EVENT_BROKER_URL": "", "EVENT_BROKER_QUEUE": "rasa_events"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class RunningServers:
    rasa_url: str
    action_url: str
    processes: Dict[str, subprocess.Popen]
    logs: Dict[str, Path]
    model_load_s: float = float("nan")
    timings: Dict[str, float] = field(default_factory=dict)
    commands: Dict[str, List[str]] = field(default_factory=dict)
    env: Dict[str, str] = field(default_factory=dict)
    root: Path = PROJECT_ROOT
    readiness: Dict[str, Callable[[], None]] = field(default_factory=dict)

    def spawn(self, name: str) -> None:
        """Start process `name` with its command (its log grows); `readiness[name]()` waits until it serves."""
        self.processes[name] = subprocess.Popen(self.commands[name], cwd=self.root, env=self.env,
                                                stdout=self.logs[name].open("a"), stderr=subprocess.STDOUT)

    def kill(self, name: str) -> None:
        """SIGKILL process `name`, as a crash would."""
        self.processes[name].kill()
        self.processes[name].wait(timeout=30)

    def restart(self, name: str) -> None:
        """Start process `name` again on its port and wait until it serves."""
        self.spawn(name)
        self.readiness[name]()

    def kill_and_restart(self, name: str) -> None:
        self.kill(name)
        self.restart(name)

    def send(self, sender: str, message: str, timeout: float = 60) -> List[Dict]:
        response = requests.post(
            f"{self.rasa_url}/webhooks/rest/webhook", json={"sender": sender, "message": message}, timeout=timeout
        )
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait(url: str, process: subprocess.Popen, log: Path, timeout_s: float,
          ready: Callable[[requests.Response], bool]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if ready(requests.get(url, timeout=2)):
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def start_servers(
    workdir: Path, database_url: str, model: Path = DEFAULT_MODEL, timeout_s: float = 300,
    extra_env: Optional[Dict[str, str]] = None, auth_token: Optional[str] = None, extra_args: Sequence[str] = (),
    root: Path = PROJECT_ROOT, tracker_store_url: Optional[str] = None,
) -> RunningServers:
    """Start both servers and return once the model is loaded; the caller stops them.

    `auth_token` protects Rasa's HTTP API (`--auth-token`); `extra_args` go to `rasa run` as they are. `root` is the
    checkout whose code both servers run (another one: a benchmark's "before" tree, bench/before.py).
    Rasa reads the checkout's own endpoints.yml, filled from the environment as in production (one process: in-memory
    lock store, no event broker); the conversations go to `tracker_store_url` (an SQLAlchemy URL), by default a
    SQLite file in `workdir`. `extra_env` overrides any of it. An older checkout whose endpoints.yml reads no
    environment gets one written for it.
    """
    action_port, rasa_port = free_port(), free_port()
    tracker_store_url = tracker_store_url or f"sqlite:///{workdir / 'tracker.db'}"
    endpoints = root / "endpoints.yml"
    if "${ACTION_ENDPOINT_URL}" not in endpoints.read_text():
        endpoints = workdir / "endpoints.yml"
        endpoints.write_text(f'action_endpoint:\n  url: "http://localhost:{action_port}/webhook"\n'
                             f"tracker_store:\n  type: SQL\n  url: {tracker_store_url}\n")
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(root), "RASA_TELEMETRY_ENABLED": "false",
           **EMBEDDED_PROFILE, "ACTION_ENDPOINT_URL": f"http://localhost:{action_port}/webhook",
           "TRACKER_STORE_URL": tracker_store_url, **(extra_env or {})}
    commands = {
        "actions": [RASA, "run", "actions", "--actions", "actions", "--port", str(action_port)],
        "rasa": [RASA, "run", "--enable-api", "--model", str(model), "--endpoints", str(endpoints),
                 "--credentials", str(root / "credentials.yml"), "--port", str(rasa_port),
                 *(["--auth-token", auth_token] if auth_token else []), *extra_args],
    }
    logs = {name: workdir / f"{name}.log" for name in commands}
    for log in logs.values():
        log.write_text("")
    servers = RunningServers(f"http://localhost:{rasa_port}", f"http://localhost:{action_port}", {}, logs,
                             commands=commands, env=env, root=root)
    token = f"?token={quote(auth_token)}" if auth_token else ""
    servers.readiness = {
        "actions": lambda: _wait(f"{servers.action_url}/health", servers.processes["actions"], logs["actions"],
                                 timeout_s, lambda r: r.ok),
        "rasa": lambda: _wait(f"{servers.rasa_url}/status{token}", servers.processes["rasa"], logs["rasa"],
                              timeout_s, lambda r: r.ok and bool(r.json().get("model_file"))),
    }
    started = time.monotonic()
    try:
        for name in commands:  # both start at once; each is waited for in turn
            servers.spawn(name)
        for name in commands:
            servers.readiness[name]()
    except BaseException:
        servers.stop()
        raise
    servers.model_load_s = time.monotonic() - started
    return servers
