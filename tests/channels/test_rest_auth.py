"""Rasa's HTTP API behind `--auth-token` and `--jwt-secret`: conversations (with customers' emails and order
details) and the model are out of reach without a credential; the customer-facing REST webhook stays open."""

from __future__ import annotations

import time
from typing import Dict, Optional

import jwt
import pytest
import requests

pytestmark = pytest.mark.e2e

CUSTOMER = "rest-auth-customer"
EMAIL = "alice@example.com"


def api(servers, method: str, path: str, token: Optional[str] = None, bearer: Optional[str] = None,
        body: Optional[Dict] = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    params = {"token": token} if token is not None else {}
    return requests.request(method, f"{servers.rasa_url}{path}", params=params, headers=headers, json=body,
                            timeout=60)


def user_jwt(secret: str, username: str, role: str, expires_in_s: int = 300) -> str:
    """A token as the shop's own backend would issue it (Rasa's sanic-jwt allows 3 minutes of clock skew)."""
    payload = {"user": {"username": username, "role": role}, "exp": int(time.time()) + expires_in_s}
    return jwt.encode(payload, secret, algorithm="HS256")


@pytest.fixture(scope="module")
def conversation(servers) -> str:
    """A conversation that holds a customer's order details, started over the open REST webhook."""
    servers.running.send(CUSTOMER, "where is my order?")
    servers.running.send(CUSTOMER, "10002")
    replies = servers.running.send(CUSTOMER, EMAIL)
    assert any("Order 10002 is" in reply.get("text", "") for reply in replies)
    return f"/conversations/{CUSTOMER}/tracker"


PROTECTED = [("GET", "/status"), ("GET", "tracker"), ("POST", "/model/parse")]


@pytest.mark.parametrize("method, path", PROTECTED, ids=["status", "tracker", "parse"])
@pytest.mark.parametrize("credential", ["none", "wrong-token", "empty-token", "jwt-other-secret", "expired-jwt"])
def test_protected_endpoints_refuse_requests_without_a_valid_credential(servers, conversation, method, path,
                                                                        credential):
    path = conversation if path == "tracker" else path
    token = {"wrong-token": servers.auth_token[::-1], "empty-token": ""}.get(credential)
    bearer = {"jwt-other-secret": user_jwt("not-the-servers-secret", "x", "admin"),
              "expired-jwt": user_jwt(servers.jwt_secret, "x", "admin", expires_in_s=-600)}.get(credential)
    response = api(servers, method, path, token=token, bearer=bearer, body={"text": "where is my order"})
    assert response.status_code == 401, response.text
    assert EMAIL not in response.text and "10002" not in response.text


def test_the_auth_token_opens_the_api(servers, conversation):
    tracker = api(servers, "GET", conversation, token=servers.auth_token)
    assert tracker.status_code == 200
    assert EMAIL in [event.get("text") for event in tracker.json()["events"]]
    parsed = api(servers, "POST", "/model/parse", token=servers.auth_token, body={"text": "where is my order?"})
    assert parsed.status_code == 200 and parsed.json()["intent"]["name"] == "order_status"
    assert api(servers, "GET", "/status", token=servers.auth_token).json()["model_file"]


def test_an_admin_jwt_opens_the_api(servers, conversation):
    admin = user_jwt(servers.jwt_secret, "support-desk", "admin")
    tracker = api(servers, "GET", conversation, bearer=admin)
    assert tracker.status_code == 200 and tracker.json()["sender_id"] == CUSTOMER


def test_a_user_jwt_opens_only_that_users_conversation(servers, conversation):
    own = user_jwt(servers.jwt_secret, CUSTOMER, "user")
    assert api(servers, "GET", conversation, bearer=own).status_code == 200
    someone_else = user_jwt(servers.jwt_secret, "another-customer", "user")
    refused = api(servers, "GET", conversation, bearer=someone_else)
    assert refused.status_code == 403 and EMAIL not in refused.text
    assert api(servers, "POST", "/model/parse", bearer=own, body={"text": "hi"}).status_code == 403


def test_the_customer_webhook_needs_no_credential(servers):
    replies = servers.running.send("rest-auth-open", "hi")
    assert "Northwind" in replies[0]["text"]
