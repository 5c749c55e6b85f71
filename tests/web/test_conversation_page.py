"""The conversation as a person sees it, in a real browser (Debian's Chromium, Playwright), on a phone
(390x844) and a desktop (1280x800): one line always says where the conversation is (with the level
the microphone really hands the page), the answer's words follow its sound, hands-free comes back
after a reload (or says why it cannot, with one button), a voice chosen with the microphone open
speaks the next answer, and what a person reads is written for them. The fake microphone plays real
recordings (Piper). Screenshots go to artifacts/screenshots/."""

import json
import time
import uuid
from pathlib import Path

import pytest

from tests.web.mic_browser import quiet, samples, trimmed, wait_playing, wav
from web.app import create_app
from web.settings import AppSettings

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.slow, pytest.mark.timeout(240)]
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
SIZES = {"phone": (390, 844), "desktop": (1280, 800)}
QUESTION = "What time does the library open on Sundays?"
SIX = " ".join(
    f"Here comes sentence {n}, and it takes a while to say." for n in ("one", "two", "three", "four", "five", "six")
)


@pytest.fixture(scope="module")
def server(settings, serve):
    with serve(create_app(AppSettings(queues=settings, responder="echo"))) as url:
        yield url


def context(browser, size: str, microphone: bool = True):
    width, height = SIZES[size]
    return browser.new_context(
        viewport={"width": width, "height": height},
        is_mobile=size == "phone",
        has_touch=size == "phone",
        permissions=["microphone"] if microphone else [],
    )


def open_page(ctx, server: str, mode: str = "hands_free", voice: str | None = "max"):
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(
        f"localStorage.setItem('council.mode', '{mode}'); localStorage.setItem('council.headphones', '1');"
    )
    page.goto(server)
    page.wait_for_selector("#status.online", timeout=15000)
    page.wait_for_function("document.querySelectorAll('#voice option').length > 1")
    if voice:
        page.select_option("#voice", voice)
    return page, errors


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def state(page) -> str:
    return page.get_attribute("#convo", "data-state")


def wait_state(page, name: str, timeout_s: float = 30) -> None:
    """Until the state line reads `name`; else fail saying what it read."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_selector(f"#convo[data-state={name}]", timeout=timeout_s * 1000)
    except PlaywrightTimeout:
        pytest.fail(f"the state line never read {name!r}: it reads {state(page)!r}: {page.inner_text('#state-label')}")


def settle(page) -> None:
    if page.is_enabled("#stop"):
        page.click("#stop")
        page.wait_for_selector("#stop:disabled", timeout=20000)


@pytest.mark.parametrize("size", SIZES)
def test_one_line_says_the_conversations_state_with_the_microphones_real_level(server, chromium, piper_speech, size):
    question = trimmed(samples(piper_speech(QUESTION)))
    browser = chromium(wav(quiet(2.0), question, quiet(8.0)))
    page, errors = open_page(context(browser, size), server)
    assert state(page) == "off" and "Mic off" in page.inner_text("#state-label")
    assert page.is_hidden("#level")  # no meter without a microphone
    # Every state the line takes, with the level the meter showed then; and what a screen reader heard.
    page.evaluate("""() => { window.states = []; window.told = [];
        const bar = document.getElementById('convo'), level = document.getElementById('level');
        new MutationObserver(() => window.states.push(bar.dataset.state))
          .observe(bar, {attributes: true, attributeFilter: ['data-state']});
        new MutationObserver(() => window.states.push(bar.dataset.state + ':' + level.dataset.db))
          .observe(level, {attributes: true, attributeFilter: ['data-db']});
        new MutationObserver(() => window.told.push(document.getElementById('announce').textContent))
          .observe(document.getElementById('announce'), {childList: true, characterData: true, subtree: true});
        window.busy = [];
        new MutationObserver(() => window.busy.push(document.getElementById('log').getAttribute('aria-busy')))
          .observe(document.getElementById('log'), {attributes: true, attributeFilter: ['aria-busy']}); }""")
    page.click("#mic")
    wait_state(page, "listening", 30)
    assert page.is_visible("#level")
    wait_state(page, "speaking", 30)
    shot(page, f"state-speaking-{size}")
    bar = page.locator("#convo").bounding_box()
    width, height = SIZES[size]
    assert bar["y"] >= 0 and bar["y"] + bar["height"] <= height and bar["x"] + bar["width"] <= width, bar
    wait_state(page, "listening", 30)
    time.sleep(1.0)
    seen = page.evaluate("window.states")
    # The log (a polite live region) is busy while the answer's tokens come, so that a screen
    # reader reads it once it is written.
    busy = page.evaluate("window.busy")
    assert "true" in busy and busy[-1] == "false", busy
    changes = [s for s in seen if ":" not in s]
    order = [s for n, s in enumerate(changes) if n == 0 or changes[n - 1] != s]
    wanted = ["listening", "hearing", "thinking", "speaking", "listening"]
    at = 0
    for s in order:
        if at < len(wanted) and s == wanted[at]:
            at += 1
    assert at == len(wanted), order
    # The meter is honest: silence (before the question) reads near nothing, the question loud.
    levels: dict[str, list[float]] = {}
    current = None
    for s in seen:
        if ":" in s:
            levels.setdefault(current or "", []).append(float(s.split(":")[1]))
        else:
            current = s
    assert max(levels.get("hearing", [-60])) > -40, levels.get("hearing")
    assert max(levels["listening"][:20]) < -50, levels["listening"][:20]  # the 2 s of silence first
    # Screen readers were told each state once it held, not every flicker (nor the meter).
    told = page.evaluate("window.told")
    assert any("Listening" in t for t in told) and any("Speaking" in t for t in told), told
    assert len(told) <= len(order) + 1, (told, order)
    page.click("#mic")  # closed: off again, the meter gone
    wait_state(page, "off", 30)
    assert page.is_hidden("#level")
    assert not errors, errors


@pytest.mark.parametrize("size", SIZES)
def test_captions_follow_the_sound_and_escape_leaves_them_at_what_was_heard(server, chromium, size):
    browser = chromium(wav(quiet(1.0)))
    page, errors = open_page(context(browser, size), server)
    assert "Esc" in page.inner_text("#hint") and "Esc" in page.get_attribute("#stop", "title")
    page.fill("#text", SIX)
    page.press("#text", "Enter")
    wait_playing(page, 2)  # sentence 3 of 6 sounds
    page.wait_for_function("document.querySelector('.msg.member .text .now')?.textContent.includes('three')")
    said = page.inner_text(".msg.member .text .said >> nth=0")
    assert "sentence one" in said and "sentence two" in said and "three" not in said, said
    ahead = page.inner_text(".msg.member .text .ahead")
    assert "sentence four" in ahead and "sentence six" in ahead, ahead  # the whole text is there, dimmed
    shot(page, f"captions-{size}")
    page.keyboard.press("Escape")  # stops the answer from anywhere (the text box has the focus)
    page.wait_for_function("window.councilPlayer.stats.stops.length === 1", timeout=5000)
    assert page.evaluate("window.councilPlayer.busy") is False
    # The captions stay at what was heard; once the server's cut comes, the rest is marked unheard.
    assert page.locator(".msg.member .text .now").count() == 0
    page.wait_for_selector(".msg.member .unheard", timeout=10000)
    heard = page.evaluate(
        """() => { const t = document.querySelector('.msg.member .text').cloneNode(true);
        t.querySelectorAll('.unheard').forEach(e => e.remove()); return t.textContent; }"""
    )
    assert "sentence two" in heard and "sentence four" not in heard, heard
    assert "sentence six" in page.inner_text(".msg.member .unheard")
    assert page.locator(".msg.note", has_text="Stopped.").count() == 1
    wait_state(page, "off", 30)
    assert not errors, errors


@pytest.mark.parametrize("size", SIZES)
def test_hands_free_listens_again_after_a_reload(server, chromium, size):
    """The microphone allowed for the site: after a reload the page listens again by itself, even
    where the browser plays no sound before a click (a page that captures may: Chrome)."""
    browser = chromium(wav(quiet(40.0)), "--autoplay-policy=document-user-activation-required")
    page, errors = open_page(context(browser, size), server)
    page.click("#mic")
    wait_state(page, "listening", 30)
    sent: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda f: sent.append(f if isinstance(f, str) else "bytes")))
    page.reload()
    wait_state(page, "listening", 30)  # nobody clicked
    assert page.is_hidden("#resume-listening")
    assert any(isinstance(f, str) and json.loads(f)["type"] == "listen" for f in sent), sent[:5]
    page.click("#mic")  # closed by the person: forgotten
    page.reload()
    page.wait_for_selector("#status.online", timeout=15000)
    time.sleep(1.0)
    assert state(page) == "off", state(page)
    assert not errors, errors


def test_a_listener_heard_before_the_servers_mic_frame_still_reads_listening(settings, serve, chromium, monkeypatch):
    """The listener's `listening` and the server's `mic` frame (which names the stream) reach the
    page apart: on a busy machine the first may come first (seen in CI: the line stayed at
    "opening"). Here the server sends its frame a second late, every time."""
    import asyncio

    from web.mic import Mic

    opened = Mic.open

    async def late(self) -> None:
        await opened(self)
        await asyncio.sleep(1.0)  # the listener claims the stream and says so meanwhile

    monkeypatch.setattr(Mic, "open", late)
    with serve(create_app(AppSettings(queues=settings, responder="echo"))) as url:
        browser = chromium(wav(quiet(20.0)))
        page, errors = open_page(context(browser, "desktop"), url)
        page.click("#mic")
        wait_state(page, "listening", 30)
        page.click("#mic")
        assert not errors, errors


@pytest.mark.parametrize("size", SIZES)
def test_where_the_browser_asks_again_one_button_resumes_listening(server, chromium, size):
    """The microphone allowed "this time" only (the browser asks again on the next visit; Firefox
    and Safari keep no permission by default): the page does not ask unprompted after a reload, it
    says why the microphone is off and offers one button."""
    from axe_playwright_python.sync_playwright import Axe

    browser = chromium(wav(quiet(40.0)), "--autoplay-policy=document-user-activation-required")
    ctx = context(browser, size, microphone=False)
    # What such a browser reports (Playwright's own contexts say "denied" or "granted", nothing between).
    ctx.add_init_script("""(() => { const query = navigator.permissions.query.bind(navigator.permissions);
        navigator.permissions.query = (d) => d.name === 'microphone'
          ? Promise.resolve({ state: 'prompt', addEventListener() {} }) : query(d); })()""")
    page, errors = open_page(ctx, server)
    page.click("#mic")  # the browser asks (its fake prompt says yes), and the page listens
    wait_state(page, "listening", 30)
    page.close()
    # The same conversation in a new tab nobody has touched (no script is evaluated in it before
    # the button is pressed: Playwright's evaluate counts as a user gesture).
    page = ctx.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)
    page.wait_for_selector("#resume-listening", state="visible", timeout=20000)
    assert state(page) == "paused"
    assert "wants a click" in page.inner_text("#state-label")
    shot(page, f"resume-listening-{size}")
    results = Axe().run(page)
    serious = [v["id"] for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not serious, serious
    page.focus("#resume-listening")
    page.keyboard.press("Enter")  # reachable and pressed by keyboard
    wait_state(page, "listening", 30)
    assert page.is_hidden("#resume-listening")
    assert not errors, errors


@pytest.mark.parametrize("size", SIZES)
def test_a_voice_chosen_with_the_microphone_open_speaks_the_next_answer(server, chromium, piper_speech, size):
    question = trimmed(samples(piper_speech(QUESTION)))
    browser = chromium(wav(quiet(4.0), question, quiet(8.0)))
    page, errors = open_page(context(browser, size), server, voice="max")
    options = page.eval_on_selector_all("#voice option", "els => els.map(e => e.textContent)")
    assert any(o.startswith("ada") and "British English" in o for o in options), options  # described, not a tooltip
    voices: list[str] = []

    def received(frame) -> None:
        if isinstance(frame, str) and (event := json.loads(frame)).get("type") == "audio":
            voices.append(event["payload"]["voice"])

    page.on("websocket", lambda ws: ws.on("framereceived", received))
    page.reload()  # (so that the socket is watched from its start)
    page.wait_for_selector("#status.online", timeout=15000)
    page.click("#mic")
    wait_state(page, "listening", 30)
    page.select_option("#voice", "ada")  # the microphone is open: the question is yet to come
    wait_state(page, "speaking", 40)
    assert voices and set(voices) == {"ada"}, voices
    vw = SIZES[size][0]
    assert page.evaluate("document.documentElement.scrollWidth") <= vw
    shot(page, f"voice-{size}")
    settle(page)
    assert not errors, errors


@pytest.mark.parametrize("size", SIZES)
def test_a_blocked_microphone_says_how_to_allow_it_once(server, chromium, size):
    browser = chromium(wav(quiet(5.0)), "--deny-permission-prompts", fake_ui=False)
    page, errors = open_page(context(browser, size, microphone=False), server)
    page.click("#mic")
    wait_state(page, "blocked", 30)
    page.click("#mic")
    page.click("#mic")
    time.sleep(0.5)
    notes = page.locator(".msg.error").all_inner_texts()
    assert len(notes) == 1, notes  # once, not on every click
    assert "To allow it in Chrome" in notes[0] and "Microphone" in notes[0], notes
    assert "Permission denied" not in notes[0]
    assert "blocked" in page.inner_text("#state-label")
    shot(page, f"mic-blocked-{size}")
    assert not errors, errors


@pytest.mark.parametrize("size", SIZES)
def test_protocol_text_never_reaches_the_page(server, chromium, size):
    browser = chromium(wav(quiet(1.0)))
    ctx = context(browser, size)
    ctx.add_init_script("""(() => { const Real = window.WebSocket; window.sockets = [];
        window.WebSocket = function (...a) { const s = new Real(...a); window.sockets.push(s); return s; };
        Object.assign(window.WebSocket, Real); window.WebSocket.prototype = Real.prototype; })()""")
    page, errors = open_page(ctx, server)
    page.evaluate("window.sockets[0].send(new Uint8Array(640))")  # audio with no microphone open: bad_state
    page.evaluate('window.sockets[0].send(\'{"type": "listen", "sample_rate": 8000}\')')  # bad_frame
    page.wait_for_function("document.querySelectorAll('.msg.error').length >= 1", timeout=10000)
    time.sleep(1.0)
    shown = " ".join(page.locator(".msg").all_inner_texts())
    for protocol in ("audio_start", "Binary frames", "PROTOCOL.md", "sample_rate", "frame"):
        assert protocol not in shown, shown
    assert "Reload the page" in shown, shown
    assert not errors, errors


@pytest.mark.parametrize("size", SIZES)
def test_with_no_llm_enter_keeps_the_words_and_says_why(settings, serve, chromium, size):
    import socket

    from council import OLLAMA_MEMBERS_FILE, CouncilSettings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}"
    council_settings = CouncilSettings(members_file=OLLAMA_MEMBERS_FILE, ollama_base_url=nowhere)
    with serve(create_app(AppSettings(queues=settings, council=council_settings))) as url:
        browser = chromium(wav(quiet(1.0)))
        page = context(browser, size).new_page()
        page.goto(url)
        wait_state(page, "down", 30)
        page.fill("#text", "Hello council.")
        page.press("#text", "Enter")
        time.sleep(1.0)
        assert page.input_value("#text") == "Hello council."  # kept
        assert page.locator(".msg.user").count() == 0 and page.locator(".msg.error").count() == 0
        hint = page.inner_text("#hint")
        assert "Not sent" in hint and "language model" in hint and "stays in the box" in hint, hint
        assert page.is_disabled("#send") and page.is_disabled("#mic")
        shot(page, f"no-llm-{size}")
        page.close()


@pytest.fixture
def builtin_notice(settings, connection, serve):
    """An app whose council is the built-in model, on an `llm` queue of its own that one registered RQ
    worker serves (it runs nothing: the page only needs the model said to be there)."""
    from rq import Queue, Worker
    from rq.serializers import JSONSerializer

    mine = settings.model_copy(update={"llm_queue": f"llm-{uuid.uuid4().hex[:8]}"})
    queue = Queue(mine.llm_queue, connection=connection, serializer=JSONSerializer)
    worker = Worker([queue], connection=connection, serializer=JSONSerializer, name=f"page-{uuid.uuid4().hex[:8]}")
    worker.register_birth()
    try:
        with serve(create_app(AppSettings(queues=mine))) as url:
            yield url
    finally:
        worker.register_death()


@pytest.mark.parametrize("size", SIZES)
def test_the_built_in_model_notice_is_short_on_a_phone_and_can_be_dismissed(builtin_notice, chromium, size):
    browser = chromium(wav(quiet(1.0)))
    page = context(browser, size).new_page()
    page.goto(builtin_notice)
    page.wait_for_selector("#banner:not([hidden])", timeout=15000)
    box = page.locator("#banner").bounding_box()
    shot(page, f"notice-{size}")
    if size == "phone":
        assert box["height"] <= 72, box  # its first sentence; the rest one click away
        assert "SmolLM2" in page.inner_text("#banner") and page.is_hidden("#banner-more-text")
        page.click("#banner-more")
        assert "COUNCIL_MEMBERS_FILE" in page.inner_text("#banner")
    else:
        assert "COUNCIL_MEMBERS_FILE" in page.inner_text("#banner")
    page.focus("#banner-close")
    page.keyboard.press("Enter")
    assert page.is_hidden("#banner")
    page.reload()
    page.wait_for_selector("#status.online", timeout=15000)
    time.sleep(0.5)
    assert page.is_hidden("#banner")  # dismissed stays dismissed
    page.close()
