"""Splits by speaker: the RAVDESS 6-fold protocol, group k-fold by speaker, and the one
hold-out rule the Train page checks before any work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .datasets import LabelledClip, ravdess_actor
from .errors import TrainingError
from .options import Validation

if TYPE_CHECKING:
    from .prepare import Prepared

RAVDESS_FOLDS = 6  # fold k holds out actors 4k-3 .. 4k
Split = tuple[np.ndarray, np.ndarray]  # (train indices, test indices)


def ravdess_folds(clips: Sequence[LabelledClip]) -> list[Split]:
    """The standard protocol: fold k tests on RAVDESS actors 4k-3..4k; all else trains."""
    actors = np.array([ravdess_actor(c.speaker) or 0 for c in clips])
    if not actors.any():
        raise TrainingError("The 6-fold by-actor protocol needs RAVDESS among the data.")
    folds = []
    for k in range(1, RAVDESS_FOLDS + 1):
        test = (actors >= 4 * k - 3) & (actors <= 4 * k)
        folds.append((np.flatnonzero(~test), np.flatnonzero(test)))
    return folds


def speaker_folds(speakers: np.ndarray, n_folds: int) -> list[Split]:
    """Group k-fold by speaker, for corpora other than RAVDESS."""
    unique = sorted(set(speakers.tolist()))
    if any(s.endswith(":unknown") for s in unique) or len(unique) < n_folds:
        raise TrainingError(
            f"Speaker-independent folds need at least {n_folds} known speakers; "
            f"found {len(unique)}. Use fewer folds or a layout that names speakers."
        )
    fold_of = {s: i % n_folds for i, s in enumerate(unique)}
    assignment = np.array([fold_of[s] for s in speakers.tolist()])
    return [
        (np.flatnonzero(assignment != k), np.flatnonzero(assignment == k)) for k in range(n_folds)
    ]


# The one hold-out rule, for the split and for the Train page's check before any work:
# RAVDESS actors 21-24 (the protocol's fold 6) when present, else the first of 5 folds by speaker.
HOLDOUT_ACTORS = frozenset(range(4 * RAVDESS_FOLDS - 3, 4 * RAVDESS_FOLDS + 1))
HOLDOUT_SPEAKER_FOLDS = 5


def _holds_ravdess_holdout(clips: Sequence[LabelledClip]) -> bool:
    return any(ravdess_actor(c.speaker) in HOLDOUT_ACTORS for c in clips)


# The rules the splits follow, in the words the Train page shows beside the choice.
VALIDATION_RULES = {
    Validation.SPEAKER: "Held-out speakers: RAVDESS actors 21-24 when present, else a fifth of "
    f"the speakers; needs at least {HOLDOUT_SPEAKER_FOLDS} known speakers.",
    Validation.SPEAKER_FOLDS: f"k-fold by speaker: {HOLDOUT_SPEAKER_FOLDS} folds, or one per "
    "speaker with fewer (leave-one-speaker-out), then the model is trained on every clip; "
    "needs at least 2 known speakers.",
    Validation.RANDOM: "A random 20% of the clips: the same speakers on both sides, so it "
    "overstates accuracy.",
}


def _known_speakers(clips: Sequence[LabelledClip]) -> tuple[set[str], bool]:
    speakers = {c.speaker for c in clips}
    return speakers, any(s.endswith(":unknown") for s in speakers)


def validation_problem(clips: Sequence[LabelledClip], validation: Validation) -> str | None:
    """Why ``validation`` cannot be drawn from ``clips`` (in the words of its rule), or None."""
    if validation is Validation.RANDOM:
        return None
    speakers, unknown = _known_speakers(clips)
    if validation is Validation.SPEAKER:
        if _holds_ravdess_holdout(clips) or (
            not unknown and len(speakers) >= HOLDOUT_SPEAKER_FOLDS
        ):
            return None
    elif not unknown and len(speakers) >= 2:
        return None
    found = f"Found {len(speakers)} speakers" + (
        ", some unknown: say how your folders name speakers." if unknown else "."
    )
    return f"{VALIDATION_RULES[validation]} {found}"


def speaker_holdout_problem(clips: Sequence[LabelledClip]) -> str | None:
    """Why no speaker-independent hold-out can be drawn from ``clips``, or None if one can."""
    return validation_problem(clips, Validation.SPEAKER)


def holdout_split(data: Prepared, validation: Validation, *, seed: int) -> Split:
    """One train/test split: held-out speakers, or (warned against) a random 20%."""
    n = len(data.clips)
    if validation is Validation.RANDOM:
        order = np.random.default_rng(seed).permutation(n)
        cut = max(1, n // 5)
        return np.sort(order[cut:]), np.sort(order[:cut])
    if (problem := validation_problem(data.clips, validation)) is not None:
        raise TrainingError(problem)
    if _holds_ravdess_holdout(data.clips):
        return ravdess_folds(data.clips)[-1]
    return speaker_folds(data.speakers, HOLDOUT_SPEAKER_FOLDS)[0]
