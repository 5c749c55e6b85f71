"""The Coqui engine on tiny random-weight models (a multi-speaker VITS, an XTTS), saved as operators get models."""

import hashlib
import io
import json
import stat
import threading
import time
import wave
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tokenizers

pytest.importorskip("TTS", reason="coqui-tts is not installed in this interpreter", exc_type=ImportError)

import torch  # noqa: E402  (after the skip: coqui-tts and torch come together)
from TTS.config.shared_configs import BaseAudioConfig  # noqa: E402
from TTS.tts.configs.vits_config import VitsArgs, VitsConfig  # noqa: E402
from TTS.tts.configs.xtts_config import XttsConfig  # noqa: E402
from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer  # noqa: E402
from TTS.tts.models.vits import Vits  # noqa: E402
from TTS.tts.models.xtts import Xtts, XttsArgs  # noqa: E402

from queues import BlobStore, EventPublisher, JobEvents, join_wavs, replay  # noqa: E402
from shared_schemas import ErrorCode, EventType, Speech, SynthesisJob  # noqa: E402
from voice_worker.engines import Engines  # noqa: E402
from voice_worker.errors import EngineLoadError, VoiceError  # noqa: E402
from voice_worker.synthesis import synthesize  # noqa: E402
from voice_worker.tts.base import TTSCapabilities  # noqa: E402
from voice_worker.tts.coqui import CoquiTTS  # noqa: E402

SENTENCE = "The council has considered your question carefully."
SPEAKERS = {"p225": 0, "p226": 1, "Ana María": 2}
SAMPLE_RATE = 16_000


def tiny_vits(folder: Path, *, d_vectors: dict[str, list[float]] | None = None) -> Path:
    """A 1.4 M-parameter VITS saved as config.json + model.pth + its speaker file, paths relative.

    Speaker ids (speakers.json) by default; with `d_vectors`, a d-vector file that the config names
    by the absolute path of the machine it was "trained" on.
    """
    folder.mkdir(parents=True)
    speaker_args: dict = {"use_speaker_embedding": True, "speakers_file": "speakers.json"}
    if d_vectors is None:
        (folder / "speakers.json").write_text(json.dumps(SPEAKERS))
    else:
        dim = len(next(iter(d_vectors.values())))
        clips = {f"{name}.wav": {"name": name, "embedding": vector} for name, vector in d_vectors.items()}
        (folder / "d_vectors.json").write_text(json.dumps(clips))
        speaker_args = {
            "use_d_vector_file": True,
            "d_vector_file": "/home/trainer/run/d_vectors.json",
            "d_vector_dim": dim,
        }
    args = VitsArgs(
        hidden_channels=32, hidden_channels_ffn_text_encoder=64, num_layers_text_encoder=1,
        num_layers_posterior_encoder=1, num_layers_flow=1, out_channels=129, init_discriminator=False,
        resblock_kernel_sizes_decoder=[3], resblock_dilation_sizes_decoder=[[1, 3, 5]],
        upsample_rates_decoder=[8, 8, 4], upsample_kernel_sizes_decoder=[16, 16, 8],
        upsample_initial_channel_decoder=32, speaker_embedding_channels=16, **speaker_args,
    )  # fmt: skip
    config = VitsConfig(
        model_args=args,
        audio=BaseAudioConfig(sample_rate=SAMPLE_RATE, hop_length=256, win_length=256, fft_size=256),
        use_phonemes=False,
        text_cleaner="basic_cleaners",
        **{k: v for k, v in speaker_args.items() if k != "d_vector_dim"},
    )
    # Coqui reads the speaker file while building the model: point it there for the build only.
    built = config.copy()
    for section in (built, built.model_args):
        for key in ("speakers_file", "d_vector_file"):
            if section.get(key):
                section[key] = str(folder / Path(section[key]).name)
    torch.manual_seed(0)
    model = Vits(built)
    torch.save({"model": model.state_dict()}, folder / "model.pth")
    config.save_json(str(folder / "config.json"))
    return folder


def tiny_xtts(folder: Path) -> Path:
    """A 23 M-parameter XTTS (one-layer GPT, real-size HiFi-GAN decoder): config.json, model.pth, a
    character-level vocab.json, one built-in speaker in speakers_xtts.pth and a reference clip voices/ada.wav."""
    (folder / "voices").mkdir(parents=True)
    symbols = ["[STOP]", "[UNK]", "[SPACE]", "[START]", "[en]", *"abcdefghijklmnopqrstuvwxyz.,?!'"]
    vocab = tokenizers.Tokenizer(tokenizers.models.WordLevel({t: i for i, t in enumerate(symbols)}, unk_token="[UNK]"))
    vocab.pre_tokenizer = tokenizers.pre_tokenizers.Split(tokenizers.Regex(r"\[[^\]]+\]|."), behavior="isolated")
    vocab.save(str(folder / "vocab.json"))
    args = XttsArgs(
        gpt_layers=1, gpt_n_model_channels=64, gpt_n_heads=2, gpt_num_audio_tokens=66, gpt_start_audio_token=64,
        gpt_stop_audio_token=65, gpt_max_audio_tokens=60, gpt_max_text_tokens=200, gpt_max_prompt_tokens=20,
        decoder_input_dim=64, gpt_use_perceiver_resampler=True,
    )  # fmt: skip
    config = XttsConfig(model_args=args, languages=["en"])
    torch.manual_seed(0)
    model = Xtts(config)
    model.tokenizer = VoiceBpeTokenizer(str(folder / "vocab.json"))
    model.init_models()
    torch.save({"model": model.state_dict()}, folder / "model.pth")
    config.save_json(str(folder / "config.json"))
    noise = np.random.default_rng(0).standard_normal((2, 2 * 22_050)).astype(np.float32) * 0.1
    sf.write(folder / "voices" / "ada.wav", noise[0], 22_050)
    with torch.inference_mode():
        clip = torch.from_numpy(noise[1]).unsqueeze(0)
        latent = model.get_gpt_cond_latents(clip, 22_050, length=6, chunk_length=6)
        embedding = model.get_speaker_embedding(clip, 22_050)
    torch.save(
        {"Claribel Dervla": {"gpt_cond_latent": latent, "speaker_embedding": embedding}}, folder / "speakers_xtts.pth"
    )
    return folder


def snapshot(folder: Path) -> dict[str, tuple[str, float]]:
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def read_only(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def writable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def speak(engine: CoquiTTS, voice: str, text: str = SENTENCE):
    torch.manual_seed(1234)  # VITS samples noise: the same seed makes a voice repeat itself exactly
    return engine.synthesize(text, voice)


def guarded(folder: Path) -> Iterator[Path]:
    """The folder, read-only, as operators mount it; afterwards, proof that nothing wrote to it."""
    before = snapshot(folder)
    read_only(folder)
    yield folder
    assert snapshot(folder) == before, "the engine wrote to the operator's model directory"
    writable(folder)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from guarded(tiny_vits(tmp_path_factory.mktemp("coqui") / "coqui"))


@pytest.fixture(scope="module")
def coqui(model_dir: Path) -> CoquiTTS:
    return CoquiTTS(model_dir, device="cpu")


def test_loads_every_speaker_as_a_voice(coqui, model_dir):
    assert coqui.name == "coqui" and coqui.device == "cpu"
    assert set(coqui.voices) == {"p225", "p226", "Ana_Mar_a"}  # "Ana María" made fit for a voice name
    assert coqui.capabilities.sample_rate == SAMPLE_RATE and not coqui.capabilities.streaming
    config = json.loads((model_dir / "config.json").read_text())
    assert config["speakers_file"] == "speakers.json"  # the relative path is still there, untouched


def test_speaks_at_the_configs_rate(coqui):
    audio = speak(coqui, "p225")
    assert audio.sample_rate == SAMPLE_RATE
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert np.isfinite(audio.samples).all() and np.abs(audio.samples).max() <= 1.0
    assert 0.1 < audio.duration_s < 20
    assert np.abs(audio.samples).max() > 0


def test_speakers_sound_different(coqui):
    first, again = speak(coqui, "p225"), speak(coqui, "p225")
    assert np.array_equal(first.samples, again.samples)
    for other in ("p226", "Ana_Mar_a"):
        audio = speak(coqui, other)
        assert len(audio.samples) != len(first.samples) or not np.allclose(audio.samples, first.samples)


def test_stream_yields_the_sentence_at_once_for_vits(coqui):
    torch.manual_seed(1234)
    chunks = list(coqui.synthesize_stream(SENTENCE, "p226"))
    assert len(chunks) == 1
    assert np.array_equal(chunks[0].samples, speak(coqui, "p226").samples)


def test_empty_text_is_silence(coqui):
    assert len(coqui.synthesize("  ", "p225").samples) == 0


def test_unknown_voice(coqui):
    with pytest.raises(VoiceError) as caught:
        coqui.synthesize("Hello.", "max")
    assert caught.value.error.code == ErrorCode.UNKNOWN_VOICE
    assert "p225" in caught.value.error.message and "p226" in caught.value.error.message


def test_voices_json_maps_council_voices_to_speakers(model_dir, tmp_path):
    folder = tmp_path / "mapped"
    folder.mkdir()
    for source in model_dir.iterdir():
        (folder / source.name).symlink_to(source)
    (folder / "voices.json").write_text(json.dumps({"max": "p225", "ada": "Ana María"}))
    engine = CoquiTTS(folder, device="cpu")
    assert set(engine.voices) == {"max", "ada"}
    assert "p225" in engine.voices["max"]
    assert np.array_equal(speak(engine, "max").samples, speak(engine, "max").samples)
    with pytest.raises(VoiceError):
        engine.synthesize("Hello.", "p225")


def test_an_explicit_mapping_wins_and_is_checked(model_dir):
    engine = CoquiTTS(model_dir, voices={"iris": "p226"}, device="cpu")
    assert list(engine.voices) == ["iris"]
    with pytest.raises(EngineLoadError, match="'nobody'"):
        CoquiTTS(model_dir, voices={"iris": "nobody"}, device="cpu")
    with pytest.raises(EngineLoadError, match="voice name"):
        CoquiTTS(model_dir, voices={"bad name!": "p226"}, device="cpu")


def test_d_vector_file_found_by_name(tmp_path):
    rng = np.random.default_rng(0)
    vectors = {name: rng.standard_normal(16).tolist() for name in ("alto", "bass")}
    engine = CoquiTTS(tiny_vits(tmp_path / "dvec", d_vectors=vectors), device="cpu")
    assert set(engine.voices) == {"alto", "bass"}
    alto, bass = speak(engine, "alto"), speak(engine, "bass")
    assert alto.duration_s > 0.1 and np.isfinite(alto.samples).all()
    assert len(alto.samples) != len(bass.samples) or not np.allclose(alto.samples, bass.samples)


@pytest.mark.parametrize("missing", ["config.json", "model.pth", "speakers.json"])
def test_names_a_missing_file(missing, model_dir, tmp_path):
    for source in model_dir.iterdir():
        if source.name != missing:
            (tmp_path / source.name).symlink_to(source)
    with pytest.raises(EngineLoadError, match=str(tmp_path / missing)):
        CoquiTTS(tmp_path, device="cpu")


def test_takes_best_model_pth(model_dir, tmp_path):
    for source in model_dir.iterdir():
        (tmp_path / source.name.replace("model.pth", "best_model.pth")).symlink_to(source)
    assert set(CoquiTTS(tmp_path, device="cpu").voices) == set(CoquiTTS(model_dir, device="cpu").voices)


def test_names_a_missing_directory(tmp_path):
    with pytest.raises(EngineLoadError, match=str(tmp_path / "nowhere")):
        CoquiTTS(tmp_path / "nowhere")


def test_refuses_models_that_need_a_vocoder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model": "glow_tts"}))
    (tmp_path / "model.pth").write_bytes(b"")
    with pytest.raises(EngineLoadError, match="glow_tts"):
        CoquiTTS(tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_for_without_cuda(model_dir):
    with pytest.raises(EngineLoadError, match="CUDA"):
        CoquiTTS(model_dir, device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_speaks_on_cuda(model_dir):
    engine = CoquiTTS(model_dir)  # "auto" takes CUDA
    assert engine.device == "cuda"
    audio = engine.synthesize(SENTENCE, "p225")
    assert audio.duration_s > 0.1 and np.isfinite(audio.samples).all()


def test_synthesis_job_through_the_engines(coqui, whisper, settings, connection, session_id):
    engines = Engines(stt=whisper, tts=[coqui], vad=None)
    blobs = BlobStore(settings, connection)
    job = SynthesisJob(
        session_id=session_id, job_id=f"{session_id}-1", text="Hello there. How are you today?", voice="p226"
    )
    events = JobEvents(EventPublisher(settings, connection), session_id, job.job_id)
    speech = synthesize(job, engines, blobs, events)
    assert [c.text for c in speech.clips] == ["Hello there.", "How are you today?"]
    emitted = replay(connection, settings, session_id)
    assert [e.type for e in emitted] == [EventType.AUDIO, EventType.AUDIO]
    for event, clip in zip(emitted, speech.clips, strict=True):
        assert event.payload.model_dump(mode="json") == clip.model_dump(mode="json")
        assert clip.engine == "coqui" and clip.voice == "p226" and clip.sample_rate == SAMPLE_RATE
        samples, rate = sf.read(io.BytesIO(blobs.get(clip.audio_key)), dtype="float32")
        assert rate == SAMPLE_RATE and samples.ndim == 1
        assert len(samples) / rate == pytest.approx(clip.duration_s, abs=1e-3) and clip.duration_s > 0.1
    assert speech.clips[-1].last and not speech.clips[0].last
    # VITS does not stream: one chunk per sentence, which ends it.
    assert [c.order for c in speech.clips] == [(0, 0), (1, 0)]
    assert all(c.sentence_done for c in speech.clips)


# XTTS v2, tiny: streaming and reference clips


@pytest.fixture(scope="module")
def xtts_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from guarded(tiny_xtts(tmp_path_factory.mktemp("xtts") / "coqui"))


@pytest.fixture(scope="module")
def xtts(xtts_dir: Path) -> CoquiTTS:
    return CoquiTTS(xtts_dir, device="cpu")


@pytest.mark.slow
def test_xtts_voices_are_reference_clips_and_built_in_speakers(xtts):
    assert set(xtts.voices) == {"ada", "Claribel_Dervla"}
    assert xtts.capabilities == TTSCapabilities(sample_rate=24_000, streaming=True)
    for voice in xtts.voices:
        audio = speak(xtts, voice, "hello there.")
        assert audio.sample_rate == 24_000 and audio.samples.dtype == np.float32
        assert audio.duration_s > 0.1 and np.isfinite(audio.samples).all()


@pytest.mark.slow
def test_xtts_streams_in_chunks(xtts):
    torch.manual_seed(1234)
    chunks = []
    for chunk in xtts.synthesize_stream("hello there, how are you?", "ada"):
        assert not torch.is_inference_mode_enabled()  # the model's mode does not leak between pieces
        chunks.append(chunk)
    assert len(chunks) > 1
    assert all(c.sample_rate == 24_000 and len(c.samples) > 0 for c in chunks)
    assert sum(c.duration_s for c in chunks) > 0.1
    with pytest.raises(VoiceError):
        next(xtts.synthesize_stream("hello.", "max"))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_xtts_job_sends_each_chunk_as_it_is_made(xtts, whisper, settings, connection, session_id):
    """The real job path on Redis: the first chunk is in the session's stream while its sentence is
    still being spoken, and the chunks play back in (index, chunk) order into the whole sentence."""
    engines = Engines(stt=whisper, tts=[xtts], vad=None)
    blobs = BlobStore(settings, connection)
    job = SynthesisJob(
        session_id=session_id, job_id=f"{session_id}-x", text="Hello there, how are you? Fine.", voice="ada", index=3
    )
    events = JobEvents(EventPublisher(settings, connection), session_id, job.job_id)
    torch.manual_seed(1)  # with this seed the tiny model speaks the first sentence in three pieces
    result: dict[str, Speech] = {}
    running = threading.Thread(target=lambda: result.update(speech=synthesize(job, engines, blobs, events)))
    started = datetime.now(UTC)
    running.start()
    deadline = time.monotonic() + 240
    while not (seen := replay(connection, settings, session_id)) and time.monotonic() < deadline:
        time.sleep(0.01)
    # The first chunk is out alone while the job, and so its first sentence, is still being spoken.
    first_seen_alone, still_speaking = len(seen) == 1, running.is_alive()
    running.join(timeout=max(1.0, deadline - time.monotonic()))
    assert not running.is_alive()
    assert first_seen_alone and still_speaking
    assert seen[0].payload.index == 3 and seen[0].payload.chunk == 0 and not seen[0].payload.sentence_done

    speech = result["speech"]
    emitted = replay(connection, settings, session_id)
    assert [e.payload.model_dump(mode="json") for e in emitted] == [c.model_dump(mode="json") for c in speech.clips]
    assert [e.seq for e in emitted] == list(range(len(emitted)))
    by_sentence = {i: [c for c in speech.clips if c.index == i] for i in (3, 4)}
    assert [c.text for c in by_sentence[4]][:1] == ["Fine."]
    assert len(by_sentence[3]) >= 2, "the first sentence came in one chunk"
    for clips in by_sentence.values():
        assert [c.chunk for c in clips] == list(range(len(clips)))
        assert [c.sentence_done for c in clips] == [False] * (len(clips) - 1) + [True]
    assert [c.last for c in speech.clips] == [False] * (len(speech.clips) - 1) + [True]
    assert [c.order for c in speech.clips] == sorted(c.order for c in speech.clips)
    # Made as it went, not cut up afterwards: the first chunk was out long before the sentence's end.
    first, end_of_sentence = emitted[0], emitted[len(by_sentence[3]) - 1]
    assert (first.time - started) < 0.75 * (end_of_sentence.time - started)

    data = [blobs.get(c.audio_key) for c in speech.clips]
    for clip, wav in zip(speech.clips, data, strict=True):
        samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
        assert rate == clip.sample_rate == 24_000 and samples.ndim == 1
        assert len(samples) / rate == pytest.approx(clip.duration_s, abs=1e-3)
    assert all(c.duration_s > 0 for c in by_sentence[3][:-1])  # the last may be empty: it closes the sentence
    with wave.open(io.BytesIO(join_wavs(data))) as joined:
        assert joined.getframerate() == 24_000
        assert joined.getnframes() / 24_000 == pytest.approx(speech.duration_s, abs=0.005)
    assert speech.duration_s > 1.0
