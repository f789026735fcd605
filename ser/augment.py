"""Training-only variants of a clip that imitate other rooms, microphones and voices.

A corpus is one studio, one microphone chain and a few speakers; a user is none of them.
``channel_variant`` draws one plausible other recording of the same speech: an equaliser
curve, band limits of cheap microphones and phone codecs, a room's reverberation, noise and
a shifted voice. Filters and pitch come from audiomentations; the room is a synthetic impulse
response (decaying noise), as no impulse-response files ship with the project.
"""

from __future__ import annotations

import functools
import random
import threading
from typing import Any

import numpy as np

# audiomentations draws its parameters from the global `random` and numpy generators: seeding
# them, drawing and applying happen together, so variants are reproducible under threads.
_DRAW_LOCK = threading.Lock()


@functools.cache
def _chain() -> Any:
    import audiomentations as am

    return am.Compose(
        [
            am.SevenBandParametricEQ(min_gain_db=-9.0, max_gain_db=9.0, p=0.8),
            am.HighPassFilter(min_cutoff_freq=80.0, max_cutoff_freq=400.0, p=0.3),
            am.LowPassFilter(min_cutoff_freq=3_400.0, max_cutoff_freq=7_500.0, p=0.3),
            am.PitchShift(min_semitones=-3.0, max_semitones=3.0, p=0.5),
            am.AddGaussianSNR(min_snr_db=10.0, max_snr_db=35.0, p=0.5),
        ]
    )


def room(
    samples: np.ndarray, *, sample_rate_hz: int, rt60_s: float, wet: float, rng: np.random.Generator
) -> np.ndarray:
    """``samples`` as heard in a room whose reverberation decays by 60 dB in ``rt60_s``."""
    from scipy.signal import fftconvolve

    n = max(1, int(rt60_s * sample_rate_hz))
    t = np.arange(n) / sample_rate_hz
    response = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)  # ln(1000): -60 dB at rt60
    response[0] = 0.0
    response /= np.sqrt(np.sum(response**2)) + 1e-12
    reverberant = fftconvolve(samples, response)[: len(samples)]
    return ((1.0 - wet) * samples + wet * reverberant).astype(np.float32)


def channel_variant(samples: np.ndarray, *, sample_rate_hz: int, seed: int) -> np.ndarray:
    """One reproducible other recording of ``samples`` (mono float32) for ``seed``."""
    rng = np.random.default_rng(seed)
    out = samples.astype(np.float32)
    if rng.random() < 0.4:
        out = room(
            out,
            sample_rate_hz=sample_rate_hz,
            rt60_s=rng.uniform(0.2, 0.9),
            wet=rng.uniform(0.2, 0.6),
            rng=rng,
        )
    with _DRAW_LOCK:  # a shared chain: draw and apply together
        random.seed(seed)
        np.random.seed(seed % 2**32)
        out = _chain()(out, sample_rate=sample_rate_hz)
    peak = float(np.max(np.abs(out))) if len(out) else 0.0
    return (out / peak * 0.9 if peak > 1.0 else out).astype(np.float32)
