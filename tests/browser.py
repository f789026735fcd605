"""Helpers for tests that drive the real app in a real browser (marker ``browser``).

Not a test module: import it as ``from tests import browser``.

- :func:`streamlit_server` starts ``streamlit run SCRIPT`` on a free port and yields its URL.
- :func:`chromium` launches Debian's Chromium (``/usr/bin/chromium``) through Playwright,
  optionally with a fake microphone that plays a WAV file.
- :func:`open_app` / :func:`wait_for_app_run` wait for Streamlit to finish rendering.
- :func:`require_chromium` skips a test when Chromium or Playwright is missing.

Typical use, in a test module::

    @pytest.fixture(scope="module")
    def app_url():
        browser.require_chromium()
        with browser.streamlit_server("app.py") as url:
            yield url

    @pytest.fixture(scope="module")
    def chrome():
        with browser.chromium() as b:
            yield b

    def test_home(app_url, chrome):
        page = browser.open_app(chrome, app_url)
        ...
        browser.screenshot(page, "home")
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import wave
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover - typing only
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")

#: Flags for Debian's Chromium in a container. Without the background-networking ones,
#: Chromium's own connections (updates, sync, ...) get refused here many at a time.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)

#: Streamlit's root element carries its state in these attributes (same as Streamlit's own
#: end-to-end tests use): ``data-test-connection-state`` is ``CONNECTED`` once the websocket is
#: up; ``data-test-script-state`` goes initial -> running -> notRunning on every (re)run.
APP_READY = (
    "[data-testid='stApp']"
    "[data-test-connection-state='CONNECTED']"
    "[data-test-script-state='notRunning']"
)

SERVER_START_TIMEOUT_S = 60.0


# ------------------------------------------------------------------------------ skip helpers


def require_playwright() -> None:
    """Skip the calling test when the ``playwright`` package is not importable."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed: pip install -r requirements-dev.txt")


def require_chromium() -> None:
    """Skip the calling test when Chromium or Playwright is missing."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"Chromium not installed at {CHROMIUM}: apt-get install chromium")
    require_playwright()


# ------------------------------------------------------------------------------ the server


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
            return resp.status == 200 and resp.read().strip() == b"ok"
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server's whole process group: SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is not None:
        return
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def streamlit_server(
    script: str | os.PathLike[str] = "app.py",
    *,
    cwd: str | os.PathLike[str] = ROOT,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout_s: float = SERVER_START_TIMEOUT_S,
) -> Iterator[str]:
    """Run ``streamlit run SCRIPT`` headless on a free port; yield its base URL.

    ``script`` is relative to ``cwd`` (the repository root by default, so
    ``.streamlit/config.toml`` applies) or absolute. The environment is passed through
    (``SER_MODELS_DIR`` and the like included), updated with ``env``. The server's output goes
    to ``artifacts/streamlit-PORT.log``: its tail is printed, and the file kept, when the body
    raises or the server does not come up; a clean run deletes it. The process group is
    terminated on exit.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / f"streamlit-{port}.log"
    child_env = {**os.environ, **(env or {})}
    child_env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    child_env["PYTHONUNBUFFERED"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--server.runOnSave",
        "false",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        *extra_args,
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so we can end all of it
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not _healthy(url):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"streamlit exited with {proc.returncode} before answering "
                    f"/_stcore/health; log {log_path}:\n{_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"streamlit did not answer {url}/_stcore/health within {timeout_s:.0f} s; "
                    f"log {log_path}:\n{_tail(log_path)}"
                )
            time.sleep(0.25)
        try:
            yield url
        except BaseException:
            print(f"--- tail of {log_path} ---\n{_tail(log_path)}", file=sys.stderr)
            raise
    except BaseException:
        _stop(proc)
        raise  # the log stays in artifacts/ for a look
    _stop(proc)
    log_path.unlink(missing_ok=True)  # a clean run leaves no log behind


# ------------------------------------------------------------------------------ the browser


@contextlib.contextmanager
def chromium(
    *,
    fake_mic_wav: str | os.PathLike[str] | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[Browser]:
    """Launch Debian's Chromium through Playwright; yield the ``Browser``.

    With ``fake_mic_wav``, the microphone is a fake device that plays that WAV (PCM) file in a
    loop, and permission prompts are accepted automatically. Skips the test when Chromium or
    Playwright is missing.
    """
    require_chromium()
    from playwright.sync_api import sync_playwright

    args = list(CHROMIUM_ARGS)
    if fake_mic_wav is not None:
        wav = Path(fake_mic_wav).resolve()
        if not wav.is_file():
            raise FileNotFoundError(wav)
        args += [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}",
        ]
    args += list(extra_args)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=args, timeout=60_000
        )
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Browser, *, microphone: bool = False, **context_kwargs: Any) -> Page:
    """A page in a fresh browser context (1280x900 unless told otherwise)."""
    context_kwargs.setdefault("viewport", {"width": 1280, "height": 900})
    if microphone:
        context_kwargs.setdefault("permissions", ["microphone"])
    context = browser.new_context(**context_kwargs)
    context.set_default_timeout(30_000)
    return context.new_page()


def wait_for_app_run(page: Page, *, initial_wait_ms: int = 300, timeout_ms: int = 60_000) -> None:
    """Block until Streamlit has finished (re)running the script and rendering.

    Call it after ``goto`` and after every interaction that reruns the script (a click, an
    upload, a recording), before asserting. The initial wait covers the time before the rerun
    request reaches the server (some widgets debounce by ~200 ms), when the page still says
    ``notRunning`` from the previous run.
    """
    from playwright.sync_api import expect

    if initial_wait_ms:
        page.wait_for_timeout(initial_wait_ms)
    page.locator(APP_READY).wait_for(state="attached", timeout=timeout_ms)
    # Elements still loading show skeletons; the "Running..." status widget goes away.
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=timeout_ms)
    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden(timeout=timeout_ms)


def open_app(
    browser: Browser, url: str, *, microphone: bool = False, **context_kwargs: Any
) -> Page:
    """Open ``url`` in a new page and wait until the app has rendered."""
    page = new_page(browser, microphone=microphone, **context_kwargs)
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_test_id("stAppViewContainer").wait_for(state="attached", timeout=60_000)
    wait_for_app_run(page, initial_wait_ms=0)
    return page


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG screenshot to ``artifacts/NAME.png`` and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


# ------------------------------------------------------------------------------ test audio


def make_wav(
    path: str | os.PathLike[str] | None = None,
    *,
    seconds: float = 1.0,
    sample_rate: int = 16_000,
    freq_hz: float = 440.0,
    amplitude: float = 0.3,
) -> Path:
    """Write a mono 16-bit PCM WAV with a tone that glides up an octave; return its path.

    Stdlib only, so it works before the app's audio stack is installed. ``path=None`` writes
    to a fresh temporary file.
    """
    if path is None:
        fd, name = tempfile.mkstemp(suffix=".wav")
        os.close(fd)
        path = name
    n = max(1, round(seconds * sample_rate))
    phase = 0.0
    frames = bytearray()
    for i in range(n):
        f = freq_hz * (1.0 + i / n)
        phase += 2.0 * math.pi * f / sample_rate
        frames += struct.pack("<h", round(32767 * amplitude * math.sin(phase)))
    out = Path(path)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(bytes(frames))
    return out
