"""Features: the card's mean MFCC is librosa's, and the config round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from ser import features as feats
from ser.features import FeatureConfig, FeatureKind
from tests.signals import speech_like


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return speech_like(duration_s=2.0, sample_rate_hz=22_050, seed=3)


def test_mean_mfcc_matches_librosa_defaults(clip: np.ndarray) -> None:
    import librosa

    expected = np.mean(librosa.feature.mfcc(y=clip, sr=22_050, n_mfcc=40).T, axis=0)
    got = feats.extract(clip, config=FeatureConfig())
    assert got.shape == (40,)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_log_mel_matches_librosa(clip: np.ndarray) -> None:
    import librosa

    expected = librosa.power_to_db(librosa.feature.melspectrogram(y=clip, sr=22_050)).T
    got = feats.extract(clip, config=FeatureConfig(kind=FeatureKind.LOGMEL_FRAMES))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("kind", list(FeatureKind))
def test_shapes_follow_the_config(clip: np.ndarray, kind: FeatureKind) -> None:
    config = FeatureConfig(kind=kind)
    got = feats.extract(clip, config=config)
    assert got.shape[-1] == config.dim
    assert got.ndim == (2 if config.is_sequence else 1)
    assert got.dtype == np.float32


def test_config_round_trips_through_json() -> None:
    import json

    config = FeatureConfig(kind=FeatureKind.MFCC_FRAMES, n_mfcc=30, hop_length=256)
    again = FeatureConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert again.cache_key() == config.cache_key()
    assert FeatureConfig().cache_key() != config.cache_key()


def test_pool_over_frames_is_the_mean(clip: np.ndarray) -> None:
    config = FeatureConfig()
    frames = feats.frames(clip, config=config)
    np.testing.assert_allclose(feats.pool(frames, config=config), frames.mean(axis=0))
