"""The verification throttle and the rate limit through the real servers: Rasa's REST channel puts the client address
(the balancer's X-Forwarded-For entry) in each message's metadata, Rasa hands it to the action server, and after
`verification.throttle.per_client` failed checks from one address in new conversations, the right pair from that
address is refused with the offer of a person while another address gets its order; then the same address sending
faster than `rate_limits.per_client` a minute gets 429 with Retry-After. Limits as shipped in shop.yml."""

from __future__ import annotations

import uuid
from typing import List

import pytest
import requests

from shop.settings import get_settings

pytestmark = pytest.mark.e2e


def say(servers, sender: str, message: str, client: str) -> requests.Response:
    return requests.post(f"{servers.rasa_url}/webhooks/rest/webhook", json={"sender": sender, "message": message},
                         headers={"X-Forwarded-For": f"10.9.8.7, {client}"}, timeout=60)


def texts(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    return "\n".join(reply.get("text") or "" for reply in response.json())


def test_an_address_past_its_failures_is_refused_even_the_right_pair_then_rate_limited(servers):
    settings = get_settings()
    attacker, customer = f"203.0.113.{uuid.uuid4().int % 200 + 20}", "198.51.100.61"
    run = uuid.uuid4().hex[:6]
    failures, conversation = 0, 0
    while failures < settings.throttle.per_client:  # one message per guess, so the rate limit is not hit yet
        sender = f"throttle-{run}-{conversation}"
        conversation += 1
        answer = texts(say(servers, sender, f"where is my order {11000 + failures}? I'm mallory{failures}@example.com",
                           attacker))
        failures += 1
        for _ in range(settings.max_verification_failures - 1):
            answer = texts(say(servers, sender, f"{11000 + failures} mallory{failures}@example.com", attacker))
            failures += 1
            assert "Order 1" not in answer
        assert "pass this to a person" in answer  # the third failure of a conversation
    # a new conversation from the same address, with the right pair: refused, a person offered
    sender = f"throttle-{run}-right"
    texts(say(servers, sender, "where is my order?", attacker))
    texts(say(servers, sender, "10002", attacker))
    refused = texts(say(servers, sender, "alice@example.com", attacker))
    assert "Order 10002" not in refused and "JD0146" not in refused
    assert "pass this to a person" in refused
    # the same pair from another address is answered
    texts(say(servers, f"throttle-{run}-customer", "where is my order?", customer))
    texts(say(servers, f"throttle-{run}-customer", "10002", customer))
    assert "Order 10002 is" in texts(say(servers, f"throttle-{run}-customer", "alice@example.com", customer))

    # the attacker's address has sent many messages this minute: past rate_limits.per_client, 429
    statuses: List[int] = []
    while len(statuses) <= settings.rate_limits.per_client and 429 not in statuses:
        statuses.append(say(servers, f"throttle-{run}-flood", "hi", attacker).status_code)
    limited = say(servers, f"throttle-{run}-flood", "hi", attacker)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert "try again" in limited.json()[0]["text"]
