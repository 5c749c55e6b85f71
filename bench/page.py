"""The voice figures measured in the page itself (Debian's Chromium, driven by Playwright): from the
end of speech in the fake microphone's audio to the first sound of the answer, hands-free; and from
a click on Stop to silence at the page's output. The page notes both (window.councilPlayer.stats,
window.councilMic.startedAt); this reads them.

The voice turns run twice in one run, each in a fresh browser: as the default page plays answers
(no headphones: through a loopback peer connection, so the browser's echo canceller hears them;
`first_sound_ms`) and as it played them before #20 (directly to the device, what it still does
with headphones; `first_sound_direct_ms`). The difference is what the loopback costs."""

import io
import shutil
import time
import wave
from pathlib import Path

import numpy as np

from .stream import QUESTIONS, serve, speak

GAP_S = 12.0  # after each question: the answer plays, the echo window (web/echo.py) passes, then quiet
LEAD_S = 1.0


def _wav(parts: list[np.ndarray]) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.concatenate(parts).astype("<i2").tobytes())
    return out.getvalue()


def bench_page(settings, worker_python: str, folder: Path, turns: int = 6, stops: int = 10) -> dict:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return {"skipped": "Chromium is not installed"}
    questions = [
        np.frombuffer(speak(QUESTIONS[i % len(QUESTIONS)], worker_python, folder), "<i2") for i in range(turns)
    ]
    parts, ends, at = [np.zeros(int(16000 * LEAD_S), "<i2")], [], LEAD_S
    for q in questions:
        parts += [q, np.zeros(int(16000 * GAP_S), "<i2")]
        ends.append(at + len(q) / 16000)
        at += len(q) / 16000 + GAP_S
    mic = folder / "page-mic.wav"
    mic.write_bytes(_wav(parts))
    url, server, thread = serve(settings)
    page_url = url.replace("ws://", "http://").split("/ws/")[0]
    try:
        with sync_playwright() as p:
            args = [
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={mic}%noloop",
                "--autoplay-policy=no-user-gesture-required",
            ]
            direct = _first_sounds(p.chromium.launch(executable_path=chromium, args=args), page_url, ends, at, True)
            browser = p.chromium.launch(executable_path=chromium, args=args)
            first_sound = _first_sounds(browser, page_url, ends, at, False)
            page = browser.contexts[0].pages[0]
            for _ in range(stops):
                page.fill("#text", "What is the capital of France?")
                page.press("#text", "Enter")
                page.wait_for_function("window.councilPlayer.busy", timeout=30000)
                time.sleep(0.8)
                page.click("#stop")
                page.wait_for_function("!window.councilPlayer.busy", timeout=10000)
                time.sleep(0.3)
            stop_ms = page.evaluate("window.councilPlayer.stats.stops")
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
    return {"first_sound_ms": first_sound, "first_sound_direct_ms": direct, "stop_ms": stop_ms}


def _first_sounds(browser, page_url: str, ends: list[float], length_s: float, headphones: bool) -> list[float]:
    """End of each question -> first sound of its answer, in ms, hands-free; with `headphones`
    the answers play directly, without, through the loopback (the page's default). A browser used
    without headphones is left open, its page on, for the Stop figures."""
    context = browser.new_context()
    page = context.new_page()
    page.add_init_script(
        "localStorage.setItem('council.mode', 'hands_free');"
        f"localStorage.setItem('council.headphones', '{int(headphones)}')"
    )
    page.goto(page_url)
    page.wait_for_selector("#status.online", timeout=30000)
    page.click("#mic")
    deadline = time.monotonic() + length_s + 30
    while page.evaluate("Object.keys(window.councilPlayer.stats.firstSound).length") < len(ends):
        if time.monotonic() > deadline:
            raise RuntimeError("the page did not answer every question")
        time.sleep(0.5)
    started = page.evaluate("window.councilMic.startedAt")
    sounds = sorted(page.evaluate("Object.values(window.councilPlayer.stats.firstSound)"))
    page.click("#mic")
    if headphones:
        browser.close()
    return [s - (started + end * 1000) for s, end in zip(sounds, ends, strict=True)]
