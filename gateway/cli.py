"""The share-gateway command: serve, check-config, backend, and key management."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from gateway import log as gateway_log
from gateway.config import ConfigError, Settings, load_settings
from gateway.errors import ApiError
from gateway.keys.model import OPERATIONS
from gateway.keys.rules import parse_permission_list, parse_rate_limit_text
from gateway.keys.service import CLI_ACTOR, KeyService
from gateway.keys.values import KeyVault, VaultError
from gateway.store import StoreError, open_store

EXIT_OK = 0
EXIT_REFUSED = 1  # the request was understood and refused (bad field, unknown id)
EXIT_CONFIG = 2  # bad arguments or configuration
EXIT_STORE = 3  # the store could not be opened or written

EPILOG = """\
examples:
  share-gateway serve                      # embedded default in ./share-gateway-data
  share-gateway serve --config gateway.yaml
  share-gateway check-config gateway.yaml
  share-gateway backup backup-2026-12-04.db --config gateway.yaml
  share-gateway keys create --name ci --allow get,list --ip 10.0.0.0/8
  share-gateway keys list
  share-gateway keys update KEY_ID --allow get,list,create
  share-gateway keys update KEY_ID --rate-limit 100/60
  share-gateway keys rotate KEY_ID --grace 3600
  share-gateway keys history KEY_ID

exit codes: 0 done, 1 refused (bad field, unknown key), 2 bad arguments or
configuration, 3 store unavailable.
"""


EXAMPLES = {
    "serve": "share-gateway serve --config /etc/share-gateway/gateway.yaml",
    "check-config": "share-gateway check-config gateway.yaml && echo ok",
    "backend": "share-gateway backend --listen 127.0.0.1:8090 --db shares.db",
    "backup": "share-gateway backup /var/backups/gateway-$(date +%F).db --config gateway.yaml",
    "keys": "share-gateway keys --config gateway.yaml list",
    "keys create": (
        "share-gateway keys create --name ci --allow get,list --ip 10.0.0.0/8 \\\n"
        "    --not-after 2027-01-01T00:00:00Z --rate-limit 100/60 --description 'deploys from CI'"
    ),
    "keys list": "share-gateway keys list --json",
    "keys show": "share-gateway keys show KEY_ID --json",
    "keys update": "share-gateway keys update KEY_ID --allow get,list,create --not-after ''",
    "keys rotate": "share-gateway keys rotate KEY_ID --grace 3600",
    "keys reveal": "share-gateway keys reveal KEY_ID",
    "keys download": "share-gateway keys download KEY_ID -o ci.key",
    "keys history": "share-gateway keys history KEY_ID",
    "keys delete": "share-gateway keys delete KEY_ID",
}


def _with_examples(parser: argparse.ArgumentParser, path: str = "") -> None:
    """Give every subcommand its example and the exit codes in --help."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                child_path = f"{path} {name}".strip()
                example = EXAMPLES.get(child_path)
                child.formatter_class = argparse.RawDescriptionHelpFormatter
                child.epilog = (f"example:\n  {example}\n\n" if example else "") + (
                    "exit codes: 0 done, 1 refused, 2 bad arguments or configuration, "
                    "3 store unavailable"
                )
                _with_examples(child, child_path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="share-gateway",
        description="An API gateway with per-client keys for the External Share Web API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway (both listeners)")
    serve.add_argument("--config", type=Path, help="YAML file (default: embedded default)")

    check = commands.add_parser("check-config", help="validate a YAML file and exit")
    check.add_argument("file", type=Path)

    backend = commands.add_parser("backend", help="run the reference share backend alone")
    backend.add_argument("--listen", default="127.0.0.1:8090", help="host:port")
    backend.add_argument("--db", type=Path, default=Path("share-gateway-data/shares.db"))
    backend.add_argument(
        "--api-key-file",
        type=Path,
        default=Path("share-gateway-data/backend-key"),
        help="file holding the bearer key clients must send (generated if absent)",
    )

    backup = commands.add_parser(
        "backup", help="copy the SQLite store to a new file while the gateway runs"
    )
    backup.add_argument("file", type=Path, help="the new file (must not exist)")
    backup.add_argument("--config", type=Path, help="YAML file naming the store")

    migrate = commands.add_parser(
        "migrate",
        help="copy every key, its history and usage into an empty store",
        description="Copy keys (deleted ones too), history and usage from one store to another"
        " empty one; both must be used with the same store.secret_key. Example:\n"
        "  share-gateway migrate --from sqlite:///var/lib/share-gateway/gateway.db \\\n"
        "      --to postgresql://gateway@db.internal/share_gateway",
    )
    migrate.add_argument("--from", dest="source", required=True, metavar="URL")
    migrate.add_argument("--to", dest="target", required=True, metavar="URL")

    keys = commands.add_parser("keys", help="manage API keys")
    keys.add_argument("--config", type=Path, help="YAML file naming the store")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a key and print its value")
    create.add_argument("--name", required=True)
    _field_options(create)

    actions.add_parser("list", help="list keys (masked)").add_argument(
        "--json", action="store_true", help="print JSON for scripts"
    )
    show = actions.add_parser("show", help="show one key (masked)")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="print JSON for scripts")
    update = actions.add_parser("update", help="change a key's fields")
    update.add_argument("id")
    update.add_argument("--name")
    _field_options(update)
    rotate = actions.add_parser("rotate", help="give a key a new value and print it")
    rotate.add_argument("id")
    rotate.add_argument(
        "--grace",
        type=int,
        default=86_400,
        metavar="SECONDS",
        help="how long the old value keeps working (default 86400; 0 ends it at once)",
    )
    for name, help_text in (
        ("reveal", "print a key's value"),
        ("download", "write a key's value to a file"),
        ("history", "show a key's configuration history"),
        ("delete", "delete a key; it stops working at once"),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("id")
    actions.choices["download"].add_argument("--output", "-o", type=Path)
    _with_examples(parser)
    return parser


def _field_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow", help=f"permissions, comma-separated: {','.join(OPERATIONS)}")
    parser.add_argument("--admin", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--not-before", help="ISO 8601 date-time ('' clears)")
    parser.add_argument("--not-after", help="ISO 8601 date-time ('' clears)")
    parser.add_argument(
        "--ip", action="append", help="allowed address, CIDR or range a-b (repeatable)"
    )
    parser.add_argument("--description")
    parser.add_argument(
        "--rate-limit",
        metavar="REQUESTS/SECONDS",
        help="at most REQUESTS forwarded in any SECONDS, e.g. 100/60 ('' clears)",
    )


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """The admin API body the options stand for, so both front ends share one rule set."""
    body: dict[str, Any] = {}
    if args.name is not None:
        body["name"] = args.name
    if args.allow is not None:
        body["permissions"] = parse_permission_list(args.allow).to_json()
    if args.admin is not None:
        body["admin"] = args.admin
    if args.not_before is not None:
        body["notValidBefore"] = args.not_before or None
    if args.not_after is not None:
        body["notValidAfter"] = args.not_after or None
    if args.ip is not None:
        body["allowedIps"] = [ip for ip in args.ip if ip]
    if args.description is not None:
        body["description"] = args.description
    if args.rate_limit is not None:
        body["rateLimit"] = parse_rate_limit_text(args.rate_limit)
    return body


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2))


async def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.app import secret_key

    store = open_store(settings.store.url)
    await store.open()
    try:
        service = KeyService(store, KeyVault(secret_key(settings)))
        return await _key_action(service, args)
    finally:
        await store.close()


async def _key_action(service: KeyService, args: argparse.Namespace) -> int:
    action: str = args.action
    if action == "create":
        key, value = await service.create(_fields(args), CLI_ACTOR)
        print(value)
        print(f"created key {key.id} ({key.name})", file=sys.stderr)
    elif action == "list":
        keys = await service.list_keys()
        if args.json:
            _print_json({"keys": [key.to_json() for key in keys]})
        else:
            _print_table(
                ["ID", "NAME", "KEY", "PERMISSIONS", "RATE LIMIT", "USAGE", "LAST USED"],
                [
                    [
                        k.id,
                        k.name,
                        k.masked_value,
                        ",".join(op for op in OPERATIONS if k.permissions.allows(op)) or "-",
                        f"{k.rate_limit}s" if k.rate_limit else "-",
                        str(k.usage_count),
                        k.to_json()["lastUsedAt"] or "-",
                    ]
                    for k in keys
                ],
            )
    elif action == "show":
        shown = (await service.get(args.id)).to_json()
        if args.json:
            _print_json(shown)
        else:
            _print_fields(shown)
    elif action == "update":
        _print_json((await service.update(args.id, _fields(args), CLI_ACTOR)).to_json())
    elif action == "rotate":
        key, value = await service.rotate(args.id, {"gracePeriodSeconds": args.grace}, CLI_ACTOR)
        print(value)
        until = key.to_json()["previousValidUntil"]
        print(f"rotated key {key.id}; old value valid until {until or 'now'}", file=sys.stderr)
    elif action == "reveal":
        print(await service.reveal(args.id, CLI_ACTOR))
    elif action == "download":
        key, value = await service.download(args.id, CLI_ACTOR)
        output: Path = args.output or Path(f"{key.name}.key")
        await asyncio.to_thread(_write_private, output, value)
        print(f"wrote {output}", file=sys.stderr)
    elif action == "history":
        _print_json({"events": [event.to_json() for event in await service.history(args.id)]})
    elif action == "delete":
        await service.delete(args.id, CLI_ACTOR)
        print(f"deleted key {args.id}", file=sys.stderr)
    return EXIT_OK


def _write_private(path: Path, value: str) -> None:
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)


def _print_fields(key: dict[str, Any]) -> None:
    """A key as aligned `field: value` lines for people."""
    width = max(len(name) for name in key)
    for name, value in key.items():
        if name == "rateLimit" and value is not None:
            value = f"{value['requests']} requests per {value['perSeconds']} s"
        elif isinstance(value, dict):
            value = ",".join(op for op, on in value.items() if on) or "-"
        elif isinstance(value, list):
            value = ", ".join(value) or "any"
        elif value is None or value == "":
            value = "-"
        print(f"{name.ljust(width)}  {value}")


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


async def _backend(args: argparse.Namespace) -> int:
    from gateway.backend import run_backend
    from gateway.keys.values import read_or_create_secret

    host, _, port = args.listen.rpartition(":")
    api_key = read_or_create_secret(args.api_key_file)
    print(f"reference backend on {args.listen}; bearer key in {args.api_key_file}", file=sys.stderr)
    await run_backend(args.db, api_key, host.strip("[]") or "127.0.0.1", int(port))
    return EXIT_OK


def _run(job: Callable[[], Coroutine[Any, Any, int]], *, server: bool = False) -> int:
    """Run a command's coroutine; servers run on uvloop, which halves the loop's own cost."""
    try:
        if server:
            import uvloop

            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(job())
        return asyncio.run(job())
    except ApiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_REFUSED
    except VaultError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STORE
    except KeyboardInterrupt:
        return EXIT_OK


def _backup(settings: Settings, target: Path) -> int:
    from gateway.store.backup import backup_sqlite

    source = settings.store.sqlite_path
    if source is None:
        print(
            "error: backup copies SQLite stores; back up PostgreSQL with pg_dump", file=sys.stderr
        )
        return EXIT_CONFIG
    try:
        pages = backup_sqlite(source, target)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STORE
    print(f"backed up {source} to {target} ({pages} pages)", file=sys.stderr)
    return EXIT_OK


def _migrate(source: str, target: str) -> int:
    from gateway.store import StoreNotEmpty, is_store_url
    from gateway.store.migrate import copy_store_url

    for option, url in (("--from", source), ("--to", target)):
        if not is_store_url(url):
            # SECURITY: a mistyped URL may carry a password: name its scheme only.
            scheme = url.split("://", 1)[0] if "://" in url else ""
            found = f"a {scheme}:// URL" if scheme else repr(url)
            expected = "sqlite://PATH or postgresql://..."
            print(f"error: {option}: expected {expected}, found {found}", file=sys.stderr)
            return EXIT_CONFIG
    try:
        report = asyncio.run(copy_store_url(source, target))
    except StoreNotEmpty as exc:
        print(f"error: {exc}; migrate only fills an empty store", file=sys.stderr)
        return EXIT_REFUSED
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STORE
    print(f"copied {report}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the share-gateway command."""
    args = _parser().parse_args(argv)
    if args.command == "migrate":
        return _migrate(args.source, args.target)
    try:
        if args.command == "check-config":
            load_settings(args.file)
            print(f"{args.file}: OK")
            return EXIT_OK
        # Only serve needs the admin tokens and the upstream key in its environment.
        store_only = args.command in ("keys", "backup")
        settings = load_settings(getattr(args, "config", None), store_only=store_only)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    if args.command == "serve":
        gateway_log.configure(settings.logging.level, settings.logging.format)
        return _run(lambda: _serve(settings, args.config), server=True)
    if args.command == "backup":
        return _backup(settings, args.file)
    if args.command == "backend":
        gateway_log.configure(settings.logging.level, settings.logging.format)
        return _run(lambda: _backend(args), server=True)
    return _run(lambda: _keys(settings, args))


async def _serve(settings: Settings, path: Path | None) -> int:
    from gateway.app import ListenError, serve

    try:
        await serve(settings, path)
    except ListenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK
