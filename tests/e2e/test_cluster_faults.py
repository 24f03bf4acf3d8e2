"""The scale-out profile under faults: two Rasa replicas and two action servers behind HAProxy (shop/cluster.py,
what scripts/cluster.sh runs), conversations in PostgreSQL, the lock store in Redis, events through RabbitMQ to the
consumer, started and stopped by scripts/cluster.sh itself. Each test breaks one thing a production cluster loses
sooner or later and checks what a customer sees.

Needs the machine's PostgreSQL, Redis and RabbitMQ (.ci/run starts them) and HAProxy (scripts/setup-balancer.sh);
without them: skipped with the reason, or failed when REQUIRE_SERVICES=1 (CI). The PostgreSQL and RabbitMQ tests
restart the machine's servers (pg_ctlcluster, rabbitmqctl), as an outage would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, List

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from actions.messages import render
from shop.cluster import HAPROXY, Cluster, ClusterSettings
from shop.settings import PROJECT_ROOT
from tests.conftest import POSTGRES_URL, RABBITMQ_URL, REDIS_URL, _port_open, require_service

pytestmark = pytest.mark.e2e

APOLOGY = render("technical_problem")


def free_port_block(width: int = 100) -> int:
    """A base port whose next `width` ports are free now (the cluster uses base .. base+99)."""
    for base in range(21000, 60000, width):
        try:
            for port in (base, base + 1, base + 2, base + 50, base + 51, base + 52, base + 99):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free block of ports")


def texts(replies: List[dict]) -> str:
    return "\n".join(reply.get("text", "") for reply in replies)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, trained_model: Path) -> Iterator[Cluster]:
    for name, url, port in (("PostgreSQL", POSTGRES_URL, 5432), ("Redis", REDIS_URL, 6379),
                            ("RabbitMQ", RABBITMQ_URL, 5672)):
        require_service(name, _port_open(url, port), url)
    require_service("HAProxy", Path(HAPROXY).exists(), HAPROXY)
    suffix = uuid.uuid4().hex[:8]
    server = make_url(POSTGRES_URL)
    databases = {kind: f"shoptest_{kind}_{suffix}" for kind in ("conversations", "shop")}
    settings = ClusterSettings(
        replicas=2, action_servers=2, port=free_port_block(), workdir=tmp_path_factory.mktemp("cluster"),
        model=trained_model, tracker_store_url=str(server.set(database=databases["conversations"])),
        database_url=str(server.set(database=databases["shop"])), events_database_url="",
        redis_host="127.0.0.1", redis_port="6379", redis_password="", event_broker_url=RABBITMQ_URL,
        event_queue=f"test_events_{suffix}",
    )
    running = Cluster(settings)
    script = [str(PROJECT_ROOT / "scripts" / "cluster.sh")]
    where = ["--workdir", str(settings.workdir)]
    env = {**os.environ, "SHOP_MODEL": str(trained_model), "TRACKER_STORE_URL": settings.tracker_store_url,
           "DATABASE_URL": settings.database_url, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6379",
           "EVENT_BROKER_URL": RABBITMQ_URL, "EVENT_BROKER_QUEUE": settings.event_queue}
    try:
        up = subprocess.run([*script, "up", "--replicas", "2", "--actions", "2", "--port", str(settings.port), *where],
                            env=env, capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        status = subprocess.run([*script, "status", *where], env=env, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0 and status.stdout.count(" up ") == 6, status.stdout  # 2+2, consumer, balancer
        yield running
    finally:
        subprocess.run([*script, "down", *where], env=env, capture_output=True, timeout=120)
        assert all(running.pid(name) is None for name in running.processes), "scripts/cluster.sh down left some"
        admin = create_engine(POSTGRES_URL, future=True, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            for database in databases.values():
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
        subprocess.run(["rabbitmqctl", "-q", "delete_queue", settings.event_queue], capture_output=True)


@pytest.fixture(scope="module")
def conversations(cluster) -> Iterator[Engine]:
    engine = create_engine(cluster.settings.tracker_store_url, future=True, pool_pre_ping=True)
    yield engine
    engine.dispose()


def stored_events(engine: Engine, sender: str) -> List[dict]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, type_name, timestamp, data FROM events WHERE sender_id = :s "
                                       "ORDER BY id"), {"s": sender}).all()
    return [{"id": row.id, "type": row.type_name, "timestamp": row.timestamp, **json.loads(row.data)}
            for row in rows]


def wait_for(condition: Callable[[], bool], timeout_s: float = 60, every_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every_s)


def start_return(cluster: Cluster, sender: str, order: str, email: str) -> str:
    """A customer verified for `order` who is asked which item to return (or why); returns what to answer next."""
    cluster.send(sender, "i want to return an item")
    cluster.send(sender, f"order no. {order}")
    replies = cluster.send(sender, email)
    buttons = [button for reply in replies for button in reply.get("buttons", [])]
    if "Why are you returning it" in texts(replies):
        return "it arrived broken"
    assert buttons, texts(replies)
    return buttons[0]["payload"]  # the first item


def finish_return(cluster: Cluster, sender: str, answer: str) -> str:
    """Answers the return form to the end from `answer` (start_return's); returns the confirmation."""
    if answer != "it arrived broken":
        assert "Why are you returning it" in texts(cluster.send(sender, answer))
    assert "refunded" in texts(cluster.send(sender, "it arrived broken"))
    return texts(cluster.send(sender, "store credit please"))


def test_the_balancer_spreads_customers_and_every_event_reaches_the_consumer(cluster, conversations):
    stats = requests.get(f"http://127.0.0.1:{cluster.settings.stats_port}/;csv", timeout=5).text
    before = {line.split(",")[1]: int(line.split(",")[7]) for line in stats.splitlines()
              if line.startswith("rasa_rest,rasa-")}
    senders = [f"spread-{uuid.uuid4().hex[:8]}" for _ in range(4)]
    for sender in senders:
        assert "e.g. 10001" in texts(cluster.send(sender, "where is my order?"))
        assert "email" in texts(cluster.send(sender, "10002"))
    stats = requests.get(f"http://127.0.0.1:{cluster.settings.stats_port}/;csv", timeout=5).text
    after = {line.split(",")[1]: int(line.split(",")[7]) for line in stats.splitlines()
             if line.startswith("rasa_rest,rasa-")}
    assert all(after[name] > before[name] for name in before), "both replicas answered customers"

    consumed = create_engine(cluster.settings.tracker_store_url, future=True)

    def consumer_has_everything() -> bool:
        with consumed.connect() as connection:
            count = connection.execute(text(
                "SELECT count(*) FROM conversation_events WHERE sender_id = ANY(:s)"), {"s": senders}).scalar_one()
        return count == sum(len(stored_events(conversations, sender)) for sender in senders)

    try:
        wait_for(consumer_has_everything, timeout_s=30)
    finally:
        consumed.dispose()


def test_a_replica_killed_mid_conversation_the_other_goes_on_with_the_whole_history(cluster):
    sender = f"failover-{uuid.uuid4().hex[:8]}"
    answer = start_return(cluster, sender, "10008", "dan@example.com")
    cluster.stop("rasa-1", signal.SIGKILL)
    try:
        confirmation = finish_return(cluster, sender, answer)  # every turn now answered by rasa-2
        assert "Return R-" in confirmation and "Electric kettle" in confirmation  # it knew the verified order
    finally:
        cluster.start("rasa-1")
        cluster.wait_healthy("rasa-1")


def test_messages_of_one_conversation_on_two_replicas_at_once_are_stored_once_in_order(cluster, conversations):
    sender = f"concurrent-{uuid.uuid4().hex[:8]}"
    messages = ["where is my order?", "hello", "what is your returns policy?", "thanks"]
    replicas = [f"http://127.0.0.1:{cluster.settings.rasa_port(n)}/webhooks/rest/webhook" for n in (1, 2)]

    def post(index: int) -> requests.Response:
        return requests.post(replicas[index % 2], json={"sender": sender, "message": messages[index]}, timeout=120)

    with ThreadPoolExecutor(max_workers=len(messages)) as pool:
        responses = list(pool.map(post, range(len(messages))))
    assert [response.status_code for response in responses] == [200] * len(messages)

    events = stored_events(conversations, sender)
    users = [event for event in events if event["type"] == "user"]
    assert sorted(event["text"] for event in users) == sorted(messages)  # each message stored once
    timestamps = [event["timestamp"] for event in events]
    assert timestamps == sorted(timestamps)  # in the order they happened
    # one message handled at a time: each message's turn ends with action_listen before the next message
    for previous, following in zip(users, users[1:], strict=False):
        between = [event for event in events if previous["id"] < event["id"] < following["id"]]
        assert between and between[-1].get("name") == "action_listen", [event.get("name") for event in between]
    duplicates = {json.dumps({k: v for k, v in event.items() if k != "id"}, sort_keys=True) for event in events}
    assert len(duplicates) == len(events)


def test_an_action_server_killed_mid_conversation_is_not_noticed(cluster):
    sender = f"actions-{uuid.uuid4().hex[:8]}"
    answer = start_return(cluster, sender, "10001", "alice@example.com")
    cluster.stop("actions-1", signal.SIGKILL)
    try:
        confirmation = finish_return(cluster, sender, answer)  # the balancer sends every call to actions-2
        assert "Return R-" in confirmation and APOLOGY not in confirmation
    finally:
        cluster.start("actions-1")
        cluster.wait_healthy("actions-1")


def pg_cluster() -> List[str]:
    versions = sorted(Path("/etc/postgresql").glob("*/main")) if Path("/etc/postgresql").exists() else []
    if not versions or shutil.which("pg_ctlcluster") is None or not POSTGRES_URL.startswith(
            "postgresql://postgres@127.0.0.1"):
        pytest.skip("needs the machine's own PostgreSQL cluster (pg_ctlcluster) to restart it")
    return [versions[-1].parent.name, "main"]


def test_postgresql_restarted_turns_fail_politely_and_the_service_recovers_by_itself(cluster):
    version_and_name = pg_cluster()
    sender = f"pg-outage-{uuid.uuid4().hex[:8]}"
    answer = start_return(cluster, sender, "10022", "dan@example.com")
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *version_and_name, "stop", "-m", "fast"],
                   check=True, capture_output=True)
    try:
        during = requests.post(f"http://127.0.0.1:{cluster.settings.port}/webhooks/rest/webhook",
                               json={"sender": sender, "message": answer}, timeout=60)
        assert during.status_code == 200 and APOLOGY in texts(during.json())
    finally:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *version_and_name, "start"], check=True,
                       capture_output=True)
    wait_for(lambda: _port_open(POSTGRES_URL, 5432), timeout_s=30)

    def answered() -> bool:
        return APOLOGY not in texts(cluster.send(sender, answer))

    wait_for(answered, timeout_s=30, every_s=1)  # no restart of Rasa: the next turns work again
    if answer != "it arrived broken":
        cluster.send(sender, "it arrived broken")
    assert "Return R-" in texts(cluster.send(sender, "store credit please"))


def test_the_broker_stopped_customers_are_still_answered_and_the_events_arrive_later(cluster, conversations):
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("needs the machine's own RabbitMQ (rabbitmqctl) to stop it")
    sender = f"broker-outage-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True)
    try:
        answer = start_return(cluster, sender, "10019", "alice@example.com")
        assert "Return R-" in finish_return(cluster, sender, answer)
    finally:
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True)
    consumed = create_engine(cluster.settings.tracker_store_url, future=True)

    def everything_arrived() -> bool:
        with consumed.connect() as connection:
            count = connection.execute(text("SELECT count(*) FROM conversation_events WHERE sender_id = :s"),
                                       {"s": sender}).scalar_one()
        return count == len(stored_events(conversations, sender))

    try:
        wait_for(everything_arrived, timeout_s=60)
    finally:
        consumed.dispose()
    logs = "".join(cluster.tail(name, 200000) for name in ("rasa-1", "rasa-2"))
    assert "unreachable" in logs and "reachable again" in logs  # the outage was logged, not hidden


def socketio_session(cluster: Cluster, keep_cookies: bool) -> List[int]:
    """A web chat's first requests through the balancer (engine.io long-polling): open, join the namespace, ask
    for a conversation; the status code of each."""
    url = f"http://127.0.0.1:{cluster.settings.port}/socket.io/"
    with requests.Session() as browser:
        opened = browser.get(url, params={"EIO": "4", "transport": "polling"}, timeout=10)
        sid = json.loads(opened.text[1:])["sid"]
        if not keep_cookies:
            browser.cookies.clear()
        query = {"EIO": "4", "transport": "polling", "sid": sid}
        codes = [opened.status_code]
        for packet in ("40", '42["session_request",{}]'):
            codes.append(browser.post(url, params=query, data=packet, timeout=10).status_code)
            codes.append(browser.get(url, params=query, timeout=30).status_code)
    return codes


def test_a_web_chat_session_sticks_to_its_replica(cluster):
    assert socketio_session(cluster, keep_cookies=True) == [200] * 5
    # without the balancer's cookie, round-robin sends some polls to the replica that never opened the session
    assert 400 in socketio_session(cluster, keep_cookies=False)
