"""The `allervers` console script: serve, migrate, and the command groups of each package.

Heavy imports (aiogram, OpenFisca) stay inside the commands that need them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys

# Command groups contributed by packages: name -> module exposing add_arguments(parser) and run(args) -> int.
GROUPS = {
    "rights": ("rights.cli", "OpenFisca-France estimates outside the chat"),
    "places": ("directory.cli", "local directory: import places, find the nearest"),
    "admin": ("admin.cli", "deployment operator: create an organisation and its first admin (one-time link)"),
}


def _serve(args: argparse.Namespace) -> int:
    from allervers.serve import serve

    return serve(telegram_polling=args.telegram_polling, host=args.host, port=args.port)


def _migrate(args: argparse.Namespace) -> int:
    from kernel.database import make_engine
    from allervers.migrate import upgrade
    from kernel.settings import Settings

    async def run() -> None:
        engine = make_engine(Settings().database_url)
        try:
            await upgrade(engine, args.revision)
        finally:
            await engine.dispose()

    asyncio.run(run())
    print(f"database upgraded to {args.revision}")
    return 0


def _check_flows(args: argparse.Namespace) -> int:
    from flows.library import check_files

    return check_files(args.files)


def _purge(args: argparse.Namespace) -> int:
    from conversations.retention import run_cli

    return run_cli(args.dry_run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="allervers", description="Allervers messaging assistant")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the web app (web chat, inbox, admin, webhooks)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--telegram-polling", action="store_true", help="long-poll Telegram instead of a webhook")
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(handler=_migrate)

    check = commands.add_parser("check-flows", help="validate flow YAML files")
    check.add_argument("files", nargs="*", help="files to check (default: the shipped flows)")
    check.set_defaults(handler=_check_flows)

    purge = commands.add_parser("purge", help="delete contacts (and their files) past the retention period")
    purge.add_argument("--dry-run", action="store_true", help="count them, delete nothing")
    purge.set_defaults(handler=_purge)

    for name, (module_name, help_text) in GROUPS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # a package still being built: its commands are not offered
            continue
        group = commands.add_parser(name, help=help_text)
        module.add_arguments(group)
        group.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
