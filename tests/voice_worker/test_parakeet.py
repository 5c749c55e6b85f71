"""The Parakeet engine on a tiny random-weight FastConformer + TDT model, saved as a `.nemo` like operators get.

The model is built here: a SentencePiece tokenizer trained on a few sentences, a one-layer
FastConformer encoder (8x subsampling, as Parakeet's) and a TDT decoder, random weights except a
bias toward word-start pieces so that its gibberish comes out as many words. It is saved with
`save_to` and restored through `ParakeetSTT(path)`, the path the worker takes. The words are
arbitrary: the tests check structure, times and batching.
"""

import io
import json
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from billing import Ledger
from queues import BlobStore, JobClient, QueueSettings, replay
from shared_schemas import ErrorCode, EventType, Transcript, TranscriptionJob
from voice_worker import context, jobs
from voice_worker.audio import Audio, decode, encode_wav
from voice_worker.context import WorkerContext
from voice_worker.engines import Engines, load_engines
from voice_worker.errors import EngineLoadError, VoiceError, job_error
from voice_worker.settings import WorkerSettings
from voice_worker.stt.parakeet import ParakeetSTT, to_transcript
from voice_worker.tts import EspeakTTS
from voice_worker.worker import VoiceWorker

pytestmark = [
    pytest.mark.skipif(find_spec("nemo") is None, reason="nemo-toolkit is not installed in this interpreter"),
    # Raised by NeMo, Lightning and torch as they import and build, not by our code.
    pytest.mark.filterwarnings("ignore:`torch.jit.script:DeprecationWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = [
    "the council has considered your question carefully",
    "the quick brown fox jumps over the lazy dog",
    "hello there how are you today",
    "speech recognition with timestamps for every word",
]
DURATIONS = [0, 1, 2, 3, 4]  # TDT durations, in encoder frames, as Parakeet TDT's
FRAME_S = 0.08  # 10 ms hop x 8x subsampling


def tiny_parakeet(folder: Path) -> Path:
    """A 39 k-parameter FastConformer-TDT with its own tokenizer, saved as folder/tiny.nemo."""
    import torch
    from nemo.collections.asr.models import EncDecRNNTBPEModel
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model
    from omegaconf import OmegaConf

    text = folder / "text.txt"
    text.write_text("\n".join(SENTENCES * 20))
    create_spt_model(
        str(text), vocab_size=48, sample_size=-1, do_lower_case=True, tokenizer_type="bpe", output_dir=str(folder)
    )
    hidden = 32
    config = {
        "sample_rate": 16_000,
        "model_defaults": {
            "enc_hidden": hidden, "pred_hidden": hidden, "joint_hidden": hidden,
            "tdt_durations": DURATIONS, "num_tdt_durations": len(DURATIONS),
        },
        "tokenizer": {"dir": str(folder), "type": "bpe"},
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": 16_000, "normalize": "per_feature", "window_size": 0.025, "window_stride": 0.01,
            "window": "hann", "features": 32, "n_fft": 512, "frame_splicing": 1, "dither": 0.0, "pad_to": 0,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": 32, "feat_out": -1, "n_layers": 1, "d_model": hidden,
            "subsampling": "dw_striding", "subsampling_factor": 8, "subsampling_conv_channels": hidden,
            "ff_expansion_factor": 2, "self_attention_model": "rel_pos", "n_heads": 2, "att_context_size": [-1, -1],
            "xscaling": True, "untie_biases": True, "pos_emb_max_len": 5000, "conv_kernel_size": 9,
            "conv_norm_type": "batch_norm", "dropout": 0.0, "dropout_pre_encoder": 0.0, "dropout_emb": 0.0,
            "dropout_att": 0.0,
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder", "normalization_mode": None,
            "random_state_sampling": False, "blank_as_pad": True,
            "prednet": {"pred_hidden": hidden, "pred_rnn_layers": 1, "t_max": None, "dropout": 0.0},
        },
        "joint": {
            "_target_": "nemo.collections.asr.modules.RNNTJoint", "log_softmax": None, "preserve_memory": False,
            "fuse_loss_wer": False, "num_extra_outputs": len(DURATIONS),
            "jointnet": {
                "joint_hidden": hidden, "activation": "relu", "dropout": 0.0,
                "encoder_hidden": hidden, "pred_hidden": hidden,
            },
        },
        "decoding": {
            "strategy": "greedy_batch", "model_type": "tdt", "durations": DURATIONS, "greedy": {"max_symbols": 10},
        },
        "loss": {
            "loss_name": "tdt",
            "tdt_kwargs": {"fastemit_lambda": 0.0, "clamp": -1.0, "durations": DURATIONS, "sigma": 0.05, "omega": 0.1},
        },
        # Without these two blocks NeMo's transcribe() fails (see /work/shared/FACTS.md).
        "validation_ds": {
            "manifest_filepath": None, "sample_rate": 16_000, "batch_size": 4, "shuffle": False,
            "use_start_end_token": False,
        },
    }  # fmt: skip
    torch.manual_seed(0)
    model = EncDecRNNTBPEModel(cfg=OmegaConf.create(config))
    pieces = model.tokenizer.ids_to_tokens(list(range(model.tokenizer.vocab_size)))
    with torch.no_grad():
        bias = model.joint.joint_net[-1].bias
        for index, piece in enumerate(pieces):
            if piece.startswith("▁") and len(piece) > 1:
                bias[index] += 3.0
    path = folder / "tiny.nemo"
    model.save_to(str(path))
    return path


@pytest.fixture(scope="module")
def nemo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_parakeet(tmp_path_factory.mktemp("parakeet"))


@pytest.fixture(scope="module")
def parakeet(nemo_file: Path) -> ParakeetSTT:
    return ParakeetSTT(nemo_file, device="cpu")


@pytest.fixture(scope="module")
def fox(fox_wav: bytes) -> Audio:
    return decode(fox_wav)


@pytest.fixture
def encoder_calls(parakeet: ParakeetSTT) -> Iterator[list[int]]:
    """The batch size of each encoder forward pass made while the test runs."""
    calls: list[int] = []
    hook = parakeet._model.encoder.register_forward_hook(lambda module, args, out: calls.append(len(out[0])))
    yield calls
    hook.remove()


def noise(seconds: float, seed: int, sample_rate: int = 16_000) -> Audio:
    samples = np.random.default_rng(seed).standard_normal(int(seconds * sample_rate)).astype(np.float32) * 0.1
    return Audio(samples, sample_rate)


def check_times(transcript: Transcript, offset_s: float, duration_s: float) -> None:
    """Segments and words lie within the clip, in order, each word inside its segment."""
    assert transcript.segments, "the biased model always says something"
    previous = offset_s
    for segment in transcript.segments:
        assert offset_s <= segment.start <= segment.end <= offset_s + duration_s + 1e-3
        assert segment.words and segment.text
        for word in segment.words:
            assert word.text and word.text == word.text.strip()
            assert segment.start <= word.start <= word.end <= segment.end
            assert word.start >= previous
            previous = word.start
    assert transcript.text == " ".join(s.text for s in transcript.segments)


def test_restores_the_nemo_file(parakeet: ParakeetSTT, nemo_file: Path):
    started = time.perf_counter()
    again = ParakeetSTT(nemo_file, device="auto")
    print(f"\nrestored the tiny .nemo in {time.perf_counter() - started:.2f} s")
    assert time.perf_counter() - started < 30  # 0.1 s measured; generous for a busy machine
    assert again.device in ("cpu", "cuda") and parakeet.device == "cpu"
    assert parakeet.name == "parakeet" and parakeet.capabilities.word_timestamps
    assert parakeet.capabilities.languages == ("en",)
    assert not parakeet._model.training
    assert nemo_file.stat().st_size < 2_000_000


def test_transcribe_gives_segments_and_word_times(parakeet: ParakeetSTT, fox: Audio):
    transcript = parakeet.transcribe(fox, "en")
    assert transcript.engine == "parakeet" and transcript.language == "en"
    assert transcript.duration_s == pytest.approx(fox.duration_s, abs=1e-3)
    check_times(transcript, 0.0, fox.duration_s)
    assert sum(len(s.words) for s in transcript.segments) > 3


def test_offset_shifts_every_time(parakeet: ParakeetSTT, fox: Audio):
    plain = parakeet.transcribe(fox)
    shifted = parakeet.transcribe(fox, offset_s=12.5)
    check_times(shifted, 12.5, fox.duration_s)
    assert shifted.text == plain.text and shifted.duration_s == plain.duration_s
    pairs = [
        (a, b)
        for s, t in zip(plain.segments, shifted.segments, strict=True)
        for a, b in [(s, t), *zip(s.words, t.words, strict=True)]
    ]
    for before, after in pairs:
        assert after.start == pytest.approx(before.start + 12.5, abs=1e-3)
        assert after.end == pytest.approx(before.end + 12.5, abs=1e-3)


def test_short_and_resampled_clips_keep_their_own_time(parakeet: ParakeetSTT):
    # NeMo pads clips under 1 s on both sides; the engine pads on the right so times stay put.
    short = noise(0.3, seed=1)
    transcript = parakeet.transcribe(short, offset_s=2.0)
    assert transcript.duration_s == 0.3
    check_times(transcript, 2.0, 0.3)
    wide = noise(1.5, seed=2, sample_rate=44_100)
    transcript = parakeet.transcribe(wide)
    assert transcript.duration_s == pytest.approx(1.5, abs=1e-3)
    check_times(transcript, 0.0, 1.5)


def test_transcribe_many_is_one_forward_pass(parakeet: ParakeetSTT, fox: Audio, encoder_calls: list[int]):
    clips = [fox, noise(2.0, seed=3), noise(0.5, seed=4)]
    transcripts = parakeet.transcribe_many(clips)
    assert encoder_calls == [3]
    assert [t.duration_s for t in transcripts] == [round(c.duration_s, 3) for c in clips]
    for transcript, clip in zip(transcripts, clips, strict=True):
        check_times(transcript, 0.0, clip.duration_s)
    # Padding a clip into a batch does not change what it says.
    assert transcripts[0].text == parakeet.transcribe(fox).text
    assert parakeet.transcribe_many([]) == []


def test_transcribe_many_splits_by_batch_size(nemo_file: Path):
    small = ParakeetSTT(nemo_file, device="cpu", batch_size=2)
    calls: list[int] = []
    small._model.encoder.register_forward_hook(lambda module, args, out: calls.append(len(out[0])))
    transcripts = small.transcribe_many([noise(1.2, seed=seed) for seed in range(5)])
    assert calls == [2, 2, 1] and len(transcripts) == 5


def test_unknown_language_is_a_payload_error(parakeet: ParakeetSTT, fox: Audio):
    with pytest.raises(VoiceError) as raised:
        parakeet.transcribe(fox, "fr")
    assert raised.value.error.code == ErrorCode.INVALID_PAYLOAD and "'fr'" in str(raised.value)
    with pytest.raises(VoiceError):
        parakeet.transcribe_many([fox], language="xx")


def test_missing_file_is_named(tmp_path: Path):
    with pytest.raises(EngineLoadError, match=str(tmp_path / "parakeet-tdt-0.6b-v2.nemo")):
        ParakeetSTT(tmp_path / "parakeet-tdt-0.6b-v2.nemo")


def test_files_that_are_not_nemo_archives_are_named(tmp_path: Path):
    text = tmp_path / "model.nemo"
    text.write_bytes(b"<html>Sign in to download</html>" * 50)
    with pytest.raises(EngineLoadError, match=f"{text} is not a .nemo archive"):
        ParakeetSTT(text)
    # A tar, but not one NeMo saved: no model_config.yaml.
    other = tmp_path / "other.nemo"
    with tarfile.open(other, "w") as archive:
        info = tarfile.TarInfo("readme.txt")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"hello"))
    with pytest.raises(EngineLoadError, match=str(other)):
        ParakeetSTT(other, device="cpu")


def test_a_truncated_archive_is_named(tmp_path: Path, nemo_file: Path):
    cut = tmp_path / "cut.nemo"
    cut.write_bytes(nemo_file.read_bytes()[: nemo_file.stat().st_size // 2])
    with pytest.raises(EngineLoadError, match=str(cut)):
        ParakeetSTT(cut, device="cpu")


def test_cuda_asked_without_cuda_is_named(nemo_file: Path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(EngineLoadError, match="WORKER_DEVICE=cuda"):
        ParakeetSTT(nemo_file, device="cuda")
    with pytest.raises(EngineLoadError, match="'tpu'"):
        ParakeetSTT(nemo_file, device="tpu")


@pytest.mark.gpu
def test_on_cuda(nemo_file: Path, fox: Audio):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    engine = ParakeetSTT(nemo_file, device="auto")
    assert engine.device == "cuda" and next(engine._model.parameters()).is_cuda
    check_times(engine.transcribe(fox, offset_s=1.0), 1.0, fox.duration_s)
    transcripts = engine.transcribe_many([fox, noise(2.0, seed=5)])
    assert [t.duration_s for t in transcripts] == [round(fox.duration_s, 3), 2.0]


def test_to_transcript_reads_nemo_timestamps():
    """NeMo's word/segment dicts (frame offsets) to seconds: segments split by their words, empty
    words (a lone "▁" piece) dropped, a TDT end past the clip clamped, all shifted by the offset."""
    words = [("Hello", 0, 3), ("there.", 4, 9), ("", 9, 9), ("How", 12, 14), ("are", 14, 14), ("you?", 15, 40)]
    stamps = {
        "word": [{"word": w, "start_offset": s, "end_offset": e} for w, s, e in words],
        "segment": [
            {"segment": "Hello there.", "start_offset": 0, "end_offset": 9},
            {"segment": " How are you?", "start_offset": 9, "end_offset": 40},
        ],
    }
    transcript = to_transcript("Hello there. How are you?", stamps, frame_s=FRAME_S, duration_s=2.0, offset_s=10.0)
    first, second = transcript.segments
    assert transcript.text == "Hello there. How are you?" and transcript.duration_s == 2.0
    assert (first.text, first.start, first.end) == ("Hello there.", 10.0, 10.72)
    assert [(w.text, w.start, w.end) for w in first.words] == [("Hello", 10.0, 10.24), ("there.", 10.32, 10.72)]
    assert (second.text, second.start, second.end) == ("How are you?", 10.72, 12.0)
    assert [(w.text, w.start, w.end) for w in second.words] == [
        ("How", 10.96, 11.12), ("are", 11.12, 11.12), ("you?", 11.2, 12.0),
    ]  # fmt: skip
    # Models whose decoding gives words but no segments get one segment; silence gives none.
    alone = to_transcript("Hi", {"word": stamps["word"][:1]}, frame_s=FRAME_S, duration_s=1.0)
    assert [(s.text, s.start, s.end, len(s.words)) for s in alone.segments] == [("Hi", 0.0, 0.24, 1)]
    assert to_transcript("", {"word": [], "segment": []}, frame_s=FRAME_S, duration_s=1.0).segments == []


def test_engines_load_it_from_model_dir(nemo_file: Path, tmp_path: Path, settings: QueueSettings):
    (tmp_path / "parakeet").mkdir()
    (tmp_path / "parakeet" / "parakeet-tdt-0.6b-v2.nemo").symlink_to(nemo_file)
    worker = WorkerSettings(queues=settings, stt_engine="parakeet", tts_engines=("espeak",), vad=False,
                            model_dir=tmp_path, device="cpu")  # fmt: skip
    engines = load_engines(worker)
    assert isinstance(engines.stt, ParakeetSTT) and engines.stt.name == "parakeet"


def test_the_worker_recognizes_as_many_waiting_files_in_one_pass_as_worker_batch(nemo_file: Path, settings):
    """WORKER_BATCH files are taken together; the engine must recognize them together too (it
    was built with its default of 8 a pass)."""
    worker = WorkerSettings(queues=settings, stt_engine="parakeet", parakeet_model=nemo_file, tts_engines=("espeak",),
                            vad=False, device="cpu", batch_size=64)  # fmt: skip
    assert load_engines(worker).stt.batch_size == 64


def test_transcription_job_through_the_engine(
    parakeet: ParakeetSTT,
    fox_wav: bytes,
    settings: QueueSettings,
    connection,
    session_id: str,
    monkeypatch: pytest.MonkeyPatch,
):
    """The job function RQ runs, with a real blob store and event stream on the test Redis."""
    worker = WorkerSettings(queues=settings, stt_engine="parakeet", device="cpu")
    built = WorkerContext.build(worker, connection, Engines(stt=parakeet, tts=[EspeakTTS()], vad=None))
    monkeypatch.setattr(context, "_current", built)
    key = built.blobs.put(session_id, fox_wav, ".wav")
    job = TranscriptionJob(session_id=session_id, job_id=f"{session_id}-1", audio_key=key, format="wav", vad=False)
    result = jobs.transcribe(job.model_dump(mode="json"))
    # Segments go out as they are decoded (progress events); the ending waits for the job's end.
    assert {e.type for e in replay(connection, settings, session_id)} <= {EventType.PROGRESS}
    with connection.pipeline() as pipe:  # as the worker records the end (VoiceWorker.cleanup_execution)
        assert built.current_events is not None
        built.current_events.publish_ending(pipe)
        pipe.execute()
    transcript = Transcript.model_validate(result)
    assert transcript.engine == "parakeet" and transcript.language == "en"
    assert transcript.duration_s == pytest.approx(decode(fox_wav).duration_s, abs=1e-3)
    check_times(transcript, 0.0, transcript.duration_s)
    emitted = [e for e in replay(connection, settings, session_id) if e.type is not EventType.PROGRESS]
    assert [e.type for e in emitted] == [EventType.TRANSCRIPT]
    assert emitted[0].payload.model_dump(mode="json") == result and emitted[0].job_id == job.job_id


def test_an_unknown_language_fails_the_job_as_data(
    parakeet: ParakeetSTT, fox_wav: bytes, settings: QueueSettings, connection, session_id: str, monkeypatch
):
    worker = WorkerSettings(queues=settings, stt_engine="parakeet", device="cpu")
    built = WorkerContext.build(worker, connection, Engines(stt=parakeet, tts=[EspeakTTS()], vad=None))
    monkeypatch.setattr(context, "_current", built)
    key = built.blobs.put(session_id, fox_wav, ".wav")
    job = TranscriptionJob(session_id=session_id, job_id=f"{session_id}-2", audio_key=key, language="de", vad=False)
    with pytest.raises(VoiceError) as raised:
        jobs.transcribe(job.model_dump(mode="json"))
    assert job_error(raised.value).code == ErrorCode.INVALID_PAYLOAD


OFFLINE = """
import socket, sys
def refuse(*args, **kwargs):
    raise OSError("network use at run time: " + repr(args[:2]))
socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
import numpy as np
from voice_worker.audio import Audio
from voice_worker.stt.parakeet import ParakeetSTT
stt = ParakeetSTT(sys.argv[1], device="cpu")
print(stt.transcribe(Audio(np.zeros(16000, dtype=np.float32), 16000)).model_dump_json())
"""


@pytest.mark.slow
def test_restores_and_transcribes_with_no_network(nemo_file: Path):
    """A fresh interpreter whose sockets refuse to connect imports NeMo, restores and transcribes."""
    done = subprocess.run(
        [sys.executable, "-c", OFFLINE, str(nemo_file)], cwd=ROOT, capture_output=True, text=True, timeout=100
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["engine"] == "parakeet"


def test_the_worker_recognizes_waiting_batch_files_in_one_forward_pass(
    parakeet: ParakeetSTT, fox_wav: bytes, own: QueueSettings, connection, encoder_calls: list[int]
):
    """Several files waiting on the batch queue: the worker takes them together, one encoder pass,
    and each still ends as its own job with its own transcript and event."""
    queues = own
    worker_settings = WorkerSettings(queues=queues, stt_engine="parakeet", device="cpu", batch_size=8)
    engines = Engines(stt=parakeet, tts=[EspeakTTS()], vad=None)
    blobs, client = BlobStore(queues, connection), JobClient(queues, connection)
    fox = decode(fox_wav)
    half = encode_wav(Audio(fox.samples[: len(fox.samples) // 2], fox.sample_rate))
    clips = [fox_wav, half, fox_wav]  # the middle one is shorter: another transcript
    payloads = []
    for n, clip in enumerate(clips):
        session = f"{queues.key_prefix}-{n}"
        key = blobs.put(session, clip, ".wav")
        payloads.append(TranscriptionJob(session_id=session, job_id=f"{session}-j", audio_key=key, vad=False))
        client.enqueue(payloads[-1], queue=queues.batch_queue)
    worker = VoiceWorker(worker_settings, engines, connection=connection)
    try:
        worker.work(burst=True)
    finally:
        context.install(None)  # type: ignore[arg-type]
    assert encoder_calls == [3]
    alone = parakeet.transcribe(decode(fox_wav)).text
    for payload, clip in zip(payloads, clips, strict=True):
        (event,) = replay(connection, queues, payload.session_id)
        assert event.type is EventType.TRANSCRIPT and event.job_id == payload.job_id
        assert event.payload.duration_s == pytest.approx(decode(clip).duration_s, abs=1e-3)
        assert Job.fetch(payload.job_id, connection=connection, serializer=JSONSerializer).get_status() == "finished"
    assert replay(connection, queues, payloads[0].session_id)[0].payload.text == alone
    assert not connection.llen(f"{queues.key_prefix}:inflight:{worker.name}")
    # Each file is charged its share of the one pass, by its length: the half clip about half.
    entries = {e["ref"]: e for e in Ledger(connection, queues.key_prefix).entries()}
    charged = [entries[p.job_id] for p in payloads]
    assert all(e["note"] == "batched with 2 other files" and e["audio_ms"] > 0 for e in charged)
    assert all(e["compute_ms"] >= 5 for e in charged), charged
    full, half_clip, _ = (e["compute_ms"] for e in charged)
    assert 0.3 * full <= half_clip <= 0.7 * full


def test_listeners_recognize_while_the_job_loop_transcribes(parakeet: ParakeetSTT, fox: Audio, beside_the_job_loop):
    """NeMo's transcribe() is not safe in two threads at once (without the engine's lock, the
    second call fails: "Cannot unfreeze partially without first freezing the module")."""
    beside_the_job_loop(parakeet, [noise(1.0 + 0.5 * i, seed=i) for i in range(3)], fox)
