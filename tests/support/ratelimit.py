"""The rate-limit settings the ops tier runs its servers with: small, so a burst is quick."""

from __future__ import annotations

LIMIT = 20  # a full bucket: MaxBurst + 1
PER_SEC = 2  # refill: one request every 0.5 s
RATE_LIMIT_SETTINGS = {
    "MM_RATELIMITSETTINGS_ENABLE": "true",
    "MM_RATELIMITSETTINGS_PERSEC": str(PER_SEC),
    "MM_RATELIMITSETTINGS_MAXBURST": str(LIMIT - 1),
    # Only nginx (127.0.0.1) may say who the client is; 127.0.0.2 plays a stranger.
    "MM_SERVICESETTINGS_TRUSTEDPROXIES": '["127.0.0.1/32"]',
}
