"""The installed models: listed, loaded once per process, warmed up, and picked in the sidebar.

The list is re-read whenever the models folder changes; each model is loaded once per
process (``st.cache_resource`` keyed by name and the files' modification times), and the
default one in a background thread while the first page renders.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from ser.errors import ModelError
from ser.store import ModelInfo, default_model, default_models_dir, list_models
from ui.describe import model_description
from ui.markdown import md

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator

    from ser.predict import Recognizer

log = logging.getLogger("ser.app")

PLOT_CONFIG = {"displaylogo": False}
# Session-state keys. The picker's own key is dropped by Streamlit whenever a page without the
# picker runs, so the choice is also kept under a key no widget owns.
MODEL_WIDGET_KEY = "model"
CHOSEN_MODEL_KEY = "chosen_model"
RECALL_OFFERED_KEY = "recall_chart_offered"  # the session's first run has begun


# ============================================================================ the list


def _stamp(info: ModelInfo) -> tuple[int, int]:
    """Modification times of the model's two files: a new save means a new cache entry."""
    try:
        return (
            info.keras_path.stat().st_mtime_ns,
            info.keras_path.with_suffix(".json").stat().st_mtime_ns,
        )
    except OSError:
        return (0, 0)


def _folder_signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    try:
        entries = [(p.name, p.stat()) for p in folder.iterdir() if p.suffix in (".json", ".keras")]
    except OSError:
        return ()
    return tuple(sorted((name, s.st_mtime_ns, s.st_size) for name, s in entries))


@st.cache_resource(max_entries=8, show_spinner=False)
def _models_in(folder: str, signature: tuple[tuple[str, int, int], ...]) -> tuple[ModelInfo, ...]:
    del signature  # only part of the cache key: any change to the folder reads it again
    return tuple(list_models(Path(folder)))


def installed_models() -> tuple[ModelInfo, ...]:
    """Every model in the models folder, usable or not; re-read when any file there changes."""
    folder = default_models_dir()
    return _models_in(str(folder), _folder_signature(folder))


# Models that passed the folder checks but failed to load: (name, stamp) -> reason.
_load_failures: dict[tuple[str, tuple[int, int]], str] = {}


def problem(info: ModelInfo) -> str | None:
    """Why the model cannot be used (the folder's checks, or a failed load), or None."""
    return info.problem or _load_failures.get((info.name, _stamp(info)))


def forget_load_failures() -> None:
    """Try again the models that failed to load (a test's damaged model is the next's fixed one)."""
    _load_failures.clear()


def usable_models() -> list[ModelInfo]:
    return [m for m in installed_models() if problem(m) is None]


def is_default(info: ModelInfo) -> bool:
    default = default_model(usable_models())
    return default is not None and default.name == info.name


# ============================================================================ loading


@st.cache_resource(max_entries=4, show_spinner=False)
def _load_recognizer(name: str, folder: str, stamp: tuple[int, int]) -> Recognizer:
    """One loaded model per name and file version, shared by every session of the process."""
    del stamp  # only part of the cache key
    from ser.predict import Recognizer

    start = time.perf_counter()
    recognizer = Recognizer.load(name, Path(folder))
    # bench_app.py reads this line from the server's output.
    print(
        f"ser-app: model {name} ready in {time.perf_counter() - start:.2f} s "
        f"(at {time.time():.3f})",
        flush=True,
    )
    return recognizer


def load_recognizer(info: ModelInfo) -> Recognizer:
    """The loaded model; raises ``ModelError`` (remembered, so it is not retried every run)."""
    _wait_for_warmup()
    stamp = _stamp(info)
    try:
        return _load_recognizer(info.name, str(info.keras_path.parent), stamp)
    except ModelError as error:
        _load_failures[(info.name, stamp)] = str(error)
        raise


def model_version(info: ModelInfo) -> tuple[str, tuple[int, int]]:
    """The model's name and file version: results are remembered per version."""
    return info.name, _stamp(info)


# ============================================================================ warm-up

# next() on a count is atomic: exactly one caller sees 0, with no lock to hold.
_warmup_calls = itertools.count()
_warmup_thread: threading.Thread | None = None


def start_warmup() -> None:
    """Load the default model in a background thread, once per process.

    Started only once a page's first widgets are sent: sharing the interpreter with it slowed
    them by a third of a second. The Recognise page starts it at its end
    (``ModelChoice.finish_loading``, which then waits for it); ``app.py`` after any page.
    """
    global _warmup_thread
    if multiprocessing.parent_process() is not None:
        # A worker process that re-ran the main module (multiprocessing's 'spawn', e.g. ser.batch
        # after a test left app.py as __main__): it loads its own model, in its own thread.
        return
    if next(_warmup_calls) == 0:
        thread = threading.Thread(target=_warm_up, name="ser-model-warmup", daemon=True)
        _warmup_thread = thread
        thread.start()
        return
    while _warmup_thread is None:  # the first caller is a few bytecodes from setting it
        time.sleep(0)


def _wait_for_warmup() -> None:
    """Let the warm-up finish before loading a model here: TensorFlow is then imported by
    one thread only, never by two at once."""
    thread = _warmup_thread
    if thread is not None and thread is not threading.current_thread():
        thread.join()


def _warm_up() -> None:
    try:
        info = default_model(list(installed_models()))
        if info is not None:
            load_recognizer(info)
    except Exception:  # the page reports load errors itself when it needs the model
        log.exception("warming up the default model failed")


# ============================================================================ the picker


def model_label(info: ModelInfo) -> str:
    """The picker's text: the name alone, which fits the sidebar (the figures, with the
    protocol that produced them, are in the caption under it)."""
    return info.name


def model_heading(info: ModelInfo) -> str:
    """The picker's text for a usable model; name and "broken" for the others."""
    return model_label(info) if problem(info) is None else f"{info.name} (broken)"


@dataclass
class ModelChoice:
    """The model picked in the sidebar, and the sidebar slot that shows whether it is ready."""

    info: ModelInfo
    status: DeltaGenerator
    recall_slot: DeltaGenerator | None = None  # filled at the page's end: see finish_loading

    def recognizer(self) -> Recognizer:
        """Load (or wait for) the model; if it fails to load, rerun with another one."""
        try:
            recognizer = load_recognizer(self.info)
        except ModelError as error:
            log.warning("model %s could not be loaded: %s", self.info.name, error)
            st.session_state[CHOSEN_MODEL_KEY] = self.info.name  # the picker says what happened
            st.rerun()
        return recognizer

    def finish_loading(self) -> None:
        """Called at the end of a page: the page is on screen, now make sure the model is.

        The model loads in the background while the sidebar's recall chart is drawn: on a
        session's first run the chart comes here, last, after the uploader, because the
        browser's first use of the chart code (Plotly) holds up whatever it is drawing then,
        about 0.7 s on two busy cores (docs/benchmarks.md). A clip uploaded before this run
        ends stops it; the next run then draws the chart in its place in the sidebar, before
        the answer, so that the browser loads the code while the server listens.
        """
        start_warmup()
        if self.recall_slot is not None:
            with self.recall_slot.container():
                _show_recall(self.info)
        with self.status, st.spinner(f"Loading model {self.info.name}…"):
            self.recognizer()
        self.status.caption(f":material/check_circle: Model **{self.info.name}** is ready.")


def _remember_choice() -> None:
    st.session_state[CHOSEN_MODEL_KEY] = st.session_state[MODEL_WIDGET_KEY]


def model_picker() -> ModelChoice | None:
    """The sidebar's model picker: usable models only, the default preselected.

    Unusable models are listed under it with the reason. A chosen model that has since
    become unusable (deleted, damaged, failed to load) is replaced by the default, with a
    warning that says why.
    """
    models = installed_models()
    usable = [m for m in models if problem(m) is None]
    unusable = [(m.name, problem(m)) for m in models if problem(m) is not None]
    sidebar = st.sidebar
    default = default_model(usable)
    if default is None:
        sidebar.error(
            "No usable model is installed. Train one on the **Train** page, or run "
            "`python -m ser train --data DATA_DIR --name NAME`."
        )
        _show_unusable(unusable)
        return None
    by_name = {m.name: m for m in usable}
    chosen = st.session_state.get(CHOSEN_MODEL_KEY)
    if chosen is not None and chosen not in by_name:
        reason = dict(unusable).get(chosen, "it is no longer installed")
        sidebar.warning(
            f"Model **{chosen}** cannot be used ({md(reason or '')}); using **{default.name}**."
        )
        chosen = None
    st.session_state[CHOSEN_MODEL_KEY] = st.session_state[MODEL_WIDGET_KEY] = chosen or default.name
    name = sidebar.selectbox(
        "Model",
        options=list(by_name),
        format_func=lambda n: model_label(by_name[n]),
        key=MODEL_WIDGET_KEY,
        on_change=_remember_choice,
        help="The caption below says how well the model did and which protocol measured "
        "it. The Models page has the details.",
    )
    info = by_name[name]
    sidebar.caption(model_description(info))
    recall_slot = None
    if st.session_state.get(RECALL_OFFERED_KEY):  # in place: an emptied slot would flicker
        with sidebar:
            _show_recall(info)
    else:
        recall_slot = sidebar.empty()
        st.session_state[RECALL_OFFERED_KEY] = True
    status = sidebar.empty()
    _show_unusable(unusable)
    return ModelChoice(info, status, recall_slot)


def _show_recall(info: ModelInfo) -> None:
    """Which emotions the model gets right on held-out clips, named by protocol (also loads
    the chart code in the browser before the first result needs it)."""
    from ser import plots  # loaded on first use: see ui/__init__.py

    card = info.card
    scores = card.scores() if card is not None else None
    if card is not None and scores is not None:
        figure = plots.recall_bars(scores.recall, scores.labels, protocol=card.protocol_kind)
        st.plotly_chart(figure, config=PLOT_CONFIG, key="model_recall")


def _show_unusable(unusable: Sequence[tuple[str, str | None]]) -> None:
    for name, reason in unusable:
        st.sidebar.caption(
            f":material/block: **{name}** is broken and cannot be used: {md(reason or '')}"
        )
