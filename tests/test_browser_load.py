"""Many sessions at once in a real browser, and uploads the page must refuse.

Runs ``tools/load_sessions.py`` with 8 sessions against one ``streamlit run app.py``: each
session uploads a different clip at the same moment and must show its own correct result (no
cross-talk). Then an oversized and an unsupported upload are refused with the reason, the
server itself refuses an oversized upload that skips the page's check, and the session goes on.
"""

from __future__ import annotations

import asyncio
import http.client
import importlib.util
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import browser, signals

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = 8


def _load_sessions_module():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(
        "load_sessions", ROOT / "tools" / "load_sessions.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["load_sessions"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_eight_sessions_at_once_each_see_their_own_result(
    app_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load = _load_sessions_module()
    clips = load.make_clips(SESSIONS, tmp_path)
    assert len({clip.expected for clip in clips}) == SESSIONS  # cross-talk would show

    report = asyncio.run(load.run_sessions(app_url, clips))

    with capsys.disabled():
        print("\n" + report.text())
    assert report.cross_talk == []
    assert [s.error for s in report.sessions] == [""] * SESSIONS
    assert [s.shown for s in report.sessions] == [c.expected for c in clips]
    assert all(s.caption_ok and s.still_right_at_end for s in report.sessions)
    assert report.ok
    assert load.percentile(report.latencies(), 95) < 90  # a sanity bound on a busy machine


def test_oversized_and_unsupported_uploads_are_refused_and_the_session_goes_on(
    app_url: str, tmp_path: Path
) -> None:
    import streamlit as st

    limit_mb = st.get_option("server.maxUploadSize")
    huge = tmp_path / "huge.wav"
    huge.write_bytes(b"RIFF" + bytes(limit_mb * 1024 * 1024 + 1))
    memo = tmp_path / "memo.wma"
    memo.write_bytes(signals.fake_wma())
    # The good clip is what a phone records: AAC in M4A, decoded through PyAV.
    good = tmp_path / "good.m4a"
    good.write_bytes(
        signals.encoded(
            signals.speech_like(duration_s=3.0, sample_rate_hz=44_100, seed=2),
            sample_rate_hz=44_100,
            muxer="ipod",
            codec="aac",
        )
    )

    with browser.chromium() as chrome:
        page = browser.open_app(chrome, app_url)
        page.get_by_text("is ready.").wait_for(timeout=120_000)
        uploader = page.get_by_test_id("stFileUploader")
        # The limit and the formats are on screen before anything is chosen.
        dropzone = page.get_by_test_id("stFileUploaderDropzoneInstructions").inner_text()
        assert f"{limit_mb}MB per file" in dropzone
        assert "WAV, FLAC, OGG" in dropzone and "M4A" in dropzone and "WEBM" in dropzone.upper()

        refused = []
        for path, reason in (
            (huge, f"File must be {limit_mb:.1f}MB or smaller."),
            (memo, "files are not allowed."),
        ):
            page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(path)
            browser.wait_for_app_run(page)
            chip = uploader.get_by_test_id("stFileChip").filter(has_text=path.name)
            chip.wait_for()
            refused.append(reason in chip.inner_text())
            assert page.get_by_test_id("stException").count() == 0
            assert page.get_by_text("Most likely emotion in").count() == 0
            page.get_by_test_id("stFileChipDeleteBtn").first.click()
            browser.wait_for_app_run(page)
        assert refused == [True, True]

        # A good clip still works in the same session; note where uploads go.
        with page.expect_request(lambda r: "/_stcore/upload_file/" in r.url) as request:
            page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(good)
        browser.wait_for_app_run(page)
        page.get_by_text("Most likely emotion in good.m4a").wait_for()

        # Skipping the page's check does not help: the server refuses the upload itself,
        # before reading the body (here: announced but never sent).
        target = urlsplit(request.value.url.rsplit("/", 1)[0] + "/not-the-page")
        xsrf = next(c["value"] for c in page.context.cookies() if c["name"] == "_streamlit_xsrf")
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        connection.putrequest("PUT", target.path)
        for header, value in (
            ("Cookie", f"_streamlit_xsrf={xsrf}"),
            ("X-Xsrftoken", xsrf),
            ("Content-Type", "multipart/form-data; boundary=x"),
            ("Content-Length", str(huge.stat().st_size + 200)),
        ):
            connection.putheader(header, value)
        connection.endheaders()
        assert connection.getresponse().status == 413
        connection.close()
        page.context.close()
