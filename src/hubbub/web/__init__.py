"""The browser side of hubbub: its own web client and operator console (files in `static/`,
plain ES modules with no build step), or the official Mattermost web app's bundle
(`ServiceSettings.WebappDirectory`). Served by `routes.py`; see docs/web.md."""
