"""Features computed from a mono clip, and the config that says how.

The config is saved beside every model (``models/NAME.json``) and read back
from there at prediction time, so a model always sees features computed
exactly as in training.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import Any

import numpy as np

from .audio import active_level_dbfs, band_limited

# Bump whenever a function below changes its output for some config: cached training features
# are keyed by it, and would otherwise be reused from the old code.
FEATURE_CODE_VERSION = 2


class FeatureKind(str, Enum):
    """What a model consumes."""

    MEAN_MFCC = "mean_mfcc"  # (n_mfcc,): the card's classic clip vector
    MFCC_FRAMES = "mfcc_frames"  # (frames, n_mfcc)
    LOGMEL_FRAMES = "logmel_frames"  # (frames, n_mels)
    # (frames, n_mels + len(VOICE_TRACKS)): log-mel, then one column per voice track
    LOGMEL_VOICE_FRAMES = "logmel_voice_frames"
    # (88,): openSMILE's eGeMAPS v02 functionals of the clip, a standard set for comparing SER
    # across corpora: pitch, jitter, shimmer, formants, loudness, spectral balance, rhythm.
    EGEMAPS = "egemaps"
    # (6373,): openSMILE's ComParE 2016 functionals, the larger standard set of the Interspeech
    # challenges: the same kinds of voice measures, and spectral, cepstral and auditory bands.
    COMPARE = "compare"
    # (6373 + 828,): the ComParE functionals, then the whole-clip statistics of the 16 kHz
    # log-mel, cepstral and voice frames (``clip_statistics``): two views side by side.
    COMPARE_STATISTICS = "compare_statistics"


@dataclass(frozen=True)
class FeatureConfig:
    """Serialisable feature settings; the defaults are librosa's (bar n_mfcc)."""

    kind: FeatureKind = FeatureKind.MEAN_MFCC
    sample_rate_hz: int = 22_050
    n_mfcc: int = 40
    n_mels: int = 128
    n_fft: int = 2048
    hop_length: int = 512
    # Leading/trailing audio quieter than this many dB below the peak is cut before
    # features: silence otherwise dilutes a clip's mean. None keeps every frame.
    trim_db: float | None = None
    # Scale each clip so its loudest half second has this RMS level (dBFS) before features:
    # a microphone's gain is arbitrary, and absolute level would otherwise sway the answer.
    # None keeps the level as recorded (the card's recipe, and models saved before this).
    level_dbfs: float | None = None
    # Nothing above this frequency reaches the features, as in a recording made at twice this
    # rate: a model for phone calls learns only from the band they hold (docs/experiments.md).
    # None hears the whole band of sample_rate_hz.
    band_limit_hz: int | None = None

    @property
    def heard_band_hz(self) -> float:
        """The highest frequency the features hold."""
        nyquist_hz = self.sample_rate_hz / 2
        return nyquist_hz if self.band_limit_hz is None else min(nyquist_hz, self.band_limit_hz)

    @property
    def is_sequence(self) -> bool:
        return self.kind not in (
            FeatureKind.MEAN_MFCC,
            FeatureKind.COMPARE_STATISTICS,
            *FUNCTIONALS_DIM,
        )

    @property
    def dim(self) -> int:
        """Size of the last axis of the features."""
        if self.kind is FeatureKind.LOGMEL_VOICE_FRAMES:
            return self.n_mels + len(VOICE_TRACKS)
        if self.kind in FUNCTIONALS_DIM:
            return FUNCTIONALS_DIM[self.kind]
        if self.kind is FeatureKind.COMPARE_STATISTICS:
            return FUNCTIONALS_DIM[FeatureKind.COMPARE] + statistics_dim(self.n_mels)
        return self.n_mels if self.kind is FeatureKind.LOGMEL_FRAMES else self.n_mfcc

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate_hz / self.hop_length

    def to_dict(self) -> dict[str, Any]:
        settings = {**asdict(self), "kind": self.kind.value}
        for added_later in ("level_dbfs", "band_limit_hz"):  # unset: old feature caches still match
            if settings[added_later] is None:
                del settings[added_later]
        return settings

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return replace(cls(), **{**known, "kind": FeatureKind(known.get("kind", "mean_mfcc"))})

    def cache_key(self) -> str:
        """A short stable digest, for caching features computed with this config by this code."""
        text = json.dumps({**self.to_dict(), "code": FEATURE_CODE_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# The functions below reproduce librosa's defaults (Slaney mel scale and normalisation,
# periodic Hann window, centred frames with zero padding, power_to_db with amin 1e-10 and an
# 80 dB range, DCT-II ortho), checked against librosa in tests/test_features.py. Doing it
# here keeps librosa's ~2 s of imports out of the app's start-up and the per-clip path.


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asanyarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asanyarray(mel, dtype=np.float64)
    return np.where(
        mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * 200.0 / 3
    )


@functools.lru_cache(maxsize=8)
def _mel_basis(sample_rate_hz: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular filters with Slaney area normalisation, (n_mels, 1 + n_fft // 2)."""
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate_hz / 2), n_mels + 2))
    ramps = np.subtract.outer(edges_hz, np.fft.rfftfreq(n_fft, 1.0 / sample_rate_hz))
    widths = np.diff(edges_hz)
    lower = -ramps[:-2] / widths[:-1, np.newaxis]
    upper = ramps[2:] / widths[1:, np.newaxis]
    weights = (
        np.maximum(0, np.minimum(lower, upper))
        * (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, np.newaxis]
    )
    return weights.astype(np.float32)


def _frames_of(samples: np.ndarray, *, frame_length: int, hop_length: int) -> np.ndarray:
    """Centred, zero-padded frames, (frames, frame_length), as a strided view."""
    padded = np.pad(samples, frame_length // 2)
    n_frames = 1 + (len(padded) - frame_length) // hop_length
    return np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop_length][:n_frames]


def _power_spectrum(samples: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """|STFT|^2 with a periodic Hann window, (1 + n_fft // 2, frames)."""
    import scipy.fft

    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    frames = _frames_of(samples.astype(np.float32), frame_length=n_fft, hop_length=hop_length)
    return (np.abs(scipy.fft.rfft(frames * window, axis=1)) ** 2).T


def _power_to_db(power: np.ndarray) -> np.ndarray:
    db = 10.0 * np.log10(np.maximum(power, 1e-10))
    return np.maximum(db, db.max() - 80.0)


def log_mel_frames(samples: np.ndarray, *, config: FeatureConfig) -> np.ndarray:
    """Log-power mel spectrogram in dB, (frames, n_mels): librosa's melspectrogram + power_to_db."""
    return _log_mel(
        _power_spectrum(samples, n_fft=config.n_fft, hop_length=config.hop_length), config
    )


def _log_mel(power: np.ndarray, config: FeatureConfig) -> np.ndarray:
    mel = _mel_basis(config.sample_rate_hz, config.n_fft, config.n_mels) @ power
    return _power_to_db(mel).T.astype(np.float32)


def mfcc_frames(samples: np.ndarray, *, config: FeatureConfig) -> np.ndarray:
    """MFCC frames as ``librosa.feature.mfcc`` computes them (DCT-II, ortho), (frames, n_mfcc)."""
    import scipy.fft

    log_mel = log_mel_frames(samples, config=config)
    return scipy.fft.dct(log_mel, axis=1, type=2, norm="ortho")[:, : config.n_mfcc]


# --- voice tracks: how the voice moves, frame by frame ----------------------------------------
# Pitch, voicing, loudness and spectral shape are nonlinear in the spectrum, so a network fed
# only whole-clip band statistics cannot form them. As columns beside the log-mel frames they
# reach the fused model's statistics head with no second input: +3.3 points (README).

VOICE_TRACKS = (
    "pitch_semitones",  # re 100 Hz; unvoiced frames carry the pitch interpolated between voiced ones
    "periodicity",  # height of the autocorrelation peak that gave the pitch, 0..1
    "voiced",  # 1 for frames with a clear pitch within 25 dB of the loudest frame
    "loudness_db",
    "centroid_khz",  # spectral centroid of the magnitude spectrum, as librosa's
    "log_flatness",  # log of librosa's spectral flatness (power spectrum)
    "rolloff_khz",  # 85% of the magnitude spectrum lies below this, as librosa's
    "zero_crossings",  # share of sample pairs that change sign
)
PITCH_RANGE_HZ = (60.0, 600.0)
_VOICED_PERIODICITY = 0.5
_VOICED_RANGE_DB = 25.0


@functools.lru_cache(maxsize=4)
def _window_autocorrelation(n_fft: int) -> np.ndarray:
    """Autocorrelation of the Hann window: divides out its taper from a frame's autocorrelation."""
    import scipy.fft

    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    acf = scipy.fft.irfft(np.abs(scipy.fft.rfft(window)) ** 2, n=n_fft)
    return (acf / acf[0]).astype(np.float32)


def _pitch_track(
    power: np.ndarray, *, sample_rate_hz: int, n_fft: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the pitch (Hz) and periodicity from the normalised autocorrelation.

    The first local peak within 90% of the highest is taken, not the highest: a period's
    multiples peak almost as high, and picking them would halve the pitch.
    """
    import scipy.fft

    shortest, longest = (int(sample_rate_hz / hz) for hz in reversed(PITCH_RANGE_HZ))
    acf = scipy.fft.irfft(power, n=n_fft, axis=0)[: longest + 2]
    taper = _window_autocorrelation(n_fft)[: longest + 2, np.newaxis]
    normalised = acf / np.maximum(acf[:1], 1e-12) / taper
    lags = normalised[shortest : longest + 1]
    highest = lags.max(axis=0)
    is_peak = (lags >= np.roll(lags, 1, axis=0)) & (lags >= np.roll(lags, -1, axis=0))
    first = np.argmax(is_peak & (lags >= 0.9 * highest), axis=0)
    return sample_rate_hz / (shortest + first), highest


def voice_tracks(samples: np.ndarray, *, config: FeatureConfig) -> np.ndarray:
    """The ``VOICE_TRACKS``, one row per frame (the log-mel frames' framing), (frames, 8)."""
    power = _power_spectrum(samples, n_fft=config.n_fft, hop_length=config.hop_length)
    return _voice_tracks(samples, power, config)


def _voice_tracks(samples: np.ndarray, power: np.ndarray, config: FeatureConfig) -> np.ndarray:
    # float32 throughout, as librosa's spectral features: a quarter of the time of float64
    sample_rate_hz, n_fft = config.sample_rate_hz, config.n_fft
    khz = (np.fft.rfftfreq(n_fft, 1.0 / sample_rate_hz)[:, np.newaxis] / 1000.0).astype(np.float32)
    loudness_db = 10.0 * np.log10(power.sum(axis=0) / n_fft + 1e-10)
    magnitude = np.sqrt(power)
    centroid_khz = (khz * magnitude).sum(axis=0) / np.maximum(magnitude.sum(axis=0), 1e-10)
    floored = np.maximum(power, 1e-10)
    flatness = np.exp(np.mean(np.log(floored), axis=0)) / floored.mean(axis=0)
    cumulative = np.cumsum(magnitude, axis=0)
    rolloff_khz = khz[np.argmax(cumulative >= 0.85 * cumulative[-1:], axis=0), 0]
    signs = np.signbit(_frames_of(samples, frame_length=n_fft, hop_length=config.hop_length))
    zero_crossings = np.mean(signs[:, 1:] != signs[:, :-1], axis=1)
    pitch_hz, periodicity = _pitch_track(power, sample_rate_hz=sample_rate_hz, n_fft=n_fft)
    voiced = (periodicity > _VOICED_PERIODICITY) & (
        loudness_db > loudness_db.max() - _VOICED_RANGE_DB
    )
    semitones = 12.0 * np.log2(pitch_hz / 100.0)
    if voiced.sum() >= 2:
        semitones = np.interp(np.arange(len(semitones)), np.flatnonzero(voiced), semitones[voiced])
    else:  # no voice to follow: a flat contour says so without inventing one
        semitones = np.zeros_like(semitones)
    columns = [semitones, periodicity, voiced, loudness_db]
    columns += [centroid_khz, np.log(flatness + 1e-6), rolloff_khz, zero_crossings]
    return np.stack(columns, axis=1).astype(np.float32)


def trim(samples: np.ndarray, *, config: FeatureConfig) -> tuple[np.ndarray, int]:
    """The clip without its quiet edges (``librosa.effects.trim``), and the first kept index."""
    if config.trim_db is None:
        return samples, 0
    frames = _frames_of(samples, frame_length=config.n_fft, hop_length=config.hop_length)
    power = np.mean(np.square(frames, dtype=np.float64), axis=1)
    db = 10.0 * np.log10(np.maximum(power, 1e-10)) - 10.0 * np.log10(max(power.max(), 1e-10))
    loud = np.flatnonzero(db > -config.trim_db)
    if not loud.size:
        return samples, 0
    start = int(loud[0]) * config.hop_length
    end = min(len(samples), (int(loud[-1]) + 1) * config.hop_length)
    if end - start < config.n_fft:  # nothing but a click above the threshold: keep it all
        return samples, 0
    return samples[start:end], start


def level(samples: np.ndarray, *, config: FeatureConfig) -> np.ndarray:
    """The clip scaled to ``config.level_dbfs`` (unchanged when that is None or it is silent)."""
    if config.level_dbfs is None:
        return samples
    active_dbfs = active_level_dbfs(samples, sample_rate_hz=config.sample_rate_hz)
    if not np.isfinite(active_dbfs):
        return samples
    return samples * np.float32(10.0 ** ((config.level_dbfs - active_dbfs) / 20.0))


def prepare(samples: np.ndarray, *, config: FeatureConfig) -> tuple[np.ndarray, int]:
    """The part of the clip features are taken from (band-limited, levelled, trimmed), and its
    first index."""
    if config.band_limit_hz is not None:
        samples = band_limited(
            samples,
            sample_rate_hz=config.sample_rate_hz,
            source_rate_hz=2 * config.band_limit_hz,
        )
    return trim(level(samples, config=config), config=config)


def frames(samples: np.ndarray, *, config: FeatureConfig) -> np.ndarray:
    """Frame-level features, (frames, dim): the input of ``pool``."""
    if config.kind is FeatureKind.LOGMEL_FRAMES:
        return log_mel_frames(samples, config=config)
    if config.kind is FeatureKind.LOGMEL_VOICE_FRAMES:  # one spectrum serves both
        power = _power_spectrum(samples, n_fft=config.n_fft, hop_length=config.hop_length)
        return np.concatenate(
            [_log_mel(power, config), _voice_tracks(samples, power, config)], axis=1
        )
    return mfcc_frames(samples, config=config)


def pool(frame_features: np.ndarray, *, config: FeatureConfig) -> np.ndarray:
    """What the model sees of a run of frames: their mean for the classic vector."""
    if config.kind is FeatureKind.MEAN_MFCC:
        return frame_features.mean(axis=0)
    return frame_features


def extract(samples: np.ndarray, *, config: FeatureConfig) -> np.ndarray:
    """Features of one mono float clip already at ``config.sample_rate_hz``."""
    if config.kind is FeatureKind.COMPARE_STATISTICS:
        compare, frames_of_clip = (extract(samples, config=part) for part in parts(config))
        return combine_parts(compare, frames_of_clip, config=config)
    trimmed, _ = prepare(samples, config=config)
    if config.kind in FUNCTIONALS_DIM:
        return functionals(trimmed, sample_rate_hz=config.sample_rate_hz, kind=config.kind)
    return pool(frames(trimmed, config=config), config=config)


# What each openSMILE feature set gives per clip.
FUNCTIONALS_DIM = {FeatureKind.EGEMAPS: 88, FeatureKind.COMPARE: 6373}


@functools.cache
def _smile(kind: FeatureKind) -> Any:
    import opensmile  # a second or so of imports: only models that use it pay for it

    feature_set = {
        FeatureKind.EGEMAPS: opensmile.FeatureSet.eGeMAPSv02,
        FeatureKind.COMPARE: opensmile.FeatureSet.ComParE_2016,
    }[kind]
    return opensmile.Smile(
        feature_set=feature_set, feature_level=opensmile.FeatureLevel.Functionals
    )


def functionals(samples: np.ndarray, *, sample_rate_hz: int, kind: FeatureKind) -> np.ndarray:
    """openSMILE's functionals of a mono clip for the feature set ``kind``, as float32.

    Safe to call from several threads at once: openSMILE runs each call in its own process
    context. Non-finite values (a clip with no voiced frame) become 0.
    """
    if kind not in FUNCTIONALS_DIM:
        raise ValueError(f"{kind} is not an openSMILE feature set")
    values = _smile(kind).process_signal(samples.astype(np.float32), sample_rate_hz).to_numpy()[0]
    return np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)


# --- ComParE and the frames' whole-clip statistics, side by side -----------------------------
# The statistics are those the statistics models compute in their graph (``ser.models.
# band_statistics``): per column of the frames and of 20 cepstral coefficients, the mean,
# variance, minimum, maximum, mean squared change, the extremes of a 9-frame moving average,
# skewness and kurtosis. Fixed here, so the feature config alone says what a model reads.
STATISTICS_CEPSTRA = 20
STATISTICS_SMOOTHING_FRAMES = 9
STATISTICS_FIGURES = 9


def statistics_dim(n_mels: int) -> int:
    """Length of ``clip_statistics``' vector for frames of ``n_mels`` bands and the voice tracks."""
    return STATISTICS_FIGURES * (n_mels + len(VOICE_TRACKS) + STATISTICS_CEPSTRA)


def parts(config: FeatureConfig) -> tuple[FeatureConfig, FeatureConfig]:
    """A ``COMPARE_STATISTICS`` config's two parts: the ComParE functionals (librosa's default
    framing for trimming, as ``compare_linear`` reads them) and the log-mel and voice frames."""
    compare = FeatureConfig(
        kind=FeatureKind.COMPARE,
        sample_rate_hz=config.sample_rate_hz,
        trim_db=config.trim_db,
        level_dbfs=config.level_dbfs,
        band_limit_hz=config.band_limit_hz,
    )
    return compare, replace(config, kind=FeatureKind.LOGMEL_VOICE_FRAMES)


def combine_parts(
    compare: np.ndarray, frames_of_clip: np.ndarray, *, config: FeatureConfig
) -> np.ndarray:
    """The ``COMPARE_STATISTICS`` vector from its parts' features."""
    statistics = clip_statistics(
        frames_of_clip,
        n_mels=config.n_mels,
        n_cepstra=STATISTICS_CEPSTRA,
        smoothing_frames=STATISTICS_SMOOTHING_FRAMES,
    )
    return np.concatenate([compare, statistics]).astype(np.float32)


def clip_statistics(
    frames_of_clip: np.ndarray, *, n_mels: int, n_cepstra: int, smoothing_frames: int
) -> np.ndarray:
    """The whole-clip statistics of (frames, columns), as ``ser.models.statistics_extractor``
    with shape moments computes them in the graph (tested to agree)."""
    import scipy.fft

    x = frames_of_clip.astype(np.float64)
    cepstra = scipy.fft.dct(x[:, :n_mels], type=2, norm="ortho", axis=1)[:, 1 : n_cepstra + 1]
    x = np.concatenate([x, cepstra], axis=1)
    mean = x.mean(axis=0)
    variance = (x * x).mean(axis=0) - mean * mean
    smooth = _moving_average(x, smoothing_frames)
    z = (x - mean) / np.sqrt(x.var(axis=0) + 1e-6)
    figures = [mean, variance, x.min(axis=0), x.max(axis=0), _change_power(x)]
    figures += [smooth.min(axis=0), smooth.max(axis=0), (z**3).mean(axis=0), (z**4).mean(axis=0)]
    return np.concatenate(figures).astype(np.float32)


def _change_power(x: np.ndarray) -> np.ndarray:
    """Mean squared frame-to-frame change over the frames doubled (as the graph computes it)."""
    return (np.diff(x, axis=0) ** 2).sum(axis=0) / (2 * len(x) - 1)


def _moving_average(x: np.ndarray, size: int) -> np.ndarray:
    """Centred moving average; at the edges, of the frames the window covers."""
    before, after = (size - 1) // 2, size // 2
    total = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    ends = np.minimum(np.arange(len(x)) + after + 1, len(x))
    starts = np.maximum(np.arange(len(x)) - before, 0)
    return (total[ends] - total[starts]) / (ends - starts)[:, np.newaxis]
