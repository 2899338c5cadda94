"""The chaos checker judges a write by the proxy's clock (tests/support/chaos.py `proxy_spans`):
from nginx receiving its first try to nginx sending its 201."""

from tests.support.chaos import proxy_spans

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
