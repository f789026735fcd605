"""Features: the card's mean MFCC is librosa's, and the config round-trips."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ser import features as feats
from ser.features import FeatureConfig, FeatureKind
from tests import interpreter
from tests.signals import speech_like


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return speech_like(duration_s=2.0, sample_rate_hz=22_050, seed=3)


@pytest.mark.slow
def test_mean_mfcc_matches_librosa_defaults(clip: np.ndarray) -> None:
    import librosa

    expected = np.mean(librosa.feature.mfcc(y=clip, sr=22_050, n_mfcc=40).T, axis=0)
    got = feats.extract(clip, config=FeatureConfig())
    assert got.shape == (40,)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


@pytest.mark.slow
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


def test_cache_key_changes_with_the_feature_code(monkeypatch: pytest.MonkeyPatch) -> None:
    before = FeatureConfig().cache_key()
    monkeypatch.setattr(feats, "FEATURE_CODE_VERSION", feats.FEATURE_CODE_VERSION + 1)
    assert FeatureConfig().cache_key() != before


def _with_silent_edges(clip: np.ndarray) -> np.ndarray:
    quiet = np.random.default_rng(1).standard_normal(11_025).astype(np.float32) * 1e-4
    return np.concatenate([quiet, clip, quiet])


@pytest.mark.slow
@pytest.mark.parametrize("top_db", [20.0, 30.0, 60.0])
def test_trim_matches_librosa(clip: np.ndarray, top_db: float) -> None:
    import librosa

    samples = _with_silent_edges(clip)
    _, (start, end) = librosa.effects.trim(samples, top_db=top_db)
    trimmed, offset = feats.trim(samples, config=FeatureConfig(trim_db=top_db))
    assert (offset, offset + len(trimmed)) == (start, end)
    assert 0 < offset < 11_025 + 512  # the quiet lead-in is gone, the speech is kept


def test_trim_keeps_a_clip_with_nothing_loud(clip: np.ndarray) -> None:
    silence = np.zeros(22_050, dtype=np.float32)
    trimmed, offset = feats.trim(silence, config=FeatureConfig(trim_db=30.0))
    assert offset == 0
    assert len(trimmed) == len(silence)


@pytest.mark.slow
def test_inference_features_do_not_import_librosa() -> None:
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from ser import features as f; "
        "f.extract(np.ones(22050, dtype=np.float32), config=f.FeatureConfig(trim_db=30.0)); "
        "print('librosa' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
@pytest.mark.data
def test_real_clips_match_librosa(shared_data_dir: Path) -> None:
    import librosa

    from ser.audio import load_audio

    for path in sorted((shared_data_dir / "ravdess" / "Actor_01").glob("*.flac"))[:5]:
        samples = load_audio(path, sample_rate_hz=22_050).samples
        _, (start, end) = librosa.effects.trim(samples, top_db=30.0)
        trimmed, offset = feats.trim(samples, config=FeatureConfig(trim_db=30.0))
        assert (offset, offset + len(trimmed)) == (start, end)
        expected = np.mean(librosa.feature.mfcc(y=trimmed, sr=22_050, n_mfcc=40).T, axis=0)
        np.testing.assert_allclose(
            feats.extract(samples, config=FeatureConfig(trim_db=30.0)), expected, atol=1e-3
        )


def test_pool_over_frames_is_the_mean(clip: np.ndarray) -> None:
    config = FeatureConfig()
    frames = feats.frames(clip, config=config)
    np.testing.assert_allclose(feats.pool(frames, config=config), frames.mean(axis=0))


@pytest.mark.parametrize("kind", [FeatureKind.LOGMEL_FRAMES, FeatureKind.LOGMEL_VOICE_FRAMES])
def test_levelled_features_do_not_depend_on_the_recording_gain(kind: FeatureKind) -> None:
    samples = speech_like(
        duration_s=1.5,
        sample_rate_hz=22_050,
        seed=5,
        f0_hz=180.0,
        syllable_s=0.2,
        amplitude=0.3,
        speech_fraction=1.0,
    )
    levelled = FeatureConfig(kind=kind, n_mels=64, trim_db=30.0, level_dbfs=-20.0)
    as_recorded = replace(levelled, level_dbfs=None)
    for gain in (0.05, 3.0):  # -26 dB and +9.5 dB
        np.testing.assert_allclose(
            feats.extract(samples * gain, config=levelled),
            feats.extract(samples, config=levelled),
            atol=1e-3,
        )
        assert (
            np.abs(
                feats.extract(samples * gain, config=as_recorded)
                - feats.extract(samples, config=as_recorded)
            ).max()
            > 5
        )
    assert feats.active_level_dbfs(
        feats.level(samples, config=levelled), sample_rate_hz=22_050
    ) == (pytest.approx(-20.0, abs=1e-3))


# --- voice tracks -----------------------------------------------------------------------------

VOICE = FeatureConfig(
    kind=FeatureKind.LOGMEL_VOICE_FRAMES, n_mels=64, trim_db=30.0, level_dbfs=-20.0
)


def _track(tracks: np.ndarray, name: str) -> np.ndarray:
    return tracks[:, feats.VOICE_TRACKS.index(name)]


def test_voice_frames_are_the_log_mel_then_the_voice_tracks(clip: np.ndarray) -> None:
    got = feats.frames(clip, config=VOICE)
    assert got.shape[1] == VOICE.dim == 64 + len(feats.VOICE_TRACKS)
    np.testing.assert_array_equal(got[:, :64], feats.log_mel_frames(clip, config=VOICE))
    np.testing.assert_array_equal(got[:, 64:], feats.voice_tracks(clip, config=VOICE))


@pytest.mark.parametrize("f0_hz", [75.0, 180.0, 320.0, 550.0])
def test_pitch_track_finds_the_fundamental_of_a_voice(f0_hz: float) -> None:
    t = np.arange(int(1.5 * 22_050)) / 22_050
    harmonics = sum(np.sin(2 * np.pi * k * f0_hz * t) / k for k in range(1, int(4000 // f0_hz) + 1))
    tracks = feats.voice_tracks((0.1 * harmonics).astype(np.float32), config=VOICE)
    assert _track(tracks, "voiced").mean() > 0.9
    error_semitones = np.abs(_track(tracks, "pitch_semitones") - 12 * np.log2(f0_hz / 100))
    assert np.median(error_semitones) < 0.3  # neither an octave (12) nor a fifth (7) off


def test_noise_is_not_voiced() -> None:
    noise = np.random.default_rng(0).standard_normal(22_050).astype(np.float32) * 0.1
    tracks = feats.voice_tracks(noise, config=VOICE)
    assert _track(tracks, "voiced").mean() < 0.1
    assert np.all(_track(tracks, "pitch_semitones") == 0)  # nothing to follow: a flat contour


@pytest.mark.slow
def test_spectral_shape_tracks_match_librosa(clip: np.ndarray) -> None:
    import librosa

    tracks = feats.voice_tracks(clip, config=VOICE)
    centroid = librosa.feature.spectral_centroid(y=clip, sr=22_050)[0] / 1000
    rolloff = librosa.feature.spectral_rolloff(y=clip, sr=22_050)[0] / 1000
    flatness = librosa.feature.spectral_flatness(y=clip)[0]
    np.testing.assert_allclose(_track(tracks, "centroid_khz"), centroid, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(_track(tracks, "rolloff_khz"), rolloff, atol=0.011)  # one bin
    np.testing.assert_allclose(_track(tracks, "log_flatness"), np.log(flatness + 1e-6), atol=1e-2)


def test_zero_crossings_of_a_sine_are_twice_its_frequency() -> None:
    sine = np.sin(2 * np.pi * 1000.0 * np.arange(22_050) / 22_050).astype(np.float32)
    inner = _track(feats.voice_tracks(sine, config=VOICE), "zero_crossings")[
        4:-4
    ]  # edges are padded
    np.testing.assert_allclose(inner, 2 * 1000.0 / 22_050, rtol=0.02)


def test_importing_ser_loads_the_opensmile_library_but_not_the_package() -> None:
    """The library must be in the process before TensorFlow (below); the package's own imports
    (pandas among them) wait until eGeMAPS features are asked for."""
    code = (
        "import sys\n"
        "import ser\n"
        "maps = open('/proc/self/maps').read()\n"
        "print('libSMILEapi' in maps, 'opensmile' in sys.modules, 'pandas' in sys.modules)\n"
    )
    run = interpreter.run_python(code)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["True", "False", "False"]


@pytest.mark.slow
def test_egemaps_survives_tensorflow_loaded_after_ser() -> None:
    """openSMILE loaded after TensorFlow aborted the process; importing ``ser`` loads it first,
    so TensorFlow loaded later (the app's warm-up, any model load) does no harm."""
    code = (
        "import ser\n"
        "import tensorflow\n"  # what the app's warm-up and every model load do
        "import numpy as np\n"
        "from ser import features as feats\n"
        "from tests.signals import speech_like\n"
        "clip = speech_like(duration_s=2.0, sample_rate_hz=16_000, seed=3)\n"
        "config = feats.FeatureConfig(kind=feats.FeatureKind.EGEMAPS, sample_rate_hz=16_000)\n"
        "for _ in range(10): assert feats.extract(clip, config=config).shape == (88,)\n"
        "print('ok')\n"
    )
    run = interpreter.run_python(code, timeout_s=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-2000:]


@pytest.mark.parametrize(("kind", "dim"), [("egemaps", 88), ("compare", 6373)])
def test_opensmile_functionals_summarise_a_clip_in_a_fixed_size(kind: str, dim: int) -> None:
    config = feats.FeatureConfig(kind=feats.FeatureKind(kind), sample_rate_hz=16_000)
    clips = [
        speech_like(duration_s=d, sample_rate_hz=16_000, seed=s) for d, s in ((1.0, 1), (3.0, 2))
    ]
    vectors = [feats.extract(clip, config=config) for clip in clips]
    assert config.dim == dim and not config.is_sequence
    assert all(
        v.shape == (dim,) and v.dtype == np.float32 and np.isfinite(v).all() for v in vectors
    )
    assert not np.allclose(vectors[0], vectors[1])  # they describe the clip
    np.testing.assert_array_equal(feats.extract(clips[0], config=config), vectors[0])


def test_functionals_refuse_a_kind_that_is_not_an_opensmile_set() -> None:
    with pytest.raises(ValueError, match="not an openSMILE feature set"):
        feats.functionals(
            np.zeros(16_000, np.float32), sample_rate_hz=16_000, kind=feats.FeatureKind.MEAN_MFCC
        )


def test_compare_statistics_are_compare_then_the_statistics_of_the_frames() -> None:
    config = feats.FeatureConfig(
        kind=FeatureKind.COMPARE_STATISTICS,
        sample_rate_hz=16_000,
        n_mels=64,
        n_fft=1024,
        hop_length=384,
        trim_db=30.0,
        level_dbfs=-20.0,
    )
    clip = speech_like(duration_s=1.5, sample_rate_hz=16_000, seed=4)
    compare_part, frames_part = feats.parts(config)
    got = feats.extract(clip, config=config)
    frames_of_clip = feats.extract(clip, config=frames_part)
    assert got.shape == (config.dim,) == (6373 + 9 * (64 + 8 + 20),) and not config.is_sequence
    np.testing.assert_array_equal(got[:6373], feats.extract(clip, config=compare_part))
    statistics = got[6373:].reshape(9, 92)  # nine figures of each of 92 columns
    np.testing.assert_allclose(statistics[0, :72], frames_of_clip.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(statistics[3, :72], frames_of_clip.max(axis=0), rtol=1e-5)
    # the ComParE part reads the clip as compare_linear does, so both share its cache
    assert compare_part == replace(FeatureConfig(kind=FeatureKind.COMPARE), **_levelled_16k())


def _levelled_16k() -> dict[str, object]:
    return {"sample_rate_hz": 16_000, "trim_db": 30.0, "level_dbfs": -20.0}


def test_compare_statistics_are_assembled_from_their_parts_cache(tmp_path: Path) -> None:
    import soundfile as sf

    from ser import cache

    path = tmp_path / "clip.wav"
    sf.write(path, speech_like(duration_s=1.0, sample_rate_hz=16_000, seed=5), 16_000)
    config = feats.FeatureConfig(kind=FeatureKind.COMPARE_STATISTICS, **_levelled_16k())
    assert not cache.is_cached(tmp_path / "c", config, path, "")
    (first,) = cache.extract_features([(path, "")], config=config, cache_dir=tmp_path / "c")
    assert cache.is_cached(tmp_path / "c", config, path, "")  # both parts are there
    parts_keys = {p.cache_key() for p in feats.parts(config)}
    assert {d.name for d in (tmp_path / "c").iterdir()} == parts_keys  # no third copy
    (again,) = cache.extract_features([(path, "")], config=config, cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(first, again)


def test_a_band_limit_hears_a_clip_as_if_recorded_at_twice_that_rate() -> None:
    from ser.audio import band_limited

    speech = speech_like(duration_s=2.0, sample_rate_hz=16_000, amplitude=0.5, seed=3)
    full = FeatureConfig(
        kind=FeatureKind.LOGMEL_FRAMES, sample_rate_hz=16_000, n_fft=1024, hop_length=384
    )
    limited = replace(full, band_limit_hz=4_000)
    call = band_limited(speech, sample_rate_hz=16_000, source_rate_hz=8_000)

    np.testing.assert_allclose(
        feats.extract(speech, config=limited), feats.extract(call, config=full), atol=1e-3
    )
    assert not np.allclose(
        feats.extract(speech, config=limited), feats.extract(speech, config=full)
    )
    assert (full.heard_band_hz, limited.heard_band_hz) == (8_000, 4_000)
    assert FeatureConfig.from_dict(limited.to_dict()) == limited
    assert limited.cache_key() != full.cache_key()


def test_configs_without_a_band_limit_keep_their_cache_keys() -> None:
    """Features cached before the setting existed stay valid: the default's ComParE part."""
    from ser.models import RECIPES, ModelType

    compare, _ = feats.parts(RECIPES[ModelType.COMPARE_BLEND].features)
    narrow, _ = feats.parts(RECIPES[ModelType.COMPARE_BLEND_NARROW].features)

    assert "band_limit_hz" not in compare.to_dict()
    assert compare.cache_key() == "c63b6eb782c83125"
    assert narrow.band_limit_hz == 4_000 and narrow.cache_key() != compare.cache_key()
