"""`python -m council.operator`: freeze, top up, set limits and export, against the real test Redis."""

import csv
import io
import json
import uuid

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
    assert 'amount must be a number, "none" or "unlimited"' in capsys.readouterr().err
