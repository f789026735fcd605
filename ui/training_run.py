"""The Train page's third section: the Train button, and the progress of a run under way.

The page polls the run with ``st.fragment(run_every=...)``: only the progress panel redraws,
every ``POLL_S`` seconds, and only while a run is under way.
"""

from __future__ import annotations

import threading

import plotly.graph_objects as go
import streamlit as st

from ser import plots, train
from ser.command import train_command
from ser.datasets import ScanReport
from ser.jobs import Snapshot, State, TrainingJob
from ser.train import Progress
from ui import training
from ui.training_options import Choice

PLOT_CONFIG = {"displaylogo": False}
POLL_S = 2.0  # how often the progress panel redraws while a run is under way


def show_other_run() -> None:
    """Another session's run: its progress, redrawn until it ends."""
    other = training.other_run()
    if other is not None:
        progress_panel(other, own=False)


def training_controls(report: ScanReport, choice: Choice) -> None:
    """The Train button, or why it cannot run yet."""
    st.header("3. Train", divider="gray")
    folders = tuple(str(f) for f in report.folders)
    if choice.problem:
        st.error(choice.problem, icon=":material/error:")
    _show_cache(report, choice)
    with st.expander("The same run from the command line"):
        st.code(train_command(folders, choice.options), language="bash", wrap_lines=True)
    clicked = st.button(
        "Train",
        type="primary",
        icon=":material/model_training:",
        key="train_start",
        disabled=bool(choice.problem) or training.job_board().active() is not None,
    )
    if training.other_run() is not None:
        st.caption("Another session is training (see the top of the page): one run at a time.")
    if clicked and choice.problem is None:
        training.start_job(report, choice.options, folders)
        st.rerun()  # redraw: widgets locked and the progress below, or the other run's


def _show_cache(report: ScanReport, choice: Choice) -> None:
    cached, total = train.cached_count(report, choice.options)
    if total and cached == total:
        st.caption(
            f":material/bolt: Features for all {total:,} clips are in the cache: "
            "extraction is skipped."
        )
    elif cached:
        st.caption(f":material/bolt: Features for {cached:,} of {total:,} clips are in the cache.")


def progress_panel(job: TrainingJob | None, *, own: bool) -> None:
    """Redrawn every POLL_S seconds while ``job`` runs; a full rerun when it ends."""
    running = job is not None and job.running

    @st.fragment(run_every=POLL_S if running else None)
    def panel() -> None:
        if job is None:
            return
        snap = job.snapshot()
        if not own:
            st.info(
                "**Training in progress (started by another session).** One run at a time: "
                "the Train button comes back when it ends.",
                icon=":material/hourglass_top:",
            )
        _draw_progress(job, snap)
        if own and snap.state is State.RUNNING:
            _stop_button(job, stopping=snap.stopping)
        if running and snap.state is not State.RUNNING:
            st.rerun()  # the run ended: redraw the page (results, unlocked widgets)

    panel()


def _stop_button(job: TrainingJob, *, stopping: bool) -> None:
    if stopping:
        st.button("Stopping…", icon=":material/stop_circle:", disabled=True, key="train_stopping")
    else:
        st.button(
            "Stop training", icon=":material/stop_circle:", key="train_stop", on_click=job.stop
        )


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _eta(progress: Progress) -> str:
    remaining = progress.remaining_s
    if remaining is None or progress.done >= progress.total:
        return ""
    return f" · about {duration(remaining)} left"


def features_text(snap: Snapshot) -> str:
    f = snap.features
    if f is None:
        return "Features: starting…"
    rate = f" · {f.rate_per_s:,.0f} clips/s" if f.elapsed_s > 0 and f.done else ""
    text = f"Features: {f.done:,} / {f.total:,} clips{rate}{_eta(f)}"
    if snap.n_jobs and snap.cached == snap.n_jobs:
        text += " · features from cache"
    elif snap.cached:
        text += f" · {snap.cached:,} from cache"
    return text


def epochs_text(progress: Progress) -> str:
    m = progress.metrics
    figures = []
    if "loss" in m:
        figures.append(f"loss {m['loss']:.3f}")
    if "accuracy" in m:
        figures.append(f"accuracy {m['accuracy']:.1%}")
    if "val_accuracy" in m:
        figures.append(f"held-out accuracy on centre crops {m['val_accuracy']:.1%}")
    head = progress.stage.rpartition(" · ")[2]  # e.g. "statistics head 2/3"
    step = f"{head.capitalize()}: epoch" if train.is_head_stage(progress.stage) else "Epoch"
    return f"{step} {progress.done} / {progress.total}{_eta(progress)} · " + " · ".join(figures)


# The curves so far, per run, drawn again only after a new epoch: the panel polls often, and
# every session watching the run shares the figure.
_curves_lock = threading.Lock()
_curves: dict[str, tuple[int, go.Figure]] = {}
_CURVES_KEPT = 8


def live_curves(job: TrainingJob, snap: Snapshot) -> go.Figure:
    epochs = len(snap.history.get("loss", []))
    with _curves_lock:
        cached = _curves.get(job.id)
        if cached is None or cached[0] != epochs:
            while len(_curves) >= _CURVES_KEPT:
                del _curves[next(iter(_curves))]  # the oldest run's
            cached = _curves[job.id] = (epochs, plots.training_curves(snap.history))
        return cached[1]


def _draw_progress(job: TrainingJob, snap: Snapshot) -> None:
    f = snap.features
    st.progress((f.done / max(f.total, 1)) if f else 0.0, text=features_text(snap))
    if snap.stage == "training" or snap.epochs is not None:
        e = snap.epochs
        st.progress(
            e.done / max(e.total, 1) if e else 0.0,
            text=epochs_text(e) if e else "Training: building the network…",
        )
    if snap.history.get("loss"):
        st.plotly_chart(live_curves(job, snap), config=PLOT_CONFIG, key="live_curves")
