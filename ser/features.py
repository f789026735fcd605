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


class FeatureKind(str, Enum):
    """What a model consumes."""

    MEAN_MFCC = "mean_mfcc"  # (n_mfcc,): the card's classic clip vector
    MFCC_FRAMES = "mfcc_frames"  # (frames, n_mfcc)
    LOGMEL_FRAMES = "logmel_frames"  # (frames, n_mels)


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

    @property
    def is_sequence(self) -> bool:
        return self.kind is not FeatureKind.MEAN_MFCC

    @property
    def dim(self) -> int:
        """Size of the last axis of the features."""
        return self.n_mels if self.kind is FeatureKind.LOGMEL_FRAMES else self.n_mfcc

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate_hz / self.hop_length

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return replace(cls(), **{**known, "kind": FeatureKind(known.get("kind", "mean_mfcc"))})

    def cache_key(self) -> str:
        """A short stable digest, for caching features computed with this config."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=8)
def _mel_basis(sample_rate_hz: int, n_fft: int, n_mels: int) -> np.ndarray:
    import librosa  # imported here: the first page of the app does not need it

    return librosa.filters.mel(sr=sample_rate_hz, n_fft=n_fft, n_mels=n_mels)


def log_mel_frames(samples: np.ndarray, *, config: FeatureConfig) -> np.ndarray:
    """Log-power mel spectrogram in dB (librosa's defaults), shaped (frames, n_mels).

    Same numbers as ``librosa.power_to_db(librosa.feature.melspectrogram(...))``, but
    with the filterbank cached and a plain matrix product: librosa's ``einsum`` costs
    ~100 ms per clip here, this path a few ms.
    """
    import librosa

    spectrum = np.abs(librosa.stft(samples, n_fft=config.n_fft, hop_length=config.hop_length)) ** 2
    mel = _mel_basis(config.sample_rate_hz, config.n_fft, config.n_mels) @ spectrum
    return librosa.power_to_db(mel).T.astype(np.float32)


def mfcc_frames(samples: np.ndarray, *, config: FeatureConfig) -> np.ndarray:
    """MFCC frames as ``librosa.feature.mfcc`` computes them (DCT-II, ortho), (frames, n_mfcc)."""
    import scipy.fft

    log_mel = log_mel_frames(samples, config=config)
    return scipy.fft.dct(log_mel, axis=1, type=2, norm="ortho")[:, : config.n_mfcc]


def trim(samples: np.ndarray, *, config: FeatureConfig) -> tuple[np.ndarray, int]:
    """The clip without its quiet edges, and the first kept sample's index."""
    if config.trim_db is None:
        return samples, 0
    import librosa

    _, (start, end) = librosa.effects.trim(
        samples, top_db=config.trim_db, frame_length=config.n_fft, hop_length=config.hop_length
    )
    if end - start < config.n_fft:  # nothing above the threshold: keep the clip whole
        return samples, 0
    return samples[start:end], int(start)


def frames(samples: np.ndarray, *, config: FeatureConfig) -> np.ndarray:
    """Frame-level features, (frames, dim): the input of ``pool``."""
    if config.kind is FeatureKind.LOGMEL_FRAMES:
        return log_mel_frames(samples, config=config)
    return mfcc_frames(samples, config=config)


def pool(frame_features: np.ndarray, *, config: FeatureConfig) -> np.ndarray:
    """What the model sees of a run of frames: their mean for the classic vector."""
    if config.kind is FeatureKind.MEAN_MFCC:
        return frame_features.mean(axis=0)
    return frame_features


def extract(samples: np.ndarray, *, config: FeatureConfig) -> np.ndarray:
    """Features of one mono float clip already at ``config.sample_rate_hz``."""
    trimmed, _ = trim(samples, config=config)
    return pool(frames(trimmed, config=config), config=config)
