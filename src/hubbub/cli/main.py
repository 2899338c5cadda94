"""The `hubbub` command: serve (default), db, user, token, cluster, proxy-config, doctor, config,
jobs."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from hubbub import MATTERMOST_VERSION, __version__
from hubbub.cli.operations import add_target_options
from hubbub.config import ConfigError, LoadedConfig, load_config, masked, split_address

DEFAULT_CONFIG = "config.json"


def _config_path(args: argparse.Namespace) -> str | None:
    if args.config:
        return str(args.config)
    env = os.environ.get("HUBBUB_CONFIG")
    if env:
        return env
    return DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None


def _load(args: argparse.Namespace) -> LoadedConfig:
    try:
        return load_config(_config_path(args))
    except ConfigError as exc:
        print(f"hubbub: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from hubbub.server import serve

    config = _load(args)
    return serve(config)


def cmd_db(args: argparse.Namespace) -> int:
    from hubbub.store.db import Database
    from hubbub.store.migrate import SchemaError, check, migrate

    config = _load(args)
    if args.db_command == "recycle":
        from hubbub.cli.operations import cmd_db_recycle

        return cmd_db_recycle(args, config)

    async def run() -> dict[str, Any]:
        db = Database(config.settings.SqlSettings)
        try:
            if args.db_command == "migrate":
                revision = await migrate(db)
                return {"migrated_to": revision}
            return await check(db)
        finally:
            await db.close()

    try:
        result = asyncio.run(run())
    except SchemaError as exc:
        print(f"hubbub: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0 if result.get("up_to_date", True) else 1


def _with_app(config: LoadedConfig, work: Any) -> Any:
    from hubbub.app import Hubbub

    async def run() -> Any:
        node = Hubbub(config, join_cluster=False)
        await node.start()
        try:
            return await work(node)
        finally:
            await node.stop()

    return asyncio.run(run())


def cmd_user_create(args: argparse.Namespace) -> int:
    from hubbub.errors import AppError

    config = _load(args)

    async def work(node: Any) -> dict[str, Any]:
        return await node.users.create(
            email=args.email,
            username=args.username,
            password=args.password,
            system_admin=args.system_admin,
        )

    try:
        user = _with_app(config, work)
    except AppError as exc:
        print(f"hubbub: {exc.message} ({exc.id})", file=sys.stderr)
        return 1
    print(json.dumps({"id": user["id"], "username": user["username"], "roles": user["roles"]}))
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    from hubbub.errors import AppError

    config = _load(args)

    async def work(node: Any) -> dict[str, Any]:
        try:
            user = await node.users.get_by_username(args.user)
        except AppError:
            user = await node.users.get(args.user)
        return await node.auth.create_access_token(
            user["id"], args.description, check_enabled=False
        )

    try:
        token = _with_app(config, work)
    except AppError as exc:
        print(f"hubbub: {exc.message} ({exc.id})", file=sys.stderr)
        return 1
    if not config.settings.ServiceSettings.EnableUserAccessTokens:
        print(
            "hubbub: warning: ServiceSettings.EnableUserAccessTokens is false; the token will "
            "not authenticate until it is enabled",
            file=sys.stderr,
        )
    print(token["token"])
    return 0


def cmd_user_reset_token(args: argparse.Namespace) -> int:
    """A one-hour password reset token for a user (hubbub sends no mail: the operator hands the
    link over); the user sets a new password with `POST /api/v4/users/password/reset`."""
    from hubbub.errors import AppError

    config = _load(args)

    async def work(node: Any) -> dict[str, Any]:
        try:
            user = await node.users.get_by_username(args.user)
        except AppError:
            user = await node.users.get(args.user)
        return dict(await node.password_resets.issue(user["id"]))

    try:
        issued = _with_app(config, work)
    except AppError as exc:
        print(f"hubbub: {exc.message} ({exc.id})", file=sys.stderr)
        return 1
    site = config.settings.ServiceSettings.SiteURL.rstrip("/")
    if site:
        issued["link"] = f"{site}/reset_password_complete?token={issued['token']}"
    print(json.dumps(issued))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.config_command == "reload":
        from hubbub.cli.operations import cmd_config_reload

        return cmd_config_reload(args, config)
    if args.config_command == "show":
        print(json.dumps(masked(config.settings), indent=2))
        return 0
    print(f"configuration OK ({config.source}), hash {config.hash}")
    if config.ignored:
        print("settings hubbub does not implement (accepted and ignored):")
        for name in config.ignored:
            print(f"  {name}")
    return 0


def cmd_cluster_status(args: argparse.Namespace) -> int:
    """Reads `cluster_discovery` directly; exit 1 when any live node mismatches the majority."""
    from hubbub.cluster.discovery import (
        ClusterTiming,
        NodeInfo,
        cluster_view,
        format_status_table,
        read_nodes,
    )
    from hubbub.cluster.leader import current_holder
    from hubbub.ids import now_ms
    from hubbub.store.db import Database

    config = _load(args)
    cluster = config.settings.ClusterSettings

    async def run() -> tuple[list[NodeInfo], str | None]:
        db = Database(config.settings.SqlSettings)
        try:
            return await read_nodes(db, cluster.ClusterName), await current_holder(db)
        finally:
            await db.close()

    try:
        timing = ClusterTiming.from_settings(config.settings)
        nodes, leader_id = asyncio.run(run())
    except Exception as exc:
        print(f"hubbub: cannot read the cluster status: {exc}", file=sys.stderr)
        return 2
    now = now_ms()
    view = cluster_view(nodes, now=now, live_seconds=timing.live, leader_id=leader_id)
    if args.json:
        print(json.dumps(view, indent=2))
    elif not view:
        print(
            f"no node has registered in cluster {cluster.ClusterName!r}"
            + ("" if cluster.Enable else " (ClusterSettings.Enable is false in this configuration)")
        )
    else:
        print(format_status_table(view, now))
    return 1 if any(node["status"] == "mismatch" for node in view) else 0


def cmd_version(args: argparse.Namespace) -> int:
    print(f"hubbub {__version__} (Mattermost API {MATTERMOST_VERSION})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hubbub", description=__doc__)
    parser.add_argument("--config", "-c", help="path to config.json (default: ./config.json)")
    sub = parser.add_subparsers(dest="command")

    sub.add_parser("serve", help="run a node (the default)").set_defaults(func=cmd_serve)
    sub.add_parser("version", help="print the version").set_defaults(func=cmd_version)

    db = sub.add_parser("db", help="database schema")
    db.add_argument("db_command", choices=["migrate", "check", "recycle"])
    add_target_options(db)
    db.set_defaults(func=cmd_db)

    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    create = user_sub.add_parser("create", help="create a user")
    create.add_argument("--email", required=True)
    create.add_argument("--username", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--system-admin", action="store_true")
    create.set_defaults(func=cmd_user_create)
    reset = user_sub.add_parser(
        "reset-token", help="print a one-hour password reset token for a user"
    )
    reset.add_argument("--user", required=True, help="username or user id")
    reset.set_defaults(func=cmd_user_reset_token)

    token = sub.add_parser("token", help="personal access tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    tcreate = token_sub.add_parser("create", help="create a token and print it")
    tcreate.add_argument("--user", required=True, help="username or user id")
    tcreate.add_argument("--description", default="created by hubbub token create")
    tcreate.set_defaults(func=cmd_token_create)

    cluster = sub.add_parser("cluster", help="cluster membership")
    cluster_sub = cluster.add_subparsers(dest="cluster_command", required=True)
    cstatus = cluster_sub.add_parser("status", help="nodes, versions, config hashes, heartbeats")
    cstatus.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cstatus.set_defaults(func=cmd_cluster_status)

    from hubbub.cli.proxy_config import add_parser as add_proxy_config

    add_proxy_config(sub, _load)

    from hubbub.doctor.command import add_parser as add_doctor

    add_doctor(sub, _load)

    from hubbub.jobs.commands import add_parser as add_jobs

    add_jobs(sub, _load)

    config = sub.add_parser("config", help="configuration")
    config.add_argument("config_command", choices=["validate", "show", "reload"])
    add_target_options(config)
    config.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        args.func = cmd_serve
    return int(args.func(args))


def address(config: LoadedConfig) -> tuple[str, int]:
    return split_address(config.settings.ServiceSettings.ListenAddress)


if __name__ == "__main__":
    raise SystemExit(main())
