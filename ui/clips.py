"""Clip intake: uploads, recordings and the example become ``Clip``; each is recognised once
per session and model version, and a bad clip becomes an error message, never an exception."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from ser.audio import FILE_EXTENSIONS, MAX_DURATION_S, MIN_DURATION_S, SUPPORTED_FORMATS
from ser.errors import SERError
from ui import models
from ui.markdown import md

if TYPE_CHECKING:
    from streamlit.runtime.uploaded_file_manager import UploadedFile

    from ser.predict import Narrower, Recognizer, Result

log = logging.getLogger("ser.app")

EXAMPLE_CLIP = Path(__file__).resolve().parents[1] / "assets" / "example-speech.wav"
UPLOAD_TYPES = list(FILE_EXTENSIONS)
_MIME = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "opus": "audio/ogg",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "mp4": "audio/mp4",
    "aac": "audio/aac",
    "3gp": "audio/3gpp",
    "3gpp": "audio/3gpp",
    "webm": "audio/webm",
    "weba": "audio/webm",
    "mka": "audio/x-matroska",
    "amr": "audio/amr",
}


@dataclass(frozen=True)
class Clip:
    """One piece of audio as received: its name, bytes and MIME type."""

    name: str
    data: bytes
    mime: str = "audio/wav"

    @property
    def digest(self) -> str:
        return hashlib.sha1(self.data).hexdigest()


@dataclass(frozen=True)
class Outcome:
    """What became of one clip: a result, or the message saying why there is none."""

    clip: Clip
    model: str
    result: Result | None = None
    error: str | None = None


# ============================================================================ intake


def from_uploads(files: Sequence[UploadedFile] | UploadedFile | None) -> list[Clip]:
    if files is None:
        return []
    if not isinstance(files, Sequence):
        files = [files]
    return [
        Clip(f.name, f.getvalue(), _MIME.get(Path(f.name).suffix.lower().lstrip("."), f.type))
        for f in files
    ]


def from_recording(recording: UploadedFile | None) -> list[Clip]:
    if recording is None:
        return []
    return [Clip("recording.wav", recording.getvalue(), "audio/wav")]


def example() -> list[Clip]:
    return [Clip(EXAMPLE_CLIP.name, EXAMPLE_CLIP.read_bytes(), "audio/wav")]


def upload_help() -> str:
    limit_mb = st.get_option("server.maxUploadSize")
    return (
        f"{', '.join(SUPPORTED_FORMATS)}; {MIN_DURATION_S:g} s to {MAX_DURATION_S / 60:g} min "
        f"and up to {limit_mb} MB each. Several files give a table you can download."
    )


def _too_large(clip: Clip) -> str | None:
    """Checked in code too: the server's limit does not guard every way in (tests, proxies).

    In the browser's megabytes (10^6 bytes), which it enforces, not the server's (2^20): a file
    between the two was refused by the page but taken by anything that skipped it.
    """
    limit_mb = st.get_option("server.maxUploadSize")
    if len(clip.data) <= limit_mb * 1_000_000:
        return None
    return (
        f"'{clip.name}' is {len(clip.data) / 1_000_000:.1f} MB; the upload limit is "
        f"{limit_mb} MB. Trim it or save it as FLAC or MP3 and try again."
    )


# ============================================================================ recognition


def _narrower(recognizer: Recognizer) -> Narrower:
    """For the default model: the shipped model that a recording's rate fully feeds, if any."""
    from ser.predict import narrower_for

    return narrower_for(recognizer, models=models.usable_models, load=models.load_recognizer)


def _recognise_one(
    recognizer: Recognizer,
    clip: Clip,
    narrower: Narrower | None,
    progress: Callable[[float], None],
) -> Outcome:
    model = recognizer.info.name
    if (too_large := _too_large(clip)) is not None:
        return Outcome(clip, model, error=too_large)
    try:
        result = recognizer.recognise(
            clip.data, name=clip.name, narrower=narrower, progress=progress
        )
        return Outcome(clip, result.model, result=result)
    except SERError as error:
        return Outcome(clip, model, error=str(error))
    except Exception as error:  # a bug; one clip still must not take the page down
        log.exception("recognising %s failed", clip.name)
        return Outcome(
            clip,
            model,
            error=f"'{clip.name}' could not be processed because of an unexpected error "
            f"({type(error).__name__}). Try converting it to WAV.",
        )


def recognise(recognizer: Recognizer, clips: Sequence[Clip], *, key: str) -> list[Outcome]:
    """Each clip's outcome, computed once per session, clip content and model version."""
    memo_key = f"_outcomes_{key}"
    previous: dict[tuple[Any, ...], Outcome] = st.session_state.get(memo_key, {})
    version = models.model_version(recognizer.info)
    # Only the default hands recordings on: a model picked by hand answers everything itself.
    narrower = _narrower(recognizer) if models.is_default(recognizer.info) else None
    current: dict[tuple[Any, ...], Outcome] = {}
    outcomes = []
    bar = st.empty()  # a long clip's windows take seconds each minute of audio: show them

    def progress(i: int) -> Callable[[float], None]:
        return lambda done: bar.progress(
            (i + done) / len(clips), text=f"Listening to '{md(clips[i].name)}'…"
        )

    for i, clip in enumerate(clips):
        k = (version, clip.name, clip.digest)
        outcome = (
            current.get(k)
            or previous.get(k)
            or _recognise_one(recognizer, clip, narrower, progress(i))
        )
        current[k] = outcome
        outcomes.append(outcome)
    bar.empty()
    st.session_state[memo_key] = current  # only the clips on screen stay in memory
    return outcomes
