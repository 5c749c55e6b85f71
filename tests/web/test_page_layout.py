"""The pages as people use them, in a real browser (Debian's Chromium, Playwright): on a phone
(360 and 390 px wide) and a desktop, the composer and the microphone are on screen and nothing
scrolls sideways; axe-core (its script from the axe-playwright-python package, run in the page)
finds no serious or critical accessibility violation. Screenshots go to artifacts/screenshots/."""

import shutil
import time
from pathlib import Path

import pytest

from web.app import create_app
from web.settings import AppSettings

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.slow, pytest.mark.timeout(180)]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
SIZES = {"phone-360": (360, 740), "phone-390": (390, 844), "desktop": (1280, 800)}

# Where each control is, and how wide the page lays out.
LAYOUT = """() => {
  const box = (id) => { const r = document.getElementById(id).getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height}; };
  return {scrollWidth: document.documentElement.scrollWidth, width: innerWidth, height: innerHeight,
    mic: box('mic'), text: box('text'), send: box('send'), stop: box('stop'), nav: box('nav')};
}"""


@pytest.fixture(scope="module")
def server(settings, serve):
    with serve(create_app(AppSettings(queues=settings, responder="echo"))) as url:
        yield url


def settle(page) -> None:
    """Stop what the council is still saying, and let its turn end, before the page goes."""
    if page.locator("#stop").count() and page.is_enabled("#stop"):
        page.click("#stop")
        page.wait_for_selector("#stop:disabled", timeout=20000)
    page.close()


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed (Debian package chromium); make test installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()
    # The server sees the browser's connections close before it stops (else its loop closes over
    # open transports, which the warnings-as-errors run reports).
    time.sleep(0.5)


@pytest.mark.parametrize("size", SIZES)
def test_the_chat_page_fits_the_screen_and_keeps_the_composer_in_reach(server, browser, size):
    width, height = SIZES[size]
    page = browser.new_page(viewport={"width": width, "height": height}, is_mobile=size.startswith("phone"))
    page.goto(server)
    page.wait_for_selector("#status.online", timeout=15000)
    for turn in range(6):  # a conversation longer than the screen
        page.fill("#text", f"Question number {turn}: what would a careful person do about the bridge next spring?")
        page.press("#text", "Enter")
        page.wait_for_function(f"document.querySelectorAll('.msg.user').length === {turn + 1}")
    layout = page.evaluate(LAYOUT)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"chat-{size}.png"))
    assert layout["scrollWidth"] <= width, f"the page scrolls sideways: {layout}"
    for control in ("mic", "text", "send", "stop", "nav"):
        b = layout[control]
        assert b["left"] >= 0 and b["right"] <= width and b["top"] >= 0 and b["bottom"] <= height, (control, layout)
    assert layout["text"]["width"] >= min(200, width * 0.45), f"the text box is a sliver: {layout}"
    settle(page)


@pytest.mark.parametrize("path", ["/", "/batch"])
@pytest.mark.parametrize("size", ["phone-390", "desktop"])
def test_no_serious_accessibility_violation(server, browser, path, size):
    from axe_playwright_python.sync_playwright import Axe

    width, height = SIZES[size]
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(server + path)
    if path == "/":
        page.wait_for_selector("#status.online", timeout=15000)
        page.fill("#text", "Hello council.")
        page.press("#text", "Enter")
        page.wait_for_selector(".msg.member .text:not(:empty)", timeout=30000)
    results = Axe().run(page)
    serious = [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:4]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not serious, "\n".join(serious)
    settle(page)


def test_every_control_is_reachable_by_keyboard_with_a_visible_focus(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(server)
    page.wait_for_selector("#status.online", timeout=15000)
    seen, unfocused = set(), []
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => { const el = document.activeElement; const s = getComputedStyle(el);
            return {id: el === document.body ? 'body' : el.id || el.textContent.trim().slice(0, 20),
                    outline: s.outlineStyle !== 'none' && s.outlineWidth !== '0px',
                    shadow: s.boxShadow !== 'none'}; }"""
        )
        if focused["id"] == "body":  # past the last control, the page itself: nothing to show
            continue
        seen.add(focused["id"])
        if not (focused["outline"] or focused["shadow"]):
            unfocused.append(focused["id"])
    assert {"mic", "mode", "headphones", "text", "send"} <= seen, seen
    assert not unfocused, f"no visible focus on: {sorted(set(unfocused))}"
    page.close()
