"""Live mode in a real browser: a fake microphone streams over WebRTC to the app.

Chromium plays a generated WAV as its microphone (``--use-file-for-fake-audio-capture``, looped).
Saves ``artifacts/live.png`` and ``artifacts/live-take.png``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests import browser, signals

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HEADLINE = re.compile(r"^\S+ [A-Z][a-z]+ — \d{1,3}%$")  # e.g. "😄 Happy — 72%"
LIVE_HEADLINE = re.compile(r"^\S+ (Silence|[A-Z][a-z]+ — \d{1,3}%)$")
UPDATE = re.compile(r"Update (\d+):")
RATE_HZ = 48_000
WEBRTC_FRAME = "iframe[title*='webrtc_streamer']"


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Speech, a pause, louder and higher speech: 8 s, looped by the fake microphone."""
    speech = signals.speech_like(
        duration_s=3.0, sample_rate_hz=RATE_HZ, seed=11, speech_fraction=0.9
    )
    pause = signals.silence(duration_s=2.0, sample_rate_hz=RATE_HZ)
    excited = signals.speech_like(
        duration_s=3.0,
        sample_rate_hz=RATE_HZ,
        seed=12,
        f0_hz=260.0,
        syllable_s=0.12,
        amplitude=0.7,
        speech_fraction=0.9,
    )
    path = tmp_path_factory.mktemp("live-mic") / "mic.wav"
    return signals.write_audio(
        path, np.concatenate([speech, pause, excited]), sample_rate_hz=RATE_HZ, subtype="PCM_16"
    )


@pytest.fixture(scope="module")
def chrome(mic_wav: Path) -> Iterator[object]:
    with browser.chromium(fake_mic_wav=mic_wav) as b:
        yield b


def _open_live_tab(chrome, app_url: str):  # noqa: ANN001, ANN202
    page = browser.open_app(
        chrome, app_url, microphone=True, viewport={"width": 1280, "height": 1600}
    )
    page.get_by_text("is ready.").wait_for(timeout=60_000)
    # No player until the Live tab is open: once drawn, it reruns the page, and a run starting
    # mid-upload loses the upload (six of eight in tests/test_browser_load.py).
    assert page.locator(WEBRTC_FRAME).count() == 0
    page.get_by_role("tab", name=re.compile("Live")).click()
    browser.wait_for_app_run(page)  # the Live tab runs only once open
    _webrtc(page).get_by_role("button", name="Start").wait_for(timeout=30_000)
    return page


def _webrtc(page):  # noqa: ANN001, ANN202
    return page.frame_locator(WEBRTC_FRAME)


def _watch(page, *, seconds: float) -> list[str]:  # noqa: ANN001
    """The live view's distinct texts, read every 0.1 s for ``seconds``."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    seen: list[str] = []
    view = page.locator(".st-key-live")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            text = view.first.inner_text(timeout=2_000).strip() if view.count() else ""
        except PlaywrightTimeoutError:  # redrawn between the count and the read: read it again
            text = ""
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        page.wait_for_timeout(100)
    return seen


def test_live_mode_updates_while_speaking_and_gives_the_take_at_stop(app_url: str, chrome) -> None:
    page = _open_live_tab(chrome, app_url)
    assert page.get_by_text("live mode may not connect from every network").count() == 1
    _webrtc(page).get_by_role("button", name="Start").click()
    started = time.monotonic()
    seen = _watch(page, seconds=10.0)
    updates = {int(m.group(1)) for text in seen if (m := UPDATE.search(text))}
    assert len(updates) >= 3, seen
    assert time.monotonic() - started < 12.0
    # The emotion is text in the view, not only a picture.
    headline = page.locator(".st-key-live [data-testid='stHeading']").first.inner_text().strip()
    assert LIVE_HEADLINE.match(headline), headline
    browser.screenshot(page, "live")
    # Long enough a take for the emotion over time (over 5 s) before stopping.
    page.locator(".st-key-live").get_by_text(re.compile(r"up to ([6-9]|\d\d)\.\d s into")).wait_for(
        timeout=20_000
    )

    _webrtc(page).get_by_role("button", name="Stop").click()
    browser.wait_for_app_run(page)
    result = page.locator(".st-key-live-result")
    result.get_by_text("Most likely emotion in live take.wav").wait_for(timeout=30_000)
    heading = result.get_by_test_id("stHeading").filter(has_text=re.compile(r"— \d+%")).first
    assert HEADLINE.match(heading.inner_text().strip())
    duration = float(re.search(r"\(([\d.]+) s\)", result.inner_text()).group(1))
    assert duration >= 6.0  # the whole take, not the last window
    result.locator(".js-plotly-plot .bars").first.wait_for(state="visible", timeout=20_000)
    assert result.get_by_role("tab", name="Emotion over time").count() == 1
    assert result.get_by_test_id("stDownloadButton").count() == 1
    assert page.locator(".st-key-live").count() == 0  # the live view stops with the stream
    assert page.get_by_test_id("stException").count() == 0
    browser.screenshot(page, "live-take")
    page.context.close()
