"""Which origins a cookie session is honoured from (hubbub/api/origins.py), without HTTP."""

from __future__ import annotations

import logging

import pytest
from starlette.datastructures import Headers

from hubbub.api.origins import OriginPolicy

HOST = "chat.example.com:8065"


@pytest.mark.parametrize(
    ("origin", "host", "trusted"),
    [
        (None, HOST, True),  # not a browser
        ("null", HOST, False),
        ("http://chat.example.com:8065", HOST, True),
        ("https://chat.example.com:8065", HOST, True),  # scheme unknown behind a TLS proxy
        ("HTTP://CHAT.EXAMPLE.COM:8065", HOST, True),
        ("http://chat.example.com:9999", HOST, False),
        ("http://chat.example.com", HOST, False),
        ("http://evil.example", HOST, False),
        ("http://chat.example.com.evil.example:8065", HOST, False),
        ("not a url", HOST, False),
        ("http://chat.example.com:8443", "chat.example.com", True),  # nginx `$host`
        ("http://evil.example:8443", "chat.example.com", False),
        ("http://[::1]:8065", "[::1]:8065", True),
        ("http://[::1]:9000", "[::1]", True),
        ("http://chat.example.com", "", False),
    ],
)
def test_own_origin_without_site_url(origin: str | None, host: str, trusted: bool) -> None:
    assert OriginPolicy().trusts(origin, host) is trusted


@pytest.mark.parametrize(
    ("origin", "trusted"),
    [
        ("https://chat.example.com", True),
        ("http://chat.example.com", False),
        ("https://chat.example.com:8443", False),
        ("http://internal:8065", False),  # the Host no longer counts
    ],
)
def test_own_origin_is_the_site_url(origin: str, trusted: bool) -> None:
    policy = OriginPolicy(site_url="https://chat.example.com/mattermost")
    assert policy.trusts(origin, "internal:8065") is trusted


def test_listed_origins_and_wildcards() -> None:
    policy = OriginPolicy(allow_cors_from="https://a.example  https://*.b.example http://c:1")
    assert policy.trusts("https://a.example", "x")
    assert policy.trusts("https://A.example", "x")
    assert policy.trusts("https://deep.sub.b.example", "x")
    assert not policy.trusts("https://b.example", "x")
    assert not policy.trusts("https://evil.example/.b.example", "x")
    assert policy.trusts("http://c:1", "x")
    assert not policy.trusts("http://c:2", "x")
    assert not policy.trusts("null", "x")
    assert OriginPolicy(allow_cors_from="*").trusts("https://anything.example", "x")
    assert not OriginPolicy(allow_cors_from="*").trusts("null", "x")


@pytest.mark.parametrize("debug", [False, True])
def test_cors_debug_logs_each_decision(caplog: pytest.LogCaptureFixture, debug: bool) -> None:
    policy = OriginPolicy(allow_cors_from="https://a.example", debug=debug)
    preflight = {"access-control-request-method": "PUT"}
    cookie = {"cookie": "MMAUTHTOKEN=t", "host": "chat.example.com"}
    with caplog.at_level(logging.INFO, logger="hubbub.cors"):
        assert policy.preflight_headers(Headers({**preflight, "origin": "https://a.example"}))
        policy.preflight_headers(Headers({**preflight, "origin": "https://evil.example"}))
        policy.preflight_headers(
            Headers({"access-control-request-method": "TRACE", "origin": "https://a.example"})
        )
        assert policy.refusal(Headers({**cookie, "origin": "https://evil.example"}), "POST")
    said = [(r.getMessage(), getattr(r, "origin", None)) for r in caplog.records]
    expected = [
        ("cors: preflight: allowed", "https://a.example"),
        ("cors: preflight: origin not allowed", "https://evil.example"),
        ("cors: preflight: method 'TRACE' not allowed", "https://a.example"),
        ("cors: refused a cookie-authenticated request", "https://evil.example"),
    ]
    assert said == (expected if debug else [])
