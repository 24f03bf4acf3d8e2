"""A local cluster: N Rasa replicas and M action servers behind HAProxy, on PostgreSQL, Redis and RabbitMQ.

`scripts/cluster.sh up|down|status` is the command; this module is what it runs and what the fault tests and the
load benchmark drive. Every process is detached (it outlives the command), its pid kept in `<workdir>/run/` and its
log in `<workdir>/log/`, so `down` and `status` work from another shell.

Why HAProxy in front of both tiers: customers reach any replica (REST round-robin; socket.io stuck to one replica
by a cookie, as its sessions live in one process), and Rasa reaches any action server through one URL; a process
that stops answering its health check (`GET /` on Rasa, `GET /health` on an action server) is taken out within
about 6 s, and a request refused by a dead process is sent to another at once (`option redispatch 1`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import urlsplit

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shop.servers import RASA, rss_mib
from shop.settings import PROJECT_ROOT

HAPROXY = os.environ.get("SHOP_HAPROXY") or shutil.which("haproxy") or "/usr/sbin/haproxy"


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass
class ClusterSettings:
    """Counts, ports and services; the defaults are this machine kind's local services (docs/deployment.md)."""

    replicas: int = 2
    action_servers: int = 2
    port: int = 5300  # customers and channels: REST, socket.io, Slack
    workdir: Path = PROJECT_ROOT / "var" / "cluster"
    model: Path = Path(_env("SHOP_MODEL", str(PROJECT_ROOT / "models" / "shop.tar.gz")))
    tracker_store_url: str = _env("TRACKER_STORE_URL", "postgresql://postgres@127.0.0.1:5432/shop_conversations")
    database_url: str = _env("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/shop")
    events_database_url: str = _env("EVENTS_DATABASE_URL", "")  # default: the tracker store's database
    redis_host: str = _env("REDIS_HOST", "127.0.0.1")
    redis_port: str = _env("REDIS_PORT", "6379")
    redis_password: str = os.environ.get("REDIS_PASSWORD", "")
    event_broker_url: str = _env("EVENT_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
    event_queue: str = _env("EVENT_BROKER_QUEUE", "rasa_events")
    extra_env: Dict[str, str] = field(default_factory=dict)

    @property
    def action_port(self) -> int:
        """The balancer's port for the action servers (Rasa's action endpoint)."""
        return self.port + 50

    @property
    def stats_port(self) -> int:
        return self.port + 99

    def rasa_port(self, number: int) -> int:
        return self.port + number

    def actions_port(self, number: int) -> int:
        return self.port + 50 + number


@dataclass
class Process:
    name: str
    command: List[str]
    health_url: Optional[str]  # None: alive is enough


class Cluster:
    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        self.run_dir = settings.workdir / "run"
        self.log_dir = settings.workdir / "log"
        self.processes = self._processes()

    # ---- the parts -------------------------------------------------------------------------------------------
    def _processes(self) -> Dict[str, Process]:
        s = self.settings
        processes: Dict[str, Process] = {}
        for number in range(1, s.action_servers + 1):
            port = s.actions_port(number)
            processes[f"actions-{number}"] = Process(
                f"actions-{number}", [RASA, "run", "actions", "--actions", "actions", "--port", str(port)],
                f"http://127.0.0.1:{port}/health")
        for number in range(1, s.replicas + 1):
            port = s.rasa_port(number)
            processes[f"rasa-{number}"] = Process(
                f"rasa-{number}", [RASA, "run", "-i", "127.0.0.1", "--port", str(port), "--model", str(s.model),
                                   "--endpoints", str(PROJECT_ROOT / "endpoints.yml"),
                                   "--credentials", str(PROJECT_ROOT / "credentials.yml")],
                f"http://127.0.0.1:{port}/")
        if s.event_broker_url:
            processes["consumer"] = Process("consumer", [sys.executable, "-m", "shop.event_consumer"], None)
        processes["balancer"] = Process("balancer", [HAPROXY, "-f", str(s.workdir / "haproxy.cfg")],
                                        f"http://127.0.0.1:{s.stats_port}/")
        return processes

    def environment(self) -> Dict[str, str]:
        """endpoints.yml's scale-out profile, for every process."""
        s = self.settings
        return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "RASA_TELEMETRY_ENABLED": "false",
                "ACTION_ENDPOINT_URL": f"http://127.0.0.1:{s.action_port}/webhook",
                "TRACKER_STORE_URL": s.tracker_store_url, "DATABASE_URL": s.database_url,
                "LOCK_STORE_TYPE": "shop.lock_store.AtomicRedisLockStore", "REDIS_HOST": s.redis_host,
                "REDIS_PORT": s.redis_port, "REDIS_PASSWORD": s.redis_password, "EVENT_BROKER_URL": s.event_broker_url,
                "EVENT_BROKER_QUEUE": s.event_queue,
                "EVENTS_DATABASE_URL": s.events_database_url or s.tracker_store_url, **s.extra_env}

    def haproxy_config(self) -> str:
        s = self.settings
        rasa = [f"rasa-{n}" for n in range(1, s.replicas + 1)]
        actions = [f"actions-{n}" for n in range(1, s.action_servers + 1)]
        lines = [
            "global", "    maxconn 4000", "    log stderr format raw local0 warning",
            "defaults", "    mode http", "    log global", "    option httplog",
            "    option dontlog-normal", "    option log-separate-errors",  # only failed requests, with their cause
            "    timeout connect 2s", "    timeout client 120s", "    timeout server 120s",
            "    retries 3", "    option redispatch 1",  # a request a dead process refused goes to another at once
            # ... and so does one whose connection a replica closed without answering (killed, or closing an idle
            # keep-alive connection as HAProxy reused it): a customer got a 502 there (CI, a replica killed)
            "    retry-on conn-failure empty-response",
            # A busy replica answers its health check late, not never: with a 1 s check timeout HAProxy took the
            # only replica out under load and customers got 503s (bench.load). A dead one refuses at once.
            "    timeout check 5s", "    timeout queue 60s",
            "    default-server inter 2s fall 3 rise 1 maxconn 32",
            "frontend customers", f"    bind 127.0.0.1:{s.port}", "    acl sio path_beg /socket.io",
            "    use_backend rasa_sio if sio", "    default_backend rasa_rest",
            "backend rasa_rest", "    balance roundrobin", "    option httpchk GET /",
            *[f"    server {name} 127.0.0.1:{s.rasa_port(n)} check" for n, name in enumerate(rasa, 1)],
            "backend rasa_sio  # socket.io sessions live in one process: a cookie keeps each browser on its replica",
            "    balance roundrobin", "    option httpchk GET /", "    cookie RASA_NODE insert indirect nocache",
            *[f"    server {name} 127.0.0.1:{s.rasa_port(n)} check cookie {name}" for n, name in enumerate(rasa, 1)],
            "frontend action_servers", f"    bind 127.0.0.1:{s.action_port}", "    default_backend actions",
            "backend actions", "    balance leastconn", "    option httpchk GET /health",
            *[f"    server {name} 127.0.0.1:{s.actions_port(n)} check" for n, name in enumerate(actions, 1)],
            "frontend stats", f"    bind 127.0.0.1:{s.stats_port}", "    stats enable", "    stats uri /",
        ]
        return "\n".join(lines) + "\n"

    # ---- one process -----------------------------------------------------------------------------------------
    def pid(self, name: str) -> Optional[int]:
        try:
            pid = int((self.run_dir / f"{name}.pid").read_text())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        try:  # a zombie (our own child that died) counts as gone
            if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
                return None
        except (OSError, IndexError):
            pass
        return pid

    def start(self, name: str) -> None:
        """Start one process detached; its output is appended to its log."""
        process = self.processes[name]
        with (self.log_dir / f"{name}.log").open("a") as log:
            child = subprocess.Popen(process.command, cwd=PROJECT_ROOT, env=self.environment(), stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        (self.run_dir / f"{name}.pid").write_text(str(child.pid))

    def healthy(self, name: str) -> bool:
        """Alive, answering its health check, and (for a server behind the balancer) in service there."""
        process = self.processes[name]
        if self.pid(name) is None:
            return False
        if process.health_url is not None:
            try:
                if not requests.get(process.health_url, timeout=2).ok:
                    return False
            except requests.RequestException:
                return False
        if name == "balancer":
            return all(state == "UP" for state in self.balancer_view().values())
        if name.startswith(("rasa-", "actions-")) and self.pid("balancer") is not None:
            return all(state == "UP" for (_, server), state in self.balancer_view().items() if server == name)
        return True

    def balancer_view(self) -> Dict[tuple, str]:
        """{(backend, server): state} as HAProxy sees it (UP, DOWN, ...), from its stats page."""
        try:
            csv = requests.get(f"http://127.0.0.1:{self.settings.stats_port}/;csv", timeout=2).text
        except requests.RequestException:
            return {}
        view = {}
        for line in csv.splitlines():
            fields = line.split(",")
            if len(fields) > 17 and not line.startswith("#") and fields[1] not in ("FRONTEND", "BACKEND"):
                view[(fields[0], fields[1])] = fields[17].split(" ")[0]
        return view

    def wait_healthy(self, name: str, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.healthy(name):
                return
            if self.pid(name) is None:
                raise RuntimeError(f"{name} exited; last lines of {self.log_dir / name}.log:\n{self.tail(name)}")
            time.sleep(0.5)
        raise RuntimeError(f"{name} not healthy after {timeout_s:.0f} s:\n{self.tail(name)}")

    def tail(self, name: str, characters: int = 3000) -> str:
        try:
            return (self.log_dir / f"{name}.log").read_text(errors="replace")[-characters:]
        except OSError:
            return ""

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 20) -> None:
        """Stop one process (SIGKILL: as a crash would) and wait until it is gone."""
        pid = self.pid(name)
        if pid is not None:
            os.kill(pid, sig)
            deadline = time.monotonic() + timeout_s
            while self.pid(name) is not None and time.monotonic() < deadline:
                _reap(pid)
                time.sleep(0.1)
            if self.pid(name) is not None:
                os.kill(pid, signal.SIGKILL)
                _reap(pid)
        (self.run_dir / f"{name}.pid").unlink(missing_ok=True)

    # ---- the whole cluster -----------------------------------------------------------------------------------
    def up(self, timeout_s: float = 600, say=print) -> None:
        s = self.settings
        if not s.model.exists():
            raise RuntimeError(f"no trained model at {s.model}: run scripts/train.sh")
        if not Path(HAPROXY).exists():
            raise RuntimeError(f"HAProxy not found ({HAPROXY}): run scripts/setup-balancer.sh")
        if s.replicas > 1 and make_url(s.tracker_store_url).drivername.startswith("sqlite"):
            raise RuntimeError("replicas need a database server for the conversations, not a SQLite file: set "
                               "TRACKER_STORE_URL to postgresql://... (or leave it unset for the local one)")
        check_services(s, say)
        for directory in (self.run_dir, self.log_dir):
            directory.mkdir(parents=True, exist_ok=True)
        (s.workdir / "haproxy.cfg").write_text(self.haproxy_config())
        (s.workdir / "cluster.json").write_text(json.dumps(
            {"replicas": s.replicas, "action_servers": s.action_servers, "port": s.port}))
        check = subprocess.run([HAPROXY, "-c", "-q", "-f", str(s.workdir / "haproxy.cfg")], capture_output=True,
                               text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy.cfg is invalid: {check.stderr or check.stdout}")
        prepare_databases(s)
        started = time.monotonic()
        for name in self.processes:
            if self.pid(name) is None:
                self.start(name)
        for name in self.processes:
            self.wait_healthy(name, timeout_s)
            say(f"cluster: {name} ready ({time.monotonic() - started:.0f} s)")
        say(f"cluster: up: customers at http://127.0.0.1:{s.port} (REST /webhooks/rest/webhook, socket.io), "
            f"balancer stats http://127.0.0.1:{s.stats_port}/, logs in {self.log_dir}")

    def down(self, say=print) -> None:
        for name in reversed(list(self.processes)):
            if self.pid(name) is not None:
                self.stop(name)
                say(f"cluster: {name} stopped")
        say("cluster: down")

    def status(self) -> Dict[str, Dict[str, object]]:
        report: Dict[str, Dict[str, object]] = {}
        for name, process in self.processes.items():
            pid = self.pid(name)
            report[name] = {"pid": pid, "healthy": self.healthy(name) if pid else False,
                            "rss_mib": round(rss_mib(pid)) if pid else None, "health": process.health_url}
        return report

    def send(self, sender: str, message: str, timeout: float = 60) -> List[Dict]:
        """One customer message through the balancer's REST channel."""
        response = requests.post(f"http://127.0.0.1:{self.settings.port}/webhooks/rest/webhook",
                                 json={"sender": sender, "message": message}, timeout=timeout)
        if response.status_code >= 500:  # the balancer's log says which server failed and how
            log = self.tail("balancer")
            raise requests.HTTPError(f"{response.status_code} from the balancer; its log:\n{log}", response=response)
        response.raise_for_status()
        return response.json()


def _reap(pid: int) -> None:
    """Collect a child that exited (a process this interpreter started), so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def check_services(settings: ClusterSettings, say=print) -> None:
    """PostgreSQL and Redis must be there; RabbitMQ should be (without it customers are answered, events wait)."""
    for label, url, default_port in (("tracker store", settings.tracker_store_url, 5432),
                                     ("shop database", settings.database_url, 5432)):
        parts = urlsplit(url)
        if parts.scheme.startswith("postgresql") and not _reachable(parts.hostname or "localhost",
                                                                    parts.port or default_port):
            raise RuntimeError(f"PostgreSQL for the {label} is not reachable at {parts.hostname}:{parts.port}")
    if not _reachable(settings.redis_host, int(settings.redis_port)):
        raise RuntimeError(f"Redis (the lock store) is not reachable at {settings.redis_host}:{settings.redis_port}")
    broker = urlsplit(settings.event_broker_url)
    if settings.event_broker_url and not _reachable(broker.hostname or "localhost", broker.port or 5672):
        say(f"cluster: warning: RabbitMQ not reachable at {broker.hostname}:{broker.port or 5672}; customers are "
            f"answered, events wait in each replica's memory until it is back")


def prepare_databases(settings: ClusterSettings) -> None:
    """Create the PostgreSQL databases if missing, the shop's tables (and demo shop, if configured) and the tracker
    store's, once, before the action servers and replicas start and would race to do it."""
    for url in {settings.tracker_store_url, settings.database_url, settings.events_database_url} - {""}:
        ensure_database(url)
    from rasa.core.tracker_store import SQLTrackerStore

    from shop.db import make_engine
    from shop.settings import get_settings

    make_engine(settings.database_url, seed_demo=get_settings().seed_demo_data).dispose()
    SQLTrackerStore(host=settings.tracker_store_url).engine.dispose()  # its tables, before replicas race for them


def ensure_database(url: str) -> None:
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql") or not parsed.database:
        return
    admin = create_engine(parsed.set(database="postgres"), future=True, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                        {"name": parsed.database}).first()
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    finally:
        admin.dispose()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/cluster.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--replicas", type=int, default=int(_env("CLUSTER_REPLICAS", "2")), help="Rasa replicas")
    parser.add_argument("--actions", type=int, default=int(_env("CLUSTER_ACTION_SERVERS", "2")),
                        help="action servers")
    parser.add_argument("--port", type=int, default=int(_env("CLUSTER_PORT", "5300")),
                        help="the balancer's port for customers; replicas use the next ports, action servers +50")
    parser.add_argument("--workdir", type=Path, default=ClusterSettings.workdir, help="pids, logs, haproxy.cfg")
    args = parser.parse_args(argv)
    if not 1 <= args.replicas <= 40 or not 1 <= args.actions <= 40:
        parser.error("--replicas and --actions must be between 1 and 40")
    shape = {"replicas": args.replicas, "action_servers": args.actions, "port": args.port}
    if args.command != "up" and (args.workdir / "cluster.json").exists():  # what `up` started, whatever the options
        shape = json.loads((args.workdir / "cluster.json").read_text())
    cluster = Cluster(ClusterSettings(workdir=args.workdir, **shape))
    if args.command == "status":
        report = cluster.status()
        for name, row in report.items():
            state = "up" if row["healthy"] else ("starting or unhealthy" if row["pid"] else "down")
            print(f"{name:<12} {state:<22} pid {row['pid'] or '-':<8} rss {row['rss_mib'] or '-'} MiB")
        return 0 if all(row["healthy"] for row in report.values()) else 1
    try:
        if args.command == "up":
            cluster.up()
        else:
            cluster.down()
    except RuntimeError as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
