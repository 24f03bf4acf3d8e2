"""The web chat (webchat/) in headless Chromium against the real servers: a customer types, clicks the bot's quick
replies, reloads the page, and sees what the database says; plus what the page shows while the bot is typing,
when it does not answer, and when the server cannot be reached.

Chromium is Debian's (scripts/setup-browser.sh); without it these tests are skipped, or fail when
REQUIRE_BROWSER=1 (the test command). A screenshot of the main conversation goes to tests/artifacts/.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, expect, sync_playwright
from sqlalchemy.orm import Session

from shop.models import Order, Return
from shop.servers import free_port
from shop.settings import PROJECT_ROOT
from tests.channels.socketio_standin import SilentSocketIO

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("SHOP_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"
BOT = ".shop-chat__message--bot .shop-chat__bubble"
MESSAGES = ".shop-chat__message"
REPLY_TIMEOUT_MS = 60_000  # generous: a 2-core machine under load answers in well under a second normally


class ChatPage:
    """The web chat as a customer uses it."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.input = page.get_by_label("Your message")
        self.typing = page.locator(".shop-chat__typing")
        self.banner = page.get_by_role("alert")

    def open(self, url: str) -> ChatPage:
        self.page.goto(url)
        expect(self.input).to_be_enabled(timeout=REPLY_TIMEOUT_MS)
        return self

    def bot_count(self) -> int:
        return self.page.locator(BOT).count()

    def _answer(self, before: int) -> str:
        expect(self.page.locator(BOT)).not_to_have_count(before, timeout=REPLY_TIMEOUT_MS)
        expect(self.typing).to_be_hidden()
        return self.page.locator(BOT).last.inner_text()

    def say(self, text: str) -> str:
        """Type a message, send it with Enter, and return the bot's (latest) answer."""
        before = self.bot_count()
        self.input.fill(text)
        self.input.press("Enter")
        return self._answer(before)

    def click(self, title: str) -> str:
        """Click one of the bot's quick replies and return the bot's answer."""
        before = self.bot_count()
        self.quick_replies().get_by_role("button", name=title, exact=True).click()
        return self._answer(before)

    def quick_replies(self):
        return self.page.get_by_role("group", name="Suggested answers")

    def transcript(self) -> List[Tuple[str, str]]:
        """(who, text) for every message shown, in order."""
        return [("bot" if "--bot" in (item.get_attribute("class") or "") else "customer",
                 item.locator("p").inner_text()) for item in self.page.locator(MESSAGES).all()]


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM}: run scripts/setup-browser.sh"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser(playwright, tmp_path, request) -> Iterator[BrowserContext]:
    """A fresh Chromium profile per test: no conversation left over from another test."""
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 520, "height": 760},
    )
    try:
        yield context
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed and context.pages:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            context.pages[-1].screenshot(path=str(ARTIFACTS / f"webchat-failed-{request.node.name}.png"))
        context.close()


def chat_url(page_server: str, rasa_url: str) -> str:
    return f"{page_server}/?server={rasa_url}"


def order_status(servers, order_id: str) -> Order:
    with Session(servers.engine) as session:
        order = session.get(Order, order_id)
        session.expunge_all()
        return order


def test_order_status_then_a_cancellation_by_quick_reply_across_a_reload(browser, servers):
    chat = ChatPage(browser.new_page()).open(chat_url(servers.page_url, servers.rasa_url))

    assert "order number" in chat.say("where is my order?")
    assert "email" in chat.say("10002")
    shipped = order_status(servers, "10002")
    status = chat.say("alice@example.com")
    assert f"Order 10002 is {shipped.status}" in status and shipped.tracking_number in status

    chat.page.get_by_role("button", name="New conversation").click()
    expect(chat.page.locator(MESSAGES)).to_have_count(0)
    expect(chat.input).to_be_enabled()
    assert "order number" in chat.say("please cancel my order")
    assert "email" in chat.say("10016")

    before_reload = chat.transcript()
    chat.page.reload()
    expect(chat.input).to_be_enabled(timeout=REPLY_TIMEOUT_MS)
    assert chat.transcript() == before_reload  # the history is back

    question = chat.say("dan@example.com")  # the bot, too, remembers it was waiting for the email
    assert "cancel order 10016" in question
    expect(chat.quick_replies().get_by_role("button")).to_have_text(["Yes, cancel it", "No, keep it"])
    assert order_status(servers, "10016").status == "pending"
    assert "Order 10016 is cancelled" in chat.click("Yes, cancel it")
    expect(chat.quick_replies()).to_have_count(0)  # answered: the buttons are gone
    assert chat.transcript()[-2] == ("customer", "Yes, cancel it")

    now = order_status(servers, "10016")
    assert now.status == "cancelled"
    assert f"Order 10016 is {now.status}" in chat.say("where is my order?")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chat.page.screenshot(path=str(ARTIFACTS / "webchat-conversation.png"), full_page=True)


def test_a_return_chosen_entirely_by_quick_replies(browser, servers):
    chat = ChatPage(browser.new_page()).open(chat_url(servers.page_url, servers.rasa_url))
    chat.say("I want to return an item")
    chat.say("10008")
    assert "Which item" in chat.say("dan@example.com")
    expect(chat.quick_replies().get_by_role("button")).to_have_text(["Electric kettle", "Tea sampler"])
    assert "Why are you returning it" in chat.click("Electric kettle")
    assert "refunded" in chat.click("Damaged")
    done = chat.click("Store credit")
    assert "Return R-" in done and "Electric kettle" in done
    return_id = int(done.split("Return R-")[1].split()[0])
    with Session(servers.engine) as session:
        created = session.get(Return, return_id)
        assert (created.line.sku, created.reason, created.refund_method) == ("KETTLE-01", "damaged", "store_credit")


def test_typing_is_shown_from_sending_until_the_answer(browser, servers):
    chat = ChatPage(browser.new_page()).open(chat_url(servers.page_url, servers.rasa_url))
    chat.page.evaluate("""() => {
        const typing = document.querySelector('.shop-chat__typing');
        const log = document.querySelector('.shop-chat__log');
        const bots = () => log.querySelectorAll('.shop-chat__message--bot').length;
        window.seen = [];
        new MutationObserver(() => window.seen.push(typing.hidden ? 'typing hidden' : 'typing shown'))
            .observe(typing, {attributes: true, attributeFilter: ['hidden']});
        new MutationObserver(() => window.seen.push(`${bots()} bot messages`)).observe(log, {childList: true});
    }""")
    chat.say("hi")
    seen = chat.page.evaluate("window.seen")
    answered = seen.index("1 bot messages")
    assert "typing shown" in seen[:answered] and seen[answered - 1] == "typing hidden", seen


def test_an_unreachable_server_is_reported_and_nothing_can_be_sent(browser, servers):
    chat = ChatPage(browser.new_page())
    chat.page.goto(chat_url(servers.page_url, f"http://127.0.0.1:{free_port()}"))
    expect(chat.banner).to_contain_text("can't be reached", timeout=20_000)
    expect(chat.input).to_be_disabled()
    expect(chat.page.get_by_role("button", name="Send")).to_be_disabled()


def test_a_silent_bot_and_a_lost_connection_are_reported(browser, servers):
    standin = SilentSocketIO()
    standin.start()
    try:
        page = browser.new_page()
        page.clock.install()
        chat = ChatPage(page).open(chat_url(servers.page_url, standin.url))
        chat.input.fill("is anyone there?")
        chat.input.press("Enter")
        expect(chat.typing).to_be_visible()
        page.clock.fast_forward(31_000)  # past the page's 30 s wait for an answer
        expect(chat.typing).to_be_hidden()
        expect(page.locator(".shop-chat__notice")).to_contain_text("No answer yet")
        [sent] = standin.wait_for_messages(1)
        assert sent["message"] == "is anyone there?" and sent["session_id"]

        standin.stop()
        expect(chat.banner).to_be_visible(timeout=20_000)
        expect(chat.input).to_be_disabled()
        standin.start()
        expect(chat.banner).to_be_hidden(timeout=30_000)
        expect(chat.input).to_be_enabled()
        assert standin.session_requests[-1] == sent["session_id"]  # back in the same conversation
    finally:
        standin.close()


def test_two_tabs_show_one_conversation_without_duplicates(browser, servers):
    url = chat_url(servers.page_url, servers.rasa_url)
    first = ChatPage(browser.new_page()).open(url)
    second = ChatPage(browser.new_page()).open(url)
    assert "Northwind" in first.say("hi")
    expect(second.page.locator(MESSAGES)).to_have_count(2)
    assert second.transcript() == first.transcript()
    second.page.reload()
    expect(second.input).to_be_enabled(timeout=REPLY_TIMEOUT_MS)
    assert second.transcript() == first.transcript()
