"""What the council spent, for people and for operators.

`GET /api/usage?user=&day=` a user's day (UTC): spent, held by calls in flight, by member, the
limits and what is left. `?member=` a member's day, `?user=*` every user's (operators only).
`GET /api/usage/ledger?day=&user=&format=json|csv` the day's ledger, entry by entry.

A user reads their own usage; the users in COUNCIL_OPERATORS read anyone's and the whole ledger.
"""

import csv
import io
import re
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from billing import COLUMNS, AsyncLedger, Charge, Cost
from council import Budgets
from shared_schemas import ErrorCode

from . import metrics
from .auth import user_of
from .errors import ApiError
from .services import Services, services

DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class SpendMetrics:
    """The Prometheus counters of what this process records and refuses (a `Watcher`)."""

    def spent(self, charge: Charge, cost: Cost) -> None:
        member = charge.member or ""
        for unit in ("tokens", "seconds", "money"):
            if amount := getattr(cost, unit):
                metrics.SPEND.labels(charge.kind, member, unit).inc(amount)

    def refused(self, scope: str, unit: str) -> None:
        metrics.BUDGET_REFUSALS.labels(scope, unit).inc()

    def downgraded(self) -> None:
        metrics.BUDGET_DOWNGRADES.inc()


def watch(s: Services) -> None:
    """Count the council's spending in /metrics."""
    if (budgets := _budgets(s)) is not None:
        budgets.watchers.append(SpendMetrics())


def _budgets(s: Services) -> Budgets | None:
    return getattr(s.responder, "budgets", None)


def _ledger(s: Services) -> AsyncLedger:
    budgets = _budgets(s)
    return budgets.ledger if budgets is not None else AsyncLedger(s.aredis, s.settings.queues.key_prefix)


def _day(request: Request) -> str:
    day = request.query_params.get("day") or datetime.now(UTC).strftime("%Y-%m-%d")
    try:
        if not DAY.match(day):
            raise ValueError(day)
        datetime.strptime(day, "%Y-%m-%d")
    except ValueError:
        raise ApiError(400, ErrorCode.BAD_DAY, f"day must be a date like 2026-11-24 (UTC), got {day!r}.") from None
    return day


def _whose(request: Request, s: Services, wanted: str | None, everyone: bool = False) -> str | None:
    """The user the caller may read: their own, or (operators) `wanted`, or everyone (None, which
    is also what an operator who names no one gets when `everyone`)."""
    caller = user_of(request)
    operator = caller in s.settings.council.operators
    if not wanted and operator and everyone:
        return None
    if wanted in (None, "", caller):
        return caller
    if not operator:
        raise ApiError(403, ErrorCode.FORBIDDEN, "You can read your own usage only; operators read everyone's.")
    return None if wanted == "*" else wanted


async def _report(s: Services, scope: str, name: str, day: str) -> dict[str, Any]:
    budgets = _budgets(s)
    if budgets is not None:
        return await budgets.report(scope, name, day)
    usage = await _ledger(s).usage(scope, name, day)  # no council (echo): no limits either
    return {scope: name, "day": day, "spent": asdict(usage.spent), "quantities": usage.quantities, "limits": {}}


async def usage_endpoint(request: Request) -> JSONResponse:
    s = services(request)
    day = _day(request)
    member = request.query_params.get("member")
    if member:
        _whose(request, s, "*")  # members are everyone's: operators only
        return JSONResponse(await _report(s, "member", member, day))
    user = _whose(request, s, request.query_params.get("user"))
    if user is not None:
        return JSONResponse(await _report(s, "user", user, day))
    users = await _ledger(s).names("user", day)
    return JSONResponse({"day": day, "users": {u: await _report(s, "user", u, day) for u in users}})


async def ledger_endpoint(request: Request) -> Response:
    s = services(request)
    day = _day(request)
    user = _whose(request, s, request.query_params.get("user"), everyone=True)
    fmt = request.query_params.get("format", "json")
    if fmt not in ("json", "csv"):
        raise ApiError(400, ErrorCode.BAD_FORMAT, f"format must be json or csv, got {fmt!r}.")
    entries = await _ledger(s).entries(day, user)
    if fmt == "json":
        return JSONResponse({"day": day, "user": user, "entries": entries})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(entries)
    name = f"ledger-{day}{f'-{user}' if user else ''}.csv"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


routes = [Route("/api/usage", usage_endpoint), Route("/api/usage/ledger", ledger_endpoint)]
