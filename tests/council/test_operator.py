"""`python -m council.operator`: freeze, top up, set limits and export, against the real test Redis."""

import csv
import io
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from billing import Charge, Ledger, Limits, Refused
from council.operator import main


@pytest.fixture
def env(redis_url) -> dict[str, str]:
    return {"COUNCIL_REDIS_URL": redis_url, "COUNCIL_KEY_PREFIX": f"t{uuid.uuid4().hex[:10]}"}


@pytest.fixture
def ledger(connection, env) -> Ledger:
    return Ledger(connection, env["COUNCIL_KEY_PREFIX"])


def charge(tokens: int = 100) -> Charge:
    return Charge(kind="llm", item="llama3.2", user="alice", member="Ada", input_tokens=tokens)


def test_freeze_top_up_and_limit(env, ledger, capsys):
    limits = Limits(user={"tokens": 100})
    ledger.debit(charge(), limits)
    assert main(["freeze", "user", "alice"], env) == 0
    assert capsys.readouterr().out == "user alice: frozen\n"
    with pytest.raises(Refused, match="frozen"):
        ledger.debit(charge(1), limits)
    main(["unfreeze", "user", "alice"], env)
    with pytest.raises(Refused):
        ledger.debit(charge(1), limits)
    main(["top-up", "user", "alice", "50", "tokens"], env)
    ledger.debit(charge(50), limits)
    main(["limit", "user", "alice", "unlimited", "tokens"], env)
    ledger.debit(charge(10_000), limits)
    main(["limit", "member", "Ada", "0.5", "money"], env)
    assert ledger.usage("member", "Ada").limits == {"money": 0.5}
    assert "topped up by 50 tokens today" in capsys.readouterr().out
    main(["usage", "--user", "alice"], env)
    shown = json.loads(capsys.readouterr().out)
    assert shown["user"] == "alice" and shown["spent"]["tokens"] == 10_150 and shown["limits"] == {"tokens": -1}


def test_export_writes_the_days_ledger(env, ledger, capsys):
    ledger.debit(charge())
    ledger.debit(Charge(kind="tool", item="clock", user="bob", calls=1))
    main(["export"], env)
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["user"], r["kind"], r["tokens"]) for r in rows] == [("alice", "llm", "100"), ("bob", "tool", "0")]
    main(["export", "--user", "bob", "--format", "json"], env)
    assert [e["item"] for e in json.loads(capsys.readouterr().out)] == ["clock"]


def test_a_bad_amount_is_refused_clearly(env, capsys):
    with pytest.raises(SystemExit):
        main(["limit", "user", "alice", "lots", "tokens"], env)
    assert 'amount must be a number of at least 0, "none" or "unlimited"' in capsys.readouterr().err


def operator(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command as a person runs it: its own process, its own stderr."""
    root = Path(__file__).resolve().parents[2]
    environ = {**os.environ, "PYTHONPATH": str(root), **env}
    return subprocess.run(
        [sys.executable, "-m", "council.operator", *args], env=environ, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["usage", "--user", "alice", "--day", "2026-13-45"], "'2026-13-45' is not a date: write YYYY-MM-DD"),
        (["export", "--day", "yesterday"], "'yesterday' is not a date"),
        (["freeze", "member", "Nobody"], "no member 'Nobody' in"),
        (["usage", "--member", "nobody"], "members: Ada"),
        (["freeze", "user", "al/ice"], "'al/ice' is not a user name"),
        (["top-up", "user", "alice", "-5", "tokens"], "a top-up is a number over 0"),
        (["top-up", "user", "alice", "nan", "tokens"], "a top-up is a number over 0"),
        (["limit", "user", "alice", "-1", "money"], "a number of at least 0"),
    ],
)
def test_mistakes_are_one_line_saying_what_to_write_and_nothing_is_written(env, ledger, args, says):
    done = operator(args, env)
    assert done.returncode == 2 and done.stdout == ""
    assert says in done.stderr and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    alice = ledger.usage("user", "alice")
    assert not alice.limits and not alice.frozen and alice.topped_up.tokens == 0


def test_redis_away_is_one_line_naming_it_and_the_fix(env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    done = operator(["freeze", "user", "alice"], {**env, "COUNCIL_REDIS_URL": f"redis://127.0.0.1:{port}"})
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"Redis at redis://127.0.0.1:{port} does not answer" in done.stderr and "COUNCIL_REDIS_URL" in done.stderr
