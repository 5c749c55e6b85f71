"""The OpenAI-compatible audio routes with the official openai SDK as the client, against the app
served by uvicorn and a real voice worker: a spoken file transcribed in every response format and
streamed, speech decoded (by ffmpeg) to the length the worker spoke, in every format, streamed."""

import io
import json
import subprocess
import time
import uuid
import warnings
import wave

import httpx
import openai
import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from billing import Ledger
from shared_schemas import SpeechClip
from tests.speech import TWO_CITIES, words_kept
from web.app import create_app
from web.settings import AppSettings
from web.v1.speech import InOrder, parts

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.timeout(180)]

SPOKEN = "The council has decided to build the bridge."
TEXT = "The council has decided. We build the bridge in the spring."


@pytest.fixture(scope="module")
def url(settings, serve):
    with serve(create_app(AppSettings(queues=settings, responder="echo"))) as url:
        yield url


@pytest.fixture(scope="module")
def client(url):
    with openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def recording(piper_speech) -> bytes:
    return piper_speech(SPOKEN)


def seconds_of_wav(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes() / w.getframerate()


def heard_it(text: str) -> None:
    words = text.lower()
    assert "council" in words and "bridge" in words, text


def transcribe(client, recording, **options):
    return client.audio.transcriptions.create(model="whisper-1", file=("memo.wav", recording, "audio/wav"), **options)


# Transcription.


def test_json_is_the_text_and_the_audio_s_length(client, recording):
    transcript = transcribe(client, recording)
    heard_it(transcript.text)
    assert transcript.usage.type == "duration"
    assert transcript.usage.seconds == pytest.approx(seconds_of_wav(recording), abs=0.01)


def test_text_srt_and_vtt_are_the_transcript_files(client, recording):
    text = transcribe(client, recording, response_format="text")
    heard_it(text)
    srt = transcribe(client, recording, response_format="srt")
    assert srt.startswith("1\n00:00:0") and " --> " in srt
    heard_it(srt)
    vtt = transcribe(client, recording, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:0") and " --> " in vtt
    heard_it(vtt)


def test_verbose_json_has_segments_and_words_when_asked(client, recording):
    both = transcribe(client, recording, response_format="verbose_json", timestamp_granularities=["word", "segment"])
    heard_it(both.text)
    assert both.language == "en" and both.duration == pytest.approx(seconds_of_wav(recording), abs=0.01)
    assert both.segments and both.segments[0].id == 0 and both.segments[0].start < both.segments[-1].end
    words = both.words
    assert [w.word.lower().strip(".,") for w in words][-2:] == ["the", "bridge"]
    assert all(w.start <= w.end for w in words)
    assert all(a.start <= b.start for a, b in zip(words, words[1:], strict=False))
    assert words[-1].end <= both.duration + 0.05
    default = transcribe(client, recording, response_format="verbose_json")
    assert default.segments and default.words is None  # segments by default, words when asked
    # Every field of OpenAI's segment, as Whisper decoded it (strictly typed clients need them all).
    for segment in both.segments:
        assert isinstance(segment.seek, int) and segment.temperature == 0.0
        assert segment.tokens and all(isinstance(t, int) for t in segment.tokens)
        assert -5 < segment.avg_logprob < 0 and 0 <= segment.no_speech_prob <= 1 and segment.compression_ratio > 0


def test_a_streamed_transcription_is_deltas_then_the_whole_text(client, recording):
    events = list(transcribe(client, recording, stream=True))
    types = [e.type for e in events]
    assert types[-1] == "transcript.text.done" and set(types[:-1]) == {"transcript.text.delta"}, types
    assert "".join(e.delta for e in events[:-1]) == events[-1].text
    heard_it(events[-1].text)
    assert events[-1].usage.type == "duration" and events[-1].usage.seconds == pytest.approx(
        seconds_of_wav(recording), abs=0.01
    )


def test_a_long_reading_streams_each_segment_as_it_is_decoded(url):
    """A 44 s reading by a person: its text arrives segment by segment while the rest is being
    recognized, not all together at the end (before: every delta within a few ms of the done)."""
    reading = TWO_CITIES.path().read_bytes()
    files = {"file": ("reading.wav", reading, "audio/wav")}
    arrived: list[tuple[float, dict]] = []
    began = time.monotonic()
    with httpx.stream(
        "POST",
        f"{url}/v1/audio/transcriptions",
        files=files,
        data={"model": "whisper-1", "stream": "true"},
        timeout=120,
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrived.append((time.monotonic(), json.loads(line.removeprefix("data: "))))
    deltas = [(at, e) for at, e in arrived if e["type"] == "transcript.text.delta"]
    done_at, done = arrived[-1]
    assert done["type"] == "transcript.text.done" and "".join(e["delta"] for _, e in deltas) == done["text"]
    assert len(deltas) >= 4 and words_kept(TWO_CITIES.text, [done["text"]]) > 0.9
    first_at = deltas[0][0]
    # Whisper decodes a piece (up to 30 s, cut at pauses) at a time: the first piece's text came
    # while the rest was still being recognized (measured here: ~35 % of the time before the end).
    late = [round(done_at - at, 2) for at, _ in deltas]
    assert done_at - first_at > 0.15 * (done_at - began), f"the deltas came together: {late} s before the end"


def test_the_stream_is_server_sent_events(url, recording):
    files = {"file": ("memo.wav", recording, "audio/wav")}
    with httpx.stream(
        "POST", f"{url}/v1/audio/transcriptions", files=files, data={"model": "whisper", "stream": "true"}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith(("data: ", ": ")) for line in lines), lines
    assert json.loads(lines[-1].removeprefix("data: "))["type"] == "transcript.text.done"


def srt_cues(srt: str) -> list[tuple[float, float, list[str]]]:
    def seconds(stamp: str) -> float:
        h, m, rest = stamp.split(":")
        return int(h) * 3600 + int(m) * 60 + float(rest.replace(",", "."))

    found = []
    for block in srt.strip().split("\n\n"):
        _, times, *lines = block.split("\n")
        start, _, end = times.partition(" --> ")
        found.append((seconds(start), seconds(end), lines))
    return found


def test_subtitles_of_a_long_reading_follow_subtitling_practice(client):
    """A person reading for 44 s, as SRT: two lines of at most 42 characters, 1 to 7 s a cue (or
    up to the next), no one-word cues, and cues that end where a clause or sentence does."""
    srt = client.audio.transcriptions.create(
        model="whisper-1", file=("reading.wav", TWO_CITIES.path().read_bytes(), "audio/wav"), response_format="srt"
    )
    found = srt_cues(srt)
    assert len(found) >= 6 and words_kept(TWO_CITIES.text, [" ".join(" ".join(c[2]) for c in found)]) > 0.9
    for n, (start, end, lines) in enumerate(found):
        assert 1 <= len(lines) <= 2 and all(len(line) <= 42 for line in lines), lines
        assert end - start <= 7.0 and len(" ".join(lines).split()) > 1, (start, end, lines)
        assert end - start >= 1.0 or (n + 1 < len(found) and end == found[n + 1][0]), (start, end, lines)
    # Its first 28 s are short clauses, each closed by a comma Whisper writes: every cue ends at
    # one. The last sentence is long and Whisper leaves some of its commas out: cut between words.
    clauses = [lines for _, end, lines in found if end < 28.5]
    assert len(clauses) >= 5 and all(lines[-1][-1] in ",.;:!?" for lines in clauses), srt
    assert not any(lines[0].startswith("was ") for _, _, lines in found), srt  # "...wisdom, it / was the age"


def test_bad_transcription_requests_say_what_to_fix(client, recording):
    with pytest.raises(openai.NotFoundError) as missing:
        client.audio.transcriptions.create(model="gpt-9-transcribe", file=("memo.wav", recording))
    assert missing.value.code == "model_not_found" and missing.value.param == "model"
    assert "whisper-1" in missing.value.message
    with pytest.raises(openai.BadRequestError) as wrong:
        transcribe(client, recording, response_format="srt", timestamp_granularities=["word"])
    assert wrong.value.param == "timestamp_granularities" and wrong.value.type == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as garbage:  # the worker's word on it, as a 400
        client.audio.transcriptions.create(model="whisper-1", file=("memo.wav", b"RIFF" + b"\x01" * 4000))
    assert garbage.value.code in ("undecodable_audio", "unsupported_format") and garbage.value.param == "file"
    assert set(garbage.value.body) == {"message", "type", "param", "code"}


# Speech.


def decoded_seconds(data: bytes) -> float:
    """The length of any audio file, as ffmpeg decodes it (every sample, not a header's word)."""
    pcm = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", "pipe:0", "-f", "s16le", "-ac", "1", "-ar", "16000", "pipe:1"],
        input=data,
        capture_output=True,
        check=True,
    ).stdout
    return len(pcm) / 2 / 16000


def codec_of(data: bytes) -> str:
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "json", "-i", "pipe:0"],
        input=data,
        capture_output=True,
        check=True,
    )
    return json.loads(probe.stdout)["streams"][0]["codec_name"]


def spoken_seconds(url: str, text: str) -> float:
    """How long the worker speaks `text` in max's voice, as /api/speech reports it."""
    response = httpx.post(f"{url}/api/speech", json={"text": text, "voice": "max"}, timeout=60)
    assert response.status_code == 200, response.text
    return float(response.headers["x-duration-seconds"])


@pytest.fixture(scope="module")
def spoken(url) -> float:
    return spoken_seconds(url, TEXT)


def speak(client, **options) -> tuple[bytes, httpx.Headers]:
    request = {"model": "tts-1", "voice": "max", "input": TEXT, **options}
    with client.audio.speech.with_streaming_response.create(**request) as response:
        return response.read(), response.headers


CODECS = {"mp3": "mp3", "opus": "opus", "aac": "aac", "flac": "flac"}


def flac_header_seconds(data: bytes) -> float:
    """The length a FLAC's STREAMINFO states (0 when its writer could not go back to fill it in)."""
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO comes first
    info = data[8:42]
    rate = (info[10] << 12) | (info[11] << 4) | (info[12] >> 4)
    samples = ((info[13] & 0x0F) << 32) | int.from_bytes(info[14:18], "big")
    assert samples > 0, "the FLAC does not state its length"
    return samples / rate


@pytest.mark.parametrize("fmt", ["wav", "pcm", "mp3", "opus", "aac", "flac"])
def test_speech_in_each_format_is_as_long_as_the_worker_spoke_it(client, spoken, fmt):
    data, headers = speak(client, response_format=fmt)
    rate = int(headers["x-sample-rate"])
    if fmt == "wav":
        assert headers["content-type"] == "audio/wav" and int(headers["content-length"]) == len(data)
        seconds = seconds_of_wav(data)
        with wave.open(io.BytesIO(data)) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, rate)
    elif fmt == "pcm":
        assert headers["content-type"] == "audio/pcm" and headers["transfer-encoding"] == "chunked"
        seconds = len(data) / 2 / rate
    elif fmt == "flac":  # whole, with its length in STREAMINFO: players show it and can seek
        assert int(headers["content-length"]) == len(data) and codec_of(data) == "flac"
        assert flac_header_seconds(data) == pytest.approx(decoded_seconds(data), abs=0.01)
        seconds = decoded_seconds(data)
    else:
        assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
        assert codec_of(data) == CODECS[fmt]
        seconds = decoded_seconds(data)
    # Encoders pad a little (an mp3 frame is 26 ms at 22 kHz, AAC's 46 ms).
    assert seconds == pytest.approx(spoken, abs=0.1), (fmt, seconds, spoken)


@pytest.mark.parametrize(("fmt", "speed"), [("mp3", 2.0), ("pcm", 0.5), ("wav", 4.0)])
def test_speed_changes_the_length(client, spoken, fmt, speed):
    data, headers = speak(client, response_format=fmt, speed=speed)
    seconds = {"pcm": lambda: len(data) / 2 / int(headers["x-sample-rate"]), "wav": lambda: seconds_of_wav(data)}.get(
        fmt, lambda: decoded_seconds(data)
    )()
    assert seconds == pytest.approx(spoken / speed, abs=0.1)


def test_input_longer_than_one_job_is_spoken_whole_in_order(client, url):
    long = " ".join(f"Sentence number {n} of the long reading is here." for n in range(30))
    assert len(parts(long)) == 2  # two synthesis jobs, enqueued together
    data, _ = speak(client, input=long, response_format="wav")
    assert seconds_of_wav(data) == pytest.approx(sum(spoken_seconds(url, part) for part in parts(long)), abs=0.05)


def test_openai_s_own_model_and_voice_names_are_spoken_by_ours(client):
    # What OpenAI's clients send on their defaults: gpt-4o-mini-tts, alloy.
    data, headers = speak(client, model="gpt-4o-mini-tts", voice="alloy", response_format="wav")
    assert headers["x-council-voice"] == "max" and seconds_of_wav(data) > 1
    _, onyx = speak(client, model="tts-1-hd", voice="onyx", response_format="pcm")
    assert onyx["x-council-voice"] == "leon"  # each name its own voice of ours
    listed = {m.id for m in client.models.list()}
    assert {"gpt-4o-mini-tts", "gpt-4o-mini-transcribe", "gpt-4o-transcribe", "whisper-1", "tts-1"} <= listed


def test_openai_s_transcription_model_names_are_our_stt(client, recording):
    for model in ("gpt-4o-mini-transcribe", "gpt-4o-transcribe"):
        heard_it(client.audio.transcriptions.create(model=model, file=("memo.wav", recording, "audio/wav")).text)


def test_a_translation_is_refused_naming_the_engine_that_knows_only_english(client, recording):
    with warnings.catch_warnings():  # openai 3.x marks audio.translations deprecated; clients still call it
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(openai.BadRequestError) as refused:
            client.audio.translations.create(model="whisper-1", file=("memo.wav", recording, "audio/wav"))
        with pytest.raises(openai.BadRequestError) as field:
            client.audio.translations.create(
                model="whisper-1", file=("memo.wav", recording, "audio/wav"), extra_body={"language": "de"}
            )
    message = refused.value.message
    assert "(whisper) knows only English" in message and "/v1/audio/transcriptions" in message, message
    assert field.value.param == "language"


def test_bad_speech_requests_answer_in_openai_s_error_shape(client, url):
    with pytest.raises(openai.BadRequestError) as voice:
        speak(client, voice="nobody")
    assert (voice.value.code, voice.value.type, voice.value.param) == (
        "unknown_voice",
        "invalid_request_error",
        "voice",
    )
    assert "max" in voice.value.message and "alloy" in voice.value.message  # names the voices there are
    with pytest.raises(openai.BadRequestError) as speed:
        speak(client, speed=5.0)
    assert speed.value.param == "speed"
    with pytest.raises(openai.NotFoundError) as model:
        speak(client, model="tts-9")
    assert model.value.code == "model_not_found"
    raw = httpx.post(f"{url}/v1/audio/speech", json={"model": "tts-1", "voice": "nobody", "input": "Hi."})
    assert raw.status_code == 400 and set(raw.json()) == {"error"}
    assert set(raw.json()["error"]) == {"message", "type", "param", "code"}


# Budgets.


def queued(connection, settings) -> int:
    return sum(Queue(q, connection=connection, serializer=JSONSerializer).count for q in settings.all_queue_names)


def test_a_frozen_user_is_refused_429_and_nothing_is_queued(settings, connection, serve, recording):
    name, token = f"frozen{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    Ledger(connection, settings.key_prefix).freeze("user", name)
    before = queued(connection, settings)
    with (
        serve(create_app(AppSettings(queues=settings, responder="echo", api_users={name: token}))) as url,
        openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0) as client,
    ):
        with pytest.raises(openai.RateLimitError) as speech:
            speak(client)
        with pytest.raises(openai.RateLimitError) as heard:
            transcribe(client, recording)
    for refused in (speech.value, heard.value):
        assert (refused.code, refused.type) == ("budget_exceeded", "insufficient_quota")
        assert "frozen" in refused.message
        assert refused.response.headers["x-should-retry"] == "false"
    assert queued(connection, settings) == before


def test_clips_of_several_jobs_are_heard_in_order_whatever_order_they_come_in():
    def clip(index, chunk, done, last):
        return SpeechClip(
            audio_key=f"k{index}{chunk}", sample_rate=16000, duration_s=0.1, voice="max", index=index, chunk=chunk,
            sentence_done=done, last=last, text="x", engine="espeak",
        )  # fmt: skip

    order = InOrder()
    second_job = [clip(0, 0, True, False), clip(1, 0, True, True)]
    first_job = [clip(0, 0, False, False), clip(0, 1, True, False), clip(2, 0, True, True)]  # no sentence 1
    assert order.add(1, second_job[0]) == [] and order.add(0, first_job[1]) == []
    assert order.add(0, first_job[0]) == first_job[:2]
    assert order.add(1, second_job[1]) == []  # the first job is not over
    assert order.add(0, first_job[2]) == [first_job[2], *second_job]
