"""The Train page's second section: model type, emotions and merges, epochs, batch size,
augmentation and validation, with why they cannot train said before any work starts."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from ser.datasets import (
    NAME_SPEAKERS,
    SUBFOLDER_SPEAKERS,
    Corpus,
    ScanReport,
    name_speakers,
)
from ser.emotions import ALL_EMOTIONS
from ser.errors import DatasetError
from ser.models import RECIPES, ModelType
from ser.train import VALIDATION_RULES, TrainOptions, Validation, validation_problem
from ui.texts import AUGMENT_LABELS, RANDOM_SPLIT_WARNING, VALIDATION_LABELS
from ui.training import (
    BATCH_SIZE_WIDGET,
    MODEL_TYPE_WIDGET,
    SPEAKER_PATTERN_WIDGET,
    SPEAKERS_WIDGET,
    VALIDATION_WIDGET,
    augment_widget,
    epochs_widget,
)


@dataclass(frozen=True)
class Choice:
    """The options chosen, or why they cannot be trained."""

    options: TrainOptions
    problem: str | None = None


def _merge_label(pair: tuple[str, str]) -> str:
    return f"{pair[0]} → {pair[1]}"


def choose_options(report: ScanReport, *, busy: bool) -> Choice:
    """Model type, emotions and merges, epochs, batch size, augmentation, validation."""
    st.header("2. Options", divider="gray")
    found = list(report.emotions)
    left, right = st.columns(2)
    with left:
        model_type = st.radio(
            "Model",
            list(ModelType),
            format_func=lambda t: t.title,
            captions=[t.caption for t in ModelType],
            key=MODEL_TYPE_WIDGET,
            disabled=busy,
        )
        recipe = RECIPES[model_type]
        epochs_col, batch_col = st.columns(2)
        epochs = epochs_col.number_input(
            "Epochs",
            min_value=1,
            max_value=2000,
            value=recipe.epochs,
            step=5,
            key=epochs_widget(model_type),
            disabled=busy,
            help=f"Passes over the training clips; {recipe.epochs} is this model's recipe.",
        )
        batch_size = batch_col.number_input(
            "Batch size",
            min_value=4,
            max_value=1024,
            value=recipe.batch_size,
            step=8,
            key=BATCH_SIZE_WIDGET,
            disabled=busy,
        )
        st.markdown("**Augmentation** (adds a varied copy of each training clip)")
        augment = tuple(
            aug
            for aug, label in AUGMENT_LABELS.items()
            if st.checkbox(label, key=augment_widget(aug), disabled=busy)
        )
    with right:
        merges, emotions, remaining = _choose_emotions(found, busy=busy)
        validation = st.radio(
            "Validation",
            list(Validation),
            format_func=VALIDATION_LABELS.__getitem__,
            key=VALIDATION_WIDGET,
            disabled=busy,
            help="How the held-out figure is measured. Held-out speakers never occur in "
            "training, as with a new user of the app.",
        )
        st.caption(VALIDATION_RULES[validation])  # the rule the split follows, as it says it
        if validation is Validation.RANDOM:
            st.warning(RANDOM_SPLIT_WARNING, icon=":material/warning:")
        speakers = _choose_speakers(report, busy=busy)

    options = TrainOptions(
        model_type=model_type,
        epochs=int(epochs),
        batch_size=int(batch_size),
        # All of them is None, as on the command line without --emotions.
        emotions=None
        if set(emotions) == set(remaining)
        else tuple(e for e in ALL_EMOTIONS if e in emotions),
        merge=tuple(merges),
        augment=augment,
        validation=validation,
        speakers=speakers,
    )
    return Choice(options, problem(report, merges, emotions, validation, speakers))


SPEAKER_CHOICES = {  # how one's own folders (one subfolder per emotion) name their speakers
    None: "Not named: all one unknown speaker",
    SUBFOLDER_SPEAKERS: "A folder per speaker above the emotion folders (anna/angry/01.wav)",
    NAME_SPEAKERS: "A pattern in the file names",
}


def _choose_speakers(report: ScanReport, *, busy: bool) -> str | None:
    """The speaker rule for own folders (``name_speakers``); None when there are none."""
    if not any(clip.corpus is Corpus.FOLDERS for clip in report.clips):
        return None
    choice = st.radio(
        "Speakers of your own folders",
        list(SPEAKER_CHOICES),
        format_func=SPEAKER_CHOICES.__getitem__,
        key=SPEAKERS_WIDGET,
        disabled=busy,
        help="Speaker-independent figures need to know who spoke each clip.",
    )
    if choice != NAME_SPEAKERS:
        return choice
    pattern = st.text_input(
        "Pattern: a regular expression whose first group is the speaker",
        value="^([^_]+)_",
        key=SPEAKER_PATTERN_WIDGET,
        disabled=busy,
        help="Searched in each file name: ^([^_]+)_ finds anna in anna_angry_01.wav.",
    )
    return NAME_SPEAKERS + pattern


def _choose_emotions(
    found: list[str], *, busy: bool
) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(merges, emotions to learn, emotions left after the merges)."""
    pairs = [(a, b) for a in found for b in found if a != b]
    merges = st.multiselect(
        "Merge emotions",
        pairs,
        format_func=_merge_label,
        placeholder="e.g. calm → neutral",
        key=f"train_merge_{'-'.join(found)}",
        disabled=busy,
        help="Learn the first emotion as the second one.",
    )
    sources = [a for a, _ in merges]
    remaining = [e for e in found if e not in sources]
    emotions = st.multiselect(
        "Emotions to learn",
        remaining,
        default=remaining,
        key=f"train_emotions_{'-'.join(remaining)}",
        disabled=busy,
        help="Clips of emotions left out are not used.",
    )
    return merges, emotions, remaining


def problem(
    report: ScanReport,
    merges: list[tuple[str, str]],
    emotions: list[str],
    validation: Validation,
    speakers: str | None = None,
) -> str | None:
    """Why these options cannot train, said before any work starts (the package checks too)."""
    sources = [a for a, _ in merges]
    if len(set(sources)) < len(sources):
        return "An emotion can be merged into only one other."
    if set(sources) & {b for _, b in merges}:
        return "An emotion merged into another cannot itself receive a merge: merge both into the same one."
    if len(emotions) < 2:
        found = ", ".join(report.emotions)
        return f"Training needs at least two emotions; these folders give {len(emotions)} to learn (found: {found})."
    try:
        named = name_speakers(report, speakers)
    except DatasetError as error:
        return str(error)
    return validation_problem(named.clips, validation)  # the rule the split itself follows
