"""The report against traffic whose outcome is known: the real action and Rasa servers (shop.servers) keep their
conversations in a SQLite file, then in a fresh PostgreSQL database; `analytics simulate` plays scripted customers
over REST and records what each saw in the bot's replies; `analytics report` must count the same (containment,
handoffs by reason, fallbacks, "Did you mean", every funnel step, CSAT). The page is opened in headless Chromium:
no console errors, every plot decoded, no email address or order number anywhere; a screenshot goes to
tests/artifacts/.

Needs the trained model (skip, or fail with REQUIRE_MODEL=1), PostgreSQL for its half (skip, or fail with
REQUIRE_POSTGRES=1) and Chromium for the page (skip, or fail with REQUIRE_BROWSER=1). One server start per database.
"""

from __future__ import annotations

import json
import os
import random
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from analytics.__main__ import main
from analytics.figures import EMAIL, SKILLS, masker
from analytics.simulate import reason_category, simulate
from shop.db import make_engine
from shop.seed import CUSTOMERS, ORDERS
from shop.servers import start_servers
from shop.settings import PROJECT_ROOT, get_settings
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.e2e

CONVERSATIONS = 30
CHROMIUM = Path(os.environ.get("SHOP_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"


@dataclass
class Run:
    store: str
    manifest: Dict[str, Any]
    report: Dict[str, Any]
    out: Path


def postgres_database() -> Iterator[str]:
    """A fresh database on the test server for the conversations and the shop, dropped afterwards."""
    server = make_url(POSTGRES_URL)
    try:
        admin = create_engine(server, future=True, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any connection problem means "no PostgreSQL here"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required (REQUIRE_POSTGRES=1) but unreachable at {POSTGRES_URL}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc.__class__.__name__}")
    # letters only: a name of digits (uuid hex can be all digits) looks like an order number and the page masks it
    database = f"shoptest_report_{''.join(random.SystemRandom().choices(string.ascii_lowercase, k=10))}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    try:
        yield server.set(database=database).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def run(request, tmp_path_factory, trained_model) -> Iterator[Run]:
    work = tmp_path_factory.mktemp(f"report-{request.param}")
    databases = postgres_database() if request.param == "postgresql" else None
    if databases is None:
        shop_url, tracker_url = f"sqlite:///{work / 'shop.db'}", f"sqlite:///{work / 'tracker.db'}"
    else:
        shop_url = tracker_url = next(databases)
    try:
        make_engine(shop_url, seed_demo=True).dispose()
        servers = start_servers(work, shop_url, trained_model, tracker_store_url=tracker_url,
                                extra_env={"GENERATOR_PRELOAD": "1"})
        try:
            manifest = simulate(servers.rasa_url, CONVERSATIONS, seed=7 if request.param == "sqlite" else 8,
                                prefix=f"test-{request.param}")
        finally:
            servers.stop()
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2))
        out = work / "report"
        assert main(["report", "--since", "1d", "--tracker-store", tracker_url, "--database", shop_url,
                     "--out", str(out)]) == 0
        yield Run(request.param, manifest, json.loads((out / "report.json").read_text()), out)
    finally:
        if databases is not None:
            databases.close()


def test_the_simulation_saw_every_scenario_and_no_error(run):
    totals = run.manifest["totals"]
    assert totals["errors"] == 0 and totals["unknown_skills"] == 0
    assert len(totals["scenarios"]) == 10
    assert totals["handed_off"] > 0 and totals["fallback_messages"] > 0 and totals["satisfaction_answers"] > 0


def test_the_report_counts_what_the_simulated_customers_saw(run):
    totals, figures = run.manifest["totals"], run.report["figures"]
    assert figures["volume"]["conversations"] == totals["conversations"] == CONVERSATIONS
    assert figures["volume"]["messages"] == totals["messages"]
    assert figures["containment"]["contained"] == totals["contained"]
    assert figures["handoffs"]["conversations"] == totals["handed_off"]
    assert figures["handoffs"]["reason_source"] == "handoff_tickets"
    by_kind: Dict[str, int] = {}
    for reason, count in figures["handoffs"]["by_reason"].items():
        by_kind[reason_category(reason)] = by_kind.get(reason_category(reason), 0) + count
    assert by_kind == totals["handoffs_by_reason"]
    assert (figures["fallback"]["messages"], figures["fallback"]["conversations"]) == \
           (totals["fallback_messages"], totals["fallback_conversations"])
    assert (figures["clarification"]["messages"], figures["clarification"]["conversations"]) == \
           (totals["clarification_messages"], totals["clarification_conversations"])
    for skill in SKILLS:
        reported = {key: figures["funnel"][skill][key] for key in totals["funnel"][skill]}
        assert reported == totals["funnel"][skill], skill
    assert figures["csat"]["asked"] == totals["satisfaction_asked"]
    assert figures["csat"]["answers"] == totals["satisfaction_answers"]
    assert figures["csat"]["distribution"] == totals["ratings"]
    ratings = [int(value) for value, count in totals["ratings"].items() for _ in range(count)]
    assert figures["csat"]["average"] == (round(sum(ratings) / len(ratings), 2) if ratings else None)


def used_references(run: Run) -> List[str]:
    """Every email and order number of the demo shop; the simulation used some of them."""
    used = {reference for record in run.manifest["conversations"]
            for reference in record["orders_used"] + record["emails_used"]}
    assert used, "the simulation used no order number or email"
    return sorted(used | {email for email, _ in CUSTOMERS.values()} | {order[0] for order in ORDERS})


def leaks(content: str, references: List[str]) -> List[str]:
    content = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", content)
    found = [reference for reference in references
             if re.search(rf"(?<![\w.]){re.escape(reference)}(?![\w])", content, re.IGNORECASE)]
    return found + EMAIL.findall(content)


def test_no_email_address_or_order_number_in_the_report_files(run):
    references = used_references(run)
    for name in ("report.html", "report.json"):
        assert leaks((run.out / name).read_text(), references) == [], name
    examples = [entry["example"] for entry in run.report["figures"]["intents"]["top"]]
    assert any("[order number]" in example or "[email]" in example for example in examples), examples


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM}: run scripts/setup-browser.sh"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_the_page_opens_in_chromium_with_every_plot_drawn(run, chromium):
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    problems: List[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
    page.goto((run.out / "report.html").as_uri())
    images = page.evaluate("""async () => {
        const images = Array.from(document.images);
        await Promise.all(images.map(image => image.decode()));
        return images.map(image => ({alt: image.alt, width: image.naturalWidth, height: image.naturalHeight,
                                     shown: image.getBoundingClientRect().width}));
    }""")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"report-{run.store}.png"), full_page=True)
    assert problems == []
    assert len(images) == 8
    assert all(image["width"] > 100 and image["height"] > 100 and image["shown"] > 100 for image in images), images
    shown = page.inner_text("body")
    assert "Containment" in shown and "Skill funnel" in shown
    assert leaks(shown, used_references(run)) == []
    assert masker(get_settings().order_numbers)(shown) == shown
    page.close()
