"""The app's one settings model, `AppSettings` (queues, council and server sections, and the app's
own), from the environment, and the rules it shares with the worker's: every variable in the
README, every boolean taking the same words, empty as unset, settings reaching what they set."""

import re
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from council import CouncilSettings
from queues import FALSE_WORDS, TRUE_WORDS, EnvSettings, QueueSettings, SettingsError
from voice_worker.settings import WorkerSettings
from web.app import create_app
from web.settings import AppSettings, ServerSettings

ROOT = Path(__file__).resolve().parents[2]
RUNTIMES = (AppSettings, WorkerSettings)


def readme_variables() -> set[str]:
    """Every variable named in the first column of README's Configuration table."""
    section = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for cell in cells for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)}


def fields(model: type[EnvSettings]) -> dict[str, tuple[type[EnvSettings], str, tuple[str, ...]]]:
    """`Model.field` -> (its model, the field, its variables), through every section."""
    found = {f"{model.__name__}.{name}": (model, name, names) for name, names in model.variables().items()}
    for section in model.sections().values():
        found |= fields(section)
    return found


def test_the_app_holds_the_queues_council_and_server_sections():
    assert AppSettings.sections() == {"queues": QueueSettings, "council": CouncilSettings, "server": ServerSettings}
    assert WorkerSettings.sections() == {"queues": QueueSettings}


@pytest.mark.parametrize("runtime", RUNTIMES, ids=lambda model: model.__name__)
def test_every_setting_has_its_variable_in_the_readme(runtime):
    documented = readme_variables()
    missing = [f"{key} ({names[0]})" for key, (_, _, names) in fields(runtime).items() if names[0] not in documented]
    assert not missing, f"not in README's Configuration table: {missing}"


def booleans() -> list[tuple[str, type[EnvSettings], str]]:
    found = {}
    for runtime in RUNTIMES:
        for model, name, names in fields(runtime).values():
            if model.model_fields[name].annotation is bool:
                found[names[0]] = (names[0], model, name)
    return sorted(found.values())


def test_the_walk_finds_every_boolean():
    names = [variable for variable, _, _ in booleans()]
    assert names == [
        "COUNCIL_ALLOW_OPEN",
        "COUNCIL_CRITIQUE",
        "COUNCIL_HEAR_FIRST",
        "COUNCIL_HEAR_MEMBERS",
        "COUNCIL_TOOLS_HTTP",
        "WORKER_VAD",
    ]


@pytest.mark.parametrize(("variable", "model", "name"), booleans(), ids=lambda value: getattr(value, "__name__", value))
def test_every_boolean_takes_the_same_words(variable, model, name):
    for word in (*TRUE_WORDS, *FALSE_WORDS, "ON", "No", " true "):
        assert getattr(model.from_env({variable: word}), name) is (word.strip().lower() in TRUE_WORDS), word
    for word in ("maybe", "2", "y", "enabled"):
        with pytest.raises(SettingsError, match=f"{variable} must be true or false, got '{word}'"):
            model.from_env({variable: word})


def test_a_variable_set_empty_is_unset():
    every = {name for _, _, names in fields(AppSettings).values() for name in names}
    assert AppSettings.from_env(dict.fromkeys(every, "")) == AppSettings.from_env({})


def test_built_in_code_the_app_reads_no_environment(monkeypatch):
    monkeypatch.setenv("COUNCIL_RESPONDER", "echo")
    monkeypatch.setenv("COUNCIL_CRITIQUE", "off")
    monkeypatch.setenv("COUNCIL_HOST", "0.0.0.0")
    settings = AppSettings(queues=QueueSettings())
    assert (settings.responder, settings.council.critique, settings.server.host) == ("council", True, "127.0.0.1")


def test_the_apps_own_settings_from_the_environment():
    settings = AppSettings.from_env(
        {
            "COUNCIL_RESPONDER": "echo",
            "COUNCIL_REDIS_POOL_SIZE": "20",
            "COUNCIL_REDIS_POOL_WAIT_S": "2.5",
            "COUNCIL_APP_ALIVE_TTL_S": "6",
            "COUNCIL_APP_BEAT_S": "3",
            "COUNCIL_LLM_STATUS_TTL_S": "0",
            "COUNCIL_MAX_RECORDING_BYTES": "1000000",
        }
    )
    assert settings.responder == "echo" and (settings.redis_pool_size, settings.redis_pool_wait_s) == (20, 2.5)
    assert (settings.app_alive_ttl_s, settings.app_beat_s, settings.llm_status_ttl_s) == (6, 3, 0)
    assert settings.max_recording_bytes == 1_000_000
    defaults = AppSettings.from_env({})
    assert (defaults.redis_pool_size, defaults.redis_pool_wait_s) == (100, 10)
    assert (defaults.app_alive_ttl_s, defaults.app_beat_s, defaults.llm_status_ttl_s) == (15, 5, 10)


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"COUNCIL_RESPONDER": "parrot"}, "COUNCIL_RESPONDER must be 'council' or 'echo', got 'parrot'"),
        ({"COUNCIL_MAX_RECORDING_BYTES": "1k"}, "COUNCIL_MAX_RECORDING_BYTES must be an integer, got '1k'"),
        ({"COUNCIL_BLOB_QUOTA_BYTES": "0"}, "COUNCIL_BLOB_QUOTA_BYTES must be more than 0"),
        ({"COUNCIL_REDIS_POOL_SIZE": "0"}, "COUNCIL_REDIS_POOL_SIZE must be more than 0"),
        ({"COUNCIL_APP_BEAT_S": "10"}, "COUNCIL_APP_BEAT_S must be at most half of COUNCIL_APP_ALIVE_TTL_S"),
        ({"COUNCIL_HISTORY_TURNS": "many"}, "COUNCIL_HISTORY_TURNS must be an integer, got 'many'"),
        ({"COUNCIL_PORT": "http"}, "COUNCIL_PORT must be an integer, got 'http'"),
        ({"COUNCIL_BLOB_TTL_S": "soon"}, "COUNCIL_BLOB_TTL_S must be an integer, got 'soon'"),
    ],
)
def test_a_value_that_does_not_fit_is_refused_naming_its_variable(environ, says):
    with pytest.raises(SettingsError) as refused:
        AppSettings.from_env(environ)
    assert says in str(refused.value)


def test_a_secret_is_never_shown():
    settings = AppSettings.from_env(
        {"COUNCIL_API_TOKEN": "t-default", "OPENAI_API_KEY": "sk-secret", "TIGERGRAPH_PASSWORD": "tg-secret"}
    )
    assert not {"t-default", "sk-secret", "tg-secret"} & set(re.findall(r"[\w-]+", repr(settings)))


def test_the_pool_and_liveness_settings_reach_the_app(settings):
    app_settings = AppSettings(queues=settings, responder="echo", redis_pool_size=7, app_alive_ttl_s=4, app_beat_s=1)
    with TestClient(create_app(app_settings)) as client:
        services = client.app.state.services
        assert services.aredis.connection_pool.max_connections == 7
        assert (services.open_turns.alive_ttl_s, services.open_turns.beat_s) == (4, 1)
        alive = f"{settings.key_prefix}:app:{services.open_turns.app}"
        deadline = time.monotonic() + 5
        while (ttl_ms := client.portal.call(services.aredis.pttl, alive)) < 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # the first beat is under way
        assert 0 < ttl_ms <= 4000
