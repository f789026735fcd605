"""Hostile input and public deployment: bounded memory, no hangs, nothing listed that should not be.

``MESSAGES`` is the table: every hostile case, with the exact message a person sees. Each test
below makes its case (generated here, tiny, never a committed file), runs it through the
package, the command line or the app, and checks the message against the table, so the table
cannot drift from what is really shown.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser.audio import MAX_CHANNELS, MAX_SAMPLE_RATE_HZ, load_audio
from ser.errors import AudioError
from tests import signals

ROOT = Path(__file__).resolve().parents[1]
RATE_HZ = 22_050
PEAK_GROWTH_LIMIT_MB = 300

# case -> the message a person sees ({name} is the file's name as shown).
MESSAGES = {
    # Memory bomb: a header that promises far more audio than its bytes.
    "flac-120s-192khz-8ch": None,  # 242 KB of FLAC, 1.4 GB decoded at once: answered, in bounded memory
    "flac-299s-655khz-8ch": "'{name}' has a sample rate of 655,350 Hz; the maximum is 192,000 Hz. "
    "Resample it to 48 kHz and try again.",
    "16-channels": "'{name}' has 16 channels; the maximum is 8. Mix it down to mono and try again.",
    # Special files: refused before they are opened, so nothing waits for a writer.
    "fifo": "'{name}' is a pipe (FIFO), not a regular file.",
    "device": "'{name}' is a device, not a regular file.",
    "folder": "'{name}' is a folder, not an audio file.",
}


def seen(case: str, name: str) -> str:
    message = MESSAGES[case]
    assert message is not None
    return message.format(name=name)


# ---------------------------------------------------------------------------- crafted files


def silent_flac(path: Path, *, duration_s: float, rate_hz: int, channels: int) -> Path:
    """A FLAC of ``duration_s`` that is silent after 20 ms of noise: a few bytes per second,
    however high the rate and the channel count, which is what makes it a bomb."""
    rng = np.random.default_rng(0)
    total = round(duration_s * rate_hz)
    head = (rng.standard_normal((rate_hz // 50, channels)) * 3000).astype(np.int16)
    quiet = np.zeros((1 << 18, channels), dtype=np.int16)
    with sf.SoundFile(
        path, "w", samplerate=rate_hz, channels=channels, format="FLAC", subtype="PCM_16"
    ) as out:
        out.write(head)
        done = len(head)
        while done < total:
            step = min(len(quiet), total - done)
            out.write(quiet[:step])
            done += step
    return path


PEAK_SCRIPT = """
import resource, sys
import ser.audio as audio
from ser.errors import SERError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    clip = audio.load_audio(sys.argv[1], sample_rate_hz=22050)
    outcome = f"{clip.duration_s:.1f} s"
except SERError as error:
    outcome = str(error)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{(peak - before) / 1024:.0f}\\t{outcome}")
"""


def peak_growth_mb(path: Path) -> tuple[float, str]:
    """Growth of the peak RSS of a fresh process while it loads ``path``, and the outcome."""
    run = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    growth, outcome = run.stdout.strip().split("\t", 1)
    return float(growth), outcome


# ---------------------------------------------------------------------------- memory bomb


@pytest.mark.slow
def test_a_flac_bomb_of_120_s_at_192_khz_and_8_channels_loads_in_bounded_memory(
    tmp_path: Path,
) -> None:
    path = silent_flac(tmp_path / "bomb.flac", duration_s=120, rate_hz=192_000, channels=8)
    assert path.stat().st_size < 400_000  # decoded at once: 120 * 192,000 * 8 floats = 737 MB
    growth_mb, outcome = peak_growth_mb(path)
    assert outcome == "120.0 s"
    assert growth_mb < PEAK_GROWTH_LIMIT_MB, growth_mb  # before the fix: 1,410 MB


def test_a_rate_beyond_the_limit_is_refused_from_the_header(tmp_path: Path) -> None:
    path = silent_flac(tmp_path / "fast.flac", duration_s=0.1, rate_hz=655_350, channels=8)
    with pytest.raises(AudioError) as caught:
        load_audio(path, sample_rate_hz=RATE_HZ)
    assert str(caught.value) == seen("flac-299s-655khz-8ch", "fast.flac")
    assert MAX_SAMPLE_RATE_HZ == 192_000


@pytest.mark.slow
def test_the_299_s_bomb_at_655_khz_is_refused_in_no_memory(tmp_path: Path) -> None:
    """The issue's second case in full (1.9 MB; 13 GB if decoded at once)."""
    path = silent_flac(tmp_path / "bomb655.flac", duration_s=299, rate_hz=655_350, channels=8)
    growth_mb, outcome = peak_growth_mb(path)
    assert outcome == seen("flac-299s-655khz-8ch", "bomb655.flac")
    assert growth_mb < 50, growth_mb  # before the fix: 11,978 MB


def test_too_many_channels_are_refused_from_the_header() -> None:
    data = signals.audio_bytes(
        signals.tone(frequency_hz=200, duration_s=1.0, sample_rate_hz=8_000, channels=16),
        sample_rate_hz=8_000,
    )
    with pytest.raises(AudioError) as caught:
        load_audio(data, sample_rate_hz=RATE_HZ, name="array.wav")
    assert str(caught.value) == seen("16-channels", "array.wav")
    assert MAX_CHANNELS == 8


def test_eight_channels_at_192_khz_still_decode_like_mono() -> None:
    """Block-wise mixing and resampling give what mixing and resampling the whole clip gives."""
    mono = signals.speech_like(duration_s=2.0, sample_rate_hz=192_000, seed=3)
    wide = signals.audio_bytes(
        np.repeat(mono[:, None], 8, axis=1), sample_rate_hz=192_000, subtype="FLOAT"
    )
    narrow = signals.audio_bytes(mono, sample_rate_hz=192_000, subtype="FLOAT")
    a = load_audio(wide, sample_rate_hz=RATE_HZ)
    b = load_audio(narrow, sample_rate_hz=RATE_HZ)
    assert a.source_channels == 8
    np.testing.assert_allclose(a.samples, b.samples, atol=1e-6)


# ---------------------------------------------------------------------------- special files


def refused_within(
    load: Callable[[], object], *, unblock: Callable[[], None], timeout_s: float = 5.0
) -> str:
    """The message ``load`` refuses with, failing (not hanging) if it blocks."""
    outcome: list[BaseException | object] = []
    worker = threading.Thread(target=lambda: outcome.append(_call(load)), daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        unblock()
        worker.join(timeout_s)
        pytest.fail(f"blocked for {timeout_s} s")
    [result] = outcome
    assert isinstance(result, AudioError), result
    return str(result)


def _call(load: Callable[[], object]) -> BaseException | object:
    try:
        return load()
    except BaseException as error:  # handed to the test thread
        return error


def _unblock_fifo(path: Path) -> Callable[[], None]:
    def unblock() -> None:
        descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(descriptor)

    return unblock


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "03-01-05-01-01-01-01.wav"
    os.mkfifo(fifo)
    message = refused_within(
        lambda: load_audio(fifo, sample_rate_hz=RATE_HZ), unblock=_unblock_fifo(fifo)
    )
    assert message == seen("fifo", fifo.name)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_device_is_refused_not_read_for_ever(tmp_path: Path) -> None:
    link = tmp_path / "endless.wav"
    link.symlink_to("/dev/zero")
    message = refused_within(lambda: load_audio(link, sample_rate_hz=RATE_HZ), unblock=lambda: None)
    assert message == seen("device", link.name)


def test_a_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "clip.wav"
    folder.mkdir()
    with pytest.raises(AudioError) as caught:
        load_audio(folder, sample_rate_hz=RATE_HZ)
    assert str(caught.value) == seen("folder", folder.name)
