"""Find labelled clips in dataset folders, whatever known corpus layout they use.

``scan`` walks folders, labels each audio file from its name (RAVDESS, TESS, SAVEE,
CREMA-D, EmoDB) or, failing that, from an emotion-named parent folder, and reports
every file it did not use with a plain reason. Identical audio is kept once.
Files are only read, never written.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

import soundfile as sf

from ser.audio import MAX_CHANNELS, MAX_SAMPLE_RATE_HZ, not_regular, open_regular
from ser.emotions import ALL_EMOTIONS, Emotion
from ser.errors import DatasetError

AUDIO_EXTENSIONS: frozenset[str] = frozenset({".wav", ".flac", ".ogg", ".mp3"})

LAYOUTS_HELP: str = "\n".join(
    (
        "RAVDESS: Actor_01/03-01-05-01-01-01-01.wav - seven two-digit fields, the 3rd is the "
        "emotion (01-08), the last the actor; speech only (vocal channel 01).",
        "TESS: OAF_angry/OAF_back_angry.wav - speaker OAF or YAF, the emotion is the last part "
        "of the name (ps = pleasant surprise).",
        "SAVEE: DC_a01.wav or DC/a01.wav - speakers DC, JE, JK, KL; a angry, d disgust, "
        "f fear, h happy, n neutral, sa sad, su surprise.",
        "CREMA-D: 1001_DFA_ANG_XX.wav - speaker, sentence, emotion (ANG DIS FEA HAP NEU SAD), "
        "level.",
        "EmoDB: 03a01Fa.wav - two-digit speaker, text code, emotion letter (W A L E F T N), "
        "version; boredom (L) is not used.",
        "ASED: 01Neutral/n1-01-01-01-29.wav - folders 01Neutral 02Fearful 03Happy 04Sad "
        "05Angry; emotion letter and folder number, sentence, repetition, gender, speaker.",
        "EmoSpeech: webservice/help-safe-angry-1563000375725-0162...b.wav - keyword, "
        "environment, emotion (angry calm fearful happy), time stamp, speaker hash.",
        "Your own: one subfolder per emotion, e.g. angry/clip1.wav, happy/clip2.wav "
        "(angry, happy, sad, fear, disgust, surprise, neutral, calm, or common synonyms).",
    )
)

_UNRECOGNISED = "name not recognised as any known layout"
_PROBE_FRAMES = 1024  # a block from the middle: enough to tell clips apart cheaply


class Corpus(str, Enum):
    """The file-name layouts ``scan`` understands."""

    RAVDESS = "ravdess"
    TESS = "tess"
    SAVEE = "savee"
    CREMA_D = "crema-d"
    EMODB = "emodb"
    ASED = "ased"
    EMOSPEECH = "emospeech"
    FOLDERS = "folders"  # generic: one subfolder per emotion

    @property
    def title(self) -> str:
        """The corpus as people name it (``value`` is how file names and metadata do)."""
        return _CORPUS_TITLES[self]


_CORPUS_TITLES = {
    Corpus.RAVDESS: "RAVDESS",
    Corpus.TESS: "TESS",
    Corpus.SAVEE: "SAVEE",
    Corpus.CREMA_D: "CREMA-D",
    Corpus.EMODB: "EmoDB",
    Corpus.ASED: "ASED",
    Corpus.EMOSPEECH: "EmoSpeech",
    Corpus.FOLDERS: "own folders",
}


def corpus_title(name: str) -> str:
    """The title of a corpus named in saved metadata; a name this version does not know, as is."""
    try:
        return Corpus(name).title
    except ValueError:
        return name


@dataclass(frozen=True)
class LabelledClip:
    """One usable clip: its file, canonical emotion and corpus-qualified speaker."""

    path: Path
    emotion: str
    speaker: str
    corpus: Corpus


@dataclass(frozen=True)
class Skipped:
    """A file that was not used, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class ScanReport:
    """What ``scan`` found: usable clips, skipped files and dropped duplicates."""

    folders: tuple[Path, ...]
    clips: tuple[LabelledClip, ...]
    skipped: tuple[Skipped, ...]
    duplicates: tuple[tuple[Path, Path], ...]  # (kept, dropped)
    total_seconds: float

    def emotion_counts(self) -> dict[str, int]:
        """Clips per emotion, in canonical order, present emotions only."""
        counts = Counter(clip.emotion for clip in self.clips)
        return {e: counts[e] for e in ALL_EMOTIONS if counts[e]}

    def speaker_counts(self) -> dict[str, int]:
        counts = Counter(clip.speaker for clip in self.clips)
        return dict(sorted(counts.items()))

    def corpus_counts(self) -> dict[Corpus, int]:
        counts = Counter(clip.corpus for clip in self.clips)
        return {c: counts[c] for c in Corpus if counts[c]}

    @property
    def layouts(self) -> dict[str, int]:
        """Detected layouts by name ("ravdess", "tess", ...) with their clip counts."""
        return {c.value: n for c, n in self.corpus_counts().items()}

    @property
    def emotions(self) -> tuple[str, ...]:
        return tuple(self.emotion_counts())

    @property
    def speakers(self) -> tuple[str, ...]:
        return tuple(self.speaker_counts())

    @property
    def corpora(self) -> tuple[Corpus, ...]:
        return tuple(self.corpus_counts())


def ravdess_actor(speaker: str) -> int | None:
    """The actor number (1-24) of a RAVDESS speaker such as "ravdess:07", else None."""
    prefix = f"{Corpus.RAVDESS.value}:"
    number = speaker.removeprefix(prefix)
    if not speaker.startswith(prefix) or not number.isdigit():
        return None
    return int(number)


# --- labelling from names -------------------------------------------------------------

_E = Emotion
_RAVDESS_EMOTIONS = {f"{i:02d}": e.value for i, e in enumerate(Emotion, start=1)}
_TESS_SPEAKERS = {"OAF": "OAF", "YAF": "YAF", "OA": "OAF"}  # "OA_bite_neutral" is a typo
_SAVEE_SPEAKERS = frozenset({"DC", "JE", "JK", "KL"})
_SAVEE_EMOTIONS = {
    "a": _E.ANGRY,
    "d": _E.DISGUST,
    "f": _E.FEARFUL,
    "h": _E.HAPPY,
    "n": _E.NEUTRAL,
    "sa": _E.SAD,
    "su": _E.SURPRISED,
}
_CREMA_EMOTIONS = {
    "ANG": _E.ANGRY,
    "DIS": _E.DISGUST,
    "FEA": _E.FEARFUL,
    "HAP": _E.HAPPY,
    "NEU": _E.NEUTRAL,
    "SAD": _E.SAD,
}
_EMODB_EMOTIONS = {
    "W": _E.ANGRY,
    "E": _E.DISGUST,
    "A": _E.FEARFUL,
    "F": _E.HAPPY,
    "T": _E.SAD,
    "N": _E.NEUTRAL,
}
# Folder names (generic layout) and TESS name endings, lower case.
_EMOTION_WORDS = {
    **{e.value: e for e in Emotion},
    "anger": _E.ANGRY,
    "ang": _E.ANGRY,
    "happiness": _E.HAPPY,
    "joy": _E.HAPPY,
    "sadness": _E.SAD,
    "fear": _E.FEARFUL,
    "scared": _E.FEARFUL,
    "disgusted": _E.DISGUST,
    "surprise": _E.SURPRISED,
    "ps": _E.SURPRISED,
    "pleasant_surprise": _E.SURPRISED,
}

_RAVDESS_NAME = re.compile(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)")
_TESS_NAME = re.compile(r"(OAF|YAF|OA)_(.+)_([a-z]+)", re.IGNORECASE)
_SAVEE_NAME = re.compile(r"(DC|JE|JK|KL)_([a-z]{1,2})(\d\d)", re.IGNORECASE)
_SAVEE_SHORT_NAME = re.compile(r"([a-z]{1,2})(\d\d)", re.IGNORECASE)  # inside DC/ etc.
_CREMA_NAME = re.compile(r"(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})", re.IGNORECASE)
_EMODB_NAME = re.compile(r"(\d\d)([a-z]\d\d)([A-Z])([a-z])")
_ASED_NAME = re.compile(r"([nfhsa])([1-5])-(\d\d)-(\d\d)-(\d\d)-(\d\d)", re.IGNORECASE)
_ASED_LETTERS = {"n": _E.NEUTRAL, "f": _E.FEARFUL, "h": _E.HAPPY, "s": _E.SAD, "a": _E.ANGRY}
_ASED_FOLDER = re.compile(r"0([1-5])(Neutral|Fearful|Happy|Sad|Angry)", re.IGNORECASE)
_EMOSPEECH_NAME = re.compile(r"([^-]+)-([^-]+)-(angry|calm|fearful|happy)-([^-]+)-([0-9a-f]{16,})")

# A parser returns None when the name is not its layout, a reason when it is but the
# clip cannot be used, and a clip otherwise.
_Parsed = LabelledClip | str | None


def _clip(path: Path, emotion: Emotion, corpus: Corpus, speaker: str) -> LabelledClip:
    return LabelledClip(path, emotion.value, f"{corpus.value}:{speaker}", corpus)


def _parse_ravdess(path: Path) -> _Parsed:
    match = _RAVDESS_NAME.fullmatch(path.stem)
    if match is None:
        return None
    modality, channel, emotion, *_, actor = match.groups()
    if modality != "03":
        return f"not audio-only (modality {modality})"
    if channel == "02":
        return "song, not speech"
    if channel != "01":
        return f"unknown vocal channel {channel}"
    if emotion not in _RAVDESS_EMOTIONS:
        return f"unknown emotion code {emotion}"
    return _clip(path, Emotion(_RAVDESS_EMOTIONS[emotion]), Corpus.RAVDESS, actor)


def _parse_crema_d(path: Path) -> _Parsed:
    match = _CREMA_NAME.fullmatch(path.stem)
    if match is None:
        return None
    speaker, _sentence, code, _level = match.groups()
    emotion = _CREMA_EMOTIONS.get(code.upper())
    if emotion is None:
        return f"unknown emotion code {code}"
    return _clip(path, emotion, Corpus.CREMA_D, speaker)


def _parse_savee(path: Path) -> _Parsed:
    match = _SAVEE_NAME.fullmatch(path.stem)
    if match is not None:
        speaker, code, _number = match.groups()
    elif path.parent.name.upper() in _SAVEE_SPEAKERS and (
        short := _SAVEE_SHORT_NAME.fullmatch(path.stem)
    ):
        speaker, code = path.parent.name, short.group(1)
    else:
        return None
    emotion = _SAVEE_EMOTIONS.get(code.lower())
    if emotion is None:
        return f"unknown emotion code {code}"
    return _clip(path, emotion, Corpus.SAVEE, speaker.upper())


def _parse_emodb(path: Path) -> _Parsed:
    match = _EMODB_NAME.fullmatch(path.stem)
    if match is None:
        return None
    speaker, _text, code, _version = match.groups()
    if code == "L":
        return "boredom is not one of the 8 emotions"
    emotion = _EMODB_EMOTIONS.get(code)
    if emotion is None:
        return f"unknown emotion code {code}"
    return _clip(path, emotion, Corpus.EMODB, speaker)


def _parse_tess(path: Path) -> _Parsed:
    match = _TESS_NAME.fullmatch(path.stem)
    if match is None:
        return None
    prefix, _word, ending = match.groups()
    emotion = _EMOTION_WORDS.get(ending.lower())
    if emotion is None:
        return f"unknown emotion '{ending}'"
    # The folder (OAF_angry, YAF_fear...) names the speaker even when the file has a typo.
    folder_speaker = path.parent.name.split("_")[0].upper()
    speaker = folder_speaker if folder_speaker in ("OAF", "YAF") else prefix.upper()
    return _clip(path, emotion, Corpus.TESS, _TESS_SPEAKERS[speaker])


def _parse_ased(path: Path) -> _Parsed:
    match = _ASED_NAME.fullmatch(path.stem)
    if match is None:
        return None
    letter, _number, _sentence, _repetition, _gender, speaker = match.groups()
    # The folder is the judged label (a few speakers carry both gender codes, so only the
    # speaker number names a speaker); a renamed copy without the folders falls back on the letter.
    folder = _ASED_FOLDER.fullmatch(path.parent.name)
    emotion = _EMOTION_WORDS[folder.group(2).lower()] if folder else _ASED_LETTERS[letter.lower()]
    return _clip(path, emotion, Corpus.ASED, speaker)


def _parse_emospeech(path: Path) -> _Parsed:
    match = _EMOSPEECH_NAME.fullmatch(path.stem)
    if match is None:
        return None
    _keyword, _environment, emotion, _timestamp, speaker = match.groups()
    return _clip(path, _EMOTION_WORDS[emotion], Corpus.EMOSPEECH, speaker[:12])


def _parse_folders(path: Path) -> _Parsed:
    emotion = _EMOTION_WORDS.get(path.parent.name.lower())
    return None if emotion is None else _clip(path, emotion, Corpus.FOLDERS, "unknown")


# Strict file-name patterns first; the folder-name rule is the fallback.
_PARSERS: tuple[Callable[[Path], _Parsed], ...] = (
    _parse_ravdess,
    _parse_crema_d,
    _parse_savee,
    _parse_emodb,
    _parse_tess,
    _parse_ased,
    _parse_emospeech,
    _parse_folders,
)


def label_file(path: Path) -> LabelledClip | str:
    """The clip a file name describes, or the reason it cannot be used (no file access)."""
    suffix = path.suffix.lower()
    if suffix not in AUDIO_EXTENSIONS:
        return f"not an audio file ({suffix or 'no extension'})"
    for parser in _PARSERS:
        parsed = parser(path)
        if parsed is not None:
            return parsed
    return _UNRECOGNISED


# --- walking and reading --------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    """A labelled clip whose header was read."""

    clip: LabelledClip
    root: Path
    frames: int
    sample_rate: int
    channels: int


def _describe(error: Exception) -> str:
    text = getattr(error, "error_string", None) or getattr(error, "strerror", None)
    return f"unreadable: {text or error}"


def _walk(root: Path, skipped: list[Skipped]) -> Iterator[Path]:
    """Files under root in sorted order; hidden files and folders are ignored."""

    def on_error(error: OSError) -> None:
        skipped.append(Skipped(Path(error.filename or root), _describe(error)))

    for folder, dirs, files in os.walk(root, onerror=on_error):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder, name)


def _list_files(roots: Sequence[Path], skipped: list[Skipped]) -> list[tuple[Path, Path]]:
    """(root, file) pairs; a file under two given (resolved) folders is listed once."""
    seen: set[Path] = set()
    found: list[tuple[Path, Path]] = []
    for root in roots:
        for path in _walk(root, skipped):
            if path not in seen:
                seen.add(path)
                found.append((root, path))
    return found


@contextmanager
def _sound(path: Path) -> Iterator[sf.SoundFile]:
    """The clip, opened only if it is a regular file (a FIFO or a device would block the scan
    for good), through a file object, which also takes a name that is not UTF-8."""
    with open_regular(path) as handle, sf.SoundFile(handle) as sound:
        yield sound


def _inspect(root: Path, path: Path) -> _Found | Skipped:
    labelled = label_file(path)
    if isinstance(labelled, str):
        return Skipped(path, labelled)
    try:
        why = not_regular(os.stat(path).st_mode)
        if why is not None:  # said plainly here; open_regular would refuse it too
            return Skipped(path, why.removeprefix("is "))
        with _sound(path) as sound:
            frames, rate, channels = sound.frames, sound.samplerate, sound.channels
    except (RuntimeError, OSError) as error:
        return Skipped(path, _describe(error))
    if frames <= 0:
        return Skipped(path, "empty audio (no samples)")
    if rate > MAX_SAMPLE_RATE_HZ or channels > MAX_CHANNELS:  # ser.audio refuses these too
        return Skipped(
            path,
            f"{rate:,} Hz x {channels} channels, beyond the "
            f"{MAX_SAMPLE_RATE_HZ:,} Hz x {MAX_CHANNELS} accepted",
        )
    return _Found(labelled, root, frames, rate, channels)


def _with_help(message: str) -> str:
    return f"{message}\n\nLayouts understood:\n{LAYOUTS_HELP}"


def _check_root(folder: str | Path) -> Path:
    root = Path(folder).expanduser().resolve()
    if not root.exists():
        raise DatasetError(_with_help(f"Dataset folder not found: {root}"))
    if not root.is_dir():
        raise DatasetError(_with_help(f"Not a folder: {root}"))
    if not os.access(root, os.R_OK | os.X_OK):
        raise DatasetError(f"Dataset folder cannot be read: {root}")
    return root


def _require_usable(
    roots: Sequence[Path], found: Sequence[_Found], skipped: Sequence[Skipped]
) -> None:
    """Every given folder must hold at least one usable clip."""
    used = {item.root for item in found}
    for root in roots:
        if root not in used and not any(i.clip.path.is_relative_to(root) for i in found):
            reasons = Counter(s.reason for s in skipped if s.path.is_relative_to(root))
            raise DatasetError(_with_help(f"No usable clips in {root}: {_why(reasons)}."))


def _why(reasons: Counter[str]) -> str:
    """The commonest skip reasons, for an error message."""
    if not reasons:
        return "it holds no files"
    detail = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(3))
    return f"none of its {reasons.total()} files is usable ({detail})"


# --- duplicates -----------------------------------------------------------------------


def _probe_digest(item: _Found) -> bytes:
    """Digest of one block from the middle: a cheap filter before full decoding."""
    with _sound(item.clip.path) as audio:
        audio.seek(item.frames // 2)
        block = audio.read(_PROBE_FRAMES, dtype="int16", always_2d=True)
    return hashlib.blake2b(block.tobytes(), digest_size=16).digest()


def _audio_digest(item: _Found) -> bytes:
    """Digest of all decoded samples, so WAV and FLAC copies of one recording match.

    Block by block: a few hundred KB of FLAC can decode to gigabytes.
    """
    with _sound(item.clip.path) as audio:
        digest = hashlib.blake2b(f"{audio.samplerate}:{audio.channels}:".encode(), digest_size=16)
        for block in audio.blocks(blocksize=1 << 16, dtype="int16", always_2d=True):
            digest.update(block.tobytes())
    return digest.digest()


def _split(
    groups: Iterable[list[int]],
    digest: Callable[[_Found], bytes],
    found: Sequence[_Found],
    errors: dict[int, str],
    tick: Callable[[], None],
) -> list[list[int]]:
    """Split each group by digest, keeping only subgroups that still hold several clips."""
    refined: list[list[int]] = []
    for group in groups:
        by_digest: dict[bytes, list[int]] = defaultdict(list)
        for index in group:
            try:
                by_digest[digest(found[index])].append(index)
            except (RuntimeError, OSError) as error:
                errors[index] = _describe(error)
            tick()
        refined.extend(g for g in by_digest.values() if len(g) > 1)
    return refined


def _duplicate_groups(
    found: Sequence[_Found], tick: Callable[[], None]
) -> tuple[list[list[int]], dict[int, str]]:
    """Groups (in scan order) of indices with identical audio, and undecodable indices."""
    by_shape: dict[tuple[int, int, int], list[int]] = defaultdict(list)
    for index, item in enumerate(found):
        by_shape[(item.frames, item.sample_rate, item.channels)].append(index)
    errors: dict[int, str] = {}
    groups = [g for g in by_shape.values() if len(g) > 1]
    groups = _split(groups, _probe_digest, found, errors, tick)
    groups = _split(groups, _audio_digest, found, errors, lambda: None)
    return groups, errors


def _shown(item: _Found, beside: _Found) -> str:
    """How a kept file is named in a duplicate's reason: relative when in the same folder."""
    if item.root == beside.root:
        return item.clip.path.relative_to(item.root).as_posix()
    return str(item.clip.path)


# --- progress -------------------------------------------------------------------------


class _Progress:
    """Calls progress(done, total) about a hundred times at most, and always at the end."""

    def __init__(self, callback: Callable[[int, int], None] | None, total: int) -> None:
        self._callback, self._total = callback, max(total, 1)
        self._last = 0

    def update(self, done: int) -> None:
        done = min(done, self._total)
        if self._callback is not None and (
            done == self._total or done - self._last >= self._total / 100
        ):
            self._last = done
            self._callback(done, self._total)

    def finish(self) -> None:
        self.update(self._total)


# --- scan -----------------------------------------------------------------------------


def scan(
    folders: Sequence[str | Path],
    *,
    find_duplicates: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> ScanReport:
    """Label every audio file under the given folders.

    Folders are walked recursively in sorted order, so results are deterministic.
    With ``find_duplicates`` identical audio (same decoded samples, whatever the name
    or format) is kept once: the first in scan order. ``progress(done, total)`` is
    called as files are inspected (and, if asked, checked for duplicates).

    Raises:
        DatasetError: no folder given, or a folder is missing, not a folder, unreadable
            or holds no usable clip.
    """
    if isinstance(folders, (str, Path)):
        folders = [folders]  # a lone path is a common slip; a str is a Sequence too
    if not folders:
        raise DatasetError(_with_help("No dataset folder given."))
    roots = [_check_root(folder) for folder in folders]
    skipped: list[Skipped] = []
    files = _list_files(roots, skipped)
    meter = _Progress(progress, len(files) * (2 if find_duplicates else 1))

    found: list[_Found] = []
    for done, (root, path) in enumerate(files, start=1):
        result = _inspect(root, path)
        (skipped if isinstance(result, Skipped) else found).append(result)
        meter.update(done)
    _require_usable(roots, found, skipped)

    dropped: dict[int, Skipped] = {}
    pairs: list[tuple[Path, Path]] = []
    if find_duplicates:
        dropped, pairs = _drop_duplicates(found, meter, len(files))
    meter.finish()
    kept = [item for index, item in enumerate(found) if index not in dropped]
    return ScanReport(
        folders=tuple(roots),
        clips=tuple(item.clip for item in kept),
        skipped=tuple(_in_scan_order([*skipped, *dropped.values()], files)),
        duplicates=tuple(pairs),
        total_seconds=sum(item.frames / item.sample_rate for item in kept),
    )


# --- speakers of one's own folders -------------------------------------------------------

SUBFOLDER_SPEAKERS = "subfolder"  # DATASET/SPEAKER/EMOTION/clip.wav
NAME_SPEAKERS = "name:"  # "name:REGEX": the REGEX's first group in each file name
SPEAKER_RULES_HELP = (
    "How the speakers of your own folders (one subfolder per emotion) are named: "
    f"'{SUBFOLDER_SPEAKERS}' for a folder per speaker above the emotion folders "
    "(DATASET/anna/angry/01.wav), or 'name:PATTERN' for a regular expression whose first "
    "group picks the speaker out of each file name (name:^([a-z]+)_ finds anna in "
    "anna_01.wav). Named corpora (RAVDESS, TESS, ...) keep their own speakers."
)


def name_speakers(report: ScanReport, rule: str | None) -> ScanReport:
    """``report`` with the speakers of its own-folder clips named by ``rule`` (see
    ``SPEAKER_RULES_HELP``); None keeps them as scanned (unknown). A clip the rule names no
    speaker for stays unknown, so a speaker-independent split refuses it rather than guess."""
    if rule is None:
        return report
    find = _speaker_rule(rule)
    clips = []
    for clip in report.clips:
        root = next((r for r in report.folders if clip.path.is_relative_to(r)), None)
        speaker = (
            find(clip.path.relative_to(root)) if clip.corpus is Corpus.FOLDERS and root else None
        )
        clips.append(
            replace(clip, speaker=f"{Corpus.FOLDERS.value}:{speaker}") if speaker else clip
        )
    return replace(report, clips=tuple(clips))


def _speaker_rule(rule: str) -> Callable[[Path], str | None]:
    if rule == SUBFOLDER_SPEAKERS:
        # The folder just above the emotion folder; a clip in a top-level emotion folder has none.
        return lambda relative: relative.parts[-3] if len(relative.parts) >= 3 else None
    if rule.startswith(NAME_SPEAKERS):
        try:
            pattern = re.compile(rule.removeprefix(NAME_SPEAKERS))
        except re.error as error:
            raise DatasetError(
                f"The speaker pattern is not a valid regular expression: {error}"
            ) from None
        if pattern.groups < 1:
            raise DatasetError("The speaker pattern needs a group in brackets: the speaker.")

        def from_name(relative: Path) -> str | None:
            match = pattern.search(relative.name)
            return match.group(1) if match and match.group(1) else None

        return from_name
    raise DatasetError(f"Unknown speaker rule {rule!r}. {SPEAKER_RULES_HELP}")


def _drop_duplicates(
    found: Sequence[_Found], meter: _Progress, n_files: int
) -> tuple[dict[int, Skipped], list[tuple[Path, Path]]]:
    """Indices to drop with their reasons, and (kept, dropped) pairs of identical audio."""
    checked = 0

    def tick() -> None:
        nonlocal checked
        checked += 1
        meter.update(n_files + checked)

    groups, errors = _duplicate_groups(found, tick)
    dropped = {i: Skipped(found[i].clip.path, reason) for i, reason in errors.items()}
    kept_by_index: dict[int, int] = {}
    for first, *rest in groups:
        for index in rest:
            reason = f"duplicate of {_shown(found[first], found[index])}"
            dropped[index] = Skipped(found[index].clip.path, reason)
            kept_by_index[index] = first
    pairs = [(found[k].clip.path, found[i].clip.path) for i, k in sorted(kept_by_index.items())]
    return dropped, pairs


def _in_scan_order(skipped: list[Skipped], files: Sequence[tuple[Path, Path]]) -> list[Skipped]:
    order = {path: index for index, (_root, path) in enumerate(files)}
    return sorted(skipped, key=lambda s: order.get(s.path, -1))
