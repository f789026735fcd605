"""The real app in a real browser: upload a clip, record one through a fake microphone.

Starts ``streamlit run app.py`` with the installed models (``models/``, or $SER_MODELS_DIR)
and drives Debian's Chromium through Playwright. Saves ``artifacts/recognise.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ser import store
from tests import browser, signals

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HEADLINE = re.compile(r"^\S+ [A-Z][a-z]+ — \d{1,3}%$")  # e.g. "😄 Happy — 72%"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("browser-clips")
    speech = signals.speech_like(duration_s=4.0, sample_rate_hz=16_000, seed=3)
    signals.write_audio(folder / "speech.wav", speech, sample_rate_hz=16_000)
    # The fake microphone loops this file; 48 kHz like a real one.
    mic = signals.speech_like(duration_s=4.0, sample_rate_hz=48_000, seed=4)
    signals.write_audio(folder / "mic.wav", mic, sample_rate_hz=48_000, subtype="PCM_16")
    (folder / "notes.wav").write_text("this is not audio\n")
    return folder


@pytest.fixture(scope="module")
def chrome(clips: Path) -> Iterator[object]:
    with browser.chromium(fake_mic_wav=clips / "mic.wav") as b:
        yield b


def _headline(page) -> str:  # noqa: ANN001
    heading = page.get_by_test_id("stHeading").filter(has_text=re.compile(r"— \d+%"))
    heading.first.wait_for(state="visible", timeout=30_000)
    return heading.first.inner_text().strip()


def test_upload_shows_emotion_and_charts(app_url: str, chrome, clips: Path) -> None:
    # Tall enough for the whole result in the screenshot (Streamlit scrolls inside the page).
    page = browser.open_app(chrome, app_url, viewport={"width": 1280, "height": 1500})
    # The sidebar picker shows the default model, and says when it is ready.
    page.get_by_text("is ready.").wait_for(timeout=60_000)
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(clips / "speech.wav")
    browser.wait_for_app_run(page)
    assert HEADLINE.match(_headline(page))
    assert page.get_by_text("Most likely emotion in speech.wav").count() == 1
    # speech.wav is a 16 kHz recording: the default hands it to a shipped model that it fully feeds.
    default = store.default_model(store.list_models())
    narrow = store.model_for_band(store.list_models(), band_hz=8_000, labels=default.labels)
    if narrow is not None and narrow.name != default.name:
        assert (
            page.get_by_text(f"Answered by the model {narrow.name}, which hears up to").count() == 1
        )
    # Plotly loads and draws lazily: wait for the bars of the probability chart.
    page.locator(".js-plotly-plot .bars").first.wait_for(state="visible", timeout=20_000)
    assert page.get_by_test_id("stAudio").count() >= 1
    browser.screenshot(page, "recognise")
    page.context.close()


def test_bad_and_good_files_give_a_table(app_url: str, chrome, clips: Path) -> None:
    page = browser.open_app(chrome, app_url)
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
        [clips / "speech.wav", clips / "notes.wav"]
    )
    browser.wait_for_app_run(page)
    page.get_by_test_id("stDataFrame").first.wait_for()
    assert page.get_by_text("1 could not be used").count() == 1
    assert page.get_by_test_id("stDownloadButton").count() == 1
    assert HEADLINE.match(_headline(page))  # the good file in full below the table
    assert page.get_by_test_id("stException").count() == 0
    browser.screenshot(page, "recognise-table")
    page.context.close()


def test_a_file_over_the_upload_limit_is_refused(app_url: str, chrome, tmp_path: Path) -> None:
    big = tmp_path / "big.wav"
    with big.open("wb") as handle:  # one byte over the 50 MB of .streamlit/config.toml
        handle.truncate(50 * 1024 * 1024 + 1)
    page = browser.open_app(chrome, app_url)
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(big)
    browser.wait_for_app_run(page)
    page.get_by_text(re.compile(r"must be 50(\.0)? ?MB or smaller")).wait_for(timeout=10_000)
    assert page.get_by_test_id("stException").count() == 0
    assert page.get_by_text("Most likely emotion in").count() == 0
    page.context.close()


def test_record_through_the_fake_microphone(app_url: str, chrome) -> None:
    page = browser.open_app(chrome, app_url, microphone=True)
    page.get_by_role("tab").filter(has_text="Record").click()
    widget = page.get_by_test_id("stAudioInput")
    widget.get_by_role("button", name="Record", exact=True).click()
    page.wait_for_timeout(3_000)
    widget.get_by_role("button", name="Stop recording", exact=True).click()
    browser.wait_for_app_run(page)
    assert HEADLINE.match(_headline(page))
    assert page.get_by_text("Most likely emotion in recording.wav").count() == 1
    page.locator(".js-plotly-plot .bars").first.wait_for(state="visible", timeout=20_000)
    browser.screenshot(page, "recognise-recording")
    page.context.close()


def test_example_and_models_page(app_url: str, chrome) -> None:
    page = browser.open_app(chrome, app_url)
    page.get_by_role("tab").filter(has_text="Try an example").click()
    page.get_by_role("button", name="Recognise the example").click()
    browser.wait_for_app_run(page)
    assert HEADLINE.match(_headline(page))
    page.get_by_role("link").filter(has_text="Models").first.click()
    browser.wait_for_app_run(page)
    page.get_by_text("Non-commercial use only").wait_for()
    assert page.get_by_test_id("stException").count() == 0
    browser.screenshot(page, "models")
    page.context.close()


def test_a_bookmarked_page_on_a_fresh_server_goes_through_the_app(chrome) -> None:
    # Its own server: the first request it ever gets is for /models.
    with browser.streamlit_server("app.py") as url:
        page = browser.open_app(chrome, f"{url}/models")
        page.get_by_test_id("stHeading").filter(has_text="Models and data").wait_for()
        nav = page.get_by_test_id("stSidebarNav").inner_text()
        assert "Models & about" in nav
        assert "recognise" not in nav  # file names: Streamlit's folder-based navigation
        assert page.url.endswith("/models")
        page.context.close()
