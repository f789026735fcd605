"""The Train page's last sections: the run's progress, then 4. its results and 5. saving it,
or why it stopped."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ser import plots, store
from ser.audio import printable
from ser.card import RANDOM_SPLIT, protocol_kind
from ser.errors import SERError
from ser.jobs import Snapshot, State, TrainingJob
from ser.train import HoldoutResult
from ui.training_run import duration, progress_panel

PLOT_CONFIG = {"displaylogo": False}


def show_run(job: TrainingJob | None) -> None:
    """This session's run: progress while it runs, then its results, stop or failure."""
    if job is None:
        return
    if job.running:
        progress_panel(job, own=True)
        return
    snap = job.snapshot()
    if snap.state is State.STOPPED:
        st.warning(f"{snap.message} Existing models are untouched.", icon=":material/stop_circle:")
    elif snap.state is State.FAILED:
        st.error(
            f"{snap.message} No model was saved; existing models are untouched.",
            icon=":material/error:",
        )
    elif job.result is not None and job.data is not None:
        show_results(job, snap)
        save_section(job)


def per_emotion_table(result: HoldoutResult) -> pd.DataFrame:
    scores = result.scores
    return pd.DataFrame(
        {
            "emotion": list(scores.labels),
            "clips": scores.confusion.sum(axis=1),
            "precision": 100 * scores.precision,
            "recall": 100 * scores.recall,
        }
    )


def show_results(job: TrainingJob, snap: Snapshot) -> None:
    result, data = job.outcome()
    st.header("4. Results", divider="gray")
    _show_headline(result)
    kind = protocol_kind(result.protocol)
    if kind == RANDOM_SPLIT:
        st.warning(f"Measured on a {result.protocol}.", icon=":material/warning:")
    else:
        st.caption(f"Protocol: {kind}, {result.protocol}; the model never heard them in training.")
    if (note := two_figures_note(result)) is not None:
        st.caption(note)
    st.caption(
        f"{job.options.model_type.title}, {len(result.history.get('loss', []))} epochs, "
        f"{len(data.clips):,} clips, {len(data.labels)} emotions. {_feature_note(snap)}"
    )
    if data.dropped:
        with st.expander(f"{len(data.dropped)} clips could not be read and were left out"):
            rows = [(printable(path), printable(reason)) for path, reason in data.dropped]
            st.dataframe(pd.DataFrame(rows, columns=["file", "reason"]), hide_index=True)
    left, right = st.columns([3, 2], gap="large")
    left.plotly_chart(
        plots.confusion_matrix(result.scores.confusion, result.scores.labels, protocol=kind),
        config=PLOT_CONFIG,
        key="result_confusion",
    )
    with right:
        _show_per_emotion(result)
    st.plotly_chart(plots.training_curves(result.history), config=PLOT_CONFIG, key="result_curves")


def _show_headline(result: HoldoutResult) -> None:
    n_test = int(result.scores.confusion.sum())
    chance = 1 / len(result.scores.labels)
    a, b, c, d = st.columns(4)
    a.metric("Held-out accuracy", f"{result.scores.accuracy:.1%}", border=True)
    b.metric(
        "UAR",
        f"{result.scores.uar:.1%}",
        border=True,
        help="Unweighted average recall: the mean of the per-emotion recalls, so every "
        "emotion counts the same however many clips it has.",
    )
    c.metric("Held-out clips", f"{n_test:,}", border=True)
    d.metric("Chance level", f"{chance:.1%}", border=True)


def _show_per_emotion(result: HoldoutResult) -> None:
    st.markdown("**Per emotion, on held-out clips**")
    st.dataframe(
        per_emotion_table(result),
        hide_index=True,
        width="stretch",
        column_config={
            "clips": st.column_config.NumberColumn(help="Held-out clips of this emotion"),
            "precision": st.column_config.NumberColumn(format="%.0f%%"),
            "recall": st.column_config.NumberColumn(format="%.0f%%"),
        },
    )
    st.caption(
        "Precision: of the clips called this emotion, the share that were. "
        "Recall: of the clips of this emotion, the share found."
    )


def two_figures_note(result: HoldoutResult) -> str | None:
    """The curves' held-out line and the headline are two measurements: say which is which.

    The line is the network alone on each held-out clip's centre crop after each epoch (what
    Keras reports while fitting); the headline is the saved model, statistics heads and all,
    on each whole clip, as the app answers.
    """
    line = result.history.get("val_accuracy")
    if not line:
        return None
    return (
        f"Held-out accuracy {result.scores.accuracy:.1%} is the saved model on each whole "
        f"held-out clip, as the app answers. The curves' held-out line is the network alone on "
        f"each clip's centre crop, epoch by epoch (last epoch {line[-1]:.1%}): a guide to "
        "progress, not the result."
    )


def _feature_note(snap: Snapshot) -> str:
    f = snap.features
    if snap.n_jobs and snap.cached == snap.n_jobs:
        return "Features from cache."
    if f is not None and f.elapsed_s > 0:
        return f"Features for {f.total:,} clips computed in {duration(f.elapsed_s)}; cached for next time."
    return ""


def _suggested_name(job: TrainingJob) -> str:
    corpora = "-".join(sorted(job.report.layouts)) or "data"
    return f"{job.options.model_type.value.replace('_', '-')}-{corpora}-{job.id[:4]}"


def save_section(job: TrainingJob) -> None:
    """Name, inline checks, overwrite when asked, then save through ``ser.store``."""
    st.header("5. Save", divider="gray")
    if job.saved is not None:  # by this session or by one that found the run again
        st.success(
            f"Saved as **{job.saved.name}** — choose it on the Recognise page.",
            icon=":material/check_circle:",
        )
        st.page_link(
            "pages/recognise.py", label="Go to the Recognise page", icon=":material/graphic_eq:"
        )
        return
    name = st.text_input(
        "Model name",
        value=_suggested_name(job),
        max_chars=64,
        key=f"train_name_{job.id}",
        help="Letters, digits, '-' and '_'; it becomes the file name in the models folder.",
    ).strip()
    problem, overwrite = _name_problem(job, name)
    if problem:
        st.error(problem, icon=":material/error:")
    if st.button(
        "Save model",
        type="primary",
        icon=":material/save:",
        key="train_save",
        disabled=problem is not None,
    ):
        try:
            job.save(name, overwrite=overwrite)
        except SERError as error:
            st.error(f"Not saved: {error}", icon=":material/error:")
        else:
            st.rerun()


def _name_problem(job: TrainingJob, name: str) -> tuple[str | None, bool]:
    """(why ``name`` cannot be saved now, "" when that is said already; whether to overwrite)."""
    try:
        store.validate_name(name)
    except SERError as error:
        return str(error), False
    existing = _existing(name)
    if existing is not None and existing.shipped:
        return f"'{name}' is a shipped model and is never overwritten. Choose another name.", False
    if existing is None:
        return None, False
    st.warning(
        f"A model named **{name}** already exists. Choose another name, or tick "
        "the box to replace it.",
        icon=":material/warning:",
    )
    overwrite = st.checkbox(f"Overwrite {name}", key=f"train_overwrite_{job.id}")
    return (None if overwrite else ""), overwrite  # "": said above; just keep Save disabled


def _existing(name: str) -> store.ModelInfo | None:
    if not (store.default_models_dir() / f"{name}.json").is_file():
        return None
    try:
        return store.find_model(name)
    except SERError:
        return None
