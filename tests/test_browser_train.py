"""The Train page in a real Chromium: type a folder, scan, train, see results, save, pick it.

Marker ``browser``; skipped with the reason when ``/usr/bin/chromium`` or Playwright is missing.
The server gets temporary ``SER_MODELS_DIR`` and ``SER_CACHE_DIR``, so nothing is written into
the repository; the screenshot of the results goes to ``artifacts/train.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TRAIN_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser-models")


@pytest.fixture(scope="module")
def app_url(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    browser.require_chromium()
    env = {
        "SER_MODELS_DIR": str(models_dir),
        "SER_CACHE_DIR": str(tmp_path_factory.mktemp("browser-feature-cache")),
        "SER_DATA_DIR": "",
        "SER_DISABLE_TRAINING": "",
        "SER_ENABLE_TRAINING": "1",  # off unless turned on
    }
    with browser.streamlit_server("app.py", env=env) as url:
        yield url


@pytest.fixture(scope="module")
def chrome() -> Iterator[object]:
    with browser.chromium() as b:
        yield b


def test_train_save_and_pick_in_the_browser(
    app_url: str,
    chrome,  # noqa: ANN001 - a Playwright Browser
    tiny_corpus: Path,
    models_dir: Path,
) -> None:
    from playwright.sync_api import expect

    # Tall enough for the whole page in the screenshot (Streamlit scrolls inside the page).
    page = browser.open_app(chrome, app_url, viewport={"width": 1280, "height": 3000})
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train").click()
    browser.wait_for_app_run(page)
    expect(page.get_by_role("heading", name="Train a model")).to_be_visible()

    page.get_by_role("textbox", name="Dataset folders, one per line").fill(str(tiny_corpus))
    page.get_by_role("button", name="Scan", exact=True).click()
    browser.wait_for_app_run(page)
    expect(page.get_by_text("96 usable clips")).to_be_visible()
    expect(page.get_by_text("Layout detected: RAVDESS (96 clips)")).to_be_visible()

    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill("15")
    epochs.press("Enter")
    browser.wait_for_app_run(page)
    page.get_by_role("button", name="Train", exact=True).click()

    # Live progress while it runs, with a Stop button; then the results.
    expect(page.get_by_role("button", name="Stop training")).to_be_visible(timeout=60_000)
    expect(page.get_by_text(re.compile(r"^Features: "))).to_be_visible()
    expect(page.get_by_text("Held-out accuracy", exact=True)).to_be_visible(
        timeout=TRAIN_TIMEOUT_MS
    )
    browser.wait_for_app_run(page)
    expect(page.get_by_role("button", name="Stop training")).to_have_count(0)
    expect(page.get_by_text("UAR", exact=True)).to_be_visible()
    expect(page.get_by_text("Confusion matrix (speaker hold-out)")).to_be_visible()
    expect(page.get_by_text("Per emotion, on held-out clips")).to_be_visible()
    accuracy = page.get_by_test_id("stMetricValue").first.inner_text()
    assert re.fullmatch(r"\d{1,3}\.\d%", accuracy), accuracy
    # Plotly draws lazily: wait for the heatmap of the confusion matrix and the curves.
    page.locator(".js-plotly-plot .heatmaplayer").first.wait_for(state="visible", timeout=20_000)
    page.locator(".js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=20_000)
    page.wait_for_timeout(500)
    shot = browser.screenshot(page, "train")
    assert shot.stat().st_size > 10_000

    name = page.get_by_role("textbox", name="Model name")
    name.fill("browser-model")
    name.press("Enter")
    browser.wait_for_app_run(page)
    page.get_by_role("button", name="Save model").click()
    browser.wait_for_app_run(page)
    expect(
        page.get_by_text("Saved as browser-model — choose it on the Recognise page")
    ).to_be_visible(timeout=60_000)
    assert sorted(p.name for p in models_dir.iterdir()) == [
        "browser-model.json",
        "browser-model.keras",
    ]

    page.get_by_role("link", name="Go to the Recognise page").click()
    browser.wait_for_app_run(page)
    picker = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Model")
    expect(picker).to_have_value("browser-model", timeout=60_000)  # the picker shows names
