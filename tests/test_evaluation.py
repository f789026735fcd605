"""Cross-corpus protocol and calibration (ser.evaluation)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser import evaluation, train
from ser.errors import TrainingError
from ser.evaluation import (
    expected_calibration_error,
    fit_temperature,
    held_out,
    restricted,
    with_temperature,
)
from ser.models import ModelType


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _overconfident(
    n: int = 4000, *, temperature: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z), reported as softmax(z / temperature): a known miscalibration."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, size=(n, 4))
    true = _softmax(logits)
    targets = np.array([rng.choice(4, p=p) for p in true])
    return _softmax(logits / temperature), targets


def test_temperature_one_changes_nothing_and_keeps_the_ranking() -> None:
    p = _softmax(np.random.default_rng(1).normal(size=(20, 5)))
    np.testing.assert_allclose(with_temperature(p, temperature=1.0), p, atol=1e-6)
    hot = with_temperature(p, temperature=3.0)
    np.testing.assert_array_equal(hot.argmax(axis=1), p.argmax(axis=1))
    assert (hot.max(axis=1) < p.max(axis=1) + 1e-7).all()
    np.testing.assert_allclose(hot.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError):
        with_temperature(p, temperature=0.0)


def test_fit_temperature_recovers_a_known_overconfidence() -> None:
    probabilities, targets = _overconfident(temperature=0.4)  # reported logits 2.5x too large
    fitted = fit_temperature(probabilities, targets)
    assert 2.0 < fitted < 3.1
    before = expected_calibration_error(probabilities, targets)
    after = expected_calibration_error(with_temperature(probabilities, temperature=fitted), targets)
    assert before > 0.1
    assert after < 0.04


def test_each_held_out_corpus_weighs_alike_in_the_temperature() -> None:
    """A corpus ten times larger must not set the temperature alone."""
    big = _overconfident(4000, temperature=0.4, seed=3)  # needs about 2.5
    small = _overconfident(400, temperature=1.0, seed=4)  # needs about 1
    folds = [
        evaluation.HeldOut(name, ("a", "b", "c", "d"), p, t, ())
        for name, (p, t) in (("big", big), ("small", small))
    ]
    alone = [fit_temperature(*big), fit_temperature(*small)]
    both = evaluation.CorpusEvaluation(tuple(folds)).temperature
    # By clips it would land near the big corpus's own (about 2.3); alike, about midway.
    assert alone[1] + 0.3 < both < alone[0] - 0.4


def test_ece_of_a_perfectly_calibrated_and_a_wrong_sure_model() -> None:
    probabilities, targets = _overconfident(20_000, temperature=1.0, seed=2)
    assert expected_calibration_error(probabilities, targets) < 0.02
    sure_and_wrong = np.tile([[1.0, 0.0]], (10, 1))
    assert expected_calibration_error(sure_and_wrong, np.ones(10, dtype=int)) == pytest.approx(1.0)
    assert expected_calibration_error(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 0.0


def test_restricted_renormalises_over_the_kept_labels() -> None:
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    out = restricted(p, ["calm", "happy", "sad"], ["happy", "sad"])
    np.testing.assert_allclose(out, [[0.6, 0.4], [1 / 9, 8 / 9]], atol=1e-6)


def test_held_out_scores_only_the_shared_emotions() -> None:
    model_labels = ("neutral", "calm", "happy", "sad")
    # The test corpus has calm, which training never saw: its clips are left out.
    true = ["neutral", "calm", "happy", "sad", "sad"]
    p = np.array(
        [
            [0.1, 0.6, 0.2, 0.1],  # neutral: calm is not a choice, so happy wins -> wrong
            [0.1, 0.8, 0.05, 0.05],  # calm: not scored
            [0.1, 0.1, 0.7, 0.1],  # happy: right
            [0.2, 0.1, 0.1, 0.6],  # sad: right
            [0.5, 0.3, 0.1, 0.1],  # sad: neutral wins -> wrong
        ]
    )
    out = held_out(
        "x",
        p,
        true,
        model_labels=model_labels,
        trained_emotions=["neutral", "happy", "sad"],
        trained_on=["y"],
    )
    assert out.labels == ("neutral", "happy", "sad")
    assert len(out.targets) == 4
    assert out.scores().accuracy == pytest.approx(0.5)
    assert out.subset(["neutral", "sad"]).labels == ("neutral", "sad")
    assert len(out.subset(["neutral", "sad"]).targets) == 3
    assert (
        out.subset(["neutral", "happy", "sad", "angry"]) is None
    )  # angry is missing: no 4-class figure
    with pytest.raises(TrainingError, match="at least two"):
        held_out(
            "x",
            p[:1],
            ["neutral"],
            model_labels=model_labels,
            trained_emotions=["neutral"],
            trained_on=[],
        )


def _two_corpora(root: Path) -> tuple[Path, Path]:
    """A RAVDESS-layout corpus and an own-folders one, of the same synthetic emotions."""
    from tests.conftest import TINY_EMOTIONS, make_tiny_corpus
    from tests.signals import speech_like, write_audio

    first = make_tiny_corpus(root / "ravdess", actors=range(1, 5), clips_per_emotion=2)
    second = root / "mine"
    for emotion, (code, f0_hz, syllable_s, amplitude) in TINY_EMOTIONS.items():
        (second / emotion).mkdir(parents=True)
        for i in range(6):
            samples = speech_like(
                duration_s=1.2,
                sample_rate_hz=16_000,
                seed=900 + i * 10 + int(code),
                f0_hz=f0_hz * 1.15,
                syllable_s=syllable_s,
                amplitude=amplitude,
                speech_fraction=1.0,
            )
            write_audio(second / emotion / f"take{i}.wav", samples, sample_rate_hz=16_000)
    return first, second


@pytest.mark.slow
def test_leave_one_corpus_out_holds_out_each_corpus(tmp_path: Path) -> None:
    first, second = _two_corpora(tmp_path)
    options = train.TrainOptions(model_type=ModelType.MFCC_LSTM, epochs=30)
    data = train.prepare([first, second], options, cache_dir=tmp_path / "cache")
    extra = train.prepare([second], options, cache_dir=tmp_path / "cache")
    result = evaluation.leave_one_corpus_out(data, options, extra_tests=[extra]).to_dict()
    assert set(result["corpora"]) == {"ravdess", "folders"}
    assert result["corpora"]["ravdess"]["trained_on"] == ["folders"]
    assert result["corpora"]["ravdess"]["clips"] == 4 * 4 * 2
    assert result["corpora"]["folders"]["four_class"]["labels"] == [
        "neutral",
        "happy",
        "sad",
        "angry",
    ]
    assert result["worst_accuracy"] <= result["mean_accuracy"]
    assert 0.05 <= result["temperature"] <= 20
    # The synthetic emotions differ so plainly that even a corpus never heard is mostly right.
    assert result["mean_accuracy"] > 0.5
    assert result["extra_tests"]["folders"]["trained_on"] == ["folders", "ravdess"]


@pytest.mark.slow
def test_leave_one_corpus_out_needs_two_corpora(tiny_corpus: Path, tmp_path: Path) -> None:
    options = train.TrainOptions(model_type=ModelType.MFCC_LSTM, epochs=1)
    data = train.prepare([tiny_corpus], options, cache_dir=tmp_path)
    with pytest.raises(TrainingError, match="at least two corpora"):
        evaluation.leave_one_corpus_out(data, options)


@pytest.mark.slow
def test_cli_evaluate_corpus_protocol(tmp_path: Path) -> None:
    first, second = _two_corpora(tmp_path)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ser",
            "evaluate",
            "--protocol",
            "corpus",
            "--data",
            str(first),
            "--data",
            str(second),
            "--epochs",
            "5",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "SER_CACHE_DIR": str(tmp_path / "c")},
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["protocol"] == "leave-one-corpus-out"
    assert set(result["corpora"]) == {"ravdess", "folders"}
    assert "held out ravdess, trained on folders" in run.stderr
    assert "4-class" in run.stderr
