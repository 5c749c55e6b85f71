"""The batch page in a real browser (Debian's Chromium, Playwright) against a real app, Redis and
worker: files with the same name from two folders, a file that is not audio, the order the files
were chosen in, and download names that never collide."""

import shutil
import subprocess
from pathlib import Path

import pytest

from web.app import create_app
from web.settings import AppSettings

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.slow, pytest.mark.timeout(180)]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
TOKEN = "batch-page-token"

# Each card's name, state, text, and the bar's colour: for assertions and for failure messages.
CARDS = """[...document.querySelectorAll('#list .file')].map(el => ({
  name: el.querySelector('.name').textContent,
  state: el.dataset.state,
  text: el.querySelector('.text').textContent,
  bar: getComputedStyle(el.querySelector('.bar i')).backgroundColor
    + ' ' + getComputedStyle(el.querySelector('.bar i')).backgroundImage,
}))"""


@pytest.fixture(scope="module")
def server(settings, serve):
    # With a token: the page must send it on every call, downloads included.
    with serve(create_app(AppSettings(queues=settings, api_token=TOKEN))) as url:
        yield url


@pytest.fixture
def page(server):
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed (Debian package chromium); make test installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1000, "height": 800}, accept_downloads=True)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        open_batch_page(page, server)
        yield page
        assert not errors, errors
        browser.close()


def open_batch_page(page, server: str) -> None:
    page.goto(f"{server}/openapi.json")  # the origin, to keep the token in its storage first
    page.evaluate(f"localStorage.setItem('council.token', '{TOKEN}')")
    page.goto(f"{server}/batch")


def test_same_names_a_failure_the_order_and_download_names(page, flite, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "memo.wav").write_bytes(flite("the meeting starts at noon"))
    (tmp_path / "b" / "memo.wav").write_bytes(flite("bring the quarterly report"))
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(tmp_path / "b" / "memo.wav"), str(tmp_path / "memo.mp3")],
        check=True,
    )
    (tmp_path / "broken.mp3").write_bytes(b"this is not an mp3 at all" * 40)
    chosen = [tmp_path / "a" / "memo.wav", tmp_path / "b" / "memo.wav", tmp_path / "memo.mp3", tmp_path / "broken.mp3"]
    page.set_input_files("#files", [str(p) for p in chosen])
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "() => { const c = [...document.querySelectorAll('#list .file')];"
            " return c.length === 4 && c.every(el => ['finished', 'failed'].includes(el.dataset.state)); }",
            timeout=60000,
        )
    except PlaywrightTimeout:
        pytest.fail(f"not every card ended: {page.evaluate(CARDS)}")
    cards = page.evaluate(CARDS)
    # In the order chosen; the second memo.wav told apart from the first.
    assert [c["name"] for c in cards] == ["memo.wav", "memo.wav (2)", "memo.mp3", "broken.mp3"], cards
    assert [c["state"] for c in cards] == ["finished", "finished", "finished", "failed"], cards
    # Each transcript on its own card (the API gave both memo.wav their own job). Letters only:
    # Whisper may write the mp3's "report" as "re-port".
    words = ["".join(ch for ch in card["text"].lower() if ch.isalpha()) for card in cards]
    assert "noon" in words[0] and "report" in words[1], cards
    assert "report" in words[2], cards
    # The failure says why, and its bar is red, not the finished gradient.
    assert "decode" in cards[3]["text"].lower() or "audio" in cards[3]["text"].lower(), cards
    assert cards[3]["bar"] != cards[0]["bar"] and "gradient" not in cards[3]["bar"], cards
    assert page.locator("#list .file.failed a[data-format]").count() == 0
    page.wait_for_timeout(400)  # the bars' width transition
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "batch-page.png"), full_page=True)

    names, texts = [], []
    for index in range(3):
        for fmt in ("srt", "txt"):
            with page.expect_download() as download:
                page.locator("#list .file").nth(index).locator(f"a[data-format={fmt}]").click()
            names.append(download.value.suggested_filename)
            texts.append(Path(download.value.path()).read_text())
    assert names == [
        "memo.wav.srt",
        "memo.wav.txt",
        "memo (2).wav.srt",
        "memo (2).wav.txt",
        "memo.mp3.srt",
        "memo.mp3.txt",
    ]
    assert "-->" in texts[0] and "noon" in texts[0].lower()
    assert "report" in texts[3].lower() and "-->" not in texts[3]

    # A request the API refuses (every file empty): its card says why, in red, below the others.
    (tmp_path / "silence.wav").write_bytes(b"")
    page.set_input_files("#files", [str(tmp_path / "silence.wav")])
    page.wait_for_function(
        "document.querySelectorAll('#list .file').length === 5 && "
        "document.querySelectorAll('#list .file')[4].dataset.state === 'failed'"
    )
    last = page.evaluate(CARDS)[4]
    assert last["name"] == "silence.wav" and "empty" in last["text"], last


@pytest.fixture(scope="module")
def idle_server(settings, serve):
    """An app whose batch files stay queued: no worker serves its batch queue."""
    idle = settings.model_copy(update={"batch_queue": "nobody-serves-this"})
    with serve(create_app(AppSettings(queues=idle, api_token=TOKEN))) as url:
        yield url


def wait_cards(page, states: str, count: int) -> list[dict]:
    """The newest batch's cards, once there are `count` and each is in one of `states` (the
    user's earlier batches, other tests', are listed above it)."""
    newest = "[...document.querySelectorAll('#list .batch:last-child .file')]"
    page.wait_for_function(
        f"() => {{ const c = {newest};"
        f" return c.length === {count} && c.every(el => {states}.includes(el.dataset.state)); }}",
        timeout=60000,
    )
    return page.evaluate(CARDS.replace("[...document.querySelectorAll('#list .file')]", newest))


def test_a_reload_keeps_the_batches_and_waiting_files_can_be_cancelled(page, idle_server, flite, tmp_path):
    open_batch_page(page, idle_server)
    for name in ("first.wav", "second.wav"):
        (tmp_path / name).write_bytes(flite("good morning"))
    page.set_input_files("#files", [str(tmp_path / "first.wav"), str(tmp_path / "second.wav")])
    wait_cards(page, "['queued']", 2)
    page.reload()
    cards = wait_cards(page, "['queued']", 2)  # back from the server, in the order chosen
    assert [c["name"] for c in cards] == ["first.wav", "second.wav"], cards
    newest = page.locator("#list .batch:last-child")
    assert newest.locator(".file .cancel:visible").count() == 2
    newest.locator(".cancel-all").click()
    cards = wait_cards(page, "['failed']", 2)
    assert all("cancel" in c["text"].lower() for c in cards), cards
    assert newest.locator(".file .cancel:visible").count() == 0


def test_a_silent_file_says_no_speech_and_a_batch_downloads_as_one_zip(page, flite, tmp_path):
    import io
    import wave
    import zipfile

    (tmp_path / "memo.wav").write_bytes(flite("the meeting starts at noon"))
    with wave.open(str(tmp_path / "quiet.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 24000)
    page.set_input_files("#files", [str(tmp_path / "memo.wav"), str(tmp_path / "quiet.wav")])
    count = page.locator("#list .file").count()
    page.wait_for_function(
        "() => { const c = [...document.querySelectorAll('#list .batch:last-child .file')];"
        " return c.length === 2 && c.every(el => el.dataset.state === 'finished'); }",
        timeout=60000,
    )
    quiet = page.locator("#list .batch:last-child .file").nth(1).locator(".text").text_content()
    assert "no speech" in quiet.lower(), quiet
    page.reload()
    page.wait_for_function(f"document.querySelectorAll('#list .file').length === {count}")
    last = page.locator("#list .batch:last-child")
    with page.expect_download() as download:
        last.locator("a[data-zip=txt]").click()
    assert download.value.suggested_filename.endswith("-txt.zip")
    with zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())) as z:
        assert sorted(z.namelist()) == ["memo.wav.txt", "quiet.wav.txt"]
        assert "noon" in z.read("memo.wav.txt").decode().lower()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "batch-page-history.png"), full_page=True)
