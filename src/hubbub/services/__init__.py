"""The domain: users, sessions, teams, channels, posts, reactions, files, statuses and search.

Services receive what they need in their constructors (see `hubbub.app`), talk to the store and
return plain dicts in Mattermost's JSON shapes. They raise `AppError` for anything a client did.
Services are peers: none builds another, and the lookups and permission checks several of them
share live in `TeamAccess` and `ChannelAccess`. Imports among them stay acyclic
(`tests/unit/test_service_imports.py`).
"""
