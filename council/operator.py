"""`python -m council.operator`: an operator's levers on budgets, and the ledger from a terminal.

python -m council.operator usage --user alice              # today (UTC); --day 2026-11-24
python -m council.operator freeze user alice               # or: member Ada; unfreeze likewise
python -m council.operator top-up user alice 50000 tokens  # today only: units tokens, seconds, money
python -m council.operator limit user alice 2 money        # over COUNCIL_BUDGET_DAILY; "none" removes
python -m council.operator export --day 2026-11-24 --format csv > ledger.csv
"""

import argparse
import csv
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict

from billing import COLUMNS, UNITS, Ledger
from queues import QueueSettings, SettingsError

from .errors import ConfigError
from .settings import CouncilSettings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m council.operator", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = p.add_subparsers(dest="command", required=True)
    usage = commands.add_parser("usage", help="a user's or a member's day, as JSON")
    who = usage.add_mutually_exclusive_group(required=True)
    who.add_argument("--user")
    who.add_argument("--member")
    usage.add_argument("--day")
    for name in ("freeze", "unfreeze"):
        c = commands.add_parser(name, help=f"{name} a user's or a member's spending")
        c.add_argument("scope", choices=("user", "member"))
        c.add_argument("name")
    top = commands.add_parser("top-up", help="raise today's limit of a user or a member")
    top.add_argument("scope", choices=("user", "member"))
    top.add_argument("name")
    top.add_argument("amount", type=float)
    top.add_argument("unit", choices=UNITS)
    limit = commands.add_parser("limit", help="set a daily limit for one user or member, over the configured one")
    limit.add_argument("scope", choices=("user", "member"))
    limit.add_argument("name")
    limit.add_argument("amount", help='a number, "none" (back to the configured limit) or "unlimited"')
    limit.add_argument("unit", choices=UNITS)
    export = commands.add_parser("export", help="a day's ledger, entry by entry")
    export.add_argument("--day")
    export.add_argument("--user")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    return p


def main(argv: list[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        queues, council = QueueSettings.from_env(environ), CouncilSettings.from_env(environ)
    except (SettingsError, ConfigError) as exc:
        p.error(str(exc))
    connection = queues.connect()
    try:
        ledger = Ledger(connection, council.key_prefix)
        return run(p, ledger, args)
    finally:
        connection.close()


def run(p: argparse.ArgumentParser, ledger: Ledger, args: argparse.Namespace) -> int:
    match args.command:
        case "usage":
            scope, name = ("user", args.user) if args.user else ("member", args.member)
            print(json.dumps({scope: name, **asdict(ledger.usage(scope, name, args.day))}, indent=2))
        case "freeze" | "unfreeze":
            ledger.freeze(args.scope, args.name, args.command == "freeze")
            print(f"{args.scope} {args.name}: {args.command}d")
        case "top-up":
            total = ledger.top_up(args.scope, args.name, args.unit, args.amount)
            print(f"{args.scope} {args.name}: topped up by {total:g} {args.unit} today")
        case "limit":
            value = {"none": None, "unlimited": -1.0}.get(args.amount)
            if value is None and args.amount != "none":
                try:
                    value = float(args.amount)
                except ValueError:
                    p.error(f'amount must be a number, "none" or "unlimited", got {args.amount!r}')
            ledger.set_limit(args.scope, args.name, args.unit, value)
            print(f"{args.scope} {args.name}: daily limit in {args.unit} set to {args.amount}")
        case "export":
            entries = ledger.entries(args.day, args.user)
            if args.format == "json":
                print(json.dumps(entries, indent=2))
            else:
                writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(entries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
