"""Training-only channel variants: reproducible per seed, under threads too, and never past
full scale; the synthetic room reverberates as long as asked."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ser.augment import channel_variant, room
from tests import signals

RATE_HZ = 16_000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return signals.speech_like(duration_s=1.0, sample_rate_hz=RATE_HZ, seed=4)


def test_a_seed_gives_one_variant_and_other_seeds_others(speech: np.ndarray) -> None:
    first = channel_variant(speech, sample_rate_hz=RATE_HZ, seed=1)
    again = channel_variant(speech, sample_rate_hz=RATE_HZ, seed=1)
    others = [channel_variant(speech, sample_rate_hz=RATE_HZ, seed=s) for s in range(2, 6)]

    np.testing.assert_array_equal(first, again)
    assert all(not np.allclose(first, other) for other in others)
    assert all(v.dtype == np.float32 and v.shape == speech.shape for v in [first, *others])


def test_variants_drawn_on_threads_are_the_ones_drawn_in_turn(speech: np.ndarray) -> None:
    seeds = list(range(10, 18))
    in_turn = [channel_variant(speech, sample_rate_hz=RATE_HZ, seed=s) for s in seeds]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(
            pool.map(lambda s: channel_variant(speech, sample_rate_hz=RATE_HZ, seed=s), seeds)
        )
    for got, expected in zip(threaded, in_turn, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_a_loud_clip_stays_within_full_scale() -> None:
    loud = signals.tone(frequency_hz=300, duration_s=1.0, sample_rate_hz=RATE_HZ, amplitude=1.0)
    peaks = [np.abs(channel_variant(loud, sample_rate_hz=RATE_HZ, seed=s)).max() for s in range(8)]
    assert max(peaks) <= 1.0


def test_the_room_rings_for_its_reverberation_time_and_dry_is_unchanged() -> None:
    click = np.zeros(RATE_HZ, dtype=np.float32)
    click[0] = 1.0
    rng = np.random.default_rng(0)
    heard = room(click, sample_rate_hz=RATE_HZ, rt60_s=0.5, wet=1.0, rng=rng)
    energy = np.convolve(heard**2, np.ones(400), mode="same")  # 25 ms windows

    assert energy[int(0.05 * RATE_HZ)] > 0  # the click rings on
    decay_db = 10 * np.log10(energy[int(0.45 * RATE_HZ)] / energy[int(0.05 * RATE_HZ)])
    assert -70 < decay_db < -40  # about 60 dB over 0.4 of its 0.5 s
    np.testing.assert_array_equal(
        room(click, sample_rate_hz=RATE_HZ, rt60_s=0.5, wet=0.0, rng=rng), click
    )
