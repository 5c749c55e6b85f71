"""TigerGraph: where turns and the topics they mention are also written, when TIGERGRAPH_HOST is
set. pyTigerGraph is imported only then. The graph needs this schema:

```gsql
CREATE VERTEX Session (PRIMARY_ID id STRING)
CREATE VERTEX Turn (PRIMARY_ID id STRING, user_text STRING, answer STRING, at DOUBLE)
CREATE VERTEX Topic (PRIMARY_ID id STRING)
CREATE DIRECTED EDGE HAS_TURN (FROM Session, TO Turn)
CREATE DIRECTED EDGE MENTIONS (FROM Turn, TO Topic)
```
"""

import asyncio
import importlib
from typing import Any

from .errors import ConfigError
from .memory import Turn
from .settings import CouncilSettings


class TigerGraphMirror:
    def __init__(self, settings: CouncilSettings) -> None:
        try:
            module = importlib.import_module("pyTigerGraph")
        except ImportError:
            message = "TIGERGRAPH_HOST is set but pyTigerGraph is not installed: pip install pyTigerGraph"
            raise ConfigError(message) from None
        self.connection: Any = module.TigerGraphConnection(
            host=settings.tigergraph_host,
            graphname=settings.tigergraph_graph,
            username=settings.tigergraph_username,
            password=settings.tigergraph_password or "",
            apiToken=settings.tigergraph_token or "",
        )

    async def remember(self, session_id: str, turn: Turn, topics: list[str]) -> None:
        await asyncio.to_thread(self.connection.upsertData, upsert(session_id, turn, topics))


def upsert(session_id: str, turn: Turn, topics: list[str]) -> dict[str, Any]:
    """One turn as a TigerGraph upsert document: its session, the turn, the topics it mentions."""
    turn_id = f"{session_id}/{turn.turn_id}"
    attributes = {"user_text": turn.user, "answer": turn.answer, "at": turn.at}
    return {
        "vertices": {
            "Session": {session_id: {}},
            "Turn": {turn_id: {name: {"value": value} for name, value in attributes.items()}},
            "Topic": {topic: {} for topic in topics},
        },
        "edges": {
            "Session": {session_id: {"HAS_TURN": {"Turn": {turn_id: {}}}}},
            "Turn": {turn_id: {"MENTIONS": {"Topic": {topic: {} for topic in topics}}}},
        },
    }
