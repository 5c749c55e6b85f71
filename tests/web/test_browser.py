"""The chat and batch pages in a real browser: Debian's Chromium driven by Playwright, with a
fake microphone that plays a spoken WAV. Screenshots go to artifacts/screenshots/."""

import io
import shutil
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from queues import BlobStore, EventPublisher, JobEvents
from shared_schemas import SpeechClip, payloads
from web.app import create_app
from web.settings import AppSettings

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.slow, pytest.mark.timeout(180)]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def server(settings, serve):
    with serve(create_app(AppSettings(queues=settings, responder="echo"))) as url:
        yield url


def padded(wav_bytes: bytes, silence_s: float) -> bytes:
    with wave.open(io.BytesIO(wav_bytes)) as w:
        params, frames = w.getparams(), w.readframes(w.getnframes())
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setparams(params)
        w.writeframes(frames + b"\0" * int(silence_s * params.framerate) * params.sampwidth)
    return out.getvalue()


@pytest.fixture
def browser(tmp_path, flite):
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed (Debian package chromium); make test installs it")
    from playwright.sync_api import sync_playwright

    speech = tmp_path / "question.wav"
    speech.write_bytes(padded(flite("what time does the library open"), 3.0))
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={speech}",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        yield b
        b.close()


def test_speak_a_turn_hear_the_answer_and_run_a_batch(server, browser, flite, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)
    page.wait_for_selector("#status.online", timeout=15000)
    page.wait_for_function("document.querySelectorAll('#voice option').length > 1")
    page.select_option("#voice", "max")

    # Push to talk: click, speak, click; the frames stream while the person speaks.
    page.select_option("#mode", "push_to_talk")
    page.click("#mic")
    page.wait_for_selector("#mic.recording")
    time.sleep(3.2)
    page.click("#mic")
    user = page.locator(".msg.user .text").last
    page.wait_for_function(
        "() => { const t = document.querySelector('.msg.user .text'); return t && !t.classList.contains('pending'); }",
        timeout=30000,
    )
    heard = user.inner_text().lower()
    assert "library open" in heard.replace("?", "").replace(",", ""), heard  # (tiny.en, through Chrome's gain control)
    page.wait_for_function("Object.keys(window.councilPlayer.stats.firstSound).length > 0", timeout=30000)
    assert page.locator(".msg.member .who").first.inner_text().lower() == "echo"
    page.screenshot(path=str(SHOTS / "chat.png"), full_page=True)

    page.fill("#text", "Good. Thank you.")
    page.press("#text", "Enter")
    page.wait_for_function("document.querySelectorAll('.msg.user').length === 2")
    page.wait_for_function("document.querySelectorAll('.msg.member .clip').length >= 3", timeout=30000)

    # A reload comes back to the same session (its id and resume secret kept by the page) and shows
    # the whole conversation again; a session the server refuses is forgotten and a new one starts.
    kept = page.evaluate("localStorage.getItem('council.session_id')")
    assert kept and page.evaluate("localStorage.getItem('council.resume')")
    page.reload()
    page.wait_for_function("document.querySelectorAll('.msg.user').length === 2", timeout=15000)
    assert page.evaluate("localStorage.getItem('council.session_id')") == kept
    page.evaluate("localStorage.setItem('council.resume', 'not-the-secret')")
    page.reload()
    page.wait_for_function(
        "localStorage.getItem('council.session_id') && localStorage.getItem('council.session_id') !== "
        f"'{kept}' && document.querySelector('#status.online')",
        timeout=15000,
    )
    assert "new one starts" in page.locator(".msg").first.inner_text()
    assert page.locator(".msg.user").count() == 0

    page.goto(f"{server}/batch")
    files = []
    for i, sentence in enumerate(["the meeting starts at noon", "bring the quarterly report"]):
        path = tmp_path / f"memo-{i}.wav"
        path.write_bytes(flite(sentence))
        files.append(str(path))
    page.set_input_files("#files", files)
    # This batch is the newest section; the user's earlier batches (other tests') are listed above it.
    newest = "#list .batch:last-child"
    page.wait_for_function(
        f"document.querySelectorAll('{newest} .file a[data-format=srt]').length === 2", timeout=60000
    )
    with page.expect_download() as download:
        page.locator(f"{newest} .file a[data-format=srt]").first.click()
    srt = Path(download.value.path()).read_text()
    assert "-->" in srt and ("report" in srt or "noon" in srt), srt
    page.screenshot(path=str(SHOTS / "batch.png"), full_page=True)
    assert not errors, errors


def tone(hz: float, seconds: float = 0.4, rate: int = 22050) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes((0.3 * np.sin(2 * np.pi * hz * t) * 32767).astype("<i2").tobytes())
    return out.getvalue()


def test_a_sentence_spoken_in_chunks_plays_gaplessly_in_order_and_replays_whole(server, browser, settings):
    """What a streaming engine (XTTS) sends: a sentence in chunks, as audio events on the session's
    stream, exactly as a worker publishes them. The page plays every chunk in order, back to back,
    shows one control per sentence, and that control plays the whole sentence again."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)
    page.wait_for_selector("#status.online", timeout=15000)
    session_id = page.evaluate("localStorage.getItem('council.session_id')")
    connection = settings.connect()
    blobs, publisher = BlobStore(settings, connection), EventPublisher(settings, connection)
    job = JobEvents(publisher, session_id, f"{session_id}-xtts")
    # Sentence 0 in three chunks, then sentence 1 in one; each chunk its own pitch.
    for index, chunk, done, hz in ((0, 0, False, 300), (0, 1, False, 400), (0, 2, True, 500), (1, 0, True, 600)):
        clip = SpeechClip(
            audio_key=blobs.put(session_id, tone(hz), ".wav"), sample_rate=22050, duration_s=0.4, voice="ada",
            member="Ada", turn_id="turn-xtts", index=index, chunk=chunk, sentence_done=done,
            last=index == 1, text=["It is raining today.", "Take a coat."][index], engine="coqui",
        )  # fmt: skip
        job.emit(payloads.Audio(**clip.model_dump()))
    page.wait_for_function("document.querySelectorAll('.msg.member .clip').length === 2", timeout=15000)
    page.wait_for_function(
        "window.councilPlayer.turn && window.councilPlayer.turn.timeline.length === 4", timeout=15000
    )
    timeline = page.evaluate("window.councilPlayer.turn.timeline")
    assert [(e["index"], e["chunk"]) for e in timeline] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    for before, after in zip(timeline, timeline[1:], strict=False):  # each starts as the one before ends
        assert after["at"] == pytest.approx(before["end"], abs=1e-6)
    # The sentence's one control plays its three chunks again, in order.
    page.wait_for_function("!window.councilPlayer.busy", timeout=15000)
    page.click('.clip[data-index="0"]')
    page.wait_for_function("window.councilPlayer.turn.id.endsWith('#replay')", timeout=15000)
    replayed = page.evaluate("window.councilPlayer.turn.timeline.map(e => [e.index, e.chunk])")
    assert replayed == [[0, 0], [0, 1], [0, 2]]
    assert not errors, errors


def test_with_no_llm_the_page_says_what_to_do_and_waits(settings, serve, browser):
    """The first hour without a language model: one notice, in view however far the log scrolls,
    naming the two ways out, and Send and the microphone off until a model answers."""
    import socket

    from council import OLLAMA_MEMBERS_FILE, CouncilSettings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}"
    council_settings = CouncilSettings(members_file=OLLAMA_MEMBERS_FILE, ollama_base_url=nowhere)
    with serve(create_app(AppSettings(queues=settings, council=council_settings))) as url:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if "favicon" in m.text else None)
        page.goto(url)
        page.wait_for_selector("#banner:not([hidden])", timeout=15000)
        notice = page.inner_text("#banner")
        assert "COUNCIL_RESPONDER=echo" in notice and "ollama serve" in notice
        assert page.is_disabled("#send") and page.is_disabled("#mic")
        assert page.evaluate("getComputedStyle(document.getElementById('banner')).position") == "sticky"
        # A long message is counted, not cut: over the limit it stays in the box.
        page.fill("#text", "word " * 900)
        assert page.inner_text("#counter") == "4499 / 4000" and page.is_visible("#counter")
        assert not errors, errors
