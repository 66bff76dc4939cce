"""End to end in a real browser: Playwright drives Debian's headless Chromium against `vidagent serve`.

The server is the real command on loopback with the tiny profile (tiny random weights: the
planner's plans are nonsense, so the agent's fixed fallback plan runs: retrieve, then look; the
answer text means nothing, but the evidence chips, the player and the thumbnails are real).
Skipped when /usr/bin/chromium is missing (`make test` installs it). The screenshot lands in
test-artifacts/browser-chat.png.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from vidagent.evals.benchmarks.server import serving
from vidagent.media.sample_videos import sample_video

CHROMIUM = os.environ.get("VIDAGENT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None,
        reason=f"no Chromium at {CHROMIUM} (make test installs Debian's chromium)",
    ),
    pytest.mark.timeout(600),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_hub: object) -> Iterator[str]:
    """`vidagent serve --profile tiny` on a free loopback port (tiny checkpoints already built)."""
    with serving(tmp_path_factory.mktemp("serve")) as url:
        yield url


def test_upload_ask_and_click_evidence_seeks_the_player(server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(server + "/")

        page.set_input_files("#upload", str(sample_video("bikes")))
        expect(page.locator("#videos button")).to_have_count(1, timeout=60_000)
        expect(page.locator("#upload-status")).to_contain_text("Uploaded bikes")
        expect(page.locator("#index-label")).to_contain_text("Indexed", timeout=120_000)
        expect(page.locator("#question")).to_be_enabled()

        page.fill("#question", "When does the cyclist pass?")
        page.click("#ask")
        answer = page.locator("li.msg.assistant").last
        expect(answer.locator(".confidence")).to_be_visible(timeout=180_000)  # the answer event arrived
        # the steps streamed in: recall's lookup of what the clip says and shows, then the plan
        expect(answer.locator(".steps li").first).to_contain_text("recall → find_text")
        expect(answer.locator(".steps li", has_text="plan").first).to_be_visible()
        chip = answer.locator(".chip").first
        expect(chip).to_be_visible()

        start, end = float(chip.get_attribute("data-start")), float(chip.get_attribute("data-end"))
        chip.click()
        page.wait_for_function(
            "([s, e]) => { const p = document.getElementById('player');"
            " return p.readyState >= 1 && p.currentTime >= s - 0.05 && p.currentTime <= e + 0.05 }",
            arg=[start, end],
            timeout=30_000,
        )
        current = page.evaluate("document.getElementById('player').currentTime")
        assert start - 0.05 <= current <= end + 0.05
        expect(page.locator("#evidence-view")).to_be_visible()
        page.wait_for_function("document.getElementById('thumb').naturalWidth > 0", timeout=30_000)
        assert page.get_attribute("#thumb", "src").startswith("blob:")

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "browser-chat.png"), full_page=True)
        browser.close()
    assert problems == []


def test_a_question_left_without_an_answer_is_marked_interrupted(server: str) -> None:
    """A session whose server died mid-turn reopens with its question marked (GET /api/sessions is
    stubbed here with what the API returns then; tests/test_server.py checks the API itself)."""
    from playwright.sync_api import expect, sync_playwright

    bikes = sample_video("bikes")
    video_id = hashlib.sha256(bikes.read_bytes()).hexdigest()
    session = "f" * 32
    stored = {
        "session": session,
        "video": video_id,
        "evidence": [],
        "messages": [{"role": "user", "content": "Where does the cyclist go?", "interrupted": True}],
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.route(f"**/api/sessions/{session}", lambda route: route.fulfill(json=stored))
        page.goto(server + "/")
        page.evaluate(
            "([key, value]) => sessionStorage.setItem(key, value)", [f"vidagent-session-{video_id}", session]
        )
        page.set_input_files("#upload", str(bikes))
        expect(page.locator("li.msg.user")).to_contain_text("Where does the cyclist go?", timeout=60_000)
        expect(page.locator("li.msg.error")).to_contain_text("interrupted")
        browser.close()
    assert problems == []
