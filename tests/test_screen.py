"""The screen tool's within-corpus ceiling: it learns what is there and nothing that is not."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import screen_statistics

EMOTIONS = np.array(["angry", "calm", "fearful", "happy"])


def _corpus(*, signal: float, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Ten speakers with eight clips of each emotion; ``signal`` scales the emotion's offset."""
    rng = np.random.default_rng(seed)
    y = np.tile(np.repeat(EMOTIONS, 8), 10)
    speaker = np.repeat([f"x:{s}" for s in range(10)], 32)
    centres = rng.normal(size=(len(EMOTIONS), 12))
    X = rng.normal(size=(len(y), 12)) + signal * centres[np.searchsorted(EMOTIONS, y)]
    other = {"y": np.array(["neutral"] * 40), "speaker": np.array(["o:0"] * 40)}
    d = {
        "y": np.concatenate([y, other["y"]]),
        "speaker": np.concatenate([speaker, other["speaker"]]),
        "corpus": np.array(["x"] * len(y) + ["o"] * 40),
    }
    return np.concatenate([X, rng.normal(size=(40, 12)) + 5]), d


def test_within_corpus_finds_emotions_that_are_there() -> None:
    X, d = _corpus(signal=2.0)
    assert screen_statistics.within_corpus(X, d, "x", c=1.0) > 0.9


def test_within_corpus_is_near_chance_on_noise() -> None:
    X, d = _corpus(signal=0.0)
    assert screen_statistics.within_corpus(X, d, "x", c=1.0) == pytest.approx(0.25, abs=0.12)
