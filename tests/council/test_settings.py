"""Settings from the environment, read once; TigerGraph only when configured."""

import asyncio
import sys
from pathlib import Path

import pytest
import redis.asyncio

from council import CouncilResponder, CouncilSettings
from council.memory import Turn
from council.settings import DEFAULT_MEMBERS_FILE, OLLAMA_MEMBERS_FILE
from council.tigergraph import upsert
from queues import SettingsError


def test_defaults_need_no_environment():
    settings = CouncilSettings.from_env({})
    assert settings == CouncilSettings()
    assert settings.members_file == DEFAULT_MEMBERS_FILE and settings.critique and not settings.hear_members
    assert settings.base_url("ollama") == "http://127.0.0.1:11434"
    assert not settings.tigergraph


def test_values_from_the_environment():
    settings = CouncilSettings.from_env(
        {
            "COUNCIL_MEMBERS_FILE": "/etc/council/members.toml",
            "OLLAMA_BASE_URL": "http://gpu:11434",
            "OPENAI_BASE_URL": "http://vllm:8000/v1",
            "OPENAI_API_KEY": "sk-test",
            "COUNCIL_MEMBER_TIMEOUT_S": "12.5",
            "COUNCIL_CRITIQUE": "off",
            "COUNCIL_HEAR_MEMBERS": "yes",
            "COUNCIL_TTS_ENGINES": "coqui, espeak",
            "COUNCIL_HISTORY_TOKENS": "500",
            "TIGERGRAPH_HOST": "",
        }
    )
    assert settings.members_file == Path("/etc/council/members.toml")
    assert settings.base_url("openai") == "http://vllm:8000/v1" and settings.openai_api_key == "sk-test"
    assert settings.ollama_base_url == "http://gpu:11434"
    assert settings.member_timeout_s == 12.5 and settings.history_tokens == 500
    assert settings.critique is False and settings.hear_members is True
    assert settings.tts_engines == ("coqui", "espeak")
    assert not settings.tigergraph


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("COUNCIL_HISTORY_TOKENS", "lots", "COUNCIL_HISTORY_TOKENS must be an integer, got 'lots'"),
        ("COUNCIL_CHAIR_TIMEOUT_S", "soon", "COUNCIL_CHAIR_TIMEOUT_S must be a number, got 'soon'"),
        ("COUNCIL_CRITIQUE", "maybe", "COUNCIL_CRITIQUE must be true or false, got 'maybe'"),
        ("COUNCIL_TOOLS_HTTP", "enabled", "COUNCIL_TOOLS_HTTP must be true or false, got 'enabled'"),
    ],
)
def test_a_malformed_value_names_its_variable(name, value, message):
    """A SettingsError, as every runtime's settings raise: `python -m web` says it and stops."""
    with pytest.raises(SettingsError, match=message):
        CouncilSettings.from_env({name: value})


def test_tigergraph_is_not_used_unless_configured(redis_url):
    async def scenario():
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            return CouncilResponder.from_settings(CouncilSettings(members_file=OLLAMA_MEMBERS_FILE), client)
        finally:
            await client.aclose()

    responder = asyncio.run(scenario())
    assert responder.memory.mirror is None
    assert "pyTigerGraph" not in sys.modules


def test_a_turn_as_a_tigergraph_upsert():
    doc = upsert("s1", Turn("t1", "Should I go?", "Go.", 1.5), ["lisbon"])
    assert doc["vertices"]["Turn"]["s1/t1"] == {
        "user_text": {"value": "Should I go?"},
        "answer": {"value": "Go."},
        "at": {"value": 1.5},
    }
    assert doc["edges"]["Session"]["s1"] == {"HAS_TURN": {"Turn": {"s1/t1": {}}}}
    assert doc["edges"]["Turn"]["s1/t1"] == {"MENTIONS": {"Topic": {"lisbon": {}}}}


def test_operators_none_means_nobody_and_empty_means_the_default():
    assert CouncilSettings.from_env({"COUNCIL_OPERATORS": "none"}).operators == ()
    assert CouncilSettings.from_env({"COUNCIL_OPERATORS": ""}).operators == ("anonymous", "default")
    assert CouncilSettings.from_env({"COUNCIL_OPERATORS": "alice, bob"}).operators == ("alice", "bob")
