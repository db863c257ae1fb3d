"""`allervers rights ...`: estimates outside the chat.

    allervers rights estimate ANSWERS.json [--month YYYY-MM]

prints the estimate as JSON on stdout (the answers schema is in docs/rights.md). Invalid JSON or
invalid answers print a clear message on stderr and exit with status 2. OpenFisca is imported only
when a command runs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="rights_command", required=True)
    estimate = commands.add_parser("estimate", help="estimate the benefits of one set of answers (JSON file, '-' = stdin)")
    estimate.add_argument("answers", help="path of the answers JSON file, or '-' for stdin")
    estimate.add_argument("--month", help="reference month YYYY-MM (default: the current month)")
    estimate.add_argument("--naive", action="store_true", help="use the slow reference computation (checks)")


def run(args: argparse.Namespace) -> int:
    if args.rights_command == "estimate":
        return _estimate(args)
    print(f"unknown rights command: {args.rights_command}", file=sys.stderr)
    return 2


def _estimate(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from rights.answers import Answers

    if args.month and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", args.month):
        print(f"error: --month must look like 2025-11, not {args.month!r}", file=sys.stderr)
        return 2
    try:
        text = sys.stdin.read() if args.answers == "-" else Path(args.answers).read_text(encoding="utf-8")
    except OSError as error:
        print(f"error: cannot read {args.answers}: {error.strerror}", file=sys.stderr)
        return 2
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        print(f"error: {args.answers} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})", file=sys.stderr)
        return 2
    try:
        answers = Answers.model_validate(payload)
    except ValidationError as error:
        print(f"error: invalid answers in {args.answers}:", file=sys.stderr)
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"]) or "(root)"
            print(f"  {where}: {problem['msg']}", file=sys.stderr)
        return 2
    from rights.estimator_sync import estimate_now

    result = estimate_now(answers, args.month, naive=args.naive)
    json.dump(result, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m rights.cli estimate ANSWERS.json`: the same command without the main CLI."""
    parser = argparse.ArgumentParser(prog="allervers rights")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
