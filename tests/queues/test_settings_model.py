"""The settings models' one set of rules (`queues.settings.EnvSettings`), on the worker's model and
its queues section, on both interpreters: built in code a model reads no environment; one word list
for booleans; empty is unset; a bad value names its variable; every variable is in the README."""

import re
from pathlib import Path

import pytest

from queues import FALSE_WORDS, TRUE_WORDS, EnvSettings, QueueSettings, SettingsError
from voice_worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]


def readme_variables() -> set[str]:
    """Every variable named in the first column of README's Configuration table."""
    section = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for cell in cells for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)}


def variables(model: type[EnvSettings]) -> dict[str, tuple[str, ...]]:
    """`Model.field` -> its variables, through every section."""
    found = {f"{model.__name__}.{name}": names for name, names in model.variables().items()}
    for section in model.sections().values():
        found |= variables(section)
    return found


def test_every_setting_of_the_worker_has_its_variable_in_the_readme():
    documented = readme_variables()
    missing = {field: names for field, names in variables(WorkerSettings).items() if names[0] not in documented}
    assert not missing, f"not in README's Configuration table: {missing}"
    assert variables(QueueSettings)["QueueSettings.redis_url"] == ("COUNCIL_REDIS_URL", "REDIS_URL")


def test_built_in_code_a_model_reads_no_environment(monkeypatch):
    monkeypatch.setenv("COUNCIL_RETRIES", "7")
    monkeypatch.setenv("WORKER_VAD", "off")
    monkeypatch.setenv("WORKER_THREADS", "none")
    queues = QueueSettings(retries=1)
    assert queues.retries == 1 and QueueSettings().retries == 2
    assert WorkerSettings(queues=queues).vad is True
    assert WorkerSettings.from_env({}).threads == 2  # the mapping it is given, not the process's


@pytest.mark.parametrize("word", [*TRUE_WORDS, *FALSE_WORDS, "OFF", "Yes", " on "])
def test_a_boolean_takes_the_same_words_everywhere(word):
    assert WorkerSettings.from_env({"WORKER_VAD": word}).vad is (word.strip().lower() in TRUE_WORDS)


def test_worker_vad_off_turns_vad_off():
    assert WorkerSettings.from_env({"WORKER_VAD": "off"}).vad is False
    with pytest.raises(SettingsError, match="WORKER_VAD must be true or false, got 'nah'"):
        WorkerSettings.from_env({"WORKER_VAD": "nah"})


def test_a_variable_set_empty_is_unset():
    every = {name for names in variables(WorkerSettings).values() for name in names}
    assert WorkerSettings.from_env(dict.fromkeys(every, "")) == WorkerSettings.from_env({})
    assert WorkerSettings.from_env({"WORKER_QUEUES": " "}).queue_names == ("speech", "realtime", "batch")


def test_the_llm_queue_is_served_only_when_named():
    every = WorkerSettings.from_env({})
    assert "llm" in QueueSettings().queue_names and not every.serves_llm and every.serves_voice
    only = WorkerSettings.from_env({"WORKER_QUEUES": "llm", "WORKER_LLM_BATCH": "3"})
    assert only.queue_names == ("llm",) and only.serves_llm and not only.serves_voice and only.llm_batch == 3
    both = WorkerSettings.from_env({"WORKER_QUEUES": "batch,llm,realtime"})
    assert both.queue_names == ("realtime", "llm", "batch") and both.serves_llm and both.serves_voice


def test_values_from_the_environment():
    settings = WorkerSettings.from_env(
        {
            "REDIS_URL": "redis://h:1/2",
            "STT_ENGINE": "parakeet",
            "TTS_ENGINE": "coqui, espeak",
            "WORKER_QUEUES": "batch,speech",
            "WORKER_ALIVE_TTL": "20",
            "WORKER_BEAT": "4",
            "WORKER_BATCH": "16",
            "WORKER_LISTENERS": "0",
            "MODEL_DIR": "/models",
            "LISTEN_MAX_TURN_S": "2.5",
            "LISTEN_TURN_THRESHOLD": "0.7",
        }
    )
    assert settings.queues.redis_url == "redis://h:1/2" and settings.stt_engine == "parakeet"
    assert settings.tts_engines == ("coqui", "espeak") and settings.queue_names == ("speech", "batch")
    assert (settings.alive_ttl_s, settings.beat_s, settings.batch_size, settings.listeners) == (20, 4, 16, 0)
    assert settings.model_dir == Path("/models")
    assert (settings.endpoint.max_turn_ms, settings.endpoint.turn_threshold) == (2500, 0.7)


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"STT_ENGINE": "vosk"}, "STT_ENGINE must be 'whisper' or 'parakeet', got 'vosk'"),
        ({"TTS_ENGINE": "piper,festival"}, "TTS_ENGINE must be 'piper', 'espeak' or 'coqui', got 'festival'"),
        ({"TTS_ENGINE": ","}, "TTS_ENGINE must be a comma-separated list of at least one"),
        ({"WORKER_DEVICE": "tpu"}, "WORKER_DEVICE must be 'auto', 'cpu' or 'cuda', got 'tpu'"),
        ({"WORKER_THREADS": "two"}, "WORKER_THREADS must be an integer, got 'two'"),
        ({"WORKER_STALL": "0"}, "WORKER_STALL must be more than 0"),
        ({"WORKER_LISTENERS": "-1"}, "WORKER_LISTENERS must be 0 or more"),
        ({"LISTEN_TURN_THRESHOLD": "1"}, "LISTEN_TURN_THRESHOLD must be less than 1"),
        ({"LISTEN_PAUSE_MS": "2000"}, "LISTEN_MAX_SILENCE_MS must be more than LISTEN_PAUSE_MS"),
        ({"WORKER_BEAT": "6"}, "WORKER_BEAT must be at most half of WORKER_ALIVE_TTL"),
        ({"WORKER_QUEUES": "speech,files"}, "WORKER_QUEUES='speech,files': name some of speech, realtime, llm, batch"),
        ({"COUNCIL_RETRIES": "twice"}, "COUNCIL_RETRIES must be an integer, got 'twice'"),
        ({"COUNCIL_REDIS_URL": "http://h"}, "COUNCIL_REDIS_URL must start with redis://"),
    ],
)
def test_a_value_that_does_not_fit_is_refused_naming_its_variable(environ, says):
    with pytest.raises(SettingsError) as refused:
        WorkerSettings.from_env(environ)
    assert says in str(refused.value)


def test_every_bad_variable_is_named_at_once():
    with pytest.raises(SettingsError) as refused:
        WorkerSettings.from_env({"WORKER_THREADS": "0", "WORKER_VAD": "maybe"})
    assert "WORKER_THREADS" in str(refused.value) and "WORKER_VAD" in str(refused.value)


def test_in_code_too_a_bad_value_is_a_settings_error():
    with pytest.raises(SettingsError, match="COUNCIL_MAX_QUEUED_PER_USER must be 0 or more"):
        QueueSettings(max_queued_per_user=-1)
    with pytest.raises(SettingsError, match="no setting 'redis'"):
        QueueSettings(redis="redis://h")


def test_a_model_is_frozen_and_copied_with_changes():
    settings = QueueSettings(retries=1)
    with pytest.raises(ValueError, match="frozen"):
        settings.retries = 3  # type: ignore[misc]
    copy = settings.model_copy(update={"listen_queue": "listen-mine"})
    assert (copy.listen_queue, copy.retries, settings.listen_queue) == ("listen-mine", 1, "listen")
