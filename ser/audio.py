"""Load a clip a person supplies, refuse what cannot be used, and flag what may mislead.

``load_audio`` decodes exactly as ``librosa.load(path, sr=rate)`` does (soundfile, float32,
mean of channels, soxr "HQ" resampling, length ``ceil(n * ratio)``), so a model sees the same
samples in the app as in training, but without importing librosa. It decodes block by block,
mixing each block to mono and resampling it as it comes, so its memory holds the output at the
model's rate and one block, whatever rate and channel count the file claims: a few hundred KB
of FLAC can decode to gigabytes. Every unusable input raises an ``AudioError`` whose message
names the file and says what is wrong. Only regular files are opened: a FIFO or a device
would block the reader for good.

What phones and browsers record (M4A/AAC, MP4, 3GP, WebM/Opus), which libsndfile cannot read,
is decoded through PyAV, which ships its own FFmpeg, with the same block-wise bound, limits and
messages; each container goes to the one FFmpeg demuxer named for it, so nothing is probed.
"""

from __future__ import annotations

import functools
import io
import itertools
import math
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
import soundfile as sf
import soxr

from ser.errors import (
    AudioError,
    DamagedAudioError,
    EmptyAudioError,
    SilentAudioError,
    TooLongError,
    TooShortError,
    UnsupportedFormatError,
)

SUPPORTED_FORMATS = ("WAV", "FLAC", "OGG", "MP3", "M4A", "MP4", "AAC", "3GP", "WebM")
# File name endings the app's uploader takes: the formats above and their usual variants.
FILE_EXTENSIONS = (
    "wav",
    "flac",
    "ogg",
    "oga",
    "opus",
    "mp3",
    "m4a",
    "mp4",
    "aac",
    "3gp",
    "3gpp",
    "webm",
    "weba",
    "mka",
    "amr",
)
MIN_DURATION_S = 0.5
MAX_DURATION_S = 300.0  # 5 minutes
# Beyond these a file is refused from its header: the highest rate studio recorders write, and
# 7.1 surround. Decoding work grows with both, though memory no longer does.
MAX_SAMPLE_RATE_HZ = 192_000
MAX_CHANNELS = 8
# Levels are those of the clip's loudest half second (see active_level_dbfs): an overall RMS
# would punish pauses, and RAVDESS clips are half silence.
SILENCE_DBFS = -60.0  # below this there is nothing to judge (quietest RAVDESS clip: -57)

# Caveat thresholds for assess_quality.
QUIET_DBFS = -45.0  # flags ~7% of RAVDESS clips and no TESS clip
CLIPPED_LEVEL = 0.99  # |sample| at or above this counts as clipped
CLIPPED_FRACTION = 0.005
MIN_SPEECH_S = 1.0  # training clips hold about 1-2.5 s of speech
# A recording holding less than this share of the band a model hears lacks part of it: a file
# at a low rate, or one band-limited before it was saved (an upsampled phone call holds nothing
# above 4 kHz; at 16 kHz every training corpus reaches 7-8 kHz, in 60 clips each the lowest
# ASED clip 4.0 and EmoSpeech 4.5 kHz).
BAND_LIMITED_SHARE = 0.8

_SUPPORTED = ", ".join(SUPPORTED_FORMATS)
_UNKNOWN_FRAMES = 2**63 - 1  # libsndfile's SF_COUNT_MAX: the header does not state a length
_BLOCK_SAMPLES = 1 << 14  # per read, all channels: small enough to salvage cut files
_HEAD_BYTES = 64  # enough to recognise the containers below
_FRAME_S = 0.02  # for levels and speech estimates
_ACTIVE_S = 0.5  # active_level_dbfs looks at this much of the loudest audio
_VAD_FLOOR_DBFS = -70.0
_AUDIBLE_DB = -50.0  # against the speech band's (300 Hz - 3 kHz) median level
_WAV_DATA_LOG = re.compile(r"^data : (\d+) \(should be (\d+)\)", re.MULTILINE)


@dataclass(frozen=True, eq=False)
class Audio:
    """A decoded clip: mono float32 ``samples`` at ``sample_rate_hz``, and where it came from."""

    samples: np.ndarray
    sample_rate_hz: int
    source_sample_rate_hz: int
    source_channels: int
    # The decoder stopped early on damaged data; ``samples`` hold what came before it.
    truncated: bool = False

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz

    @functools.cached_property
    def band_held_hz(self) -> float:
        """The highest frequency the recording holds: half its file's rate, or lower where its
        sound stops (an upsampled phone call). Measured once per clip: a Welch spectrum, about
        5 ms for 4 s, which both the hand-off and the caveats read."""
        audible_hz = audible_bandwidth_hz(self.samples, sample_rate_hz=self.sample_rate_hz)
        return min(self.source_sample_rate_hz / 2, audible_hz)


class _Decoded(NamedTuple):
    samples: np.ndarray  # mono float32 at the asked rate
    source_frames: int  # frames decoded, at the source rate
    source_rate_hz: int
    source_channels: int
    truncated: bool


# ---------------------------------------------------------------------------- loading


def load_audio(
    source: str | os.PathLike[str] | bytes,
    *,
    sample_rate_hz: int,
    min_duration_s: float = MIN_DURATION_S,
    max_duration_s: float = MAX_DURATION_S,
    name: str | None = None,
) -> Audio:
    """Decode a file path or raw file bytes to mono float32 at ``sample_rate_hz``.

    Raises ``AudioError`` (a subclass of it) for anything unusable; ``name`` (else the path's
    file name) identifies the clip in the message.
    """
    if sample_rate_hz <= 0:
        raise ValueError(f"sample_rate_hz must be positive, not {sample_rate_hz}")
    if isinstance(source, bytearray | memoryview):
        source = bytes(source)
    who = _display_name(source, name)
    with _opened(source, who) as file_obj:
        head = file_obj.read(_HEAD_BYTES)
        if not head:
            raise EmptyAudioError(f"{who} is empty (0 bytes).")
        container = _container(head)
        _refuse_unsupported(container, who)
        file_obj.seek(0)
        limits = {"sample_rate_hz": sample_rate_hz, "max_duration_s": max_duration_s}
        if container in _AV_DEMUXERS:
            decoded = _decode_av(file_obj, who, demuxer=_AV_DEMUXERS[container], **limits)
        else:
            decoded = _decode(file_obj, who, **limits)
    _check_duration(decoded.source_frames / decoded.source_rate_hz, who, decoded, min_duration_s)
    _check_level(decoded.samples, who, sample_rate_hz=sample_rate_hz)
    return Audio(
        samples=decoded.samples,
        sample_rate_hz=sample_rate_hz,
        source_sample_rate_hz=decoded.source_rate_hz,
        source_channels=decoded.source_channels,
        truncated=decoded.truncated,
    )


def resample(samples: np.ndarray, *, from_rate_hz: int, to_rate_hz: int) -> np.ndarray:
    """soxr "HQ" resampling sized like ``librosa.resample``: ``ceil(len * to / from)`` samples."""
    if from_rate_hz == to_rate_hz:
        return samples
    out = soxr.resample(samples, from_rate_hz, to_rate_hz, quality="HQ")
    size = math.ceil(len(samples) * to_rate_hz / from_rate_hz)
    if len(out) < size:
        out = np.pad(out, (0, size - len(out)))
    return np.ascontiguousarray(out[:size], dtype=samples.dtype)


def _display_name(source: str | os.PathLike[str] | bytes, name: str | None) -> str:
    if name:
        return f"'{printable(name)}'"
    if isinstance(source, bytes):
        return "The audio"
    return f"'{printable(Path(source).name or os.fspath(source))}'"


# C0 and C1 controls, DEL, and the marks that reorder text: shown as escapes, never obeyed.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(name: str) -> str:
    """``name`` safe to print or show: bytes that are not UTF-8 (a file name may hold any)
    become ``\\xNN``, and control characters, which could drive a terminal, become escapes."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _UNPRINTABLE.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)


_KINDS = (
    (stat.S_ISDIR, "is a folder, not an audio file"),
    (stat.S_ISFIFO, "is a pipe (FIFO), not a regular file"),
    (stat.S_ISSOCK, "is a socket, not a regular file"),
    (stat.S_ISCHR, "is a device, not a regular file"),
    (stat.S_ISBLK, "is a device, not a regular file"),
)


def not_regular(mode: int) -> str | None:
    """Why a file of this ``st_mode`` must not be opened for reading, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((why for test, why in _KINDS if test(mode)), "is not a regular file")


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a regular file for reading; ``OSError`` for anything else, before it can block.

    Opening a FIFO waits for a writer and reading a device may never end, so the kind is
    checked before opening and again on what was opened (the name may be swapped between).
    """
    why = not_regular(os.stat(path).st_mode)
    if why is None:
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        descriptor = os.open(path, flags)
        why = not_regular(os.fstat(descriptor).st_mode)
        if why is None:
            os.set_blocking(descriptor, True)
            return os.fdopen(descriptor, "rb")
        os.close(descriptor)
    raise OSError(0, why, os.fspath(path))


@contextmanager
def _opened(source: str | os.PathLike[str] | bytes, who: str) -> Iterator[BinaryIO]:
    """The source as a file object; refuses missing, unreadable and special files."""
    if isinstance(source, bytes):
        yield io.BytesIO(source)
        return
    try:
        file_obj = open_regular(source)
    except FileNotFoundError:
        raise AudioError(f"{who} was not found.") from None
    except PermissionError:
        raise AudioError(f"{who} cannot be read: permission denied.") from None
    except OSError as error:
        if error.errno == 0:  # from open_regular: not a regular file
            raise AudioError(f"{who} {error.strerror}.") from None
        raise AudioError(f"{who} could not be opened ({error.strerror}).") from error
    with file_obj:
        yield file_obj


def _container(head: bytes) -> str | None:
    """Name the containers libsndfile cannot decode, from their magic bytes."""
    if head[4:8] == b"ftyp":  # ISO base media: M4A, MP4, MOV, 3GP
        brand = head[8:12]
        if brand[:3] in (b"M4A", b"M4B", b"M4P"):
            return "M4A"
        return "3GP" if brand[:3] in (b"3gp", b"3g2") else "MP4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML
        return "WebM" if b"webm" in head else "Matroska"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):  # ASF
        return "WMA"
    if head.startswith(b"#!AMR"):
        return "AMR"
    if head[:2] in (b"\xff\xf1", b"\xff\xf9"):  # ADTS: MPEG audio's reserved layer, so not MP3
        return "AAC"
    return None


# The FFmpeg demuxer for each container PyAV decodes; the others named above are refused.
_AV_DEMUXERS = {
    "M4A": "mov",
    "MP4": "mov",
    "3GP": "mov",
    "WebM": "matroska",
    "Matroska": "matroska",
    "AMR": "amr",
    "AAC": "aac",
}


def _refuse_unsupported(container: str | None, who: str) -> None:
    if container is not None and container not in _AV_DEMUXERS:
        raise UnsupportedFormatError(
            f"{who} is {container} audio. {container} is not supported; supported formats: "
            f"{_SUPPORTED}. Convert it to WAV and try again."
        )


def _decode(
    file_obj: BinaryIO, who: str, *, sample_rate_hz: int, max_duration_s: float
) -> _Decoded:
    """Read the header, refuse a clip too long (or too wide) before decoding it, then decode."""
    ogg_cut = _ogg_cut_short(file_obj)
    try:
        # A file object, not a name: soundfile would re-open the name, and cannot encode
        # one that is not UTF-8.
        with sf.SoundFile(file_obj) as file:
            _check_header(file, who, max_duration_s=max_duration_s, cut=ogg_cut)
            max_frames = math.floor(max_duration_s * file.samplerate)
            samples, frames, failed = _read_mono(
                _sf_blocks(file),
                who,
                from_rate_hz=file.samplerate,
                max_frames=max_frames,
                to_rate_hz=sample_rate_hz,
            )
            truncated = failed or ogg_cut or _cut_short(file, frames)
            return _Decoded(samples, frames, file.samplerate, file.channels, truncated)
    except AudioError:
        raise
    except MemoryError:
        raise _out_of_memory(who) from None
    except sf.LibsndfileError as error:
        raise _open_error(error.code, who) from error
    except Exception as error:  # soundfile raises TypeError, ValueError... on odd input
        raise DamagedAudioError(f"{who} is damaged and cannot be read.") from error


def _out_of_memory(who: str) -> AudioError:
    return AudioError(f"{who} could not be decoded: the server ran out of memory. Try again later.")


def _open_error(code: int, who: str) -> AudioError:
    # libsndfile's public error codes: 1 unrecognised format, 4 unsupported encoding.
    if code == 1:
        return UnsupportedFormatError(
            f"{who} is not a recognisable audio file. Supported formats: {_SUPPORTED}."
        )
    if code == 4:
        return UnsupportedFormatError(
            f"{who} uses an audio encoding that cannot be decoded. "
            "Save it as 16-bit WAV or FLAC and try again."
        )
    return DamagedAudioError(
        f"{who} is damaged or incomplete (perhaps cut short) and cannot be read."
    )


def _check_header(file: sf.SoundFile, who: str, *, max_duration_s: float, cut: bool) -> None:
    if file.samplerate <= 0 or file.channels <= 0:
        raise DamagedAudioError(f"{who} has a damaged header and cannot be read.")
    if file.frames == 0:
        if cut or _wav_declares_more(file):  # cut right after its header
            raise DamagedAudioError(
                f"{who} is damaged or incomplete (perhaps cut short): no audio could be decoded."
            )
        raise EmptyAudioError(f"{who} contains no audio (its header declares no samples).")
    known = file.frames != _UNKNOWN_FRAMES
    _check_limits(
        who,
        rate_hz=file.samplerate,
        channels=file.channels,
        duration_s=file.frames / file.samplerate if known else None,
        max_duration_s=max_duration_s,
    )


def _check_limits(
    who: str, *, rate_hz: int, channels: int, duration_s: float | None, max_duration_s: float
) -> None:
    """Refuse from the header what is too fast, too wide or too long, before decoding it."""
    if rate_hz <= 0 or channels <= 0:
        raise DamagedAudioError(f"{who} has a damaged header and cannot be read.")
    if rate_hz > MAX_SAMPLE_RATE_HZ:
        raise UnsupportedFormatError(
            f"{who} has a sample rate of {rate_hz:,} Hz; the maximum is "
            f"{MAX_SAMPLE_RATE_HZ:,} Hz. Resample it to 48 kHz and try again."
        )
    if channels > MAX_CHANNELS:
        raise UnsupportedFormatError(_too_many_channels(who, channels))
    if duration_s is not None and duration_s > max_duration_s:
        raise _too_long(duration_s, who, max_duration_s=max_duration_s)


def _too_many_channels(who: str, channels: int) -> str:
    return (
        f"{who} has {channels} channels; the maximum is {MAX_CHANNELS}. "
        "Mix it down to mono and try again."
    )


def _too_long(duration_s: float, who: str, *, max_duration_s: float) -> TooLongError:
    # Rounded apart so the two figures never read the same.
    actual, limit = _minutes_seconds(math.ceil(duration_s)), _minutes_seconds(max_duration_s)
    return TooLongError(
        f"{who} is too long ({actual}); the maximum is {limit} (minutes:seconds). "
        "Trim it and try again."
    )


def _minutes_seconds(duration_s: float) -> str:
    minutes, seconds = divmod(int(duration_s), 60)
    return f"{minutes}:{seconds:02d}"


def _sf_blocks(file: sf.SoundFile) -> Iterator[np.ndarray]:
    """The file's frames as float32 blocks of (frames, channels), one block at a time."""
    block_frames = max(1024, _BLOCK_SAMPLES // file.channels)
    while len(block := file.read(block_frames, dtype="float32", always_2d=True)):
        yield block


def _read_mono(
    blocks: Iterator[np.ndarray], who: str, *, from_rate_hz: int, max_frames: int, to_rate_hz: int
) -> tuple[np.ndarray, int, bool]:
    """Mono samples at ``to_rate_hz``, the source frames decoded, and whether an error
    stopped decoding (the samples then hold what came before it).

    Each block is mixed to mono and resampled as it is read, so memory holds the output
    and one block; a file that decodes past ``max_frames`` is refused as soon as it does.
    Streamed soxr gives the very samples one call on the whole clip gives (tested).
    """
    resampler = None
    if from_rate_hz != to_rate_hz:
        resampler = soxr.ResampleStream(from_rate_hz, to_rate_hz, 1, dtype="float32", quality="HQ")
    pieces: list[np.ndarray] = []
    total, failed = 0, False
    while total <= max_frames:
        try:
            block = next(blocks, None)
        except AudioError:
            raise
        except Exception:  # damaged or cut-short data: keep what decoded before it
            failed = True
            break
        if block is None:
            break
        total += len(block)
        mono = _to_mono(block)
        if not np.isfinite(mono).all():
            raise DamagedAudioError(f"{who} contains invalid samples (NaN or infinity).")
        pieces.append(mono if resampler is None else resampler.resample_chunk(mono))
    if total > max_frames:  # the header understated the length
        raise _too_long(total / from_rate_hz, who, max_duration_s=max_frames / from_rate_hz)
    if total == 0:
        if failed:
            raise DamagedAudioError(
                f"{who} is damaged or incomplete (perhaps cut short): no audio could be decoded."
            )
        raise EmptyAudioError(f"{who} contains no audio.")
    if resampler is not None:
        pieces.append(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    samples = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    return _sized(samples, math.ceil(total * to_rate_hz / from_rate_hz)), total, failed


# ---------------------------------------------------------------------------- PyAV


def _decode_av(
    file_obj: BinaryIO, who: str, *, demuxer: str, sample_rate_hz: int, max_duration_s: float
) -> _Decoded:
    """As ``_decode``, through FFmpeg: the header's limits first, then block by block."""
    import av  # here, not at the top: the app's start-up does not pay for FFmpeg's libraries

    try:
        with av.open(file_obj, mode="r", format=demuxer) as container:
            if not container.streams.audio:
                raise EmptyAudioError(f"{who} holds no sound track (a video without audio?).")
            stream = container.streams.audio[0]
            rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
            declared_s = _av_duration_s(container, stream)
            limits = {"duration_s": declared_s, "max_duration_s": max_duration_s}
            _check_limits(who, rate_hz=rate, channels=channels, **limits)
            # HE-AAC can state its core rate and decode at twice it: the first frame decides.
            decoded = container.decode(stream)
            first = next(decoded, None)
            if first is None:
                raise EmptyAudioError(f"{who} contains no audio.")
            rate, channels = first.sample_rate, len(first.layout.channels)
            _check_limits(who, rate_hz=rate, channels=channels, **limits)
            samples, frames, failed = _read_mono(
                _av_blocks(itertools.chain([first], decoded), who, rate_hz=rate),
                who,
                from_rate_hz=rate,
                max_frames=math.floor(max_duration_s * rate),
                to_rate_hz=sample_rate_hz,
            )
            cut = declared_s is not None and frames < 0.95 * declared_s * rate
            return _Decoded(samples, frames, rate, channels, failed or cut)
    except AudioError:
        raise
    except MemoryError:
        raise _out_of_memory(who) from None
    except Exception as error:  # FFmpeg could not open it: its data do not fit its header
        raise DamagedAudioError(
            f"{who} is damaged or incomplete (perhaps cut short) and cannot be read."
        ) from error


def _av_duration_s(container: object, stream: object) -> float | None:
    """The length the header states, or None where it states none (a live WebM recording)."""
    if stream.duration and stream.time_base:  # type: ignore[attr-defined]
        return float(stream.duration * stream.time_base)  # type: ignore[attr-defined]
    if container.duration:  # type: ignore[attr-defined]
        return container.duration / 1_000_000  # type: ignore[attr-defined]  # AV_TIME_BASE
    return None


# Full scale of each integer sample format FFmpeg decoders give ("p": one plane per channel).
_AV_FULL_SCALE = {"s16": 2.0**15, "s32": 2.0**31, "flt": 1.0, "dbl": 1.0}


def _av_blocks(frames: Iterator[object], who: str, *, rate_hz: int) -> Iterator[np.ndarray]:
    """Decoded frames as float32 blocks of (frames, channels), about a block at a time."""
    pending: list[np.ndarray] = []
    size = 0
    for frame in frames:
        if frame.sample_rate != rate_hz:  # type: ignore[attr-defined]
            raise DamagedAudioError(f"{who} changes its sample rate part-way and cannot be read.")
        block = _av_frame(frame, who)
        pending.append(block)
        size += block.size
        if size >= _BLOCK_SAMPLES:
            yield pending[0] if len(pending) == 1 else np.concatenate(pending)
            pending, size = [], 0
    if pending:
        yield np.concatenate(pending)


def _av_frame(frame: object, who: str) -> np.ndarray:
    name = frame.format.name.removesuffix("p")  # type: ignore[attr-defined]
    channels = len(frame.layout.channels)  # type: ignore[attr-defined]
    if name not in _AV_FULL_SCALE and name != "u8":
        raise UnsupportedFormatError(
            f"{who} uses an audio encoding that cannot be decoded. "
            "Save it as 16-bit WAV or FLAC and try again."
        )
    if channels > MAX_CHANNELS:  # a stream may change its layout after the header
        raise UnsupportedFormatError(_too_many_channels(who, channels))
    array = frame.to_ndarray()  # type: ignore[attr-defined]
    planes = array if frame.format.is_planar else array.reshape(-1, channels).T  # type: ignore[attr-defined]
    if name == "u8":
        return ((planes.astype(np.float32) - 128) / 128).T
    return (planes.astype(np.float32) / np.float32(_AV_FULL_SCALE[name])).T


def _sized(samples: np.ndarray, size: int) -> np.ndarray:
    """Padded or cut to ``size``, as ``librosa.resample`` sizes its output."""
    if len(samples) < size:
        samples = np.pad(samples, (0, size - len(samples)))
    return np.ascontiguousarray(samples[:size], dtype=np.float32)


def _cut_short(file: sf.SoundFile, decoded_frames: int) -> bool:
    """Whether the file holds clearly less audio than its header declares."""
    # A cut MP3 decodes fewer frames than its Xing header states.
    if file.frames != _UNKNOWN_FRAMES and decoded_frames < 0.95 * file.frames:
        return True
    return _wav_declares_more(file)


_OGG_PAGE = b"OggS\x00"  # capture pattern and stream structure version 0
_OGG_EOS = 0x04  # header-type flag of a stream's last page
_OGG_MAX_PAGE_BYTES = 65_307


def _ogg_cut_short(file_obj: BinaryIO) -> bool:
    """Whether an Ogg file (Vorbis, Opus) ends before its stream does.

    libsndfile takes an Ogg file's length from its last page, so a cut file looks complete;
    but a stream's last page carries the end-of-stream flag, and a cut file's last page either
    does not, or is shorter than its header says (page layout: RFC 3533). Leaves ``file_obj``
    at its start.
    """
    try:
        if file_obj.read(len(_OGG_PAGE)) != _OGG_PAGE:
            return False
        size = file_obj.seek(0, io.SEEK_END)
        file_obj.seek(max(0, size - _OGG_MAX_PAGE_BYTES))
        tail = file_obj.read()
    finally:
        file_obj.seek(0)
    page = tail[tail.rfind(_OGG_PAGE) :] if _OGG_PAGE in tail else b""
    if len(page) < 27 or len(page) < 27 + page[26]:  # its header cut
        return True
    segments = page[27 : 27 + page[26]]
    complete = len(page) >= 27 + len(segments) + sum(segments)
    return not (complete and page[5] & _OGG_EOS)


def _wav_declares_more(file: sf.SoundFile) -> bool:
    """Whether a WAV's header declares more audio data than the file holds."""
    # libsndfile quietly shortens a cut WAV to the bytes present, and logs the mismatch.
    match = _WAV_DATA_LOG.search(file.extra_info)
    if not match:
        return False
    declared, present = int(match[1]), int(match[2])
    return declared not in (0, 0xFFFFFFFF) and declared > present  # 0 and ~0: length unknown


def _to_mono(frames: np.ndarray) -> np.ndarray:
    if frames.shape[1] == 1:
        return np.ascontiguousarray(frames[:, 0])
    return np.mean(frames.T, axis=0)  # as librosa.to_mono, for bit-identical samples


def _check_duration(duration_s: float, who: str, decoded: _Decoded, min_duration_s: float) -> None:
    if duration_s >= min_duration_s:
        return
    if decoded.truncated:
        raise DamagedAudioError(
            f"{who} is damaged or cut short: only {duration_s:.2f} s could be decoded, "
            f"and at least {min_duration_s:g} s is needed."
        )
    raise TooShortError(
        f"{who} is too short ({duration_s:.2f} s); it must be at least {min_duration_s:g} s long."
    )


def _check_level(samples: np.ndarray, who: str, *, sample_rate_hz: int) -> None:
    level = active_level_dbfs(samples, sample_rate_hz=sample_rate_hz)
    if level == -math.inf:
        raise SilentAudioError(f"{who} is silent (every sample is zero or constant).")
    if level < SILENCE_DBFS:
        # Rounded down, so the figure never reads as equal to the limit.
        raise SilentAudioError(
            f"{who} is too quiet to judge: its loudest part is at {math.floor(level)} dBFS, "
            f"below the {SILENCE_DBFS:.0f} dBFS minimum. Record closer to the microphone."
        )


# ---------------------------------------------------------------------------- measuring


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale (a full-scale square wave is 0 dBFS).

    The mean is removed first, so a DC offset does not pass for sound.
    """
    if not len(samples):
        return -math.inf
    centred = samples - np.mean(samples, dtype=np.float64)
    rms = math.sqrt(float(np.mean(np.square(centred, dtype=np.float64))))
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def clipped_fraction(samples: np.ndarray) -> float:
    """Share of samples at or beyond ``CLIPPED_LEVEL`` of full scale."""
    if not len(samples):
        return 0.0
    return float(np.count_nonzero(np.abs(samples) >= CLIPPED_LEVEL)) / len(samples)


def active_level_dbfs(samples: np.ndarray, *, sample_rate_hz: int) -> float:
    """RMS level of the loudest half second (its loudest 20 ms frames), in dBFS.

    Unlike ``level_dbfs`` it ignores pauses, so long silences do not make speech "quiet".
    """
    centred = samples - np.mean(samples, dtype=np.float64)
    power = _frame_powers(centred, sample_rate_hz=sample_rate_hz)
    if not power.size:
        return -math.inf
    loudest = np.sort(power)[-max(1, round(_ACTIVE_S / _FRAME_S)) :]
    mean_power = float(np.mean(loudest))
    return 10 * math.log10(mean_power) if mean_power > 0 else -math.inf


def speech_duration_s(samples: np.ndarray, *, sample_rate_hz: int) -> float:
    """Rough seconds of speech: 20 ms frames that stand well above the background.

    An energy estimate, not a speech detector: it counts any sound that stands out.
    """
    frame_db = 10 * np.log10(
        np.maximum(_frame_powers(samples, sample_rate_hz=sample_rate_hz), 1e-12)
    )
    if not frame_db.size:
        return 0.0
    loudest, floor = float(frame_db.max()), float(np.percentile(frame_db, 10))
    # Within 40 dB of the loudest frame, and clear of a steady noise floor (if there is one).
    threshold = max(_VAD_FLOOR_DBFS, loudest - 40.0, min(floor + 6.0, loudest - 10.0))
    return float(np.count_nonzero(frame_db > threshold)) * _FRAME_S


def _frame_powers(samples: np.ndarray, *, sample_rate_hz: int) -> np.ndarray:
    """Mean square of each whole 20 ms frame."""
    frame = max(1, round(_FRAME_S * sample_rate_hz))
    n_frames = len(samples) // frame
    frames = samples[: n_frames * frame].reshape(n_frames, frame)
    return np.mean(np.square(frames, dtype=np.float64), axis=1)


def audible_bandwidth_hz(samples: np.ndarray, *, sample_rate_hz: int) -> float:
    """The highest frequency whose long-term level is within 50 dB of the speech band's.

    A file's rate says what it could hold, not what was recorded: a phone call saved at
    44.1 kHz holds nothing above 4 kHz. Returns the Nyquist frequency when there is no sound.
    """
    from scipy.signal import welch

    nyquist_hz = sample_rate_hz / 2
    if len(samples) < 64:
        return nyquist_hz
    frequencies, power = welch(samples, fs=sample_rate_hz, nperseg=min(512, len(samples)))
    speech_band = power[(frequencies >= 300) & (frequencies <= 3000)]
    reference = float(np.median(speech_band)) if speech_band.size else 0.0
    if reference <= 0:
        return nyquist_hz
    audible = np.flatnonzero(power > reference * 10 ** (_AUDIBLE_DB / 10))
    return float(frequencies[audible[-1]]) if audible.size else nyquist_hz


def fills_band(band_hz: float, *, heard_band_hz: float) -> bool:
    """Whether a recording holding frequencies up to ``band_hz`` fills a model's band (all
    but its top fifth): if not, the model takes the missing band for a cue."""
    return band_hz >= BAND_LIMITED_SHARE * heard_band_hz


def assess_quality(audio: Audio, *, heard_band_hz: float | None = None) -> list[str]:
    """Plain-language caveats about a usable clip; empty when nothing stands out.

    ``heard_band_hz``: the band the model's features hold (``FeatureConfig.heard_band_hz``),
    half the clip's rate unless the model is band-limited.
    """
    heard_hz = audio.sample_rate_hz / 2 if heard_band_hz is None else heard_band_hz
    caveats = []
    if audio.truncated:
        caveats.append(
            f"The file seems to be cut short: only the first {audio.duration_s:.1f} s "
            "could be decoded."
        )
    if not fills_band(audio.source_sample_rate_hz / 2, heard_band_hz=heard_hz):
        caveats.append(  # see ser.bench channels
            f"The recording's sample rate is low ({audio.source_sample_rate_hz / 1000:g} kHz), "
            "so it lacks high frequencies the model learnt from."
        )
    elif not fills_band(audible_hz := audio.band_held_hz, heard_band_hz=heard_hz):
        caveats.append(
            f"The recording holds almost nothing above {audible_hz / 1000:.1f} kHz "
            "(as a phone call or another low-rate recording does), so it lacks high "
            "frequencies the model learnt from and the result may be much less reliable."
        )
    level = active_level_dbfs(audio.samples, sample_rate_hz=audio.sample_rate_hz)
    if level < QUIET_DBFS:
        caveats.append(
            f"The recording is very quiet (its loudest part is at {math.floor(level)} dBFS), "
            "so the result may be less reliable."
        )
    clipped = clipped_fraction(audio.samples)
    if clipped > CLIPPED_FRACTION:
        caveats.append(
            f"{clipped:.1%} of the samples are clipped at full scale, "
            "so the sound is distorted and the result may be less reliable."
        )
    speech_s = speech_duration_s(audio.samples, sample_rate_hz=audio.sample_rate_hz)
    if speech_s < MIN_SPEECH_S:
        caveats.append(
            f"Only about {speech_s:.1f} s of speech was found, much less than in the clips "
            "the model learnt from, so the result may be less reliable."
        )
    return caveats


# ---------------------------------------------------------------------------- channels
# What another corpus or microphone may do to a clip: for training variants and for
# measuring a model's robustness (``python -m ser.bench channels``).


def band_limited(samples: np.ndarray, *, sample_rate_hz: int, source_rate_hz: int) -> np.ndarray:
    """``samples`` as if recorded at ``source_rate_hz``: nothing above half that rate."""
    if source_rate_hz >= sample_rate_hz:
        return samples
    down = resample(samples, from_rate_hz=sample_rate_hz, to_rate_hz=source_rate_hz)
    return resample(down, from_rate_hz=source_rate_hz, to_rate_hz=sample_rate_hz)[: len(samples)]


def with_noise(samples: np.ndarray, *, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``samples`` plus white noise ``snr_db`` below their overall RMS level."""
    rms = np.sqrt(np.mean(samples**2)) + 1e-9
    noise = rng.standard_normal(len(samples)).astype(np.float32)
    return samples + noise * rms / (10 ** (snr_db / 20))


# ---------------------------------------------------------------------------- playback


def to_wav_bytes(samples: np.ndarray, *, sample_rate_hz: int) -> bytes:
    """A 16-bit PCM WAV file of mono ``samples`` (floats in [-1, 1]; beyond is clipped)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"samples must be one-dimensional (mono), not shape {samples.shape}")
    # Clip and zero NaN explicitly rather than trust each writer's float conversion.
    safe = np.clip(np.nan_to_num(samples), -1.0, 1.0)
    buffer = io.BytesIO()
    sf.write(buffer, safe, sample_rate_hz, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
