"""The benchmark commands run and report every shipped model (their figures are in the README)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ser import bench


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
        shares = [int(share) for share in re.findall(r"(\d+)%", row)]
        assert len(shares) == len(bench.GAINS_DB)
        assert all(0 <= share <= 100 for share in shares)


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
