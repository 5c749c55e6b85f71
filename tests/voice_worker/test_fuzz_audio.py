"""Hostile audio: generated garbage, damaged files and lying headers each decode within the caps or
fail with a VoiceError carrying an ErrorCode; small files that decode to hours are cut off at the
cap while decoding, in bounded memory.

Valid files come from flite and ffmpeg at test time (see conftest.py); hypothesis damages them.
"""

import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, configuration, given, settings
from hypothesis import strategies as st

from shared_schemas import AUDIO_FORMATS, MAX_AUDIO_SECONDS, MIN_AUDIO_SECONDS, STT_SAMPLE_RATE, ErrorCode
from voice_worker.audio import decode
from voice_worker.errors import VoiceError

ROOT = Path(__file__).resolve().parents[2]
# Hypothesis caches what it reads from our source under its home, by default ./.hypothesis: not in the repository.
configuration.set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "council-hypothesis")
# Deterministic (the same examples on every run), nothing written to disk, and time enough for an
# ffmpeg start on a slow shared machine; a hang still fails the example.
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=20),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
SOURCES = ["wav", "wav-stereo-44k", "flac", "mp3", "ogg-vorbis", "ogg-opus", "webm"]
HINTS = st.sampled_from([None, *AUDIO_FORMATS, "audio/webm;codecs=opus", "audio/x-wav", "m4a", "", "\x00;/"])
MAGICS = [
    b"RIFF\x24\x00\x00\x00WAVEfmt ", b"RIFF\xff\xff\xff\xffWAVE", b"fLaC", b"fLaC\x00\x00\x00\x22", b"OggS\x00\x02",
    b"\x1a\x45\xdf\xa3", b"ID3\x03\x00", b"\xff\xfb\x90\x00", b"\xff\xf3", b"OggS\x00\x02" + bytes(22) + b"OpusHead",
]  # fmt: skip


def outcome(data: bytes, hint: str | None = None, **caps: float) -> ErrorCode | None:
    """None when `data` decoded to audio within the caps; the error's code when it was refused.

    Any other exception, or audio outside the caps, fails the test."""
    max_seconds = caps.get("max_seconds", MAX_AUDIO_SECONDS)
    try:
        audio = decode(data, hint, **caps)
    except VoiceError as exc:
        assert isinstance(exc.error.code, ErrorCode) and exc.error.message.strip()
        return exc.error.code
    assert audio.sample_rate == STT_SAMPLE_RATE
    assert audio.samples.ndim == 1 and audio.samples.dtype == np.float32
    assert MIN_AUDIO_SECONDS <= audio.duration_s <= max_seconds
    assert np.isfinite(audio.samples).all() and np.abs(audio.samples).max() <= 1.0
    return None


@pytest.fixture(scope="module")
def valid(fox_wav: bytes, encode: Callable[[bytes, str], bytes]) -> dict[str, bytes]:
    files = {name: encode(fox_wav, name) for name in SOURCES}
    assert all(outcome(data) is None for data in files.values())  # undamaged, each decodes
    return files


# --- generated garbage -----------------------------------------------------------------------------


@settings(FUZZ, max_examples=60)
@given(data=st.binary(max_size=4096), hint=HINTS)
def test_random_bytes(data, hint):
    outcome(data, hint)


@settings(FUZZ, max_examples=60)
@given(magic=st.sampled_from(MAGICS), rest=st.binary(max_size=4096), hint=HINTS)
def test_random_bytes_behind_an_audio_magic(magic, rest, hint):
    """Past the sniffing, into libsndfile's and ffmpeg's parsers."""
    outcome(magic + rest, hint)


# --- damaged files ---------------------------------------------------------------------------------


@st.composite
def damage(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` truncated, with bytes flipped, a range zeroed or repeated; mostly near the headers."""
    out = bytearray(data)
    position = st.one_of(st.integers(0, min(511, len(out) - 1)), st.integers(0, len(out) - 1))
    kind = draw(st.sampled_from(["truncate", "flip", "zero", "repeat", "flip+truncate"]))
    if "flip" in kind:
        for _ in range(draw(st.integers(1, 24))):
            out[draw(position)] ^= draw(st.integers(1, 255))
    if kind == "zero":
        start, length = draw(position), draw(st.integers(1, 4096))
        out[start : start + length] = bytes(len(out[start : start + length]))
    if kind == "repeat":
        start = draw(position)
        piece = out[start : start + draw(st.integers(1, 8192))]
        out[start:start] = piece * draw(st.integers(1, 8))
    if "truncate" in kind:
        del out[draw(position) :]
    return bytes(out)


@settings(FUZZ, max_examples=120)
@given(choice=st.data())
def test_damaged_files(valid, choice):
    name = choice.draw(st.sampled_from(SOURCES), label="source")
    data = choice.draw(damage(valid[name]), label="damaged")
    hint = choice.draw(st.sampled_from([None, name.split("-")[-1] if name.startswith("ogg") else name[:4]]))
    outcome(data, hint)


def test_every_truncation_of_a_wav_header(valid):
    """Each cut inside the first 64 bytes, exhaustively (RIFF, fmt and data chunks): a broken file."""
    assert {outcome(valid["wav"][:cut]) for cut in range(1, 64)} == {ErrorCode.UNDECODABLE_AUDIO}


# --- headers with absurd fields --------------------------------------------------------------------

U16, U32 = st.integers(0, 2**16 - 1), st.integers(0, 2**32 - 1)
RATES = st.one_of(st.sampled_from([0, 1, 999, 1000, 8000, 48_000, 384_000, 384_001, 2**31, 4_000_000_000]), U32)
CHANNELS = st.one_of(st.sampled_from([0, 1, 2, 3, 8, 255, 256, 1024, 1025, 65535]), U16)


@settings(FUZZ, max_examples=80)
@given(
    tag=st.one_of(st.sampled_from([1, 3, 6, 7, 0x11, 0xFFFE]), U16),
    channels=CHANNELS,
    rate=RATES,
    bits=st.one_of(st.sampled_from([0, 1, 8, 16, 24, 32, 64, 65535]), U16),
    block_align=st.one_of(st.just(None), U16),
    declared=st.one_of(st.sampled_from([0, 1, 2**31 - 1, 0x7FFFF000, 2**32 - 1]), U32),
    payload=st.sampled_from([0, 1, 3, 4_000, 48_000]),
)
def test_wav_headers_with_absurd_fields(tag, channels, rate, bits, block_align, declared, payload):
    align = block_align if block_align is not None else max(1, channels * bits // 8) % 2**16
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * align) % 2**32, align, bits)
    samples = (np.sin(np.arange(payload) / 7) * 8000).astype("<i2").tobytes()[:payload]
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", declared) + samples
    outcome(b"RIFF" + struct.pack("<I", len(body)) + body)


def streaminfo(flac: bytes, **fields: int) -> bytes:
    """`flac` with STREAMINFO fields replaced (block and frame sizes, rate, channels, bits, total)."""
    assert flac[:4] == b"fLaC" and flac[4] & 0x7F == 0
    info = bytearray(flac[8:42])
    blocks = dict(zip(["min_block", "max_block"], struct.unpack(">HH", info[:4]), strict=True))
    frames = {"min_frame": int.from_bytes(info[4:7], "big"), "max_frame": int.from_bytes(info[7:10], "big")}
    packed = int.from_bytes(info[10:18], "big")
    current = {
        **blocks,
        **frames,
        "rate": packed >> 44,
        "channels": (packed >> 41) & 0x7,
        "bits": (packed >> 36) & 0x1F,
        "total": packed & (2**36 - 1),
    }
    v = current | fields
    info[:4] = struct.pack(">HH", v["min_block"], v["max_block"])
    info[4:10] = v["min_frame"].to_bytes(3, "big") + v["max_frame"].to_bytes(3, "big")
    packed = v["rate"] << 44 | v["channels"] << 41 | v["bits"] << 36 | v["total"]
    info[10:18] = packed.to_bytes(8, "big")
    return flac[:8] + bytes(info) + flac[42:]


@settings(FUZZ, max_examples=60)
@given(
    fields=st.fixed_dictionaries(
        {},
        optional={
            "min_block": U16,
            "max_block": U16,
            "min_frame": st.integers(0, 2**24 - 1),
            "max_frame": st.integers(0, 2**24 - 1),
            "rate": st.one_of(st.sampled_from([0, 1, 999, 655_350, 2**20 - 1]), st.integers(0, 2**20 - 1)),
            "channels": st.integers(0, 7),  # channels - 1: FLAC holds 1 to 8
            "bits": st.integers(0, 31),  # bits per sample - 1
            "total": st.one_of(st.sampled_from([0, 1, 2**32, 2**36 - 1]), st.integers(0, 2**36 - 1)),
        },
    )
)
def test_flac_headers_with_absurd_fields(valid, fields):
    outcome(streaminfo(valid["flac"], **fields))


def ogg_crc(page: bytes) -> int:
    """Ogg's page checksum: CRC-32, polynomial 0x04C11DB7, not reflected, zero start."""
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = (crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1
        crc &= 0xFFFFFFFF
    return crc


def first_ogg_page(ogg: bytes, edit: Callable[[bytearray], None]) -> bytes:
    """`ogg` with its first page's packet edited and the page's checksum made right again."""
    size = 27 + ogg[26] + sum(ogg[27 : 27 + ogg[26]])
    page = bytearray(ogg[:size])
    packet = page[27 + ogg[26] :]
    edit(packet)
    page[27 + ogg[26] :] = packet
    page[22:26] = bytes(4)
    page[22:26] = struct.pack("<I", ogg_crc(page))
    return bytes(page) + ogg[size:]


def test_the_ogg_checksum_is_ogg_s(valid):
    """The helper below would damage every page if it were wrong: a page it rewrites unchanged is equal."""
    assert first_ogg_page(valid["ogg-vorbis"], lambda packet: None) == valid["ogg-vorbis"]


@settings(FUZZ, max_examples=40)
@given(channels=st.integers(0, 255), rate=RATES, blocksizes=st.integers(0, 255))
def test_vorbis_headers_with_absurd_fields(valid, channels, rate, blocksizes):
    def edit(packet: bytearray) -> None:
        assert packet[:7] == b"\x01vorbis"
        packet[11], packet[12:16], packet[28] = channels, struct.pack("<I", rate), blocksizes

    outcome(first_ogg_page(valid["ogg-vorbis"], edit))


@settings(FUZZ, max_examples=40)
@given(
    channels=st.integers(0, 255),
    rate=RATES,
    pre_skip=U16,
    gain=st.integers(-(2**15), 2**15 - 1),
    family=st.sampled_from([0, 1, 2, 255]),
)
def test_opus_headers_with_absurd_fields(valid, channels, rate, pre_skip, gain, family):
    def edit(packet: bytearray) -> None:
        assert packet[:8] == b"OpusHead"
        packet[9], packet[18] = channels, family
        packet[10:18] = struct.pack("<HIh", pre_skip, rate, gain)

    outcome(first_ogg_page(valid["ogg-opus"], edit))


# --- decompression bombs ---------------------------------------------------------------------------

BOMB_SECONDS = 3 * 60 * 60


def _ffmpeg(*args: str | Path) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Three hours of silence in each container, from a minute of it copied over and over (fast).

    The FLAC and mp3 headers say how long they are, and libsndfile finds an Ogg Vorbis file's end;
    the streamed FLAC's header says nothing (total 0), and Ogg Opus and WebM go through ffmpeg:
    those are caught only while decoding."""
    folder = tmp_path_factory.mktemp("bombs")
    codecs = {
        "flac": ["-ar", "48000", "-ac", "2", "-c:a", "flac", "-f", "flac"],
        "mp3": ["-ar", "8000", "-ac", "1", "-c:a", "libmp3lame", "-b:a", "8k", "-f", "mp3"],
        "ogg-vorbis": ["-ar", "8000", "-ac", "1", "-c:a", "libvorbis", "-q:a", "-1", "-f", "ogg"],
        "ogg-opus": ["-ar", "48000", "-ac", "1", "-c:a", "libopus", "-b:a", "6k", "-f", "ogg"],
        "webm": ["-ar", "48000", "-ac", "1", "-c:a", "libopus", "-b:a", "6k", "-f", "webm"],
    }
    out = {}
    for name, codec in codecs.items():
        minute, long = folder / f"minute-{name}", folder / f"long-{name}"
        _ffmpeg("-f", "lavfi", "-i", "anullsrc", "-t", 60, *codec, minute)
        _ffmpeg("-stream_loop", -1, "-i", minute, "-t", BOMB_SECONDS, "-c", "copy", "-f", codec[-1], long)
        out[name] = long.read_bytes()
    # Copied frames keep the minute's STREAMINFO: say the true length, or (streamed) none.
    out["flac"], out["flac-streamed"] = (streaminfo(out["flac"], total=n) for n in (BOMB_SECONDS * 48_000, 0))
    return out


def test_the_bombs_are_small_and_hours_long(bombs):
    for name, data in bombs.items():
        assert len(data) < 12 * 2**20, name
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", "-f", "webm", "-"],
        input=bombs["webm"],
        capture_output=True,
        check=True,
    )
    assert float(probe.stdout) == pytest.approx(BOMB_SECONDS, abs=1)


CAP_S = 60.0
CAP_BYTES = CAP_S * STT_SAMPLE_RATE * 4  # the output at the cap: float32 mono at 16 kHz


@pytest.mark.parametrize("name", ["flac", "flac-streamed", "mp3", "ogg-vorbis", "ogg-opus", "webm"])
def test_a_bomb_is_cut_off_at_the_cap_in_memory_the_cap_bounds(bombs, name):
    """Traced allocations (numpy and Python) peak near the capped output, not the file's hours."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        code = outcome(bombs[name], max_seconds=CAP_S)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code is ErrorCode.AUDIO_TOO_LONG
    assert time.perf_counter() - started < 15
    assert peak < 1.25 * CAP_BYTES + 2 * 2**20, f"{peak / 2**20:.1f} MiB for a {CAP_BYTES / 2**20:.1f} MiB cap"


_MEASURE = """
import resource, sys
from voice_worker.audio import decode
from voice_worker.errors import VoiceError
data = sys.stdin.buffer.read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    decode(data)
    print("decoded", 0)
except VoiceError as exc:
    print(exc.error.code.value, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", ["flac-streamed", "webm"])
def test_a_bomb_at_the_real_cap_stays_in_bounded_memory(bombs, name):
    """The real cap (two hours) in a fresh interpreter: its whole resident memory grows by about the
    capped output (two hours at 16 kHz, float32: 439 MiB), where a whole-output decode took 3x."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE], input=bombs[name], capture_output=True, cwd=ROOT, timeout=170, check=True
    )
    code, grown_kib = done.stdout.decode().split()
    assert code == ErrorCode.AUDIO_TOO_LONG
    cap_mib = MAX_AUDIO_SECONDS * STT_SAMPLE_RATE * 4 / 2**20
    assert int(grown_kib) / 1024 < 1.15 * cap_mib + 64, f"grew {int(grown_kib) / 1024:.0f} MiB, cap {cap_mib:.0f} MiB"


def test_a_wav_claiming_one_sample_a_second_is_refused_from_its_header(valid):
    """Upsampled to 16 kHz, 47,440 samples at 1 Hz would be 13 hours."""
    assert outcome(valid["wav"][:24] + struct.pack("<I", 1) + valid["wav"][28:]) is ErrorCode.UNDECODABLE_AUDIO


def test_many_channels_count_against_the_sample_cap():
    """Eight channels at 384 kHz for 0.5 s: within the duration cap, over a 1 s sample cap of 192k."""
    rate, channels, frames = 384_000, 8, 192_000
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    data = bytes(frames * channels * 2)
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data
    assert outcome(b"RIFF" + struct.pack("<I", len(body)) + body, max_seconds=1.0) is ErrorCode.AUDIO_TOO_LARGE
