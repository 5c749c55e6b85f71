"""What the browser tests of the voice pages share: 16 kHz PCM helpers for the fake microphone's
recording, Chromium launched with a microphone that plays it once, and where the page's player is.
(Imported as `tests.web.mic_browser`; the `chromium` fixture is tests/web/conftest.py's.)"""

import contextlib
import io
import shutil
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def samples(wav_bytes: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(wav_bytes)) as w:
        assert w.getframerate() == 16000
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def trimmed(x: np.ndarray) -> np.ndarray:
    voiced = np.nonzero(np.abs(x) > 300)[0]
    return x[voiced[0] : voiced[-1] + 1]


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(16000 * seconds), dtype="<i2")


def wav(*parts: np.ndarray) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.concatenate(parts).astype("<i2").tobytes())
    return out.getvalue()


@contextlib.contextmanager
def launcher(folder: Path) -> Iterator[Callable[..., Any]]:
    """`launch(mic_wav, *flags, fake_ui=True)`: a browser whose microphone plays that WAV once;
    `fake_ui=False` leaves the permission question to the browser (with --deny-permission-prompts,
    refused). Playwright passes --autoplay-policy=no-user-gesture-required of its own: a test that
    sets a policy gets only its own."""
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed (Debian package chromium); make test installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browsers = []

        def launch(mic: bytes, *flags: str, fake_ui: bool = True) -> Any:
            path = folder / f"mic-{len(browsers)}.wav"
            path.write_bytes(mic)
            args = [
                *(["--use-fake-ui-for-media-stream"] if fake_ui else []),
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={path}%noloop",
                *(flags or ["--autoplay-policy=no-user-gesture-required"]),
            ]
            ignore = ["--autoplay-policy=no-user-gesture-required"] if flags else None
            browsers.append(p.chromium.launch(executable_path=CHROMIUM, args=args, ignore_default_args=ignore))
            return browsers[-1]

        yield launch
        for b in browsers:
            b.close()
    time.sleep(0.5)  # the server sees the browsers' connections close before it stops


def playing_index(page: Any) -> int | None:
    """The index of the sentence the page is playing, or None."""
    index: int | None = page.evaluate(
        "(() => { const p = window.councilPlayer.position();"
        " return p && window.councilPlayer.busy ? p.index : null; })()"
    )
    return index


def wait_playing(page: Any, index: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if playing_index(page) == index:
            return
        time.sleep(0.05)
    pytest.fail(f"sentence {index + 1} never played (now: {playing_index(page)})")
