"""The chaos checker (tests/support/chaos.py): a write is judged by the proxy's clock
(`proxy_spans`: from nginx receiving its first try to nginx sending its 201), and a lost post is
reported with where it fell in what its client saw."""

import random
from typing import Any

from tests.support.chaos import Arrival, ChaosClient, check, proxy_spans
from tests.support.rest import Account

LOG = """\
1796690000.500 "POST /api/v4/posts HTTP/1.1" 502 0.500 upstream 127.0.0.1:1 502 0.499 write w:0-1
1796690000.700 "GET /api/v4/users/me HTTP/1.1" 200 0.010 upstream 127.0.0.1:2 200 0.010 write -
1796690001.800 "POST /api/v4/posts HTTP/1.1" 201 1.000 upstream {two} 502, 201 0.1, 0.9 write w:0-1
1796690002.100 "POST /api/v4/posts HTTP/1.1" 201 0.100 upstream 127.0.0.1:2 201 0.100 write w:1-1
1796690003.000 "POST /api/v4/posts HTTP/1.1" 502 0.000 upstream - - - write w:2-1
""".format(two="127.0.0.1:1, 127.0.0.1:2")


def test_a_retried_write_spans_from_its_first_try_to_its_201() -> None:
    spans = proxy_spans(LOG)
    assert spans["w:0-1"] == 1796690001.800 - 1796690000.000
    assert round(spans["w:1-1"], 3) == 0.1


def test_a_write_without_a_201_and_other_requests_have_no_span() -> None:
    spans = proxy_spans(LOG)
    assert set(spans) == {"w:0-1", "w:1-1"}


def _client(channels: set[str]) -> ChaosClient:
    http: Any = None  # the checker never calls the server
    return ChaosClient(
        index=7,
        user=Account("u" * 26, "reader", "t"),
        channels=channels,
        ws_url="ws://unused",
        http=http,
        baseline={c: 0 for c in channels},
        rng=random.Random(1),
    )


def test_a_lost_post_is_reported_with_the_clients_history_even_in_a_silent_channel() -> None:
    client = _client({"busy", "silent"})
    client.history = [(1_000, "connect - seq 0"), (1_900, "closed 1013"), (9_000, "late")]
    client.received["p1"] = 1
    client.arrivals["busy"] = [Arrival("p1", 1_000, "conn0001xyz")]
    committed = {"busy": [(1, "p1"), (2, "p2")], "silent": [(1, "q1")]}
    verdict = check([client], committed, {"p1": 1_000, "p2": 2_000, "q1": 2_500})
    assert sorted(verdict.lost) == ["client 7 channel busy: p2", "client 7 channel silent: q1"]
    by_post = {d.split()[3]: d for d in verdict.lost_details}
    assert "received before [(1, 'conn0001')], after []" in by_post["p2"]
    assert "-1000ms connect - seq 0" in by_post["p2"] and "-100ms closed 1013" in by_post["p2"]
    assert "late" not in by_post["p2"]  # 7 s after it: outside the 3 s shown
    assert "received before [], after []" in by_post["q1"]
