"""Preparation: scanned clips relabelled, checked for enough of each emotion, and given
their features, ready to split; for a cross-corpus test, both sides at once."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .cache import default_cache_dir, extract_features, is_cached
from .datasets import LabelledClip, ScanReport, name_speakers, scan
from .emotions import ALL_EMOTIONS
from .errors import TrainingError
from .options import ProgressFn, TrainOptions, Validation

if TYPE_CHECKING:
    from .splits import Split


@dataclass(frozen=True)
class Prepared:
    """Clips with their features and integer labels, ready to split."""

    clips: tuple[LabelledClip, ...]
    features: tuple[np.ndarray, ...]
    targets: np.ndarray
    labels: tuple[str, ...]
    augmented: dict[str, tuple[np.ndarray, ...]]  # augmentation -> features, aligned with clips
    report: ScanReport
    dropped: tuple[tuple[str, str], ...] = ()  # (path, reason) that failed extraction

    @property
    def speakers(self) -> np.ndarray:
        return np.array([c.speaker for c in self.clips])


def _relabel(
    clips: Sequence[LabelledClip], options: TrainOptions
) -> list[tuple[LabelledClip, str]]:
    merge = dict(options.merge)
    kept = []
    for clip in clips:
        emotion = merge.get(clip.emotion, clip.emotion)
        if options.emotions is None or emotion in options.emotions:
            kept.append((clip, emotion))
    return kept


def _feature_jobs(
    relabelled: Sequence[tuple[LabelledClip, str]], options: TrainOptions
) -> list[tuple[Path, str]]:
    """(path, augmentation) for every clip and variant ``prepare`` needs, clips first."""
    augmentations = [a.value for a in options.augment]
    return [(clip.path, aug) for aug in ["", *augmentations] for clip, _ in relabelled]


def cached_count(
    report: ScanReport, options: TrainOptions, *, cache_dir: Path | None = None
) -> tuple[int, int]:
    """(cached, total): how many of the feature computations ``prepare`` needs are cached."""
    jobs = _feature_jobs(_relabel(report.clips, options), options)
    root = cache_dir or default_cache_dir()
    cached = 0
    for path, aug in jobs:
        with contextlib.suppress(OSError):  # a file gone since the scan: prepare reports it
            cached += is_cached(root, options.features, Path(path), aug)
    return cached, len(jobs)


MIN_CLIPS_PER_EMOTION = 5  # so the held-out part (a fifth, or other speakers) can hold some of each


def _require_enough(counts: Counter[str], options: TrainOptions, *, unread: int = 0) -> None:
    """Refuse data a model cannot honestly learn from or be judged on: fewer than two emotions,
    or an emotion with too few clips for the split to test it (a model saved from such data
    reported 100% on labels it never saw)."""
    plural = "s" if unread != 1 else ""
    after = f" after leaving out {unread} clip{plural} that could not be read" if unread else ""
    present = [e for e in ALL_EMOTIONS if counts.get(e, 0) > 0]
    if len(present) < 2:
        raise TrainingError(
            f"Training needs at least two emotions; found {len(present)} "
            f"({', '.join(present) or 'none'}){after}."
        )
    low = [e for e in ALL_EMOTIONS if e in counts and counts[e] < MIN_CLIPS_PER_EMOTION]
    short = [f"{e} has {counts[e]}" for e in low]
    if short:
        random = options.validation is Validation.RANDOM
        split = "random 20% split" if random else "speaker-independent hold-out"
        raise TrainingError(
            f"Training needs at least {MIN_CLIPS_PER_EMOTION} clips of each emotion for a "
            f"{split}, so that the held-out part holds some of each; {', '.join(short)}{after}. "
            "Add clips, or leave that emotion out."
        )


def prepare(
    folders: Sequence[str | Path] | ScanReport,
    options: TrainOptions,
    *,
    cache_dir: Path | None = None,
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
) -> Prepared:
    """Scan (unless given a report), relabel, and extract features for every clip."""
    report = folders if isinstance(folders, ScanReport) else scan(folders)
    report = name_speakers(report, options.speakers)
    relabelled = _relabel(report.clips, options)
    labels = tuple(e for e in ALL_EMOTIONS if e in {emotion for _, emotion in relabelled})
    _require_enough(Counter(emotion for _, emotion in relabelled), options)  # before the work
    augmentations = [a.value for a in options.augment]
    jobs = _feature_jobs(relabelled, options)
    values = extract_features(
        jobs, config=options.features, cache_dir=cache_dir, progress=progress, stop=stop
    )
    n = len(relabelled)
    reasons: dict[int, str] = {}
    for j, value in enumerate(values):
        if isinstance(value, str):
            reasons.setdefault(j % n, value)  # a clip goes if any of its variants fails
    keep = [i for i in range(n) if i not in reasons]
    counts = Counter(dict.fromkeys(labels, 0))  # an emotion whose every clip failed stays, at 0
    counts.update(relabelled[i][1] for i in keep)
    _require_enough(counts, options, unread=len(reasons))
    dropped = tuple((str(relabelled[i][0].path), why) for i, why in sorted(reasons.items()))
    augmented = {
        aug: tuple(values[(k + 1) * n + i] for i in keep) for k, aug in enumerate(augmentations)
    }
    return Prepared(
        clips=tuple(relabelled[i][0] for i in keep),
        features=tuple(values[i] for i in keep),
        targets=np.array([labels.index(relabelled[i][1]) for i in keep], dtype=np.int64),
        labels=labels,
        augmented=augmented,
        report=report,
        dropped=dropped,
    )


def prepare_across_corpora(
    train_folders: Sequence[str | Path],
    test_folders: Sequence[str | Path],
    options: TrainOptions,
    *,
    cache_dir: Path | None = None,
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
) -> tuple[Prepared, Split]:
    """Clips of both sides and the (train, test) split, on the emotions both sides hold.

    One scan covers both sides, so audio found on both is caught and kept on the training
    side only: the test side is then truly unseen.
    """
    test_roots = [Path(f).resolve() for f in test_folders]
    train_roots = [Path(f).resolve() for f in train_folders]
    if any(
        a == b or a.is_relative_to(b) or b.is_relative_to(a)
        for a in test_roots
        for b in train_roots
    ):
        raise TrainingError("The test folders overlap the training folders; give separate corpora.")
    report = scan([*train_folders, *test_folders])

    def on_test_side(clip: LabelledClip) -> bool:
        return any(clip.path.resolve().is_relative_to(root) for root in test_roots)

    sides = [
        {e for c, e in _relabel(report.clips, options) if on_test_side(c) is side}
        for side in (False, True)
    ]
    shared = tuple(e for e in ALL_EMOTIONS if e in sides[0] & sides[1])
    if len(shared) < 2:
        raise TrainingError(
            f"The training and test corpora share {len(shared)} emotion(s) ({', '.join(shared) or 'none'}); "
            "a cross-corpus test needs at least two."
        )
    data = prepare(
        report, replace(options, emotions=shared), cache_dir=cache_dir, progress=progress, stop=stop
    )
    test = np.array([on_test_side(c) for c in data.clips], dtype=bool)
    return data, (np.flatnonzero(~test), np.flatnonzero(test))
