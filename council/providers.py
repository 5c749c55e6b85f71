"""LLM providers: a langchain chat model per member, whether each server answers, and what a
failure to reach one means to a person (`LLMUnavailable`, with what to do about it).

`worker`: a model the council's workers serve over the queues (`worker_model.py`: needs the app's
`LLMQueue`); `ollama`, `openai`: an LLM server. Provider packages (langchain-ollama,
langchain-openai) are imported only when a member uses them.
"""

import asyncio
import importlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel

from queues import REDIS_DOWN

from .errors import ConfigError, LLMUnavailable
from .members import Council, Member
from .settings import CouncilSettings
from .worker_model import BUILTIN, BUILTIN_NOTICE, LLMQueue, WorkerChatModel

PACKAGES = {"ollama": ("langchain_ollama", "ChatOllama"), "openai": ("langchain_openai", "ChatOpenAI")}
# What a person does when a provider's server does not answer.
REMEDIES = {
    "ollama": "Start Ollama (`ollama serve`) or point OLLAMA_BASE_URL at a running one",
    "openai": "Start the OpenAI-compatible server or point OPENAI_BASE_URL at one (with OPENAI_API_KEY)",
}
WHERE = "or change the members' provider and base_url in the members file (COUNCIL_MEMBERS_FILE)"


def base_url(member: Member, settings: CouncilSettings) -> str:
    """The server a member's provider talks to (never asked of a worker member: it has none)."""
    return (member.base_url or settings.base_url(member.provider)).rstrip("/")


def build(member: Member, settings: CouncilSettings, llm_queue: LLMQueue | None = None) -> BaseChatModel:
    """The chat model `member` is configured for. Nothing is contacted until it is used.
    `llm_queue`: where a `worker` member's calls go (the app's queue client and event hub)."""
    if member.provider == "worker":
        if llm_queue is None:
            raise ConfigError(f"{member.name} uses the worker provider, which needs the app's queues (an LLMQueue)")
        return WorkerChatModel(
            member=member.name,
            model=member.model,
            max_tokens=member.max_output_tokens,
            temperature=member.temperature,
            queue=llm_queue,
        )
    module_name, class_name = PACKAGES[member.provider]
    try:
        chat_class = getattr(importlib.import_module(module_name), class_name)
    except ImportError:
        package = module_name.replace("_", "-")
        raise ConfigError(
            f"{member.name} uses the {member.provider} provider, which needs the {package} package: "
            f"pip install {package}"
        ) from None
    options: dict[str, Any] = {"model": member.model, "base_url": base_url(member, settings)}
    if member.temperature is not None:
        options["temperature"] = member.temperature
    # The answer's length is capped: what a call reserves from budgets is bounded by it.
    if member.provider == "openai":
        # Local OpenAI-compatible servers ignore the key; OpenAI itself answers 401 without one.
        options |= {"api_key": settings.openai_api_key or "EMPTY", "max_retries": settings.llm_retries}
        # Token counts in the stream's last chunk, for the ledger.
        options |= {"max_tokens": member.max_output_tokens, "stream_usage": True}
    else:
        options["num_predict"] = member.max_output_tokens
    model: BaseChatModel = chat_class(**options)
    return model


def build_all(
    council: Council, settings: CouncilSettings, llm_queue: LLMQueue | None = None
) -> dict[str, BaseChatModel]:
    return {m.name: build(m, settings, llm_queue) for m in council.everyone}


def unavailable(exc: BaseException, member: Member, settings: CouncilSettings) -> LLMUnavailable | None:
    """`exc` as an `LLMUnavailable` when it means the member's server cannot be used, else None."""
    if member.provider == "worker":  # no server to reach: the worker model raises LLMUnavailable itself
        return next((cause for cause in _chain(exc) if isinstance(cause, LLMUnavailable)), None)
    url = base_url(member, settings)
    for cause in _chain(exc):
        if isinstance(cause, LLMUnavailable):
            return cause
        refused = isinstance(cause, OSError) and not isinstance(cause, TimeoutError)
        if refused or type(cause).__name__ in ("ConnectError", "ConnectTimeout"):
            return LLMUnavailable(
                f"No LLM server answers at {url} ({member.provider}). {REMEDIES[member.provider]}, {WHERE}."
            )
        status = getattr(cause, "status_code", None)
        if status in (401, 403):
            return LLMUnavailable(f"The LLM server at {url} refused the API key ({status}): set OPENAI_API_KEY.")
        if status == 404 and "model" in str(cause).lower():
            pull = f" (`ollama pull {member.model}`)" if member.provider == "ollama" else ""
            return LLMUnavailable(
                f"The LLM server at {url} has no model {member.model!r}: "
                f"make it available{pull} or change the model in the members file."
            )
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


@dataclass(frozen=True)
class ProviderStatus:
    provider: str
    base_url: str
    members: tuple[str, ...]
    reachable: bool
    missing_models: tuple[str, ...] = ()
    detail: str = "ok"
    notice: str | None = None  # what a person should know while it serves (the built-in model)

    @property
    def ready(self) -> bool:
        return self.reachable and not self.missing_models

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ready": self.ready}


async def check(council: Council, settings: CouncilSettings, llm_queue: LLMQueue | None = None) -> list[ProviderStatus]:
    """Whether each configured LLM server answers and has the members' models, and whether a
    worker serves the `llm` queue for the `worker` members, for /health."""
    servers: dict[tuple[str, str], list[Member]] = {}
    workers: list[Member] = []
    for m in council.everyone:
        if m.provider == "worker":
            workers.append(m)
        else:
            servers.setdefault((m.provider, base_url(m, settings)), []).append(m)
    async with httpx.AsyncClient(timeout=settings.check_timeout_s) as client:
        probes = [_probe(client, settings, p, url, ms) for (p, url), ms in servers.items()]
        if workers:
            probes.append(_probe_workers(llm_queue, workers, settings.check_timeout_s))
        return list(await asyncio.gather(*probes))


async def _probe_workers(llm_queue: LLMQueue | None, members: list[Member], timeout_s: float) -> ProviderStatus:
    names = tuple(m.name for m in members)
    if llm_queue is None:
        return ProviderStatus("worker", "queue:llm", names, reachable=False, detail="no queues to reach the workers")
    where = f"queue:{llm_queue.name}"
    try:
        count = await asyncio.wait_for(llm_queue.workers(), timeout_s)
    except (TimeoutError, OSError, *REDIS_DOWN) as exc:
        return ProviderStatus("worker", where, names, reachable=False, detail=f"cannot count its workers: {exc!r}")
    if count == 0:
        return ProviderStatus("worker", where, names, reachable=False, detail=llm_queue.unavailable().message)
    builtin = any(m.model == BUILTIN for m in members)
    detail = f"{count} worker{'s' * (count > 1)} serve{'s' * (count == 1)} the {llm_queue.name} queue"
    notice = BUILTIN_NOTICE if builtin else None
    return ProviderStatus("worker", where, names, reachable=True, detail=detail, notice=notice)


async def _probe(
    client: httpx.AsyncClient, settings: CouncilSettings, provider: str, url: str, members: list[Member]
) -> ProviderStatus:
    names = tuple(m.name for m in members)
    endpoint = f"{url}/api/tags" if provider == "ollama" else f"{url}/models"
    key = settings.openai_api_key if provider == "openai" else None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = await client.get(endpoint, headers=headers)
        response.raise_for_status()
        available = _models(provider, response.json())
    except (httpx.HTTPError, ValueError) as exc:
        detail = f"GET {endpoint} failed ({type(exc).__name__}: {exc}). {REMEDIES[provider]}, {WHERE}."
        return ProviderStatus(provider, url, names, reachable=False, detail=detail)
    missing = tuple(sorted({m.model for m in members if not _has(provider, m.model, available)}))
    detail = "ok" if not missing else f"models not on the server: {', '.join(missing)}"
    return ProviderStatus(provider, url, names, reachable=True, missing_models=missing, detail=detail)


def _models(provider: str, body: Mapping[str, Any]) -> set[str]:
    if provider == "ollama":
        return {str(m.get("name") or m.get("model")) for m in body.get("models", [])}
    return {str(m.get("id")) for m in body.get("data", [])}


def _has(provider: str, model: str, available: set[str]) -> bool:
    if provider == "ollama" and ":" not in model:
        return model in available or f"{model}:latest" in available
    return model in available
