"""hubbub: a Mattermost-compatible team-chat server built for high availability."""

__version__ = "0.2.0"

# The Mattermost server version hubbub presents to clients (X-Version-Id, hello, ping).
MATTERMOST_VERSION = "9.11.0"
