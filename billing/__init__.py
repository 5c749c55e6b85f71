"""Billing: what the council spends, metered against the user, the member and the turn, within
budgets that cannot be overspent. The app reserves and debits (LLM calls, tools, jobs before they
are queued); the workers settle their jobs. Both runtimes import it; it depends only on redis.

Every change is one Lua call, atomic in Redis (`spend.lua`). Import from here, not from the
modules: `_charges` holds the plain values (charges, limits, costs, refusals), `_ledger` the
ledger on a blocking and on an asyncio client.
"""

from ._charges import COLUMNS, UNITS, Charge, Cost, Entry, Limits, Refused, Usage, day_of, price, resets_at
from ._ledger import HOLD_TTL_S, AsyncLedger, Ledger

__all__ = [
    "COLUMNS",
    "HOLD_TTL_S",
    "UNITS",
    "AsyncLedger",
    "Charge",
    "Cost",
    "Entry",
    "Ledger",
    "Limits",
    "Refused",
    "Usage",
    "day_of",
    "price",
    "resets_at",
]
