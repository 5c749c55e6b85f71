"""One streamed microphone, listened to: frames in, events out (the I/O around `Endpointer`).

Reads the stream's entries from Redis in order (`queues.MicReader`), runs the VAD on each 32 ms
window, and does what the endpointer says: tells the page that speech started or stopped,
recognizes the words so far (interim words while the person speaks; at the first pause, a
transcript that is final if the turn ends there, so that only the turn model's ~30 ms remain when
it does), asks the turn model, and when a turn ends publishes `turn_started` and its `transcript`:
tentative, with the `confirm_ms` of silence that confirms it (`turn_confirmed`; confirm.py), unless
the speaker goes on first (the next `speech_started` then `continues` it).
Each call runs in this thread, in order: a call that takes 80 ms only delays the next windows,
which are waiting in Redis, and decisions go by audio time, never by the clock.

Load: liveness is the worker's, not this loop's: its pool renews the stream's lease for every
listener that made progress within `stuck_s` (pool.py), so a listener that runs behind real time is
never taken for dead. How far behind it runs (`lag_ms`: how long ago the app appended the entry it
reads) goes out in every event it says; past `shed_after_ms` it sheds work, interim words first (the
final recognition and every decision stay), until it is back under half that. Where every turn is
decided up to is saved as a checkpoint in Redis (`queues.mic.Checkpoint`): when the worker dies,
another one takes the requeued job and resumes there, from the frames still in Redis, with the turn
numbers going on.

Long turns: once a pause comes after more than `COMMIT_AFTER_MS` of speech, the words up to it
are kept, and later recognition covers only what follows, so no call exceeds the fitted window.
"""

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import redis

from billing import Charge, Ledger
from queues import EventPublisher, JobEvents, MicReader, mic
from shared_schemas import (
    STT_SAMPLE_RATE,
    Event,
    ListenJob,
    Transcript,
    listener_turn_id,
    payloads,
    transcript_job_id,
)

from ..audio import Audio
from ..engines import Engines
from .confirm import ConfirmSettings, Words, confirm_ms, read_words
from .endpointer import (
    Action,
    AskTurn,
    Endpointer,
    EndpointSettings,
    Recognize,
    SpeechStarted,
    SpeechStopped,
    State,
    TurnConfirmed,
    TurnEnded,
)

log = logging.getLogger(__name__)

SAMPLES_PER_MS = STT_SAMPLE_RATE // 1000
COMMIT_AFTER_MS = 10_000
TAIL_MS = 200  # silence kept after the speech for the final recognition


@dataclass(frozen=True)
class ListenSettings:
    endpoint: EndpointSettings = field(default_factory=EndpointSettings)
    confirm: ConfirmSettings = field(default_factory=ConfirmSettings)
    idle_s: float = 10.0  # no frame for this long: the app is gone, the stream ends
    lease_ms: int = 5000  # how long the lease outlives a listener that stopped renewing it
    renew_s: float = 1.0
    read_block_ms: int = 250
    # While nobody speaks, frames are read in batches this far apart, not one by one as they come
    # (a silent open microphone then costs the worker ~5x less); speech is read as it comes.
    quiet_read_s: float = 0.1
    # Behind real time by more than this: interim words are skipped until the lag is under half.
    shed_after_ms: int = 1500
    # No progress at all for this long (one model call never takes it): the lease is let go.
    stuck_s: float = 30.0
    checkpoint_every_ms: int = 1000  # of audio, while nothing is decided


class Tape:
    """The stream's recent audio, addressed by audio time in ms from the stream's start."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._samples = np.zeros(0, dtype=np.float32)
        self.start = 0  # absolute sample index of _samples[0]
        self.end = 0  # absolute sample index just past the last sample

    def append(self, samples: np.ndarray) -> None:
        self._chunks.append(samples)
        self.end += len(samples)

    def _flat(self) -> np.ndarray:
        if self._chunks:
            self._samples = np.concatenate([self._samples, *self._chunks])
            self._chunks = []
        return self._samples

    def window(self, at: int, size: int) -> np.ndarray | None:
        """`size` samples from absolute index `at`, once they have arrived."""
        if at + size > self.end:
            return None
        samples = self._flat()
        return samples[at - self.start : at - self.start + size]

    def between(self, from_ms: float, to_ms: float) -> np.ndarray:
        samples = self._flat()
        a = max(0, int(from_ms * SAMPLES_PER_MS) - self.start)
        b = max(a, min(len(samples), int(to_ms * SAMPLES_PER_MS) - self.start))
        return samples[a:b]

    def forget_before(self, ms: float) -> None:
        cut = int(ms * SAMPLES_PER_MS) - self.start
        if cut > 0:
            samples = self._flat()
            self._samples = samples[cut:].copy()
            self.start += cut


@dataclass
class Turn:
    """What the listener knows of the turn being spoken."""

    number: int
    committed_text: str = ""
    committed_ms: float = 0.0  # recognition covers the audio from here on
    candidate: tuple[float, str] | None = None  # (audio covered up to, words): final if it ends now
    partial: str = ""
    compute_ms: float = 0.0


class Listener:
    def __init__(
        self,
        job: ListenJob,
        engines: Engines,
        connection: redis.Redis,
        publisher: EventPublisher,
        events: JobEvents,
        settings: ListenSettings,
        worker: str,
        stopping: threading.Event,
    ) -> None:
        if engines.stt is None or engines.vad is None or engines.turn is None:
            raise RuntimeError("listening needs a speech-to-text engine, a VAD and a turn model")
        self.job = job
        self.engines = engines
        self.stt, self.turn_model = engines.stt, engines.turn
        self.publisher = publisher
        self.events = events  # the stream's own: its ending goes out with the record of the job's end
        self.ledger = Ledger(connection, publisher.settings.key_prefix)
        self.settings = settings
        self.worker = worker
        self.stopping = stopping
        self.reader = MicReader(connection, job.stream_key, worker, publisher.settings.mic_ttl_s)
        self.vad = engines.vad.stream()
        self.endpointer = Endpointer(settings.endpoint, decides=job.mode == "hands_free")
        self.tape = Tape()
        self.cursor = 0  # the next sample the VAD reads
        self.turns = 0
        self.turn = Turn(number=1)
        self.held: tuple[int, str] | None = None  # (number, id) of the decided turn awaiting confirmation
        self.progress_at = time.monotonic()  # the pool renews the lease while this is recent
        self.ended = False
        self.lag_ms = 0.0
        self.max_lag_ms = 0.0
        self.shedding = False
        self.shed = 0  # interim recognitions skipped
        self._entries: list[tuple[str, int]] = []  # (entry id, sample its audio ends at), not saved yet
        self._saved_sample = 0
        self._decided_sample = 0  # where the last turn was decided

    def alive(self) -> bool:
        """Whether this listener made progress lately (else it is stuck, and the lease lapses)."""
        return time.monotonic() - self.progress_at < self.settings.stuck_s

    def run(self) -> dict[str, object]:
        """Listen until the stream ends: its RQ result. Raises WorkerStopping on a shutdown, leaving
        the stream and its checkpoint for the listener that resumes it."""
        stopping = False
        try:
            reason = self._listen()
        except WorkerStopping:
            stopping = True
            raise
        finally:
            self.ended = True  # (its lease is renewed no more)
            if stopping:
                self.reader.let_go()
            else:
                self.reader.release()
        outcome = {"reason": reason, "turns": self.turns}
        load = {"max_lag_ms": round(self.max_lag_ms), "shed": self.shed}
        self.events.emit(payloads.ListenDone(stream_id=self.job.job_id, reason=reason, turns=self.turns, **load))
        return {"kind": "listened", **outcome}

    def _listen(self) -> str:
        self.reader.hold(self.settings.lease_ms)
        resumed = self._resume()
        self._say(payloads.Listening, mode=self.job.mode, worker=self.worker, resumed=resumed)
        last_frame = last_read = time.monotonic()
        while not self.stopping.is_set():
            if self.endpointer.state is State.QUIET and self.endpointer.decides and not self.shedding:
                self.stopping.wait(max(0.0, last_read + self.settings.quiet_read_s - time.monotonic()))
            last_read = self.progress_at = time.monotonic()
            entries = self.reader.read(self.settings.read_block_ms)
            now = time.monotonic()
            if entries:
                last_frame = now
            elif now - last_frame > self.settings.idle_s:
                return "idle"
            for entry_id, audio, control in entries:
                self._lag(entry_id)
                if control == mic.END:
                    self._do(self.endpointer.close())
                    return "closed"
                if control == mic.GONE:
                    return "gone"
                if audio:
                    self._hear(audio, entry_id)
        raise WorkerStopping()

    def _resume(self) -> bool:
        """Go on where a listener before this one (on a worker that died) saved its checkpoint."""
        checkpoint = self.reader.resume()
        if checkpoint is None:
            return False
        self.tape.start = self.tape.end = self.cursor = self._saved_sample = checkpoint.sample
        self._decided_sample = checkpoint.sample
        self.endpointer.now_ms = self.endpointer.start_ms = checkpoint.sample / SAMPLES_PER_MS
        self.turn = Turn(number=checkpoint.turn)
        self.turns = checkpoint.turn - 1
        log.info(
            "stream %s resumed at %.1f s, turn %d",
            self.job.job_id,
            checkpoint.sample / STT_SAMPLE_RATE,
            checkpoint.turn,
        )
        return True

    def _lag(self, entry_id: str) -> None:
        """How far behind real time this entry is read; shed work past `shed_after_ms`."""
        self.lag_ms = self.reader.lag_ms(entry_id)
        self.max_lag_ms = max(self.max_lag_ms, self.lag_ms)
        bound = self.settings.shed_after_ms
        if not self.shedding and self.lag_ms > bound:
            self.shedding = True
            log.warning("stream %s: listening %.0f ms behind; interim words skipped", self.job.job_id, self.lag_ms)
        elif self.shedding and self.lag_ms < bound / 2:
            self.shedding = False
            log.warning(
                "stream %s: caught up (%.0f ms behind, %d interim skipped)", self.job.job_id, self.lag_ms, self.shed
            )

    # -- audio in ------------------------------------------------------------------------------

    def _hear(self, pcm: bytes, entry_id: str) -> None:
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
        self.tape.append(samples)
        if self.endpointer.decides:  # push-to-talk keeps no checkpoint (the stream is one turn)
            self._entries.append((entry_id, self.tape.end))
        size = self.vad.window
        while (window := self.tape.window(self.cursor, size)) is not None:
            self.cursor += size
            self.progress_at = time.monotonic()
            turn = self.turn.number
            actions = self.endpointer.window(self.vad.probability(window))
            if self.shedding:
                kept = [a for a in actions if not (isinstance(a, Recognize) and not a.final_candidate)]
                self.shed += len(actions) - len(kept)
                actions = kept
            self._do(actions)
            if self.turn.number != turn:
                self._decided_sample = self.cursor
        self.tape.forget_before(self.endpointer.keep_from_ms)
        self._checkpoint()

    def _checkpoint(self) -> None:
        """Save where every turn is decided up to: between turns, the last entry before the audio a
        turn could still need (`keep_from_ms`, and never before the last decision)."""
        if self.endpointer.spoke or not self.endpointer.decides or self.held is not None:
            # A turn is under way (push-to-talk: the whole stream is one), or one decided awaits its
            # confirmation: a listener resuming before it decides it again (its events, the same
            # job ids and numbers, are dropped as repeats) and then confirms it or hears it go on.
            return
        upto = max(int(self.endpointer.keep_from_ms * SAMPLES_PER_MS), self._decided_sample)
        if upto - self._saved_sample < self.settings.checkpoint_every_ms * SAMPLES_PER_MS:
            return
        done = [entry for entry in self._entries if entry[1] <= upto]
        if not done:
            return
        entry_id, sample = done[-1]
        self._entries = self._entries[len(done) :]
        self._saved_sample = sample
        self.reader.save(mic.Checkpoint(entry_id=entry_id, sample=sample, turn=self.turn.number))

    def _do(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case SpeechStarted():
                    started: dict[str, object] = {"at_s": _s(action.at_ms), "resumed": action.resumed}
                    if action.resumed:
                        self.turn.candidate = None
                    else:
                        self.turn.committed_ms = action.start_ms
                    if action.continues and self.held is not None:
                        started["continues"] = self.held[1]  # that turn is never confirmed
                    if not action.resumed:
                        self.held = None
                    self._say(payloads.SpeechStarted, **started)
                case Recognize():
                    self._recognize(action)
                case SpeechStopped():
                    self._say(payloads.SpeechStopped, at_s=_s(action.at_ms))
                case AskTurn():
                    probability = self._ask(action.upto_ms)
                    self._do(self.endpointer.turn_model(probability, self._words_so_far()))
                case TurnEnded():
                    self._end_turn(action)
                case TurnConfirmed():
                    self._confirmed(action.at_ms)

    # -- models ---------------------------------------------------------------------------------

    def _recognize(self, action: Recognize) -> None:
        turn = self.turn
        words = self._words(turn, turn.committed_ms, action.upto_ms)
        if action.final_candidate:
            turn.candidate = (action.upto_ms, words)
        text = _join(turn.committed_text, words)
        if text and text != turn.partial:
            turn.partial = text
            self._say(payloads.TranscriptPartial, text=text)

    def _ask(self, upto_ms: float) -> float:
        turn = self.turn
        started = time.perf_counter()
        probability = self.turn_model.probability(self.tape.between(self.endpointer.start_ms, upto_ms))
        turn.compute_ms += (time.perf_counter() - started) * 1000
        long_turn = self.endpointer.speech_end_ms - turn.committed_ms >= COMMIT_AFTER_MS
        if probability < self.settings.endpoint.turn_threshold and long_turn and turn.candidate is not None:
            # The speaker goes on after a long stretch: keep what was said, recognize on from here.
            turn.committed_text = _join(turn.committed_text, turn.candidate[1])
            turn.committed_ms, turn.candidate = turn.candidate[0], None
        return probability

    def _words_so_far(self) -> Words:
        """What the words recognized in this pause say about the turn's end."""
        turn = self.turn
        if turn.candidate is None:
            return Words.UNKNOWN
        return read_words(_join(turn.committed_text, turn.candidate[1]))

    def _words(self, turn: Turn, from_ms: float, to_ms: float) -> str:
        samples = self.tape.between(from_ms, to_ms)
        if len(samples) < STT_SAMPLE_RATE // 10:
            return ""
        started = time.perf_counter()
        transcript = self.stt.recognize(Audio(samples, STT_SAMPLE_RATE), self.job.language)
        turn.compute_ms += (time.perf_counter() - started) * 1000
        return transcript.text.strip()

    # -- a turn ends ----------------------------------------------------------------------------

    def _end_turn(self, ended: TurnEnded) -> None:
        """Publish the decided turn (`turn_started`, then its `transcript`), tentative for
        `confirm_ms` more silence (confirm.py); with 0, `turn_confirmed` follows at once."""
        turn, self.turn = self.turn, Turn(number=self.turn.number + 1)
        turn_id = listener_turn_id(self.job.turn_prefix, turn.number)
        self.turns += 1
        if turn.candidate is not None and turn.candidate[0] >= ended.speech_end_ms:
            words = turn.candidate[1]  # recognized during the pause: ready now
        elif ended.spoke:
            words = self._words(turn, turn.committed_ms, min(ended.speech_end_ms + TAIL_MS, ended.at_ms))
        else:
            words = ""  # push-to-talk closed on silence
        text = _join(turn.committed_text, words)
        hold = confirm_ms(
            self.settings.confirm,
            ended.reason,
            ended.probability,
            read_words(text),
            self.endpointer.pauses,
            ended.at_ms - ended.speech_end_ms,
        )
        decided = payloads.TurnStarted(
            input="voice",
            text=None,
            stream_id=self.job.job_id,
            reason=ended.reason,
            speech_end_s=_s(ended.speech_end_ms),
            decided_s=_s(ended.at_ms),
            turn_probability=None if ended.probability is None else round(ended.probability, 3),
            turn=turn.number,
            confirm_ms=hold,
        )
        self._publish(turn_id, decided)  # the turn's first event: the app numbers its own after it
        transcript = payloads.Transcript(
            text=text,
            language=self.job.language,
            duration_s=_s(max(0.0, ended.speech_end_ms - turn.committed_ms)) if ended.spoke else 0.0,
            engine=self.stt.name,
        )
        self._publish(transcript_job_id(turn_id), transcript)
        self._charge(turn_id, turn, transcript)
        self.held = (turn.number, turn_id)
        self._do(self.endpointer.hold(hold))

    def _confirmed(self, at_ms: float) -> None:
        if self.held is None:
            return
        (number, turn_id), self.held = self.held, None
        self._say(payloads.TurnConfirmed, turn=number, turn_id=turn_id, at_s=_s(at_ms))

    def _charge(self, turn_id: str, turn: Turn, transcript: Transcript) -> None:
        """Record the turn's recognition in the ledger against its user. Its compute is the wall
        time of the model calls (they run in native threads this thread's CPU clock misses)."""
        gpu = "cuda" in str(getattr(self.stt, "device", "cpu"))
        compute_ms = round(turn.compute_ms)
        charge = Charge(
            kind="stt",
            item=self.stt.name,
            user=self.job.user or "anonymous",
            session_id=self.job.session_id,
            turn_id=turn_id,
            ref=transcript_job_id(turn_id),
            note="streamed",
            compute_ms=compute_ms,
            cpu_ms=0 if gpu else compute_ms,
            gpu_ms=compute_ms if gpu else 0,
            audio_ms=round(transcript.duration_s * 1000),
            calls=1,
        )
        try:
            self.ledger.settle(transcript_job_id(turn_id), charge)
        except redis.exceptions.RedisError:
            log.exception("could not record turn %s in the ledger", turn_id)

    # -- events -------------------------------------------------------------------------------

    def _say(self, kind: type[payloads.Payload], **fields: object) -> None:
        """An event of the stream (its job id), saying which stream and turn, and how far behind."""
        heard = {"stream_id": self.job.job_id, "turn": self.turn.number, "lag_ms": round(self.lag_ms)}
        self.events.emit(kind.model_validate({**heard, **fields}))

    def _publish(self, job_id: str, payload: payloads.Payload) -> None:
        """The first event of another job: a turn (`turn_started`) or its transcription."""
        self.publisher.publish(Event.of(payload, session_id=self.job.session_id, job_id=job_id, seq=0))


class WorkerStopping(Exception):
    """The worker is shutting down while this stream was open."""


def _s(ms: float) -> float:
    return round(ms / 1000, 3)


def _join(a: str, b: str) -> str:
    return f"{a} {b}".strip() if a and b else a or b
