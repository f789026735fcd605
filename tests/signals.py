"""Synthetic test signals, and helpers that write them (or deliberately broken files) out.

Signals are float32 arrays in soundfile's layout: ``(frames,)`` for mono, ``(frames, channels)``
otherwise. Everything is deterministic, so tests never depend on audio files in the repository.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

# A subtype per (format, bit depth) case worth testing; None lets soundfile pick its default.
FORMAT_CASES: dict[str, tuple[str, str | None]] = {
    "wav-u8": ("WAV", "PCM_U8"),
    "wav-16": ("WAV", "PCM_16"),
    "wav-24": ("WAV", "PCM_24"),
    "wav-32": ("WAV", "PCM_32"),
    "wav-float": ("WAV", "FLOAT"),
    "wav-double": ("WAV", "DOUBLE"),
    "flac-16": ("FLAC", "PCM_16"),
    "flac-24": ("FLAC", "PCM_24"),
    "ogg-vorbis": ("OGG", "VORBIS"),
    "ogg-opus": ("OGG", "OPUS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}

# Formats and subtypes libsndfile can write here (MP3 needs libsndfile >= 1.1 with LAME).
WRITABLE_CASES = {
    case: (fmt, subtype)
    for case, (fmt, subtype) in FORMAT_CASES.items()
    if fmt in sf.available_formats() and (subtype is None or subtype in sf.available_subtypes(fmt))
}

EXTENSIONS = {"WAV": ".wav", "FLAC": ".flac", "OGG": ".ogg", "MP3": ".mp3"}


def _times(duration_s: float, sample_rate_hz: int) -> np.ndarray:
    return np.arange(round(duration_s * sample_rate_hz)) / sample_rate_hz


def _with_channels(mono: np.ndarray, channels: int) -> np.ndarray:
    mono = mono.astype(np.float32)
    return mono if channels == 1 else np.repeat(mono[:, None], channels, axis=1)


def tone(
    *,
    frequency_hz: float,
    duration_s: float,
    sample_rate_hz: int,
    amplitude: float = 0.5,
    channels: int = 1,
) -> np.ndarray:
    """A sine, the same in every channel."""
    t = _times(duration_s, sample_rate_hz)
    return _with_channels(amplitude * np.sin(2 * np.pi * frequency_hz * t), channels)


def square(
    *,
    frequency_hz: float,
    duration_s: float,
    sample_rate_hz: int,
    amplitude: float = 1.0,
) -> np.ndarray:
    """A square wave; at amplitude 1.0 every sample sits at full scale, i.e. fully clipped."""
    t = _times(duration_s, sample_rate_hz)
    return (amplitude * np.sign(np.sin(2 * np.pi * frequency_hz * t + 0.1))).astype(np.float32)


def silence(*, duration_s: float, sample_rate_hz: int, channels: int = 1) -> np.ndarray:
    """Digital silence: every sample exactly zero."""
    return _with_channels(np.zeros(round(duration_s * sample_rate_hz)), channels)


def noise(
    *, level_dbfs: float, duration_s: float, sample_rate_hz: int, seed: int = 0
) -> np.ndarray:
    """White Gaussian noise whose RMS is ``level_dbfs`` (0 dBFS = RMS of 1.0)."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(round(duration_s * sample_rate_hz))
    return (white / np.sqrt(np.mean(white**2)) * 10 ** (level_dbfs / 20)).astype(np.float32)


def speech_like(
    *,
    duration_s: float,
    sample_rate_hz: int,
    seed: int = 0,
    amplitude: float = 0.3,
    f0_hz: float = 140.0,
    syllable_s: float = 0.2,
    speech_fraction: float = 0.7,
) -> np.ndarray:
    """A crude voiced-speech stand-in: harmonics of a wobbling pitch, in syllables and pauses.

    Each ``syllable_s`` slot is voiced with probability ``speech_fraction`` (seeded), with a
    smooth raised-cosine envelope, so energy-based speech detectors see roughly
    ``speech_fraction * duration_s`` seconds of speech.
    """
    rng = np.random.default_rng(seed)
    t = _times(duration_s, sample_rate_hz)
    pitch = f0_hz * (1 + 0.1 * np.sin(2 * np.pi * 3 * t + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate_hz
    # Harmonics falling off like a glottal source, up to just below Nyquist (as recorded
    # speech reaches it: a clip that stops at 4 kHz is flagged as band-limited).
    top = int((sample_rate_hz / 2 - 100) // (f0_hz * 1.1))
    voiced = sum(np.sin(k * phase) / k for k in range(1, max(top, 1) + 1))
    slot = np.floor(t / syllable_s).astype(int)
    on = rng.random(slot.max() + 1 if slot.size else 0) < speech_fraction
    envelope = on[slot] * np.sin(np.pi * (t % syllable_s) / syllable_s) ** 2
    signal = voiced * envelope
    peak = np.max(np.abs(signal)) if signal.size else 0.0
    return (amplitude * signal / peak if peak > 0 else signal).astype(np.float32)


def audio_bytes(
    samples: np.ndarray,
    *,
    sample_rate_hz: int,
    format: str = "WAV",
    subtype: str | None = None,
) -> bytes:
    """``samples`` encoded as a complete file in memory."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate_hz, format=format, subtype=subtype)
    return buffer.getvalue()


def write_audio(
    path: str | os.PathLike[str],
    samples: np.ndarray,
    *,
    sample_rate_hz: int,
    format: str = "WAV",
    subtype: str | None = None,
) -> Path:
    """Write ``samples`` to ``path`` (whatever its extension says) and return the path."""
    path = Path(path)
    path.write_bytes(
        audio_bytes(samples, sample_rate_hz=sample_rate_hz, format=format, subtype=subtype)
    )
    return path


# ------------------------------------------------------------------ deliberately broken files

WAV_HEADER_BYTES = 44  # what soundfile writes for PCM: RIFF + fmt chunk + data chunk header


def wav_header_only(*, sample_rate_hz: int = 16_000) -> bytes:
    """A valid 16-bit WAV header that declares no samples."""
    return audio_bytes(np.zeros(0, np.float32), sample_rate_hz=sample_rate_hz, subtype="PCM_16")


def wav_cut(data: bytes, *, keep_bytes: int) -> bytes:
    """The first ``keep_bytes`` of a file, as an interrupted download or copy leaves it."""
    return data[:keep_bytes]


def wav_claiming_more(data: bytes, *, claimed_bytes: int) -> bytes:
    """A soundfile-written PCM WAV whose RIFF and data sizes claim ``claimed_bytes`` of audio."""
    patched = bytearray(data)
    struct.pack_into("<I", patched, 4, claimed_bytes + WAV_HEADER_BYTES - 8)
    struct.pack_into("<I", patched, WAV_HEADER_BYTES - 4, claimed_bytes)
    return bytes(patched)


def fake_m4a(*, size_bytes: int = 512) -> bytes:
    """An MP4 'ftyp' box with the M4A brand (as phones and Apple Voice Memos write), then junk."""
    head = struct.pack(">I", 24) + b"ftypM4A " + b"\0\0\0\0" + b"M4A isom"
    return _padded(head, size_bytes)


def fake_webm(*, size_bytes: int = 512) -> bytes:
    """An EBML header with DocType 'webm' (as browsers' MediaRecorder writes), then junk."""
    head = b"\x1a\x45\xdf\xa3" + b"\x9f" + b"\x42\x86\x81\x01" + b"\x42\x82\x84webm"
    return _padded(head, size_bytes)


def fake_wma(*, size_bytes: int = 512) -> bytes:
    """An ASF header object's GUID (Windows Media Audio), then junk."""
    return _padded(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa\x00\x62\xce\x6c", size_bytes)


def _padded(head: bytes, size_bytes: int) -> bytes:
    """``head`` followed by arbitrary bytes, ``size_bytes`` long in all (or just ``head``)."""
    junk = bytes(range(256)) * (size_bytes // 256 + 1)
    return (head + junk)[: max(size_bytes, len(head))]


# Phone and browser formats, encoded by PyAV itself: name -> (FFmpeg muxer, codec, extension).
PHONE_FORMATS: dict[str, tuple[str, str, str]] = {
    "m4a-aac": ("ipod", "aac", ".m4a"),
    "mp4-aac": ("mp4", "aac", ".mp4"),
    "webm-opus": ("webm", "libopus", ".webm"),
    "3gp-amr": ("3gp", "amr_nb", ".3gp"),
    "3gp-aac": ("3gp", "aac", ".3gp"),
}
# What each codec takes: AMR-NB is 8 kHz mono only, Opus runs at 48 kHz.
CODEC_RATES_HZ = {"aac": 44_100, "libopus": 48_000, "amr_nb": 8_000, "pcm_s16le": 48_000}


def encoded(
    samples: np.ndarray,
    *,
    sample_rate_hz: int,
    muxer: str,
    codec: str,
    options: dict[str, str] | None = None,
) -> bytes:
    """``samples`` (soundfile's layout) encoded by PyAV as ``codec`` in a ``muxer`` file;
    ``options`` go to the muxer (``{"live": "1"}``: a WebM that states no length)."""
    import av

    data = samples[:, None] if samples.ndim == 1 else samples
    channels = data.shape[1]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=muxer, options=options or {}) as container:
        layout = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1", 10: "5.1.4"}[channels]
        stream = container.add_stream(codec, rate=sample_rate_hz, layout=layout)
        sample_format = stream.codec_context.format.name
        step = 1024
        for start in range(0, len(data), step):
            chunk = data[start : start + step]
            if sample_format.startswith("s16"):
                chunk = np.round(np.clip(chunk, -1, 1) * 32767).astype(np.int16)
            planes = chunk.T if sample_format.endswith("p") else chunk.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(planes), format=sample_format, layout=layout
            )
            frame.sample_rate, frame.pts = sample_rate_hz, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()
