"""Load benchmark: K simulated customers against the embedded profile, one replica and two replicas, side by side.

Each simulated customer (bench/locustfile.py, played by Locust in its own virtual environment: bench/setup-locust.sh)
plays scripted multi-turn conversations over the REST channel (bench/data/load_conversations.yml: order and refund
status with verification and a database lookup, policy questions the generator answers, greetings), with think time
between turns, on loopback only. Setups, one after the other in one run, each on a fresh database:

  embedded      shop.servers.start_servers: one Rasa process and one action server, SQLite shop and tracker store,
                in-memory lock store, no event broker (endpoints.yml's default profile)
  one-replica   shop.cluster.Cluster: one Rasa replica and one action server behind HAProxy, PostgreSQL (fresh
                databases), Redis lock store, RabbitMQ broker (a queue of its own) and the event consumer
  two-replicas  the same with two replicas and two action servers

Per setup: a warm-up, then each level (10, 30, 60 customers with 1-3 s think time) for a fixed duration, then the
saturation level (customers without think time). Per level: turns/s, p50/p95/p99 turn latency, errors (HTTP errors,
exceptions, empty answers, the bot's apology for a technical problem), events lost (messages answered 2xx against
user events in the tracker store, per sender), for the cluster the consumer's copy of every event, resident memory
and CPU time per process, and what the servers logged. Writes bench/results/load.json.

    python -m bench.load [--setups embedded,one-replica,two-replicas] [--levels 10,30,60] [--duration 60]
                         [--saturation-users 30] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import urlsplit, urlunsplit

import requests
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.common import write_results
from shop.servers import DEFAULT_MODEL, rss_mib
from shop.settings import PROJECT_ROOT

SCRIPTS = Path(__file__).resolve().parent / "data" / "load_conversations.yml"
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
SETUP_LOCUST = Path(__file__).resolve().parent / "setup-locust.sh"
SETUPS = ("embedded", "one-replica", "two-replicas")
SHAPES = {"one-replica": (1, 1), "two-replicas": (2, 2)}  # (Rasa replicas, action servers)
POSTGRES_URL = os.environ.get("LOAD_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RABBITMQ_URL = os.environ.get("LOAD_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_HOST, REDIS_PORT = os.environ.get("LOAD_REDIS_HOST", "127.0.0.1"), os.environ.get("LOAD_REDIS_PORT", "6379")
STARTUP_ESTIMATE_S = {"embedded": 40, "one-replica": 50, "two-replicas": 90}  # for the expected total only
STOP_TIMEOUT_S = 30  # Locust lets a turn in flight at the end finish, up to this long
REQUEST_TIMEOUT_S = 120  # as HAProxy's server timeout
SERVICES = ("postgres", "redis-server", "beam.smp")  # PostgreSQL, Redis, RabbitMQ: their CPU time per level
LOG_PROBLEM = re.compile(r"ERROR|CRITICAL|Traceback|Exception|LockError|timed out|Timeout|too many|refused|"
                         r"\b5\d\d\b|DOWN|WARNING", re.I)
LOG_NOISE = re.compile(r"DeprecationWarning|^\s")  # libraries' import-time warnings and their continuation lines


def say(line: str) -> None:
    print(line, flush=True)


def redact(url: str) -> str:
    """A URL as it may be written down: without its password."""
    if not url or "@" not in url:
        return url
    parts = urlsplit(url)
    user = parts.username or ""
    host = f"{parts.hostname}{f':{parts.port}' if parts.port else ''}"
    return urlunsplit((parts.scheme, f"{user}:***@{host}" if parts.password else f"{user}@{host}", parts.path,
                       parts.query, parts.fragment))


def endpoint_variables() -> List[str]:
    """The ${VARIABLES} endpoints.yml reads, in order: what each setup's environment is recorded by."""
    found = re.findall(r"\$\{(\w+)\}", (PROJECT_ROOT / "endpoints.yml").read_text())
    return list(dict.fromkeys(found))


def endpoints_types() -> Dict[str, Any]:
    endpoints = yaml.safe_load((PROJECT_ROOT / "endpoints.yml").read_text())
    return {part: (endpoints.get(part) or {}).get("type") for part in ("tracker_store", "lock_store", "event_broker")}


# ---- processes: memory and CPU ---------------------------------------------------------------------------------
def _children() -> Dict[int, List[int]]:
    tree: Dict[int, List[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
            tree[int(fields[1])].append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return tree


def _tree(pid: int, children: Dict[int, List[int]]) -> List[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_usage(pids: Dict[str, Optional[int]]) -> Dict[str, Dict[str, float]]:
    """Resident memory (MiB) and CPU time (s) of each named process with its children."""
    children = _children()
    usage = {}
    for name, pid in pids.items():
        if pid is None:
            continue
        members = _tree(pid, children)
        rss = 0.0
        for member in members:
            try:
                value = rss_mib(member)
            except OSError:
                continue
            rss += 0.0 if math.isnan(value) else value
        usage[name] = {"rss_mib": rss, "cpu_s": sum(cpu_seconds(member) for member in members)}
    return usage


def services_cpu() -> Dict[str, float]:
    """CPU time of the machine's PostgreSQL, Redis and RabbitMQ processes (every process of each)."""
    total: Dict[str, float] = defaultdict(float)
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            name = comm.read_text().strip()
        except OSError:
            continue
        if name in SERVICES:
            total[name] += cpu_seconds(int(comm.parent.name))
    return dict(total)


def foreign_processes(ours: set) -> List[str]:
    """Other heavy work on this machine (tests, other Rasa servers, training): what would skew the figures."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        pid = int(cmdline.parent.name)
        if pid in ours or pid == os.getpid():
            continue
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if re.search(r"pytest|rasa run|rasa train|-m bench\.|locust", command):
            found.append(command[:160])
    return found


class Sampler(threading.Thread):
    """Samples every process's memory during a level: the peak, and the value at its end."""

    def __init__(self, pids: Callable[[], Dict[str, Optional[int]]], every_s: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.pids, self.every_s = pids, every_s
        self.peak: Dict[str, float] = defaultdict(float)
        self.last: Dict[str, Dict[str, float]] = {}  # a process gone by the end (Locust) keeps its last sample
        self.foreign: set = set()
        self.load_average_start = os.getloadavg()[0]
        self.stopping = threading.Event()
        self.start_usage = tree_usage(pids())
        self.start_services = services_cpu()
        self.started = time.monotonic()

    def run(self) -> None:
        while not self.stopping.wait(self.every_s):
            pids = self.pids()
            for name, usage in tree_usage(pids).items():
                self.peak[name] = max(self.peak[name], usage["rss_mib"])
                self.last[name] = usage
            children = _children()
            ours = {member for pid in pids.values() if pid for member in _tree(pid, children)}
            self.foreign.update(foreign_processes(ours))

    def finish(self) -> Dict[str, Any]:
        self.stopping.set()
        self.join()
        wall = time.monotonic() - self.started
        end = {**self.last, **tree_usage(self.pids())}
        services = services_cpu()
        processes = {}
        for name, usage in end.items():
            cpu = usage["cpu_s"] - self.start_usage.get(name, {}).get("cpu_s", 0.0)
            processes[name] = {"rss_mib": round(usage["rss_mib"]),
                               "rss_peak_mib": round(max(self.peak.get(name, 0.0), usage["rss_mib"])),
                               "cpu_s": round(cpu, 1), "cpu_cores": round(cpu / wall, 2)}
        return {"processes": processes, "wall_s": round(wall, 1), "other_work_seen": sorted(self.foreign),
                "load_average": [round(self.load_average_start, 2), round(os.getloadavg()[0], 2)],
                "services_cpu_s": {name: round(value - self.start_services.get(name, 0.0), 1)
                                   for name, value in services.items()}}


# ---- the system under test ---------------------------------------------------------------------------------------
@dataclass
class Target:
    """One running setup: where customers reach it, its processes and logs, where its events are stored."""

    name: str
    url: str
    pids: Callable[[], Dict[str, Optional[int]]]
    logs: Dict[str, Path]
    tracker_store_url: str
    consumer_url: Optional[str]  # the event consumer's database (conversation_events), None without a broker
    config: Dict[str, Any]
    stop: Callable[[], None]
    balancer_stats: Optional[Callable[[], Dict[str, Dict[str, int]]]] = None
    startup_s: float = 0.0
    log_offsets: Dict[str, int] = field(default_factory=dict)


def start_embedded(run_dir: Path) -> Target:
    from shop.db import make_engine
    from shop.servers import start_servers

    work = run_dir / "embedded"
    work.mkdir(parents=True)
    database_url = f"sqlite:///{work / 'shop.db'}"
    make_engine(database_url, seed_demo=True).dispose()
    tracker_store_url = f"sqlite:///{work / 'tracker.db'}"  # as scripts/env.sh's default
    started = time.monotonic()
    servers = start_servers(work, database_url, tracker_store_url=tracker_store_url)
    config = {"processes": {"rasa": 1, "actions": 1}, "model": servers.commands["rasa"][
        servers.commands["rasa"].index("--model") + 1], "database_url": redact(database_url),
              "environment": {name: redact(servers.env.get(name, "")) for name in endpoint_variables()},
              "commands": {name: " ".join(command[1:]) for name, command in servers.commands.items()}}
    return Target("embedded", servers.rasa_url,
                  lambda: {name: process.pid if process.poll() is None else None
                           for name, process in servers.processes.items()},
                  dict(servers.logs), tracker_store_url, None, config, servers.stop,
                  startup_s=time.monotonic() - started)


def free_port_block(width: int = 100) -> int:
    """A base port whose cluster ports (base .. base+99) are free now."""
    import socket

    for base in range(41000, 60000, width):
        try:
            for port in (base, base + 1, base + 2, base + 50, base + 51, base + 52, base + 99):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free block of ports")


def haproxy_counters(stats_port: int) -> Dict[str, Dict[str, int]]:
    """{backend/server: counters} from HAProxy's stats CSV: requests, 5xx answers, retries, redispatches, queue."""
    try:
        lines = requests.get(f"http://127.0.0.1:{stats_port}/;csv", timeout=5).text.splitlines()
    except requests.RequestException:
        return {}
    header = lines[0].lstrip("# ").split(",")
    counters = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("svname") == "FRONTEND" or row.get("pxname") == "stats":
            continue
        counters[f"{row['pxname']}/{row['svname']}"] = {
            key: int(row.get(column) or 0) for key, column in (("requests", "stot"), ("http_5xx", "hrsp_5xx"),
                                                               ("http_4xx", "hrsp_4xx"), ("retries", "wretr"),
                                                               ("redispatches", "wredis"), ("queue_max", "qmax"),
                                                               ("connection_errors", "econ"),
                                                               ("response_errors", "eresp"))}
    return counters


def start_cluster(name: str, run_dir: Path, run_id: str) -> Target:
    from shop.cluster import Cluster, ClusterSettings

    replicas, action_servers = SHAPES[name]
    server = make_url(POSTGRES_URL)
    suffix = f"{run_id}_{name.replace('-', '_')}"
    databases = {kind: f"loadbench_{kind}_{suffix}" for kind in ("conversations", "shop")}
    settings = ClusterSettings(
        replicas=replicas, action_servers=action_servers, port=free_port_block(),
        workdir=run_dir / name / "cluster", model=DEFAULT_MODEL,
        tracker_store_url=str(server.set(database=databases["conversations"]).render_as_string(hide_password=False)),
        database_url=str(server.set(database=databases["shop"]).render_as_string(hide_password=False)),
        events_database_url="", redis_host=REDIS_HOST, redis_port=REDIS_PORT, redis_password="",
        event_broker_url=RABBITMQ_URL, event_queue=f"loadbench_events_{suffix}")
    cluster = Cluster(settings)

    def stop() -> None:
        try:
            cluster.down(say=lambda line: None)
        finally:
            drop_databases(list(databases.values()))
            deleted = subprocess.run(["rabbitmqctl", "-q", "delete_queue", settings.event_queue],
                                     capture_output=True, text=True)
            say(f"  {name}: stopped; dropped databases {', '.join(databases.values())}; queue "
                f"{settings.event_queue} {'deleted' if deleted.returncode == 0 else 'NOT deleted: ' + deleted.stderr}")

    started = time.monotonic()
    try:
        cluster.up(say=lambda line: say(f"  {line}"))
    except BaseException:
        stop()
        raise
    environment = cluster.environment()
    cfg = (settings.workdir / "haproxy.cfg").read_text()
    backends = dict(re.findall(r"^backend (\S+).*\n\s+balance (\S+)", cfg, re.M))
    config = {"processes": {"rasa": replicas, "actions": action_servers, "consumer": 1, "balancer": 1},
              "model": str(settings.model), "database_url": redact(settings.database_url),
              "environment": {var: redact(environment.get(var, "")) for var in endpoint_variables()},
              "events_database_url": redact(environment["EVENTS_DATABASE_URL"]),
              "balancer": {"haproxy": shutil.which("haproxy") or "", "balance": backends},
              "commands": {process: " ".join(p.command[1:]) for process, p in cluster.processes.items()}}
    return Target(name, f"http://127.0.0.1:{settings.port}", lambda: {n: cluster.pid(n) for n in cluster.processes},
                  {n: cluster.log_dir / f"{n}.log" for n in cluster.processes}, settings.tracker_store_url,
                  environment["EVENTS_DATABASE_URL"], config, stop,
                  balancer_stats=lambda: haproxy_counters(settings.stats_port), startup_s=time.monotonic() - started)


def drop_databases(names: List[str]) -> None:
    admin = create_engine(POSTGRES_URL, future=True, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            for database in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def warm_up(target: Target, apology: str, replicas: int) -> Dict[str, Any]:
    """Before measuring: every replica and action server answers an order lookup and a policy question once."""
    turns = ["where is my order?", "10002", "alice@example.com", "how long does standard shipping usually take?"]
    problems, started = [], time.monotonic()
    for number in range(2 * replicas):  # round robin: consecutive turns reach every replica
        sender = f"warmup-{target.name}-{number}-{uuid.uuid4().hex[:6]}"
        for message in turns:
            try:
                response = requests.post(f"{target.url}/webhooks/rest/webhook",
                                         json={"sender": sender, "message": message}, timeout=REQUEST_TIMEOUT_S)
                texts = " ".join(reply.get("text") or "" for reply in response.json()) if response.ok else ""
                if not response.ok or not texts or apology in texts:
                    problems.append(f"{message!r}: HTTP {response.status_code} {response.text[:200]}")
                elif message.endswith("example.com") and "Order 10002 is" not in texts:
                    problems.append(f"{message!r}: unexpected reply {texts[:200]}")
            except requests.RequestException as exc:
                problems.append(f"{message!r}: {exc!r}")
    for problem in problems:
        say(f"  warm-up problem: {problem}")
    return {"turns": 2 * replicas * len(turns), "s": round(time.monotonic() - started, 1), "problems": problems}


# ---- one level ---------------------------------------------------------------------------------------------------
def percentile(ordered: List[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def latency_ms(values: List[float]) -> Dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    return {"n": len(ordered), "p50": percentile(ordered, 0.50), "p95": percentile(ordered, 0.95),
            "p99": percentile(ordered, 0.99), "mean": round(sum(ordered) / len(ordered), 1), "max": ordered[-1]}


def read_jsonl(path: Path) -> List[Dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut off when Locust was stopped
    return records


def locust_aggregate(json_prefix: Path) -> Dict[str, Any]:
    """Locust's own figures (its final stats, --json-file), as a cross-check of ours: its latency histogram is
    rounded (to 10 ms above 100 ms, to 100 ms above 1 s)."""
    path = Path(f"{json_prefix}.json")
    if not path.exists():
        return {}
    entries = json.loads(path.read_text())
    histogram: Counter = Counter()
    for entry in entries:
        histogram.update({float(ms): count for ms, count in (entry.get("response_times") or {}).items()})
    total = sum(histogram.values())

    def pick(q: float) -> Optional[float]:
        seen = 0
        for ms in sorted(histogram):
            seen += histogram[ms]
            if seen >= q * total:
                return ms
        return None

    return {"requests": sum(entry["num_requests"] for entry in entries),
            "failures": sum(entry["num_failures"] for entry in entries),
            "p50_ms": pick(0.50), "p95_ms": pick(0.95), "p99_ms": pick(0.99)}


def new_log_lines(target: Target) -> Dict[str, Dict[str, Any]]:
    """What each process logged since the last call that looks like a problem: counts and distinct samples."""
    found = {}
    for name, path in target.logs.items():
        try:
            with path.open("rb") as log:
                log.seek(target.log_offsets.get(name, 0))
                chunk = log.read()
                target.log_offsets[name] = log.tell()
        except OSError:
            continue
        lines = [line for line in chunk.decode(errors="replace").splitlines()
                 if LOG_PROBLEM.search(line) and not LOG_NOISE.search(line)]
        if not lines:
            continue
        kinds = Counter("error" if re.search(r"ERROR|CRITICAL|Traceback|Exception", line) else "warning"
                        for line in lines)
        samples: Dict[str, str] = {}
        for line in lines:
            key = re.sub(r"\d+", "N", line)[:120]
            if key not in samples and len(samples) < 8:
                samples[key] = line.strip()[:400]
        found[name] = {**kinds, "samples": list(samples.values())}
    return found


def tracker_counts(url: str, prefix: str) -> Dict[str, Dict[str, int]]:
    """Per sender of this level: user events and all events in the tracker store."""
    engine = create_engine(url, future=True)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT sender_id, sum(CASE WHEN type_name = 'user' THEN 1 ELSE 0 END) AS users, count(*) AS events "
                "FROM events WHERE sender_id LIKE :prefix GROUP BY sender_id"), {"prefix": f"{prefix}-%"}).all()
    finally:
        engine.dispose()
    return {row.sender_id: {"user": int(row.users), "events": int(row.events)} for row in rows}


def consumer_count(url: str, prefix: str) -> int:
    engine = create_engine(url, future=True)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM conversation_events WHERE sender_id LIKE :p"),
                                          {"p": f"{prefix}-%"}).scalar_one())
    except Exception:  # noqa: BLE001 - the table may not exist yet
        return 0
    finally:
        engine.dispose()


def lock_keys_left(prefix: str) -> Optional[int]:
    """Conversation locks of this level still in Redis (db 1, endpoints.yml) after every turn was answered."""
    try:
        import redis

        return len(redis.Redis(host=REDIS_HOST, port=int(REDIS_PORT), db=1).keys(f"lock:{prefix}-*"))
    except Exception:  # noqa: BLE001 - no Redis: nothing to count
        return None


def events_check(target: Target, prefix: str, records: List[Dict[str, Any]], consumer_wait_s: float) -> Dict:
    """Messages answered 2xx (and messages sent) per sender against the user events the tracker store holds."""
    answered: Counter = Counter()
    sent: Counter = Counter()
    for record in records:
        if record["event"] == "send":
            sent[record["sender"]] += 1
        elif record["event"] == "reply" and record.get("status") and 200 <= record["status"] < 300 \
                and record.get("error") not in ("apology", "empty reply"):
            answered[record["sender"]] += 1
    time.sleep(1)
    stored = tracker_counts(target.tracker_store_url, prefix)
    lost_by_sender = {sender: count - stored.get(sender, {}).get("user", 0) for sender, count in answered.items()
                      if count > stored.get(sender, {}).get("user", 0)}
    extra_by_sender = {sender: counts["user"] - sent.get(sender, 0) for sender, counts in stored.items()
                       if counts["user"] > sent.get(sender, 0)}
    result: Dict[str, Any] = {
        "senders": len(sent), "sent": sum(sent.values()), "answered_2xx": sum(answered.values()),
        "stored_user_events": sum(counts["user"] for counts in stored.values()),
        "lost": sum(lost_by_sender.values()), "lost_senders": dict(list(lost_by_sender.items())[:10]),
        "stored_beyond_sent": sum(extra_by_sender.values()), "stored_beyond_sent_senders":
            dict(list(extra_by_sender.items())[:10]),
        "tracker_events": sum(counts["events"] for counts in stored.values()),
    }
    if target.consumer_url:
        started, consumed = time.monotonic(), 0
        while True:
            consumed = consumer_count(target.consumer_url, prefix)
            if consumed >= result["tracker_events"] or time.monotonic() - started > consumer_wait_s:
                break
            time.sleep(1)
        result.update({"consumer_events": consumed, "consumer_missing": result["tracker_events"] - consumed,
                       "consumer_caught_up_s": round(time.monotonic() - started, 1)})
        result["lock_keys_left"] = lock_keys_left(prefix)
    return result


def summarise(records: List[Dict[str, Any]], duration_s: float) -> Dict[str, Any]:
    sends = [record for record in records if record["event"] == "send"]
    replies = [record for record in records if record["event"] == "reply"]
    if not sends:
        return {"turns": 0}
    t0 = min(record["t"] for record in sends)
    end = t0 + duration_s
    ok = [record for record in replies if record.get("error") is None]
    in_window = [record for record in ok if record["t"] + record["ms"] / 1000 <= end]
    errors = Counter(record["error"].split(":")[0] if record["error"].startswith("exception") else record["error"]
                     for record in replies if record.get("error"))
    samples = []
    for record in replies:
        if record.get("error") and len(samples) < 8:
            samples.append({key: record.get(key) for key in ("sender", "conversation", "turn", "status", "error",
                                                             "ms", "body")})
    by_kind = defaultdict(list)
    for record in replies:
        by_kind[record["kind"]].append(record["ms"])
    unexpected = [record for record in replies if record.get("unexpected")]
    return {
        "turns": len(replies), "turns_ok": len(ok), "turns_in_window": len(in_window),
        "turns_per_s": round(len(in_window) / duration_s, 2),
        "sent_per_s": round(sum(1 for record in sends if record["t"] <= end) / duration_s, 2),
        "cut_off": len(sends) - len(replies),
        "latency_ms": latency_ms([record["ms"] for record in replies]),
        "latency_ms_by_kind": {kind: latency_ms(values) for kind, values in sorted(by_kind.items())},
        "turn_share_by_kind": {kind: round(len(values) / len(replies), 3) for kind, values in sorted(by_kind.items())},
        "errors": sum(errors.values()), "errors_by_kind": dict(errors), "error_samples": samples,
        "conversations_finished": sum(1 for record in replies if record.get("last")),
        "unexpected_replies": len(unexpected),
        "unexpected_samples": [{key: record.get(key) for key in ("conversation", "turn", "reply")}
                               for record in unexpected[:5]],
    }


def run_level(target: Target, *, locust: str, label: str, users: int, think_s: tuple, duration_s: int, seed: int,
              run_dir: Path, run_id: str, scripts_json: Path, apology: str, consumer_wait_s: float) -> Dict:
    prefix = f"load-{run_id}-{target.name}-{label}"
    level_dir = run_dir / target.name / label
    level_dir.mkdir(parents=True, exist_ok=True)
    jsonl, stats_prefix = level_dir / "turns.jsonl", level_dir / "locust-stats"
    command = [locust, "-f", str(LOCUSTFILE), "--headless", "-u", str(users), "-r", str(users),
               "-t", f"{duration_s}s", "--stop-timeout", str(STOP_TIMEOUT_S), "--host", target.url,
               "--json-file", str(stats_prefix), "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0"]
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update({"LOAD_SCRIPTS": str(scripts_json), "LOAD_PREFIX": prefix, "LOAD_LOG": str(jsonl),
                "LOAD_THINK_MIN_S": str(think_s[0]), "LOAD_THINK_MAX_S": str(think_s[1]), "LOAD_SEED": str(seed),
                "LOAD_APOLOGY": apology, "LOAD_TIMEOUT_S": str(REQUEST_TIMEOUT_S)})
    counters_before = target.balancer_stats() if target.balancer_stats else {}
    new_log_lines(target)  # what was logged before this level is not this level's
    say(f"  [{target.name}] {label}: {users} customers, think time {think_s[0]}-{think_s[1]} s, {duration_s} s ...")
    started = time.monotonic()
    with (level_dir / "locust.log").open("w") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    locust_pid = process.pid
    sampler = Sampler(lambda: {**target.pids(), "locust": locust_pid if process.poll() is None else None})
    sampler.start()
    try:
        while process.poll() is None:
            time.sleep(1)
            elapsed = time.monotonic() - started
            if int(elapsed) % 15 == 0 and elapsed > 1:
                replies = sum(1 for record in read_jsonl(jsonl) if record["event"] == "reply")
                say(f"    {elapsed:4.0f} s: {replies} turns answered")
            if elapsed > duration_s + STOP_TIMEOUT_S + 60:
                process.kill()
                say("    Locust did not stop in time: killed")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    usage = sampler.finish()
    records = read_jsonl(jsonl)
    result = {"users": users, "think_s": list(think_s), "duration_s": duration_s, "seed": seed, "prefix": prefix,
              "locust_exit": process.returncode, "wall_s": round(time.monotonic() - started, 1),
              **summarise(records, duration_s), "locust_stats": locust_aggregate(stats_prefix)}
    result["events"] = events_check(target, prefix, records, consumer_wait_s)
    result["usage"] = usage
    if target.balancer_stats:
        after = target.balancer_stats()
        result["balancer"] = {name: {key: value - counters_before.get(name, {}).get(key, 0) if key != "queue_max"
                                     else value for key, value in counts.items()} for name, counts in after.items()}
    result["logged_problems"] = new_log_lines(target)
    lat = result.get("latency_ms", {})
    events = result["events"]
    say(f"    -> {result.get('turns_per_s')} turns/s, p50/p95/p99 {lat.get('p50')}/{lat.get('p95')}/{lat.get('p99')} "
        f"ms, errors {result.get('errors')}, events lost {events['lost']}"
        + (f", consumer missing {events['consumer_missing']}" if "consumer_missing" in events else "")
        + (f", logged problems: {', '.join(result['logged_problems'])}" if result["logged_problems"] else "")
        + (f"; OTHER WORK RAN MEANWHILE: {usage['other_work_seen']}" if usage["other_work_seen"] else ""))
    return result


# ---- the run -----------------------------------------------------------------------------------------------------
def locust_executable() -> tuple:
    path = subprocess.run(["bash", str(SETUP_LOCUST)], capture_output=True, text=True, check=True).stdout.strip()
    version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.split(" from ")[0]
    return path, version.strip()


def ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    if not numerator or not denominator or math.isnan(numerator) or math.isnan(denominator):
        return None
    return round(numerator / denominator, 2)


def derive(setups: Dict[str, Dict[str, Any]], cpus: int) -> Dict[str, Any]:
    saturation = {name: s["saturation"]["turns_per_s"] for name, s in setups.items()
                  if s.get("saturation", {}).get("turns_per_s") is not None}
    derived: Dict[str, Any] = {
        "saturation_turns_per_s": saturation,
        "saturation_turns_per_s_per_cpu": {name: round(value / cpus, 2) for name, value in saturation.items()},
        "cpus": cpus,
    }
    if "embedded" in setups:
        base = setups["embedded"]
        for other in ("one-replica", "two-replicas"):
            if other not in setups:
                continue
            derived[f"{other}/embedded"] = {
                "saturation_turns_per_s": ratio(saturation.get(other), saturation.get("embedded")),
                "p95_by_users": {level: ratio(result.get("latency_ms", {}).get("p95"),
                                              base["levels"].get(level, {}).get("latency_ms", {}).get("p95"))
                                 for level, result in setups[other]["levels"].items()},
                "saturation_p95": ratio(setups[other].get("saturation", {}).get("latency_ms", {}).get("p95"),
                                        base.get("saturation", {}).get("latency_ms", {}).get("p95")),
            }
    return derived


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", default=",".join(SETUPS), help="comma-separated, of: " + ", ".join(SETUPS))
    parser.add_argument("--levels", default="10,30,60", help="simulated customers with think time, per level")
    parser.add_argument("--duration", type=int, default=60, help="seconds per level")
    parser.add_argument("--saturation-users", type=int, default=30,
                        help="customers without think time for the saturation level (0: none)")
    parser.add_argument("--think", default="1-3", help="think time between turns, min-max seconds")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--consumer-wait", type=float, default=30, help="seconds the event consumer may lag")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 15 s per level, levels 5 and 10")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.levels = min(args.duration, 15), "5,10"
        args.saturation_users = min(args.saturation_users, 10)
    setups = [name.strip() for name in args.setups.split(",") if name.strip()]
    unknown = set(setups) - set(SETUPS)
    if unknown:
        parser.error(f"unknown setup(s): {', '.join(sorted(unknown))}")
    levels = [int(level) for level in args.levels.split(",") if level.strip()]
    think = tuple(float(value) for value in args.think.split("-"))
    if not DEFAULT_MODEL.exists():
        raise SystemExit(f"no trained model at {DEFAULT_MODEL}: run scripts/train.sh")

    from actions.messages import render

    apology = render("technical_problem")
    locust, locust_version = locust_executable()
    run_id = uuid.uuid4().hex[:6]
    run_dir = PROJECT_ROOT / "var" / "load-bench" / run_id
    run_dir.mkdir(parents=True)
    scripts = yaml.safe_load(SCRIPTS.read_text(encoding="utf-8"))["conversations"]
    scripts_json = run_dir / "conversations.json"
    scripts_json.write_text(json.dumps(scripts))
    per_level = args.duration + 12 + (args.consumer_wait / 6)
    n_levels = len(levels) + (1 if args.saturation_users else 0)
    expected = sum(STARTUP_ESTIMATE_S[name] + 15 + n_levels * per_level + 10 for name in setups)
    say(f"load benchmark {run_id}: setups {', '.join(setups)}; levels {levels} customers with {think[0]}-{think[1]} s "
        f"think time" + (f", saturation {args.saturation_users} customers without" if args.saturation_users else "")
        + f"; {args.duration} s each; {locust_version}; logs in {run_dir}")
    say(f"expected total: about {expected / 60:.0f} min")
    other_work = foreign_processes(set())
    if other_work:
        say("warning: other work is running; on a small machine it skews every figure: " + "; ".join(other_work))
    wall_started = time.monotonic()
    results: Dict[str, Dict[str, Any]] = {}
    for name in setups:
        say(f"== {name}: starting ({time.monotonic() - wall_started:.0f} s into the run)")
        target = start_embedded(run_dir) if name == "embedded" else start_cluster(name, run_dir, run_id)
        try:
            say(f"  {name}: ready in {target.startup_s:.0f} s at {target.url}; warming up")
            replicas = SHAPES.get(name, (1, 1))[0]
            setup_result: Dict[str, Any] = {"config": target.config, "startup_s": round(target.startup_s, 1),
                                            "warm_up": warm_up(target, apology, replicas), "levels": {}}
            setup_result["startup_logged_problems"] = new_log_lines(target)
            common = {"locust": locust, "duration_s": args.duration, "run_dir": run_dir, "run_id": run_id,
                      "scripts_json": scripts_json, "apology": apology, "consumer_wait_s": args.consumer_wait}
            for index, users in enumerate(levels):
                setup_result["levels"][str(users)] = run_level(target, label=f"u{users}", users=users, think_s=think,
                                                               seed=args.seed + index, **common)
            if args.saturation_users:
                setup_result["saturation"] = run_level(target, label=f"sat{args.saturation_users}",
                                                       users=args.saturation_users, think_s=(0, 0),
                                                       seed=args.seed + 100, **common)
            results[name] = setup_result
        finally:
            target.stop()
    wall_s = time.monotonic() - wall_started
    say(f"done in {wall_s / 60:.1f} min")
    command = "python -m bench.load " + " ".join(sys.argv[1:])
    write_results("load", {
        "command": command.strip(), "wall_s": round(wall_s), "other_work_at_start": other_work,
        "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        "configuration": {
            "setups": setups, "levels_users": levels, "think_s": list(think), "duration_s": args.duration,
            "saturation_users": args.saturation_users, "seed": args.seed, "locust": locust_version,
            "locust_options": {"spawn_rate": "= users", "stop_timeout_s": STOP_TIMEOUT_S,
                               "request_timeout_s": REQUEST_TIMEOUT_S},
            "conversations": {"file": str(SCRIPTS.relative_to(PROJECT_ROOT)), "count": len(scripts),
                              "by_kind": dict(Counter(script["kind"] for script in scripts))},
            "endpoints_yml": endpoints_types(), "apology": apology,
            "services": {"postgresql": redact(POSTGRES_URL), "rabbitmq": redact(RABBITMQ_URL),
                         "redis": f"{REDIS_HOST}:{REDIS_PORT}"},
        },
        "setups": results,
        "derived": derive(results, os.cpu_count() or 1),
    })


if __name__ == "__main__":
    main()
