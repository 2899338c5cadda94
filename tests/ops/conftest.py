"""The ops tier: operator-facing behaviour against real processes (rate limiting through nginx
and across nodes sharing Redis, `hubbub doctor` against nginx configured well and badly, file
logs). Fixtures start their own servers; the session's PostgreSQL comes from tests/conftest.py."""
