"""A fresh server, hit at once: the Train and Recognise pages load together and a clip is
uploaded the moment the page lets it, while the warm-up thread is still importing.

Before pandas and plotly were imported with ``ui`` (before any page runs), this showed
``partially initialized module 'pandas' has no attribute 'Series'`` on the Recognise page in
every run. Each round starts its own server, since only the first seconds of a server race.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import browser, signals

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROUNDS = 3
ANSWER_TIMEOUT_MS = 180_000  # a fresh server imports TensorFlow first, on a busy machine too


def test_a_fresh_server_loading_two_pages_and_an_upload_at_once_shows_no_traceback(
    tmp_path: Path,
) -> None:
    clip = signals.write_audio(
        tmp_path / "speech.wav",
        signals.speech_like(duration_s=3.0, sample_rate_hz=44_100, seed=4),
        sample_rate_hz=44_100,
    )
    env = {"SER_ENABLE_TRAINING": "1", "SER_DATA_DIR": "", "SER_DISABLE_TRAINING": ""}
    exceptions = []
    with browser.chromium() as chrome:
        for _ in range(ROUNDS):
            with browser.streamlit_server("app.py", env=env) as url:
                recognise, train = browser.new_page(chrome), browser.new_page(chrome)
                recognise.goto(url, wait_until="commit")
                train.goto(f"{url}/train", wait_until="commit")
                # Waits only until the uploader is in the page: the model is still loading.
                recognise.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(clip)
                answer = recognise.get_by_text("Most likely emotion in speech.wav")
                answer.or_(recognise.get_by_test_id("stException")).first.wait_for(
                    timeout=ANSWER_TIMEOUT_MS
                )
                browser.wait_for_app_run(train, timeout_ms=ANSWER_TIMEOUT_MS)
                browser.wait_for_app_run(recognise, timeout_ms=ANSWER_TIMEOUT_MS)
                exceptions += [
                    p.get_by_test_id("stException").all_inner_texts() for p in (recognise, train)
                ]
                assert answer.count() == 1
                assert train.get_by_role("heading", name="Train a model").count() == 1
                recognise.context.close()
                train.context.close()
    assert exceptions == [[]] * (2 * ROUNDS), exceptions
