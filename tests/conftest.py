"""Fixtures shared by several test modules."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import ser  # noqa: F401  (first: it loads openSMILE before anything loads TensorFlow)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The speech corpora: $SER_DATA_DIR, else ../shared/data beside the repository."""
    default = Path(__file__).parents[2] / "shared" / "data"
    path = Path(os.environ.get("SER_DATA_DIR") or default)
    if not path.is_dir():
        pytest.skip(f"speech corpora not found at {path} (set SER_DATA_DIR to their folder)")
    return path


# Emotion -> (RAVDESS code, pitch, syllable length, loudness) for the tiny generated corpus:
# distinct enough that a few epochs learn them, so tests on training can fail honestly.
TINY_EMOTIONS = {
    "neutral": ("01", 110.0, 0.25, 0.2),
    "happy": ("03", 260.0, 0.12, 0.35),
    "sad": ("04", 90.0, 0.4, 0.1),
    "angry": ("05", 180.0, 0.15, 0.7),
}
TINY_ACTORS = range(1, 9)


def make_tiny_corpus(
    root: Path, *, actors: range = TINY_ACTORS, clips_per_emotion: int = 3
) -> Path:
    """A RAVDESS-layout folder of generated 1.2 s clips at 16 kHz (so loading resamples)."""
    from tests.signals import speech_like, write_audio

    for actor in actors:
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        voice = 1.0 + 0.08 * (actor % 4)  # each actor's own pitch
        for code, f0_hz, syllable_s, amplitude in TINY_EMOTIONS.values():
            for rep in range(clips_per_emotion):
                samples = speech_like(
                    duration_s=1.2,
                    sample_rate_hz=16_000,
                    seed=actor * 100 + rep * 10 + int(code),
                    f0_hz=f0_hz * voice,
                    syllable_s=syllable_s,
                    amplitude=amplitude,
                    speech_fraction=1.0,
                )
                name = f"03-01-{code}-01-{rep % 2 + 1:02d}-{rep // 2 + 1:02d}-{actor:02d}.wav"
                write_audio(folder / name, samples, sample_rate_hz=16_000)
    return root


_REAL_MAIN = sys.modules["__main__"]  # before any test or fixture has run


@pytest.fixture(autouse=True)
def main_module_kept() -> Iterator[None]:
    """Streamlit's AppTest leaves the app script as ``sys.modules["__main__"]``; a process
    spawned after it (ser.batch's workers) would run app.py again, model warm-up included, and
    import TensorFlow in two threads at once. Each test runs, and ends, with the real main
    module (also after a module-scoped fixture's AppTest)."""
    sys.modules["__main__"] = _REAL_MAIN
    yield
    sys.modules["__main__"] = _REAL_MAIN


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_corpus(tmp_path_factory.mktemp("tiny_corpus"))


def _save_tiny_model(
    model_type: str, name: str, *, epochs: int, corpus: Path, folder: Path, cache: Path
) -> None:
    """Train ``model_type`` briefly on the tiny corpus and save the held-out model as ``name``."""
    from ser import store, train
    from ser.models import ModelType

    options = train.TrainOptions(model_type=ModelType(model_type), epochs=epochs)
    data = train.prepare([corpus], options, cache_dir=cache)
    held = train.train_holdout(data, options)  # the held-out model is the one saved
    evaluation = train.holdout_evaluation(held)
    meta = train.metadata(
        data,
        options,
        evaluation=evaluation,
        command="tests",
        shipped=True,
        train_index=held.train_index,
    )
    store.save_model(held.model, meta, name=name, models_dir=folder)


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> Path:
    """A models folder with a classic and a CNN model trained briefly on the tiny corpus."""
    folder = tmp_path_factory.mktemp("models")
    cache = tmp_path_factory.mktemp("feature_cache")
    _save_tiny_model(
        "mfcc_lstm", "tiny-classic", epochs=40, corpus=tiny_corpus, folder=folder, cache=cache
    )
    _save_tiny_model(
        "mfcc_cnn", "tiny-cnn", epochs=8, corpus=tiny_corpus, folder=folder, cache=cache
    )
    return folder


@pytest.fixture(scope="session")
def tiny_logmel_dir(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> Path:
    """A models folder holding a briefly trained 2-D log-mel CNN and a fused one."""
    folder = tmp_path_factory.mktemp("logmel_models")
    cache = tmp_path_factory.mktemp("logmel_cache")
    _save_tiny_model(
        "logmel_cnn", "tiny-logmel", epochs=4, corpus=tiny_corpus, folder=folder, cache=cache
    )
    _save_tiny_model(
        "logmel_fusion", "tiny-fusion", epochs=2, corpus=tiny_corpus, folder=folder, cache=cache
    )
    return folder


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    """The real app with the shipped models, served on a free port (browser tests)."""
    from ser.store import default_model, list_models
    from tests import browser

    browser.require_chromium()
    if default_model(list_models()) is None:
        pytest.skip("no usable model in models/: train one first (see README)")
    with browser.streamlit_server("app.py") as url:
        yield url
