"""Many visitors at once: ``.venv/bin/python tools/load_sessions.py [--sessions 8]``.

Starts ``streamlit run app.py`` (or uses ``--url``), opens N browser sessions at once (one
Debian Chromium, one context per session, Playwright's async API), and has every session upload
a DIFFERENT clip at the same moment. The clips are chosen so that their correct results differ:
each one's expected headline (e.g. "😄 Happy — 72%") is computed directly with ``ser.predict``
and the default model, the one the app preselects, and no two clips share a headline.

Checks that every session shows its own clip's name and its own correct headline, once, and
still does after all the others finished (no cross-talk between sessions), and reports the time
from handing the file to the page to the result being on screen: each session's, p50 and p95
(nearest rank), and the time from the upload request's end to the result.

Exit status 0 when every session was right, 1 otherwise, 2 when Chromium is missing.
Uses the installed models (models/ or $SER_MODELS_DIR).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import browser, signals  # noqa: E402

HEADLINE = re.compile(r"— \d{1,3}%$")
RESULT_TIMEOUT_MS = 180_000


@dataclass(frozen=True)
class Clip:
    path: Path
    expected: str  # the headline the page must show, e.g. "😄 Happy — 72%"
    emotion: str
    confidence: float


@dataclass
class Session:
    clip: Clip
    shown: str = ""
    caption_ok: bool = False
    still_right_at_end: bool = False
    upload_to_result_s: float = math.nan  # from handing the file to the page
    request_to_result_s: float = math.nan  # from the upload request's response
    error: str = ""

    @property
    def ok(self) -> bool:
        return (
            not self.error
            and self.shown == self.clip.expected
            and self.caption_ok
            and self.still_right_at_end
        )


@dataclass
class Report:
    sessions: list[Session]

    @property
    def cross_talk(self) -> list[Session]:
        """Sessions showing another session's result."""
        others = {s.clip.expected for s in self.sessions}
        return [s for s in self.sessions if s.shown != s.clip.expected and s.shown in others]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.sessions)

    def latencies(self, attribute: str = "upload_to_result_s") -> list[float]:
        return sorted(getattr(s, attribute) for s in self.sessions)

    def text(self) -> str:
        lines = [f"{len(self.sessions)} sessions at once, each a different clip:"]
        for i, s in enumerate(self.sessions):
            verdict = "ok" if s.ok else f"WRONG ({s.error or 'see shown'})"
            lines.append(
                f"  {i + 1:2d} {s.clip.path.name}: expected {s.clip.expected!r}, shown "
                f"{s.shown!r}, {s.upload_to_result_s:5.2f} s  {verdict}"
            )
        for attribute, label in (
            ("upload_to_result_s", "upload -> result"),
            ("request_to_result_s", "upload request done -> result"),
        ):
            values = self.latencies(attribute)
            lines.append(
                f"{label}: p50 {percentile(values, 50):.2f} s, p95 {percentile(values, 95):.2f} s, "
                f"max {max(values):.2f} s"
            )
        lines.append(f"cross-talk: {len(self.cross_talk)} sessions showed another's result")
        lines.append("ALL SESSIONS CORRECT" if self.ok else "SOME SESSIONS WRONG")
        return "\n".join(lines)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (with 8 values, p95 is the slowest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# ---------------------------------------------------------------------------- the clips


def make_clips(count: int, folder: Path, *, models_dir: Path | None = None) -> list[Clip]:
    """``count`` clips whose expected headlines all differ, distinct emotions first.

    A candidate is skipped when its confidence is within 0.1 point of a rounding edge, so a
    last-bit difference between two processes cannot change the headline.
    """
    from ser.predict import Recognizer, shipped_narrower
    from ui.results import headline as headline_of

    recognizer = Recognizer.load(None, models_dir)
    narrower = shipped_narrower(
        recognizer, models_dir
    )  # as the page: the default hands 16 kHz clips on
    by_emotion: dict[str, list[Clip]] = {}
    seen: set[str] = set()
    grid = itertools.product([300, 90, 130, 180, 240], [0.12, 0.2, 0.35], [0.05, 0.2, 0.6])
    for i, (f0_hz, syllable_s, amplitude) in enumerate(grid):
        samples = signals.speech_like(
            duration_s=3.0,
            sample_rate_hz=16_000,
            seed=i,
            f0_hz=f0_hz,
            syllable_s=syllable_s,
            amplitude=amplitude,
            speech_fraction=0.9,
        )
        path = folder / f"visitor-{i:02d}.wav"
        signals.write_audio(path, samples, sample_rate_hz=16_000, subtype="PCM_16")
        result = recognizer.recognise(path.read_bytes(), name=path.name, narrower=narrower)
        headline = headline_of(result)
        edge = abs(result.prediction.confidence * 100 % 1 - 0.5)
        if headline in seen or edge < 0.1:
            continue
        seen.add(headline)
        clip = Clip(path, headline, result.prediction.emotion, result.prediction.confidence)
        by_emotion.setdefault(clip.emotion, []).append(clip)
        if sum(map(len, by_emotion.values())) >= 3 * count:
            break
    # Round-robin over emotions: as many different emotions as the model gives.
    chosen = [c for group in itertools.zip_longest(*by_emotion.values()) for c in group if c]
    if len(chosen) < count:
        raise RuntimeError(f"only {len(chosen)} clips with distinct results; {count} needed")
    return chosen[:count]


# ---------------------------------------------------------------------------- the sessions


async def _open(chrome, url: str):  # noqa: ANN001, ANN202
    context = await chrome.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(RESULT_TIMEOUT_MS)
    page = await context.new_page()
    await page.goto(url, wait_until="domcontentloaded")
    await page.locator(browser.APP_READY).wait_for(state="attached")
    await page.get_by_text("is ready.").wait_for()
    return page


def _is_upload(response) -> bool:  # noqa: ANN001
    return "/_stcore/upload_file/" in response.url and response.request.method in ("PUT", "POST")


def _headings(page):  # noqa: ANN001, ANN202
    return page.get_by_test_id("stHeading").filter(has_text=HEADLINE)


async def _upload_and_wait(page, session: Session) -> None:  # noqa: ANN001
    clip = session.clip
    started = time.perf_counter()
    async with page.expect_response(_is_upload) as upload:
        await page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(clip.path)
    response = await upload.value
    requested = time.perf_counter()
    if not response.ok:
        raise RuntimeError(f"upload answered {response.status}")
    await page.get_by_text(f"Most likely emotion in {clip.path.name}").wait_for(state="visible")
    await _headings(page).first.wait_for(state="visible")
    done = time.perf_counter()
    session.upload_to_result_s = done - started
    session.request_to_result_s = done - requested
    session.shown = (await _headings(page).first.inner_text()).strip()


async def _check_again(page, session: Session) -> None:  # noqa: ANN001
    """After every session finished: still exactly one result, and still its own."""
    headings = [(await h.inner_text()).strip() for h in await _headings(page).all()]
    captions = page.get_by_text(re.compile(r"^Most likely emotion in "))
    names = [(await c.inner_text()) for c in await captions.all()]
    session.caption_ok = len(names) == 1 and f"in {session.clip.path.name} (" in names[0]
    session.still_right_at_end = headings == [session.clip.expected]
    if await page.get_by_test_id("stException").count():
        session.error = "the page shows an exception"


async def run_sessions(url: str, clips: list[Clip]) -> Report:
    from playwright.async_api import async_playwright

    sessions = [Session(clip) for clip in clips]
    async with async_playwright() as pw:
        chrome = await pw.chromium.launch(
            executable_path=str(browser.CHROMIUM),
            headless=True,
            args=list(browser.CHROMIUM_ARGS),
            timeout=60_000,
        )
        try:
            pages = await asyncio.gather(*(_open(chrome, url) for _ in sessions))
            # Every session is on screen with the model ready: now all upload at once.
            outcomes = await asyncio.gather(
                *(_upload_and_wait(p, s) for p, s in zip(pages, sessions, strict=True)),
                return_exceptions=True,
            )
            for session, outcome in zip(sessions, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    session.error = f"{type(outcome).__name__}: {str(outcome)[:200]}"
            await asyncio.gather(
                *(_check_again(p, s) for p, s in zip(pages, sessions, strict=True))
            )
        finally:
            await chrome.close()
    return Report(sessions)


def measure(sessions: int = 8, *, url: str | None = None, models_dir: Path | None = None) -> Report:
    """Make the clips, start the app unless ``url`` is given, run the sessions."""
    folder = Path(tempfile.mkdtemp(prefix="load-sessions-"))
    clips = make_clips(sessions, folder, models_dir=models_dir)
    if url is not None:
        return asyncio.run(run_sessions(url, clips))
    env = {"SER_MODELS_DIR": str(models_dir)} if models_dir else None
    with browser.streamlit_server("app.py", env=env) as started_url:
        return asyncio.run(run_sessions(started_url, clips))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=8, help="browser sessions (default 8)")
    parser.add_argument("--url", help="an app already running; default: start one")
    parser.add_argument("--models-dir", type=Path, help="default: SER_MODELS_DIR or models/")
    args = parser.parse_args(argv)
    if not browser.CHROMIUM.is_file():
        print(f"Chromium is not installed at {browser.CHROMIUM}: apt-get install chromium")
        return 2
    report = measure(args.sessions, url=args.url, models_dir=args.models_dir)
    print(report.text())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
