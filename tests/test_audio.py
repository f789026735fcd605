"""ser.audio: decoding every supported format, refusing bad input clearly, flagging caveats."""

from __future__ import annotations

import io
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser import audio
from ser.audio import Audio, assess_quality, load_audio, to_wav_bytes
from ser.errors import (
    AudioError,
    DamagedAudioError,
    EmptyAudioError,
    SilentAudioError,
    TooLongError,
    TooShortError,
    UnsupportedFormatError,
)
from tests import signals

RATE_HZ = 22_050  # the models' rate (librosa's default)
LOSSY = {"OGG", "MP3"}


def peak_frequency_hz(samples: np.ndarray, *, sample_rate_hz: int) -> float:
    """Frequency of the strongest FFT bin, refined by parabolic interpolation."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sample_rate_hz / len(samples)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def format_params() -> list[object]:
    """Every format case; those libsndfile cannot write here are reported as skipped."""
    reason = "libsndfile here cannot write this format"
    return [
        pytest.param(case, marks=[] if case in signals.WRITABLE_CASES else pytest.mark.skip(reason))
        for case in signals.FORMAT_CASES
    ]


# ---------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("case", format_params())
def test_every_format_decodes_to_the_same_tone(case: str) -> None:
    fmt, subtype = signals.FORMAT_CASES[case]
    source = signals.tone(frequency_hz=440, duration_s=1.0, sample_rate_hz=16_000, amplitude=0.5)
    data = signals.audio_bytes(source, sample_rate_hz=16_000, format=fmt, subtype=subtype)

    clip = load_audio(data, sample_rate_hz=RATE_HZ)

    assert clip.samples.dtype == np.float32
    assert clip.samples.ndim == 1
    assert (clip.sample_rate_hz, clip.source_sample_rate_hz, clip.source_channels) == (
        RATE_HZ,
        16_000,
        1,
    )
    assert not clip.truncated
    assert clip.duration_s == pytest.approx(1.0, abs=0.06 if fmt in LOSSY else 1e-3)
    assert peak_frequency_hz(clip.samples, sample_rate_hz=RATE_HZ) == pytest.approx(440, abs=2)
    assert 20 * math.log10(rms(clip.samples) / (0.5 / math.sqrt(2))) == pytest.approx(0, abs=0.5)
    if fmt not in LOSSY:  # lossless: sample-for-sample what resampling the original gives
        expected = audio.resample(source, from_rate_hz=16_000, to_rate_hz=RATE_HZ)
        tolerance = 1e-2 if subtype == "PCM_U8" else 1e-4
        np.testing.assert_allclose(clip.samples, expected, atol=tolerance)


@pytest.mark.parametrize("rate_hz", [8_000, 22_050, 44_100, 48_000, 96_000])
def test_any_source_rate_is_resampled_keeping_the_pitch(rate_hz: int) -> None:
    source = signals.tone(frequency_hz=440, duration_s=1.0, sample_rate_hz=rate_hz)
    data = signals.audio_bytes(source, sample_rate_hz=rate_hz, subtype="PCM_16")

    clip = load_audio(data, sample_rate_hz=RATE_HZ)

    assert clip.source_sample_rate_hz == rate_hz
    assert len(clip.samples) == math.ceil(len(source) * RATE_HZ / rate_hz)  # as librosa sizes it
    assert peak_frequency_hz(clip.samples, sample_rate_hz=RATE_HZ) == pytest.approx(440, abs=1)
    assert rms(clip.samples) == pytest.approx(0.5 / math.sqrt(2), rel=0.01)


def test_resampling_removes_content_above_the_new_nyquist() -> None:
    # 15 kHz is above 11.025 kHz: an aliasing resampler would fold it to 7.05 kHz.
    high = signals.tone(frequency_hz=15_000, duration_s=1.0, sample_rate_hz=48_000, amplitude=0.5)
    low = signals.tone(frequency_hz=440, duration_s=1.0, sample_rate_hz=48_000, amplitude=0.1)
    data = signals.audio_bytes(high + low, sample_rate_hz=48_000, subtype="FLOAT")

    clip = load_audio(data, sample_rate_hz=RATE_HZ)

    assert peak_frequency_hz(clip.samples, sample_rate_hz=RATE_HZ) == pytest.approx(440, abs=1)
    assert rms(clip.samples) == pytest.approx(0.1 / math.sqrt(2), rel=0.02)


def test_six_channels_are_mixed_to_their_mean() -> None:
    t = np.arange(16_000) / 16_000
    channels = np.stack(
        [0.1 * (k + 1) * np.sin(2 * np.pi * 220 * (k + 1) * t) for k in range(6)], axis=1
    ).astype(np.float32)
    data = signals.audio_bytes(channels, sample_rate_hz=16_000, subtype="FLOAT")

    clip = load_audio(data, sample_rate_hz=16_000)

    assert clip.source_channels == 6
    np.testing.assert_allclose(clip.samples, channels.mean(axis=1), atol=1e-6)


@pytest.mark.slow  # the first librosa.load pulls in scipy and numba
def test_matches_librosa_load_exactly(tmp_path: Path) -> None:
    librosa = pytest.importorskip("librosa")
    left = signals.speech_like(duration_s=1.5, sample_rate_hz=48_000, seed=1)
    right = signals.speech_like(duration_s=1.5, sample_rate_hz=48_000, seed=2)
    path = signals.write_audio(
        tmp_path / "stereo.wav", np.stack([left, right], axis=1), sample_rate_hz=48_000
    )

    expected, _ = librosa.load(path, sr=RATE_HZ)

    np.testing.assert_array_equal(load_audio(path, sample_rate_hz=RATE_HZ).samples, expected)


def test_path_str_and_bytes_give_the_same_clip(tmp_path: Path) -> None:
    samples = signals.speech_like(duration_s=1.0, sample_rate_hz=44_100)
    path = signals.write_audio(
        tmp_path / "clip.flac", samples, sample_rate_hz=44_100, format="FLAC"
    )

    clips = [
        load_audio(source, sample_rate_hz=RATE_HZ)
        for source in (path, str(path), path.read_bytes(), bytearray(path.read_bytes()))
    ]

    for clip in clips[1:]:
        np.testing.assert_array_equal(clip.samples, clips[0].samples)


def test_other_formats_libsndfile_reads_are_accepted_too() -> None:
    # Not advertised, but real: two TESS originals are AIFF files named .wav.
    samples = signals.tone(frequency_hz=440, duration_s=1.0, sample_rate_hz=24_414)
    data = signals.audio_bytes(samples, sample_rate_hz=24_414, format="AIFF", subtype="PCM_16")

    clip = load_audio(data, sample_rate_hz=RATE_HZ, name="YAF_back_angry.wav")

    assert peak_frequency_hz(clip.samples, sample_rate_hz=RATE_HZ) == pytest.approx(440, abs=1)


def test_loading_needs_no_librosa(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clips decode through soundfile and soxr alone, never the slow librosa path (how fast a
    load is belongs to ``python -m ser.bench latency``, not to a test)."""
    data = signals.audio_bytes(
        signals.speech_like(duration_s=4.0, sample_rate_hz=48_000), sample_rate_hz=48_000
    )
    monkeypatch.setitem(sys.modules, "librosa", None)  # any `import librosa` now fails

    clip = load_audio(data, sample_rate_hz=RATE_HZ)

    assert clip.samples.dtype == np.float32
    assert len(clip.samples) == math.ceil(4.0 * RATE_HZ)


# ---------------------------------------------------------------------------- bad input


def _tone_bytes(duration_s: float, *, rate_hz: int = 8_000, subtype: str = "PCM_16") -> bytes:
    samples = signals.tone(frequency_hz=440, duration_s=duration_s, sample_rate_hz=rate_hz)
    return signals.audio_bytes(samples, sample_rate_hz=rate_hz, subtype=subtype)


def _float_wav_with(value: float) -> bytes:
    samples = signals.tone(frequency_hz=440, duration_s=1.0, sample_rate_hz=8_000)
    samples[100] = value
    return signals.audio_bytes(samples, sample_rate_hz=8_000, subtype="FLOAT")


def _cut_half(fmt: str, subtype: str | None = None) -> bytes:
    samples = signals.tone(frequency_hz=440, duration_s=1.0, sample_rate_hz=16_000)
    data = signals.audio_bytes(samples, sample_rate_hz=16_000, format=fmt, subtype=subtype)
    return data[: len(data) // 2]


BAD_INPUTS = [
    pytest.param(
        lambda: b"Not audio at all, just some notes.\n" * 20,
        {},
        UnsupportedFormatError,
        "is not a recognisable audio file. Supported formats: WAV, FLAC, OGG, MP3, M4A, MP4, AAC, 3GP, WebM.",
        id="text-named-wav",
    ),
    pytest.param(lambda: b"", {}, EmptyAudioError, "is empty (0 bytes)", id="zero-bytes"),
    pytest.param(
        signals.wav_header_only, {}, EmptyAudioError, "contains no audio", id="header-only-wav"
    ),
    pytest.param(
        lambda: _tone_bytes(1.0)[:30],
        {},
        DamagedAudioError,
        "is damaged or incomplete (perhaps cut short)",
        id="wav-cut-in-header",
    ),
    pytest.param(
        # The header declares 1 s of samples, but the file ends right after it: not "empty".
        lambda: signals.wav_cut(_tone_bytes(1.0), keep_bytes=signals.WAV_HEADER_BYTES),
        {},
        DamagedAudioError,
        "is damaged or incomplete (perhaps cut short): no audio could be decoded",
        id="wav-cut-after-header",
    ),
    pytest.param(
        # 44-byte header + 0.2 s of 16-bit samples at 8 kHz, out of 1 s.
        lambda: signals.wav_cut(_tone_bytes(1.0), keep_bytes=44 + 3_200),
        {},
        DamagedAudioError,
        "is damaged or cut short: only 0.20 s could be decoded, and at least 0.5 s is needed",
        id="wav-cut-mid-data",
    ),
    pytest.param(
        lambda: signals.wav_claiming_more(_tone_bytes(0.3), claimed_bytes=160_000),
        {},
        DamagedAudioError,
        "is damaged or cut short: only 0.30 s could be decoded",
        id="wav-header-claims-more-data",
    ),
    pytest.param(
        lambda: _cut_half("OGG", "VORBIS"),
        {},
        DamagedAudioError,
        "is damaged or incomplete (perhaps cut short) and cannot be read",
        id="ogg-cut-in-half",
    ),
    pytest.param(
        lambda: _cut_half("FLAC")[:200],
        {},
        DamagedAudioError,
        "no audio could be decoded",
        id="flac-header-without-frames",
    ),
    pytest.param(
        lambda: _tone_bytes(0.1),
        {},
        TooShortError,
        "is too short (0.10 s); it must be at least 0.5 s long",
        id="tone-0.1s",
    ),
    pytest.param(
        lambda: _tone_bytes(0.6),
        {"min_duration_s": 1.0},
        TooShortError,
        "is too short (0.60 s); it must be at least 1 s long",
        id="below-custom-minimum",
    ),
    pytest.param(
        lambda: signals.audio_bytes(
            signals.silence(duration_s=10.0, sample_rate_hz=8_000), sample_rate_hz=8_000
        ),
        {},
        SilentAudioError,
        "is silent (every sample is zero or constant)",
        id="digital-silence-10s",
    ),
    pytest.param(
        lambda: signals.audio_bytes(
            signals.noise(level_dbfs=-75, duration_s=2.0, sample_rate_hz=8_000),
            sample_rate_hz=8_000,
            subtype="FLOAT",
        ),
        {},
        SilentAudioError,
        "is too quiet to judge: its loudest part is at -75 dBFS, below the -60 dBFS minimum",
        id="low-level-noise",
    ),
    pytest.param(
        lambda: _float_wav_with(float("nan")),
        {},
        DamagedAudioError,
        "contains invalid samples (NaN or infinity)",
        id="nan-in-float-wav",
    ),
    pytest.param(
        lambda: _float_wav_with(float("-inf")),
        {},
        DamagedAudioError,
        "contains invalid samples (NaN or infinity)",
        id="inf-in-float-wav",
    ),
    pytest.param(
        signals.fake_m4a,
        {},
        DamagedAudioError,
        "is damaged or incomplete (perhaps cut short) and cannot be read.",
        id="fake-m4a",
    ),
    pytest.param(
        signals.fake_webm,
        {},
        DamagedAudioError,
        "is damaged or incomplete (perhaps cut short) and cannot be read.",
        id="fake-webm",
    ),
    pytest.param(
        signals.fake_wma,
        {},
        UnsupportedFormatError,
        "is WMA audio. WMA is not supported; supported formats: WAV, FLAC, OGG, MP3, M4A, MP4, "
        "AAC, 3GP, WebM.",
        id="fake-wma",
    ),
    pytest.param(
        lambda: _tone_bytes(6.0),
        {"max_duration_s": 5.0},
        TooLongError,
        "is too long (0:06); the maximum is 0:05 (minutes:seconds)",
        id="over-custom-maximum",
    ),
    pytest.param(
        # 5:10 at 1 kHz, 8-bit: a 310 kB fixture over the default 5-minute limit.
        lambda: _tone_bytes(310.0, rate_hz=1_000, subtype="PCM_U8"),
        {},
        TooLongError,
        "is too long (5:10); the maximum is 5:00 (minutes:seconds)",
        id="over-5-minutes",
    ),
]


@pytest.mark.parametrize(("make", "kwargs", "error", "fragment"), BAD_INPUTS)
def test_bad_input_is_refused_with_a_clear_message(
    make: Callable[[], bytes],
    kwargs: dict[str, float],
    error: type[AudioError],
    fragment: str,
) -> None:
    with pytest.raises(error) as caught:
        load_audio(make(), sample_rate_hz=RATE_HZ, name="my clip.wav", **kwargs)

    message = str(caught.value)
    assert message.startswith("'my clip.wav' ")
    assert fragment in message


def test_messages_name_a_path_by_its_file_name(tmp_path: Path) -> None:
    (tmp_path / "empty.wav").write_bytes(b"")

    with pytest.raises(EmptyAudioError, match=r"^'empty\.wav' is empty \(0 bytes\)\.$"):
        load_audio(tmp_path / "empty.wav", sample_rate_hz=RATE_HZ)


def test_bytes_without_a_name_are_called_the_audio() -> None:
    with pytest.raises(EmptyAudioError, match=r"^The audio is empty \(0 bytes\)\.$"):
        load_audio(b"", sample_rate_hz=RATE_HZ)


def test_missing_files_and_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"^'nowhere\.wav' was not found\.$"):
        load_audio(tmp_path / "nowhere.wav", sample_rate_hz=RATE_HZ)
    with pytest.raises(AudioError, match="is a folder, not an audio file"):
        load_audio(tmp_path, sample_rate_hz=RATE_HZ)


def test_too_long_is_refused_from_the_header_before_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _tone_bytes(310.0, rate_hz=1_000, subtype="PCM_U8")

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded a clip its header already shows is too long")

    monkeypatch.setattr(sf.SoundFile, "read", no_decoding)
    with pytest.raises(TooLongError, match="maximum is 5:00"):
        load_audio(data, sample_rate_hz=RATE_HZ)


def test_random_bytes_only_ever_raise_audio_errors() -> None:
    rng = np.random.default_rng(20_240_521)
    valid = [
        signals.audio_bytes(
            signals.speech_like(duration_s=0.8, sample_rate_hz=16_000),
            sample_rate_hz=16_000,
            format=fmt,
            subtype=subtype,
        )
        for fmt, subtype in signals.WRITABLE_CASES.values()
    ] + [_phone(case, duration_s=0.8) for case in signals.PHONE_FORMATS]
    inputs = [rng.bytes(int(rng.integers(1, 4_000))) for _ in range(100)]
    for base in valid:  # real headers with damage after them, where decoders get confused
        for _ in range(30):
            damaged = bytearray(base[: int(rng.integers(1, len(base) + 1))])
            for position in rng.integers(0, len(damaged), size=int(rng.integers(1, 12))):
                damaged[position] = int(rng.integers(256))
            inputs.append(bytes(damaged))

    outcomes, messages = set(), set()
    for data in inputs:  # anything but an AudioError escaping fails the test
        try:
            load_audio(data, sample_rate_hz=RATE_HZ)
            outcomes.add("loaded")
        except AudioError as error:
            outcomes.add(type(error).__name__)
            messages.add(str(error))

    assert {"loaded", "UnsupportedFormatError", "DamagedAudioError"} <= outcomes
    assert all(message.startswith("The audio ") for message in messages), messages


# ---------------------------------------------------------------------------- phone formats


def _phone(case: str, *, duration_s: float = 1.0, channels: int = 1, **options: str) -> bytes:
    muxer, codec, _ = signals.PHONE_FORMATS[case]
    rate = signals.CODEC_RATES_HZ[codec]
    source = signals.tone(
        frequency_hz=440,
        duration_s=duration_s,
        sample_rate_hz=rate,
        amplitude=0.5,
        channels=channels,
    )
    return signals.encoded(source, sample_rate_hz=rate, muxer=muxer, codec=codec, options=options)


@pytest.mark.parametrize("case", list(signals.PHONE_FORMATS))
def test_phone_formats_decode_to_the_same_tone(case: str) -> None:
    _, codec, extension = signals.PHONE_FORMATS[case]

    clip = load_audio(_phone(case), sample_rate_hz=RATE_HZ, name=f"memo{extension}")

    source = (clip.sample_rate_hz, clip.source_sample_rate_hz, clip.source_channels)
    assert source == (RATE_HZ, signals.CODEC_RATES_HZ[codec], 1)
    assert not clip.truncated
    assert clip.duration_s == pytest.approx(1.0, abs=0.05)  # codecs' priming and padding
    assert peak_frequency_hz(clip.samples, sample_rate_hz=RATE_HZ) == pytest.approx(440, abs=2)
    assert 20 * math.log10(rms(clip.samples) / (0.5 / math.sqrt(2))) == pytest.approx(0, abs=1.5)


def test_a_stereo_m4a_is_mixed_to_mono() -> None:
    clip = load_audio(_phone("m4a-aac", channels=2), sample_rate_hz=RATE_HZ)

    assert clip.source_channels == 2
    assert 20 * math.log10(rms(clip.samples) / (0.5 / math.sqrt(2))) == pytest.approx(0, abs=1.0)


def test_phone_formats_are_refused_from_the_header_with_the_same_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded a clip its header already refuses")

    long_memo = _phone("m4a-aac", duration_s=6.0)
    wide = signals.encoded(
        signals.tone(frequency_hz=440, duration_s=0.05, sample_rate_hz=48_000, channels=10),
        sample_rate_hz=48_000,
        muxer="matroska",
        codec="pcm_s16le",
    )
    fast = signals.encoded(
        signals.tone(frequency_hz=440, duration_s=0.05, sample_rate_hz=384_000),
        sample_rate_hz=384_000,
        muxer="matroska",
        codec="pcm_s16le",
    )
    monkeypatch.setattr(audio, "_read_mono", no_decoding)
    cases = [
        (
            long_memo,
            {"max_duration_s": 5.0},
            TooLongError,
            "'memo' is too long (0:06); the maximum is 0:05 (minutes:seconds). Trim it and try again.",
        ),
        (
            wide,
            {},
            UnsupportedFormatError,
            "'memo' has 10 channels; the maximum is 8. Mix it down to mono and try again.",
        ),
        (
            fast,
            {},
            UnsupportedFormatError,
            "'memo' has a sample rate of 384,000 Hz; the maximum is 192,000 Hz. "
            "Resample it to 48 kHz and try again.",
        ),
    ]
    for data, kwargs, error, message in cases:
        with pytest.raises(error) as caught:
            load_audio(data, sample_rate_hz=RATE_HZ, name="memo", **kwargs)
        assert str(caught.value) == message


def test_a_webm_that_states_no_length_is_refused_once_it_decodes_past_the_limit() -> None:
    live = _phone("webm-opus", duration_s=6.0, live="1")  # as a browser's MediaRecorder writes

    with pytest.raises(TooLongError, match=r"^'rec' is too long \(0:0\d\); the maximum is 0:05"):
        load_audio(live, sample_rate_hz=RATE_HZ, name="rec", max_duration_s=5.0)


def test_a_short_phone_clip_is_refused_as_too_short() -> None:
    with pytest.raises(TooShortError, match=r"^'memo' is too short \(0\.\d+ s\); it must be"):
        load_audio(_phone("m4a-aac", duration_s=0.3), sample_rate_hz=RATE_HZ, name="memo")


@pytest.mark.parametrize("case", ["webm-opus", "3gp-amr"])
def test_a_cut_phone_clip_keeps_what_decodes_or_says_it_is_cut(case: str) -> None:
    data = _phone(case, duration_s=4.0)

    if case == "3gp-amr":  # FFmpeg writes the sample table last: a cut file has none
        with pytest.raises(DamagedAudioError, match=r"damaged or incomplete \(perhaps cut short\)"):
            load_audio(data[: len(data) // 2], sample_rate_hz=RATE_HZ)
        return
    clip = load_audio(data[: len(data) // 2], sample_rate_hz=RATE_HZ)
    assert clip.truncated
    assert 1.0 <= clip.duration_s < 3.0
    assert "The file seems to be cut short" in assess_quality(clip)[0]


def test_a_video_file_without_sound_is_refused() -> None:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width = stream.height = 16
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))

    with pytest.raises(EmptyAudioError, match=r"^'clip.mp4' holds no sound track"):
        load_audio(buffer.getvalue(), sample_rate_hz=RATE_HZ, name="clip.mp4")


# ---------------------------------------------------------------------------- damaged but usable


def test_a_cut_wav_keeps_the_audio_that_is_there() -> None:
    data = _tone_bytes(2.0)  # 8 kHz, 16-bit: 16,000 bytes a second after a 44-byte header

    clip = load_audio(signals.wav_cut(data, keep_bytes=44 + 19_200), sample_rate_hz=RATE_HZ)

    assert clip.truncated
    assert clip.duration_s == pytest.approx(1.2, abs=1e-3)
    assert "The file seems to be cut short: only the first 1.2 s could be decoded." in (
        assess_quality(clip)
    )


@pytest.mark.parametrize("fmt", ["FLAC", "MP3"])
def test_a_cut_compressed_file_keeps_what_decodes(fmt: str) -> None:
    if fmt not in sf.available_formats():
        pytest.skip(f"libsndfile here cannot write {fmt}")
    samples = signals.tone(frequency_hz=440, duration_s=4.0, sample_rate_hz=16_000)
    data = signals.audio_bytes(samples, sample_rate_hz=16_000, format=fmt)

    clip = load_audio(data[: len(data) // 2], sample_rate_hz=RATE_HZ)

    assert clip.truncated
    assert 0.5 <= clip.duration_s < 3.0
    assert peak_frequency_hz(clip.samples, sample_rate_hz=RATE_HZ) == pytest.approx(440, abs=2)


def test_a_complete_file_is_not_flagged_as_cut() -> None:
    clip = load_audio(_tone_bytes(1.0), sample_rate_hz=RATE_HZ)

    assert not clip.truncated


# ---------------------------------------------------------------------------- quality caveats


def _clip(samples: np.ndarray, *, rate_hz: int = 16_000, subtype: str = "FLOAT") -> Audio:
    data = signals.audio_bytes(samples, sample_rate_hz=rate_hz, subtype=subtype)
    return load_audio(data, sample_rate_hz=rate_hz)


def test_clean_speech_has_no_caveats() -> None:
    clip = _clip(signals.speech_like(duration_s=3.0, sample_rate_hz=16_000, amplitude=0.5))

    assert assess_quality(clip) == []


def test_a_fully_clipped_square_wave_loads_and_is_flagged() -> None:
    clip = _clip(signals.square(frequency_hz=200, duration_s=2.0, sample_rate_hz=16_000))

    caveats = assess_quality(clip)

    assert any("100.0% of the samples are clipped" in caveat for caveat in caveats), caveats


def test_a_resampled_square_wave_is_still_flagged_as_clipped() -> None:
    data = signals.audio_bytes(
        signals.square(frequency_hz=200, duration_s=2.0, sample_rate_hz=48_000),
        sample_rate_hz=48_000,
        subtype="PCM_16",
    )

    caveats = assess_quality(load_audio(data, sample_rate_hz=RATE_HZ))

    assert any("of the samples are clipped" in caveat for caveat in caveats), caveats


def test_a_phone_call_saved_at_a_high_rate_is_flagged_as_band_limited() -> None:
    speech = signals.speech_like(duration_s=3.0, sample_rate_hz=44_100, amplitude=0.5)
    call = audio.band_limited(speech, sample_rate_hz=44_100, source_rate_hz=8_000)

    caveats = assess_quality(_clip(call, rate_hz=44_100))

    assert len(caveats) == 1, caveats
    assert re.fullmatch(
        r"The recording holds almost nothing above (3\.9|4\.0) kHz \(as a phone call or another "
        r"low-rate recording does\), so it lacks high frequencies the model learnt from and the "
        r"result may be much less reliable\.",
        caveats[0],
    ), caveats


def test_the_audible_band_is_where_the_sound_stops() -> None:
    speech = signals.speech_like(duration_s=2.0, sample_rate_hz=16_000, amplitude=0.5)
    for source_hz, expected_hz in ((16_000, 7_700), (11_025, 5_500), (8_000, 4_000)):
        limited = audio.band_limited(speech, sample_rate_hz=16_000, source_rate_hz=source_hz)
        audible_hz = audio.audible_bandwidth_hz(limited, sample_rate_hz=16_000)
        assert audible_hz == pytest.approx(expected_hz, abs=250), source_hz
    assert audio.audible_bandwidth_hz(np.zeros(16_000), sample_rate_hz=16_000) == 8_000


def test_quiet_speech_is_flagged_but_accepted() -> None:
    clip = _clip(signals.speech_like(duration_s=3.0, sample_rate_hz=16_000, amplitude=0.005))

    caveats = assess_quality(clip)

    assert caveats == [
        "The recording is very quiet (its loudest part is at -53 dBFS), "
        "so the result may be less reliable."
    ]


def test_quiet_speech_with_long_pauses_is_not_refused_as_silent() -> None:
    # Overall RMS is about -70 dBFS; the speech itself is about -47 dBFS.
    speech = signals.speech_like(duration_s=2.0, sample_rate_hz=16_000, amplitude=0.01)
    samples = np.concatenate([speech, np.zeros(30 * 16_000, np.float32)])
    assert audio.level_dbfs(samples) < audio.SILENCE_DBFS

    clip = _clip(samples)

    assert clip.duration_s == pytest.approx(32.0)


def test_short_speech_in_a_longer_clip_is_flagged() -> None:
    burst = signals.speech_like(
        duration_s=0.6, sample_rate_hz=16_000, syllable_s=0.3, speech_fraction=1.0
    )
    samples = np.concatenate([np.zeros(16_000), burst, np.zeros(24_000)]).astype(np.float32)
    clip = _clip(samples)

    caveats = assess_quality(clip)

    assert audio.speech_duration_s(clip.samples, sample_rate_hz=16_000) == pytest.approx(
        0.5, abs=0.15
    )
    assert len(caveats) == 1
    assert caveats[0].startswith("Only about 0.")
    assert "s of speech was found" in caveats[0]


def test_speech_is_measured_above_a_steady_noise_floor() -> None:
    speech = signals.speech_like(duration_s=4.0, sample_rate_hz=16_000, speech_fraction=0.5)
    noisy = speech + signals.noise(level_dbfs=-45, duration_s=4.0, sample_rate_hz=16_000)

    speech_s = audio.speech_duration_s(noisy, sample_rate_hz=16_000)

    assert speech_s == pytest.approx(
        audio.speech_duration_s(speech, sample_rate_hz=16_000), abs=0.4
    )
    assert 1.0 < speech_s < 3.0  # half the syllable slots are voiced, minus their soft edges


def test_a_low_source_rate_is_flagged() -> None:
    data = signals.audio_bytes(
        signals.speech_like(duration_s=3.0, sample_rate_hz=8_000, amplitude=0.5),
        sample_rate_hz=8_000,
    )

    caveats = assess_quality(load_audio(data, sample_rate_hz=RATE_HZ))

    assert caveats == [
        "The recording's sample rate is low (8 kHz), "
        "so it lacks high frequencies the model learnt from."
    ]


@pytest.mark.parametrize(
    ("source_rate_hz", "model_rate_hz", "flagged"),
    [(16_000, 22_050, True), (16_000, 16_000, False)],
)
def test_a_source_rate_is_flagged_only_below_the_models(
    source_rate_hz: int, model_rate_hz: int, flagged: bool
) -> None:
    data = signals.audio_bytes(
        signals.speech_like(duration_s=3.0, sample_rate_hz=source_rate_hz, amplitude=0.5),
        sample_rate_hz=source_rate_hz,
    )

    caveats = assess_quality(load_audio(data, sample_rate_hz=model_rate_hz))

    assert any("sample rate is low (16 kHz)" in c for c in caveats) is flagged


def _band_energy(
    samples: np.ndarray, *, sample_rate_hz: int, low_hz: float, high_hz: float
) -> float:
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    hz = np.fft.rfftfreq(len(samples), 1 / sample_rate_hz)
    return float(spectrum[(hz >= low_hz) & (hz < high_hz)].sum())


def test_band_limited_removes_what_the_source_could_not_hold() -> None:
    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal(RATE_HZ)).astype(np.float32)

    limited = audio.band_limited(noise, sample_rate_hz=RATE_HZ, source_rate_hz=16_000)

    assert limited.shape == noise.shape
    kept = _band_energy(limited, sample_rate_hz=RATE_HZ, low_hz=0, high_hz=7_000)
    assert kept == pytest.approx(
        _band_energy(noise, sample_rate_hz=RATE_HZ, low_hz=0, high_hz=7_000), rel=0.02
    )
    above = _band_energy(limited, sample_rate_hz=RATE_HZ, low_hz=8_200, high_hz=RATE_HZ / 2)
    assert above < 1e-4 * kept
    assert audio.band_limited(noise, sample_rate_hz=RATE_HZ, source_rate_hz=44_100) is noise


def test_with_noise_adds_noise_at_the_asked_level() -> None:
    tone = signals.speech_like(duration_s=2.0, sample_rate_hz=RATE_HZ, amplitude=0.5)

    noisy = audio.with_noise(tone, snr_db=20.0, rng=np.random.default_rng(1))

    added = noisy - tone
    snr_db = 10 * math.log10(
        np.mean(tone.astype(np.float64) ** 2) / np.mean(added.astype(np.float64) ** 2)
    )
    assert snr_db == pytest.approx(20.0, abs=0.2)


def test_level_ignores_dc_offset() -> None:
    assert audio.level_dbfs(np.full(1000, 0.3, np.float32)) == -math.inf
    assert audio.level_dbfs(
        signals.square(frequency_hz=100, duration_s=1.0, sample_rate_hz=8_000)
    ) == pytest.approx(0.0, abs=0.01)


# ---------------------------------------------------------------------------- playback


def test_to_wav_bytes_round_trips_as_16_bit_pcm() -> None:
    samples = signals.tone(frequency_hz=440, duration_s=0.5, sample_rate_hz=RATE_HZ)

    data = to_wav_bytes(samples, sample_rate_hz=RATE_HZ)

    info = sf.info(io.BytesIO(data))
    assert (info.format, info.subtype, info.samplerate, info.channels, info.frames) == (
        "WAV",
        "PCM_16",
        RATE_HZ,
        1,
        len(samples),
    )
    np.testing.assert_allclose(
        load_audio(data, sample_rate_hz=RATE_HZ).samples, samples, atol=1 / 32_768
    )


def test_to_wav_bytes_clips_out_of_range_values_and_rejects_stereo() -> None:
    data = to_wav_bytes(np.array([2.0, -2.0, np.nan, 0.5], np.float32), sample_rate_hz=8_000)

    decoded, _ = sf.read(io.BytesIO(data), dtype="int16")

    np.testing.assert_array_equal(decoded, [32_767, -32_768, 0, 16_384])
    with pytest.raises(ValueError, match="one-dimensional"):
        to_wav_bytes(np.zeros((10, 2), np.float32), sample_rate_hz=8_000)
