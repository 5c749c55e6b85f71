"""The price table: what models, voice engines and tools cost in money, loaded from one TOML file
(`prices.toml` beside this module unless COUNCIL_PRICES_FILE names another).

It becomes the ledger's flat table, `kind:item|quantity` -> micro-units of money per unit of that
quantity, which the app publishes into Redis for every process that records spending.
"""

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_PRICES_FILE = Path(__file__).with_name("prices.toml")
KINDS = ("llm", "stt", "tts", "tool")
# A price in the file -> (the ledger's quantity, micro-units of money per unit of it, per money unit).
FIELDS = {
    "input_per_mtok": ("input_tokens", 1.0),  # 1e6 micros / 1e6 tokens
    "output_per_mtok": ("output_tokens", 1.0),
    "per_audio_hour": ("audio_ms", 1e6 / 3_600_000),
    "per_compute_hour": ("compute_ms", 1e6 / 3_600_000),
    "per_mchar": ("chars", 1.0),
    "per_call": ("calls", 1e6),
}


@dataclass(frozen=True)
class Prices:
    currency: str = "USD"
    table: dict[str, float] = field(default_factory=dict)

    def per(self, kind: str, item: str, quantity: str) -> float:
        """Micro-units of money one unit of `quantity` costs (the "*" entry when `item` has none)."""
        return self.table.get(f"{kind}:{item}|{quantity}", self.table.get(f"{kind}:*|{quantity}", 0.0))


def load(path: Path) -> Prices:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"price file {path} does not exist (set COUNCIL_PRICES_FILE)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"price file {path} is not valid TOML: {exc}") from None
    return parse(data, str(path))


def parse(data: dict[str, Any], source: str = "prices") -> Prices:
    currency = data.get("currency", "USD")
    if not isinstance(currency, str) or not currency:
        raise ConfigError(f'{source}: currency must be a name such as "USD"')
    unknown = set(data) - {"currency", *KINDS}
    if unknown:
        raise ConfigError(f"{source}: unknown table {sorted(unknown)}; expected currency and {', '.join(KINDS)}")
    table: dict[str, float] = {}
    for kind in KINDS:
        items = data.get(kind, {})
        if not isinstance(items, dict):
            raise ConfigError(f"{source}: [{kind}] must be a table of items")
        for item, prices in items.items():
            if not isinstance(prices, dict):
                raise ConfigError(f"{source}: [{kind}.{item}] must be a table of prices")
            for name, value in prices.items():
                if name not in FIELDS:
                    raise ConfigError(f"{source}: [{kind}.{item}] {name}: unknown; prices: {', '.join(FIELDS)}")
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ConfigError(f"{source}: [{kind}.{item}] {name} must be a number, 0 or more, got {value!r}")
                quantity, scale = FIELDS[name]
                table[f"{kind}:{item}|{quantity}"] = float(value) * scale
    return Prices(currency, table)
