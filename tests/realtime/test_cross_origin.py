"""Cross-site websocket hijacking, against a real `hubbub serve` over real sockets.

A page on another site can open a websocket to hubbub and the browser attaches the user's
`MMAUTHTOKEN` cookie: without an origin check the page reads the user's live events. The upgrade
must be refused (403, before any hello) unless the `Origin` is the site's own or listed in
`ServiceSettings.AllowCorsFrom`; clients that authenticate with a token (bots, mobile apps,
anything without the cookie) are unaffected, whatever `Origin` they send.
"""

from __future__ import annotations

import json

import pytest

from tests.support.node import Node, keepalive_settings
from tests.support.rest import Org, Rest
from tests.support.ws import HandshakeRefused, RawWS, hello_of, read_until_post

TRUSTED = "https://trusted.example"


@pytest.fixture(scope="module")
def live_node_settings() -> dict[str, str]:
    return {**keepalive_settings(25, 60), "MM_SERVICESETTINGS_ALLOWCORSFROM": TRUSTED}


def _browser(node: Node, session_token: str, origin: str | None) -> RawWS:
    headers = {"Cookie": f"MMUSERID=x; MMAUTHTOKEN={session_token}"}
    if origin is not None:
        headers["Origin"] = origin
    return node.connect(headers=headers)


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "https://trusted.example.evil"])
def test_cookie_upgrade_from_another_origin_is_refused_before_hello(
    live_node: Node, org: Org, origin: str
) -> None:
    with pytest.raises(HandshakeRefused) as refused:
        _browser(live_node, org.alice.token, origin)
    assert refused.value.status == 403
    body = json.loads(refused.value.body)
    assert body["id"] == "api.context.cross_origin.app_error", body


def test_refused_page_gets_nothing_while_the_user_keeps_receiving(
    live_node: Node, rest: Rest, org: Org
) -> None:
    own = _browser(live_node, org.alice.token, live_node.url)
    try:
        hello_of(own)
        with pytest.raises(HandshakeRefused):
            _browser(live_node, org.alice.token, "http://evil.example")
        post = rest.post(org.bob, org.public["id"], "still delivered")
        read_until_post(own, post["id"])
    finally:
        own.close()


@pytest.mark.parametrize("origin", ["own", TRUSTED, None], ids=["own", "listed", "no-origin"])
def test_cookie_upgrade_from_a_trusted_origin_gets_hello(
    live_node: Node, org: Org, origin: str | None
) -> None:
    ws = _browser(live_node, org.alice.token, live_node.url if origin == "own" else origin)
    try:
        hello = hello_of(ws)
        assert hello["broadcast"]["user_id"] == org.alice.id
    finally:
        ws.close()


def test_token_clients_are_unaffected_by_origin(live_node: Node, org: Org) -> None:
    # A bot or mobile app with its token in the Authorization header.
    ws = live_node.connect(org.bob, headers={"Origin": "http://evil.example"})
    try:
        assert hello_of(ws)["broadcast"]["user_id"] == org.bob.id
    finally:
        ws.close()
    # A client without credentials at upgrade answers the authentication challenge.
    bare = live_node.connect(headers={"Origin": "http://evil.example"})
    try:
        bare.send_json(
            {"seq": 1, "action": "authentication_challenge", "data": {"token": org.bob.token}}
        )
        seen = [bare.expect(what="challenge reply or hello") for _ in range(2)]
        hello = next(m for m in seen if m.get("event") == "hello")
        assert hello["broadcast"]["user_id"] == org.bob.id
        assert {"status": "OK", "seq_reply": 1} in seen, seen
    finally:
        bare.close()
