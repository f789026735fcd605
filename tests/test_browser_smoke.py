"""The browser path works: Streamlit serves, Chromium renders, uploads and recordings arrive.

Uses a throwaway Streamlit script, so it proves the test machinery independently of the app.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SMOKE_APP = textwrap.dedent(
    """
    import array
    import io
    import math
    import time
    import wave

    import streamlit as st

    st.title("Browser smoke test")

    if st.button("Slow"):
        time.sleep(2.0)
        st.write("slow run finished")

    uploaded = st.file_uploader("Upload a clip", type=["wav"])
    if uploaded is not None:
        st.write(f"uploaded: {uploaded.name} ({len(uploaded.getvalue())} bytes)")

    recorded = st.audio_input("Record a clip")
    if recorded is not None:
        data = recorded.getvalue()
        with wave.open(io.BytesIO(data)) as w:
            rate, samples = w.getframerate(), array.array("h", w.readframes(w.getnframes()))
        rms = math.sqrt(sum(x * x for x in samples) / max(1, len(samples))) / 32768
        st.write(f"recorded: {len(samples) / rate:.1f} s at {rate} Hz, loud={rms > 0.01}")
        st.audio(data, format="audio/wav")
    """
)


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("smoke")
    (d / "smoke_app.py").write_text(SMOKE_APP)
    browser.make_wav(d / "tone.wav", seconds=0.5)
    browser.make_wav(d / "mic.wav", seconds=3.0, sample_rate=48_000, freq_hz=300.0)
    return d


@pytest.fixture(scope="module")
def app_url(smoke_dir: Path) -> Iterator[str]:
    browser.require_chromium()
    with browser.streamlit_server(smoke_dir / "smoke_app.py") as url:
        yield url


@pytest.fixture(scope="module")
def chrome(smoke_dir: Path) -> Iterator[object]:
    with browser.chromium(fake_mic_wav=smoke_dir / "mic.wav") as b:
        yield b


def test_page_loads(app_url: str, chrome) -> None:
    page = browser.open_app(chrome, app_url)
    assert page.get_by_test_id("stHeading").first.inner_text().strip() == "Browser smoke test"
    assert page.get_by_test_id("stFileUploader").count() == 1
    assert page.get_by_test_id("stAudioInput").count() == 1
    page.context.close()


def test_wait_for_app_run_waits_for_the_script(app_url: str, chrome) -> None:
    page = browser.open_app(chrome, app_url)
    page.get_by_role("button", name="Slow").click()
    browser.wait_for_app_run(page)
    # No auto-waiting here: the helper alone must have waited out the 2 s run.
    assert page.get_by_text("slow run finished").count() == 1
    page.context.close()


def test_upload_wav(app_url: str, chrome, smoke_dir: Path) -> None:
    page = browser.open_app(chrome, app_url)
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(smoke_dir / "tone.wav")
    browser.wait_for_app_run(page)
    size = (smoke_dir / "tone.wav").stat().st_size
    page.get_by_text(f"uploaded: tone.wav ({size} bytes)").wait_for()
    # The uploader's own chip shows the file name too.
    assert page.get_by_test_id("stFileChipName").inner_text().strip() == "tone.wav"
    browser.screenshot(page, "smoke-upload")
    page.context.close()


def test_record_with_fake_mic(app_url: str, chrome) -> None:
    page = browser.open_app(chrome, app_url, microphone=True)
    widget = page.get_by_test_id("stAudioInput")
    widget.get_by_role("button", name="Record").click()
    page.wait_for_timeout(2_000)
    widget.get_by_role("button", name="Stop recording").click()
    browser.wait_for_app_run(page)
    # The fake mic plays mic.wav (a loud tone), resampled to st.audio_input's 16 kHz default.
    page.get_by_text("at 16000 Hz, loud=True").wait_for()
    page.get_by_test_id("stAudio").wait_for()
    browser.screenshot(page, "smoke-record")
    page.context.close()
