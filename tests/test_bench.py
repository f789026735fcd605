"""The benchmark commands: what they print is what the models did (their figures are in the
README). Stand-in models whose answers follow a clip's level give ``gain`` known answers; the
runs on trained models are in the full suite."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ser import bench, predict, store
from tests import signals

LOUD_PEAK, QUIET_PEAK = 0.6, 0.04  # +6 dB takes the loud clips past full scale: clipped


class LevelJudge:
    """A stand-in model: 'angry' for a clip peaking above ``threshold``, else 'sad'."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.config = SimpleNamespace(sample_rate_hz=16_000)
        self.peaks: list[float] = []

    def predict_samples(self, samples: np.ndarray) -> SimpleNamespace:
        peak = float(np.abs(samples).max())
        self.peaks.append(peak)
        return SimpleNamespace(emotion="angry" if peak > self.threshold else "sad")


def _levels_corpus(root: Path) -> Path:
    """Two loud and two quiet clips, in RAVDESS's layout."""
    for k, peak in enumerate([LOUD_PEAK, LOUD_PEAK, QUIET_PEAK, QUIET_PEAK], start=1):
        folder = root / f"Actor_{k:02d}"
        folder.mkdir(parents=True)
        samples = signals.tone(
            frequency_hz=200.0 + 50 * k, duration_s=1.0, sample_rate_hz=16_000, amplitude=peak
        )
        signals.write_audio(
            folder / f"03-01-05-01-01-01-{k:02d}.wav", samples, sample_rate_hz=16_000
        )
    return root


def _info(name: str, *, shipped: bool = True, problem: str | None = None) -> store.ModelInfo:
    meta = {"labels": ["sad", "angry"], "features": {}, "shipped": shipped}
    return store.ModelInfo(name, Path(f"{name}.keras"), meta, problem)


def test_gain_counts_the_answers_each_level_leaves_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Peaks at -20 / -10 / +6 dB: loud clips 0.06 / 0.19 / 1.0 (clipped), quiet ones 0.004 /
    # 0.013 / 0.08. A judge at 0.3 changes the loud clips' answer at -20 and -10 dB; one at 0.1
    # only at -20 dB; one at 2.0 never. Quiet clips keep their answer everywhere.
    judges = {"high": LevelJudge(0.3), "low": LevelJudge(0.1), "blind": LevelJudge(2.0)}
    installed = [
        _info("high"),
        _info("low"),
        _info("blind"),
        _info("trained-here", shipped=False),
        _info("broken", problem="model file missing"),
    ]
    monkeypatch.setattr(store, "list_models", lambda *_a, **_k: installed)
    monkeypatch.setattr(predict.Recognizer, "load", lambda name, *_a, **_k: judges[name])

    bench.main(["gain", "--data", str(_levels_corpus(tmp_path / "corpus")), "--clips", "4"])

    header, *rows = capsys.readouterr().out.splitlines()
    assert header.startswith("4 clips; share of answers unchanged")
    shares = {
        row.split()[0]: {
            float(db): int(share) for db, share in re.findall(r"([+-]\d+) dB +(\d+)%", row)
        }
        for row in rows
    }
    assert shares == {  # shipped, usable models only, in the folder's order
        "high": {-20.0: 50, -10.0: 50, 6.0: 100},
        "low": {-20.0: 50, -10.0: 100, 6.0: 100},
        "blind": {-20.0: 100, -10.0: 100, 6.0: 100},
    }
    assert list(shares) == ["high", "low", "blind"]
    for judge in judges.values():  # each clip as recorded, then at each level
        assert len(judge.peaks) == 4 * (1 + len(bench.GAINS_DB))
        assert max(judge.peaks) == pytest.approx(1.0)  # a real input clips; it never exceeds 1
        assert min(judge.peaks) == pytest.approx(QUIET_PEAK * 0.1, rel=0.01)


@pytest.mark.slow
def test_gain_reports_each_shipped_model_at_each_level(
    tiny_models_dir: Path,
    tiny_corpus: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SER_MODELS_DIR", str(tiny_models_dir))
    bench.main(["gain", "--data", str(tiny_corpus), "--clips", "6"])
    rows = capsys.readouterr().out.splitlines()[1:]
    assert sorted(row.split()[0] for row in rows) == ["tiny-classic", "tiny-cnn"]
    for row in rows:
        levels = [float(db) for db in re.findall(r"([+-]\d+) dB", row)]
        assert levels == list(bench.GAINS_DB)
        # Six clips: each share is a whole number of sixths.
        shares = [int(share) for share in re.findall(r"(\d+)%", row)]
        assert all(share in {round(100 * k / 6) for k in range(7)} for share in shares)


@pytest.mark.slow
def test_a_levelled_model_answers_the_same_at_any_level_below_clipping(
    tiny_logmel_dir: Path,
    tiny_corpus: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SER_MODELS_DIR", str(tiny_logmel_dir))
    bench.main(["gain", "--data", str(tiny_corpus), "--clips", "8"])
    rows = {row.split()[0]: row for row in capsys.readouterr().out.splitlines()[1:]}
    for levelled in ("tiny-fusion", "tiny-logmel"):  # both log-mel recipes level each clip
        assert "-20 dB 100%" in rows[levelled] and "-10 dB 100%" in rows[levelled]


@pytest.mark.slow
def test_channels_scores_the_held_out_fold_through_each_channel(
    tiny_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.main(["channels", "--data", str(tiny_corpus), "--model-type", "mfcc_lstm", "--fold", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert "held out: RAVDESS fold 1, 48 clips" in lines[0]
    scores = {
        line.split("  ")[0]: [float(v) for v in re.findall(r"([\d.]+)%", line)]
        for line in lines[1:]
    }
    assert list(scores) == list(bench._channels(22_050))
    assert all(len(pair) == 2 and all(0 <= v <= 100 for v in pair) for pair in scores.values())
    assert scores["as recorded"][0] >= 50  # four emotions the tiny corpus makes easy to tell apart
    # Held-out clips, 48 of them: each accuracy is a whole number of clips.
    assert all(
        any(abs(accuracy - 100 * k / 48) < 0.051 for k in range(49))
        for accuracy, _ in scores.values()
    )


def test_the_routed_pair_hands_on_only_the_clips_that_lack_the_band(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ser.audio import band_limited
    from ser.features import FeatureConfig
    from tests.signals import speech_like

    speech = speech_like(duration_s=1.5, sample_rate_hz=16_000, speech_fraction=1.0)
    call = band_limited(speech, sample_rate_hz=16_000, source_rate_hz=8_000)
    full = FeatureConfig(sample_rate_hz=16_000)
    narrow = FeatureConfig(sample_rate_hz=16_000, band_limit_hz=4_000)
    answered_by_narrow = np.array([[0.0, 1.0]])
    monkeypatch.setattr(
        bench, "_channel_probabilities", lambda model, clips, config: answered_by_narrow
    )
    alone = np.array([[1.0, 0.0], [1.0, 0.0]])

    routed, handed = bench._routed(alone, [speech, call], full, "narrow model", narrow)

    assert handed == 1
    np.testing.assert_array_equal(routed, [[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(alone, [[1.0, 0.0], [1.0, 0.0]])  # not changed in place
