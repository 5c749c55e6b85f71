"""`python -m council.operator`: an operator's levers on budgets, and the ledger from a terminal.

python -m council.operator usage --user alice              # today (UTC); --day 2026-11-24
python -m council.operator freeze user alice               # or: member Ada; unfreeze likewise
python -m council.operator top-up user alice 50000 tokens  # today only: units tokens, seconds, money
python -m council.operator limit user alice 2 money        # over COUNCIL_BUDGET_DAILY; "none" removes
python -m council.operator export --day 2026-11-24 --format csv > ledger.csv

Checked before anything is written: a day is a real date (YYYY-MM-DD), a member is one of the
members file's (COUNCIL_MEMBERS_FILE), a user name is 1-64 letters, digits or . _ @ - (as the app's
COUNCIL_API_TOKENS allows), a top-up is a positive number, a limit a number of at least 0. What is
wrong, or a Redis that does not answer, is one line on stderr saying what to do (exit 2).
"""

import argparse
import csv
import datetime
import json
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict
from typing import NoReturn

import redis

from billing import COLUMNS, UNITS, Ledger
from queues import QueueSettings, SettingsError

from . import members
from .errors import ConfigError
from .settings import CouncilSettings

PROG = "python -m council.operator"
USER_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# What each command says it did.
DONE = {"freeze": "frozen", "unfreeze": "unfrozen"}


def day(raw: str) -> str:
    """`--day`: a real date, YYYY-MM-DD."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        try:
            return datetime.date.fromisoformat(raw).isoformat()
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"{raw!r} is not a date: write YYYY-MM-DD, e.g. 2026-11-24")


class Parser(argparse.ArgumentParser):
    """argparse, whose mistakes are one line (no usage block): what is wrong and where help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive(raw: str) -> float:
    """A top-up: a finite number over 0."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{raw!r}: a top-up is a number over 0, e.g. 50000")
    return value


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m council.operator", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = p.add_subparsers(dest="command", required=True)
    usage = commands.add_parser("usage", help="a user's or a member's day, as JSON")
    who = usage.add_mutually_exclusive_group(required=True)
    who.add_argument("--user")
    who.add_argument("--member")
    usage.add_argument("--day", type=day)
    for name in ("freeze", "unfreeze"):
        c = commands.add_parser(name, help=f"{name} a user's or a member's spending")
        c.add_argument("scope", choices=("user", "member"))
        c.add_argument("name")
    top = commands.add_parser("top-up", help="raise today's limit of a user or a member")
    top.add_argument("scope", choices=("user", "member"))
    top.add_argument("name")
    top.add_argument("amount", type=positive)
    top.add_argument("unit", choices=UNITS)
    limit = commands.add_parser("limit", help="set a daily limit for one user or member, over the configured one")
    limit.add_argument("scope", choices=("user", "member"))
    limit.add_argument("name")
    limit.add_argument("amount", help='a number, "none" (back to the configured limit) or "unlimited"')
    limit.add_argument("unit", choices=UNITS)
    export = commands.add_parser("export", help="a day's ledger, entry by entry")
    export.add_argument("--day", type=day)
    export.add_argument("--user")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    return p


def main(argv: list[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        queues, council = QueueSettings.from_env(environ), CouncilSettings.from_env(environ)
        check_name(args, council)
    except (SettingsError, ConfigError) as exc:
        p.error(str(exc))
    try:
        connection = queues.connect()
        try:
            ledger = Ledger(connection, council.key_prefix)
            return run(p, ledger, args)
        finally:
            connection.close()
    except redis.exceptions.RedisError as exc:
        print(
            f"{PROG}: error: Redis at {queues.safe_url} does not answer ({exc}): start it (redis-server, or "
            "`make run`), or point COUNCIL_REDIS_URL at it",
            file=sys.stderr,
        )
        return 2


def check_name(args: argparse.Namespace, council: CouncilSettings) -> None:
    """The user or member a command names: a member of the members file, a user name as the app
    allows it. Raises ConfigError saying which names there are."""
    scope = getattr(args, "scope", None)
    name = getattr(args, "name", None)
    if args.command == "usage":
        scope, name = ("user", args.user) if args.user else ("member", args.member)
    elif args.command == "export" and args.user:
        scope, name = "user", args.user
    if scope == "member":
        known = [m.name for m in members.load(council.members_file).everyone]
        if name not in known:
            raise ConfigError(f"no member {name!r} in {council.members_file}; members: {', '.join(known)}")
    elif scope == "user" and not USER_NAME.match(name or ""):
        raise ConfigError(f"{name!r} is not a user name: 1-64 letters, digits or . _ @ -")


def run(p: argparse.ArgumentParser, ledger: Ledger, args: argparse.Namespace) -> int:
    match args.command:
        case "usage":
            scope, name = ("user", args.user) if args.user else ("member", args.member)
            print(json.dumps({scope: name, **asdict(ledger.usage(scope, name, args.day))}, indent=2))
        case "freeze" | "unfreeze":
            ledger.freeze(args.scope, args.name, args.command == "freeze")
            print(f"{args.scope} {args.name}: {DONE[args.command]}")
        case "top-up":
            total = ledger.top_up(args.scope, args.name, args.unit, args.amount)
            print(f"{args.scope} {args.name}: topped up by {total:g} {args.unit} today")
        case "limit":
            value = {"none": None, "unlimited": -1.0}.get(args.amount)
            if value is None and args.amount != "none":
                try:
                    value = float(args.amount)
                except ValueError:
                    value = math.nan
                if not math.isfinite(value) or value < 0:
                    p.error(f'amount must be a number of at least 0, "none" or "unlimited", got {args.amount!r}')
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
