"""The Streamlit side of training: the Train page's sections and the background job behind them.

- ``TrainingJob`` runs ``ser.train.prepare`` + ``ser.train.train_holdout`` (the same code path
  as ``python -m ser train``) in a background thread and records its progress, live curves,
  result or error. Pressing Stop sets the ``threading.Event`` the package checks between
  batches; the package then raises ``TrainingStopped`` and nothing is saved.
- ``job_board`` (one ``ser.jobs.Registry`` per server process, through ``st.cache_resource``)
  lets one run train at a time: while it runs, every other session sees its progress and
  cannot start another. The run lives there, not in the session: a visitor who leaves the page
  finds the form and the run as they were, and one who closes the tab finds the run again
  through the address (``?run=ID``), its result still to be saved.
- The page polls the job with ``st.fragment(run_every=...)``: only the progress panel redraws,
  once a second, and only while a run is under way.
- ``training_access`` reads the switch: training is off unless a deployer turns it on, with
  ``SER_ENABLE_TRAINING=1`` or by naming a data root, ``SER_DATA_DIR`` (environment variables
  or Streamlit secrets). With a data root the page scans only folders under it, so a visitor
  cannot list the server's files. ``SER_DISABLE_TRAINING=1`` turns it off whatever else says.

The page reads the dataset folders it is pointed at and writes nothing into them: features go
to the cache (``SER_CACHE_DIR`` or ``~/.cache/ser``), models to the models folder
(``SER_MODELS_DIR`` or ``models/``) through ``ser.store``, which writes atomically.
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go  # imported whole here: plotly uses a half-imported pandas from another thread
import streamlit as st

import ui
from ser import jobs, plots, store, train
from ser.audio import printable
from ser.datasets import LAYOUTS_HELP, ScanReport, ravdess_actor, scan
from ser.emotions import ALL_EMOTIONS
from ser.errors import DatasetError, SERError, TrainingStopped
from ser.models import RECIPES, ModelType
from ser.train import Augmentation, HoldoutResult, Prepared, Progress, TrainOptions, Validation

log = logging.getLogger("ser.app.training")

PLOT_CONFIG = {"displaylogo": False}
THREAD_PREFIX = "ser-train-"  # training threads' names
POLL_S = 2.0  # how often the progress panel redraws while a run is under way
HOLDOUT_ACTORS = frozenset({21, 22, 23, 24})  # RAVDESS protocol fold 6: ser.train's hold-out

LAYOUT_NAMES = {
    "ravdess": "RAVDESS",
    "tess": "TESS",
    "savee": "SAVEE",
    "crema-d": "CREMA-D",
    "emodb": "EmoDB",
    "folders": "one folder per emotion",
}
MODEL_CAPTIONS = {  # by ModelType value
    "mfcc_lstm": "Fast. An LSTM on one 40-number summary (mean MFCC) of each clip.",
    "mfcc_cnn": "Slower, usually more accurate. A 1-D CNN over the MFCC frames of each clip.",
    "logmel_cnn": "Slow to train. A 2-D CNN over the log-mel spectrogram of each clip, levelled "
    "first so the microphone's gain does not sway it.",
    "logmel_fusion": "Slowest to train. The 2-D CNN, averaged with a small network on each "
    "band's statistics over the whole clip.",
    "logmel_voice": "Slowest to train, most accurate. As the one above, with three small networks "
    "that also read how pitch, voicing, loudness and timbre move through the clip.",
    "logmel_voice_16k": "As the one above, hearing only up to 8 kHz: for recordings made at 16 kHz "
    "(many phones and corpora), which hold nothing higher.",
}
AUGMENT_LABELS = {
    Augmentation.NOISE: "Add background noise",
    Augmentation.PITCH: "Shift pitch",
    Augmentation.STRETCH: "Stretch time",
}
VALIDATION_LABELS = {
    Validation.SPEAKER: "Speaker-independent hold-out (recommended)",
    Validation.RANDOM: "Random 20% split",
}
RANDOM_SPLIT_WARNING = (
    "A random split puts clips of the same speakers in training and test, so the model is "
    "partly tested on voices it has already heard: it **overstates accuracy**, typically by "
    "10-25 points. Use it only to compare with papers that report it."
)
DATASET_SOURCES = """\
No dataset at hand? These public corpora of acted emotional speech work as they are
downloaded (unzip, then type the folder above):

- **RAVDESS** (24 actors, 1,440 speech clips, 8 emotions): *Audio_Speech_Actors_01-24.zip*
  from Zenodo, <https://zenodo.org/records/1188976>. Licence CC BY-NC-SA 4.0.
- **TESS** (2 speakers, 2,800 clips, 7 emotions): the University of Toronto's dataverse,
  <https://doi.org/10.5683/SP2/E8H2MF>.
- **CREMA-D** (91 actors, 7,442 clips, 6 emotions): the *AudioWAV* folder of
  <https://github.com/CheyneyComputerScience/CREMA-D> (stored with Git LFS).
- **SAVEE** (4 speakers, 480 clips, 7 emotions): <http://kahlan.eps.surrey.ac.uk/savee/>
  (free registration).
- **EmoDB** (10 speakers, German, 535 clips): <http://emodb.bilderbar.info/>.

A speaker-independent hold-out needs RAVDESS among the data, or at least 5 speakers.
"""

# Session-state keys (widget keys are literal in the functions below).
SCAN_KEY = "train_scan"  # (folders, ScanReport) of the last successful scan
SCAN_ERROR_KEY = "train_scan_error"  # (folders, message) of the last failed scan
JOB_KEY = "train_job"  # this session's last TrainingJob
FOLDERS_WIDGET = "train_folders"
RUN_PARAM = "run"  # the address's ?run=ID: the run a reopened tab finds again
BUTTON_KEYS = frozenset(
    {"train_scan_button", "train_start", "train_stop", "train_stopping", "train_save"}
)


# ============================================================================ the switch


ENABLE_SETTING = "SER_ENABLE_TRAINING"
DISABLE_SETTING = "SER_DISABLE_TRAINING"
DATA_ROOT_SETTING = "SER_DATA_DIR"
# The only values a switch takes; anything else keeps training off and says so (a typo in a
# public deployment's settings must not open the server's disk).
SWITCH_VALUES = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
    "": False,
}
OFF = "Training is turned off on this deployment."
OFF_HOW = (
    "To train a model, run the app on your own machine with `SER_ENABLE_TRAINING=1` (or "
    "`SER_DATA_DIR` set to the folder that holds your datasets), or use `python -m ser train`."
)


@dataclass(frozen=True)
class Access:
    """Whether the Train page may run, why not, and the folder it is confined to (if any)."""

    enabled: bool
    message: str = ""
    data_root: Path | None = None


def _setting(name: str) -> str:
    """An environment variable, else the Streamlit secret of that name, else ""."""
    if name in os.environ:
        return os.environ[name].strip()
    try:
        return str(st.secrets.get(name, "")).strip()
    except Exception:  # no secrets file, or an unreadable one: the environment decides
        return ""


def _switch(name: str) -> bool | str:
    """The switch's value, or the message that says it is not understood."""
    value = _setting(name)
    if value.lower() in SWITCH_VALUES:
        return SWITCH_VALUES[value.lower()]
    accepted = ", ".join(v for v in SWITCH_VALUES if v)
    return f"{name}={value!r} is not understood, so training stays off. Use one of: {accepted}."


def training_access() -> Access:
    """Off unless turned on; a data root, when named, turns it on and confines it."""
    disable, enable = _switch(DISABLE_SETTING), _switch(ENABLE_SETTING)
    for value in (disable, enable):
        if isinstance(value, str):
            return Access(False, f"{OFF} {value}")
    if disable:
        return Access(False, f"{OFF} {OFF_HOW}")
    root = _setting(DATA_ROOT_SETTING)
    if root:
        return Access(True, data_root=Path(root).expanduser().resolve())
    return Access(True) if enable else Access(False, f"{OFF} {OFF_HOW}")


def training_disabled() -> bool:
    return not training_access().enabled


def confine(folders: Sequence[str], root: Path | None) -> tuple[str, ...]:
    """The folders to scan: with a data root, only folders under it (a relative one is taken
    from it). Raises ``DatasetError`` for one outside it before looking at it, so the answer
    says nothing about what exists outside."""
    if root is None:
        return tuple(folders)
    inside = []
    for folder in folders:
        path = Path(folder).expanduser()
        resolved = (path if path.is_absolute() else root / path).resolve()
        if not resolved.is_relative_to(root):
            raise DatasetError(
                f"'{printable(folder)}' is outside the data folder this server trains from "
                f"({root}). Type a folder under it."
            )
        inside.append(str(resolved))
    return tuple(inside)


# ============================================================================ the job


class State(str, Enum):
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True)
class Snapshot:
    """What the progress panel draws: a consistent copy of the job's state."""

    state: State
    stage: str  # "features" or "training"
    features: Progress | None
    epochs: Progress | None
    history: dict[str, list[float]]
    cached: int
    n_jobs: int
    message: str | None
    stopping: bool
    elapsed_s: float


@dataclass
class TrainingJob:
    """One training run in a background thread; every field is written under ``_lock``."""

    report: ScanReport
    options: TrainOptions
    folders: tuple[str, ...]
    owner: str  # the session that started it
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    state: State = State.RUNNING
    stage: str = "features"
    features: Progress | None = None
    epochs: Progress | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    cached: int = 0  # feature computations found in the cache before the run
    n_jobs: int = 0
    data: Prepared | None = None
    result: HoldoutResult | None = None
    message: str | None = None  # why it stopped or failed
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _curves: tuple[int, go.Figure] | None = field(default=None, repr=False)
    saved: store.ModelInfo | None = None  # once its model is saved, from whichever session

    @property
    def running(self) -> bool:
        return self.state is State.RUNNING

    def start(self) -> None:
        log.info(
            "training run %s started by session %s: %s on %s",
            self.id,
            self.owner[:8],
            self.options.to_dict(),
            ", ".join(self.folders),
        )
        self._thread = threading.Thread(
            target=self._run, name=f"{THREAD_PREFIX}{self.id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.stop_event.set()

    def join(self, timeout_s: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def snapshot(self) -> Snapshot:
        with self._lock:
            end = self.finished if self.finished is not None else time.monotonic()
            return Snapshot(
                state=self.state,
                stage=self.stage,
                features=self.features,
                epochs=self.epochs,
                history={k: list(v) for k, v in self.history.items()},
                cached=self.cached,
                n_jobs=self.n_jobs,
                message=self.message,
                stopping=self.stop_event.is_set() and self.state is State.RUNNING,
                elapsed_s=end - self.started,
            )

    def live_curves(self, snap: Snapshot) -> go.Figure:
        """The curves so far, drawn again only after a new epoch (the panel polls often)."""
        epochs = len(snap.history.get("loss", []))
        with self._lock:
            if self._curves is None or self._curves[0] != epochs:
                self._curves = (epochs, plots.training_curves(snap.history))
            return self._curves[1]

    def _on_progress(self, progress: Progress) -> None:
        with self._lock:
            if progress.stage == "features":
                self.features = progress
                return
            self.stage = "training"
            self.epochs = progress
            if train.is_head_stage(progress.stage):
                return  # the curves show the CNN's epochs only
            for key, value in progress.metrics.items():
                self.history.setdefault(key, []).append(value)

    def _finish(self, state: State, message: str | None = None) -> None:
        with self._lock:
            self.state, self.message, self.finished = state, message, time.monotonic()
        log.info(
            "training run %s %s after %.0f s%s",
            self.id,
            state.value,
            self.finished - self.started,
            f": {message}" if message else "",
        )

    def _run(self) -> None:
        """prepare -> train_holdout, as ``python -m ser train`` does; never raises."""
        try:
            cached, n_jobs = train.cached_count(self.report, self.options)
            with self._lock:
                self.cached, self.n_jobs = cached, n_jobs
            data = train.prepare(
                self.report, self.options, progress=self._on_progress, stop=self.stop_event
            )
            with self._lock:
                self.data, self.stage = data, "training"
            keep_keras_state_while_training()  # imports TensorFlow: "building the network"
            result = train.train_holdout(
                data, self.options, progress=self._on_progress, stop=self.stop_event
            )
            with self._lock:
                self.result, self.history = result, dict(result.history)
            self._finish(State.DONE)
        except TrainingStopped as error:
            self._finish(State.STOPPED, str(error))
        except SERError as error:
            self._finish(State.FAILED, str(error))
        except Exception as error:  # a bug or a resource problem: the log gets the details
            log.exception("training run %s failed", self.id)
            self._finish(
                State.FAILED,
                f"Training failed unexpectedly ({type(error).__name__}: {error}). "
                "The details are in the server log.",
            )


def keep_keras_state_while_training() -> None:
    """Make Streamlit's ``keras.backend.clear_session()`` wait while a run trains.

    After every script run, fragment reruns included, Streamlit calls
    ``keras.backend.clear_session()`` (``_clean_problem_modules`` in
    ``streamlit/runtime/scriptrunner/script_runner.py``). That replaces Keras's global state
    for every thread and empties TensorFlow's kernel cache, so a network being built in the
    training thread gets duplicate layer names ("The name "dropout" is used 2 times in the
    model") and training crawls while kernels are rebuilt every second. While a training
    thread is alive the call is skipped; otherwise it runs as before.
    """
    import keras

    backend = keras.backend
    original = backend.clear_session
    if getattr(original, "_ser_training_guard", False):
        return

    @functools.wraps(original)
    def clear_session(*args: Any, **kwargs: Any) -> Any:
        if any(t.name.startswith(THREAD_PREFIX) and t.is_alive() for t in threading.enumerate()):
            return None
        return original(*args, **kwargs)

    clear_session._ser_training_guard = True  # type: ignore[attr-defined]
    backend.clear_session = clear_session


@st.cache_resource(show_spinner=False)
def job_board() -> jobs.Registry[TrainingJob]:
    """The process's runs: one under way at a time, each found again by its id."""
    return jobs.Registry()


def _session_token() -> str:
    return st.session_state.setdefault("train_session_token", uuid.uuid4().hex)


def own_job() -> TrainingJob | None:
    """This session's run, or the run the address names (``?run=ID``), found again on the
    server after the tab was closed; its folders, scan and options come back with it."""
    job = st.session_state.get(JOB_KEY)
    if job is None and (run_id := st.query_params.get(RUN_PARAM)):
        job = job_board().get(run_id)
        if job is not None:
            st.session_state[JOB_KEY] = job
            _restore_form(job)
    if job is not None and st.query_params.get(RUN_PARAM) != job.id:
        st.query_params[RUN_PARAM] = job.id  # a closed tab reopened finds it again
    return job


def _restore_form(job: TrainingJob) -> None:
    """The form as it was when the run started (a new session has none of it)."""
    st.session_state[FOLDERS_WIDGET] = "\n".join(job.folders)
    st.session_state[SCAN_KEY] = (job.folders, job.report)
    options = job.options
    st.session_state["train_model_type"] = options.model_type
    st.session_state[f"train_epochs_{options.model_type.value}"] = options.epochs
    st.session_state["train_batch_size"] = options.batch_size
    st.session_state["train_validation"] = options.validation
    for aug in AUGMENT_LABELS:
        st.session_state[f"train_augment_{aug.value}"] = aug in options.augment


def keep_form() -> None:
    """Keep the form's widgets while another page runs (call it before any page does).

    Streamlit drops a widget's state at the end of a run that did not draw it, so the folders
    typed, and with them the scan, were gone on return from another page ("the folders
    changed"); assigning each value to itself before the page runs keeps it (Streamlit's own
    advice for widgets across pages). Buttons take no assignment, so they are left out.
    """
    for key in list(st.session_state):
        if isinstance(key, str) and key.startswith("train_") and key not in BUTTON_KEYS:
            st.session_state[key] = st.session_state[key]


# ============================================================================ 1. data


def _data_dir_hint() -> str:
    return _setting(DATA_ROOT_SETTING)


def _folders(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def _show_dataset_error(message: str) -> None:
    """The package's message in an error box, the layouts it understands below it."""
    head, _, _ = message.partition("\n\nLayouts understood:")
    st.error(head, icon=":material/folder_off:")
    st.markdown("**Layouts understood:**\n" + layouts_markdown())


def layouts_markdown() -> str:
    return "\n".join(f"- {line}" for line in LAYOUTS_HELP.splitlines())


def choose_data(*, busy: bool, data_root: Path | None = None) -> ScanReport | None:
    """Folder input and Scan button; shows the scan. Returns the report once a scan worked.

    With ``data_root``, only folders under it are scanned or even looked at.
    """
    st.header("1. Data", divider="gray")
    hint = _data_dir_hint()
    if data_root is not None:
        st.caption(f"This server trains only from folders under `{data_root}`.")
    text = st.text_area(
        "Dataset folders, one per line",
        value=hint,
        placeholder="/path/to/ravdess",
        height=80,
        key=FOLDERS_WIDGET,
        disabled=busy,
        help="Folders on the machine that runs this app. They are only read, never written. "
        "Several folders (e.g. RAVDESS and TESS) are trained on together.",
    )
    folders = _folders(text)
    if st.button("Scan", icon=":material/search:", key="train_scan_button", disabled=busy):
        st.session_state.pop(SCAN_KEY, None)
        st.session_state.pop(SCAN_ERROR_KEY, None)
        try:
            report = _scan_with_progress(confine(folders, data_root))
        except DatasetError as error:
            st.session_state[SCAN_ERROR_KEY] = (folders, str(error))
        else:
            st.session_state[SCAN_KEY] = (folders, report)

    failed = st.session_state.get(SCAN_ERROR_KEY)
    failed = failed[1] if failed is not None and failed[0] == folders else None
    if failed is not None:
        _show_dataset_error(failed)  # with the layouts understood
    try:
        local_data = any(
            Path(f).expanduser().is_dir()
            for f in confine([hint, *folders] if hint else folders, data_root)
        )
    except DatasetError:  # outside the root: said above, and not looked at
        local_data = False
    with st.expander("Where to get a dataset", icon=":material/download:", expanded=not local_data):
        st.markdown(DATASET_SOURCES)
        if failed is None:
            st.markdown("**Layouts understood:**\n" + layouts_markdown())

    scanned = st.session_state.get(SCAN_KEY)
    if scanned is None or scanned[0] != folders:
        if scanned is not None:
            st.info("The folders changed since the last scan: press **Scan** again.")
        elif not folders:
            st.caption("Type the folder of a dataset, then press **Scan**.")
        return None
    show_scan(scanned[1])
    return scanned[1]


def _scan_with_progress(folders: tuple[str, ...]) -> ScanReport:
    bar = st.progress(0.0, text="Scanning…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Scanning: {done:,} of {total:,} checks")

    try:
        return scan(folders, progress=progress)
    finally:
        bar.empty()


def layouts_text(report: ScanReport) -> str:
    return ", ".join(
        f"{LAYOUT_NAMES.get(name, name)} ({count:,} clips)"
        for name, count in report.layouts.items()
    )


def skipped_table(report: ScanReport) -> pd.DataFrame:
    return pd.DataFrame(
        [(printable(str(s.path)), printable(s.reason)) for s in report.skipped],
        columns=["file", "reason"],
    )


def speakers_chart(report: ScanReport) -> go.Figure:
    """Clips per speaker; with a single corpus, its name goes on the axis, not on every bar."""
    counts = report.speaker_counts()
    corpora = {speaker.partition(":")[0] for speaker in counts}
    if len(corpora) != 1:
        return plots.counts_bar(counts, title="Clips per speaker")
    corpus = corpora.pop()
    fig = plots.counts_bar(
        {speaker.partition(":")[2]: n for speaker, n in counts.items()}, title="Clips per speaker"
    )
    fig.update_xaxes(title=f"{LAYOUT_NAMES.get(corpus, corpus)} speaker", type="category")
    return fig


def show_scan(report: ScanReport) -> None:
    """What the scan found: layouts, counts per emotion and speaker, and what was skipped."""
    minutes = report.total_seconds / 60
    speakers = len(report.speaker_counts())
    st.success(
        f"**{len(report.clips):,} usable clips** ({minutes:,.1f} min) from {speakers} speakers. "
        f"Layout detected: {layouts_text(report)}.",
        icon=":material/check_circle:",
    )
    left, right = st.columns([2, 3])
    left.plotly_chart(
        plots.counts_bar(report.emotion_counts(), title="Clips per emotion"),
        config=PLOT_CONFIG,
        key="scan_emotions",
    )
    right.plotly_chart(
        speakers_chart(report),
        config=PLOT_CONFIG,
        key="scan_speakers",
    )
    if report.skipped:
        duplicates = len(report.duplicates)
        with st.expander(
            f"{len(report.skipped):,} {'file' if len(report.skipped) == 1 else 'files'} skipped"
            + (f" ({duplicates:,} duplicate audio)" if duplicates else ""),
            icon=":material/block:",
        ):
            st.dataframe(skipped_table(report), hide_index=True, width="stretch", height=250)
    else:
        st.caption("No file was skipped.")


# ============================================================================ 2. options


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
            captions=[MODEL_CAPTIONS.get(t.value, "") for t in ModelType],
            key="train_model_type",
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
            key=f"train_epochs_{model_type.value}",
            disabled=busy,
            help=f"Passes over the training clips; {recipe.epochs} is this model's recipe.",
        )
        batch_size = batch_col.number_input(
            "Batch size",
            min_value=4,
            max_value=1024,
            value=recipe.batch_size,
            step=8,
            key="train_batch_size",
            disabled=busy,
        )
        st.markdown("**Augmentation** (adds a varied copy of each training clip)")
        augment = tuple(
            aug
            for aug, label in AUGMENT_LABELS.items()
            if st.checkbox(label, key=f"train_augment_{aug.value}", disabled=busy)
        )
    with right:
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
        validation = st.radio(
            "Validation",
            list(Validation),
            format_func=VALIDATION_LABELS.__getitem__,
            key="train_validation",
            disabled=busy,
            help="How the held-out figure is measured. Held-out speakers never occur in "
            "training, as with a new user of the app.",
        )
        if validation is Validation.RANDOM:
            st.warning(RANDOM_SPLIT_WARNING, icon=":material/warning:")

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
    )
    return Choice(options, _problem(report, merges, emotions, validation))


def _problem(
    report: ScanReport, merges: list[tuple[str, str]], emotions: list[str], validation: Validation
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
    # As train.holdout_split: RAVDESS actors 21-24 when present, else 5 folds by speaker.
    actors = {ravdess_actor(c.speaker) for c in report.clips}
    if validation is Validation.SPEAKER and not actors & HOLDOUT_ACTORS:
        speakers = set(report.speakers)
        unknown = any(s.endswith(":unknown") for s in speakers)
        if unknown or len(speakers) < 5:
            return (
                "A speaker-independent hold-out needs RAVDESS actors 21-24 among the data, "
                f"or at least 5 known speakers (found {len(speakers)}"
                + (", some unknown" if unknown else "")
                + "). Add speakers, or choose the random split (it overstates accuracy)."
            )
    return None


def command_line(folders: tuple[str, ...], options: TrainOptions, name: str = "NAME") -> str:
    """The ``python -m ser train`` command with the same settings."""
    d = options.to_dict()
    args = ["python", "-m", "ser", "train"]
    for folder in folders:
        args += ["--data", folder]
    args += [
        "--model-type",
        d["model_type"],
        "--epochs",
        str(d["epochs"]),
        "--batch-size",
        str(d["batch_size"]),
    ]
    if d["emotions"]:
        args += ["--emotions", ",".join(d["emotions"])]
    for source, target in d["merge"]:
        args += ["--merge", f"{source}={target}"]
    if d["augment"]:
        args += ["--augment", ",".join(d["augment"])]
    args += ["--validation", d["validation"], "--seed", str(d["seed"]), "--name", name]
    return shlex.join([*args, "--keep-holdout-model"])  # the page saves the evaluated model


# ============================================================================ 3. train


def other_run() -> TrainingJob | None:
    """The run under way in another session, if any."""
    active = job_board().active()
    return active if active is not None and active is not own_job() else None


def show_other_run() -> None:
    """Another session's run: its progress, redrawn until it ends."""
    other = other_run()
    if other is not None:
        progress_panel(other, own=False)


def training_controls(report: ScanReport, choice: Choice) -> None:
    """The Train button, or why it cannot run yet."""
    st.header("3. Train", divider="gray")
    board = job_board()
    folders = tuple(str(f) for f in report.folders)
    if choice.problem:
        st.error(choice.problem, icon=":material/error:")
    cached, total = train.cached_count(report, choice.options)
    if total and cached == total:
        st.caption(
            f":material/bolt: Features for all {total:,} clips are in the cache: "
            "extraction is skipped."
        )
    elif cached:
        st.caption(f":material/bolt: Features for {cached:,} of {total:,} clips are in the cache.")
    with st.expander("The same run from the command line"):
        st.code(command_line(folders, choice.options), language="bash", wrap_lines=True)
    clicked = st.button(
        "Train",
        type="primary",
        icon=":material/model_training:",
        key="train_start",
        disabled=bool(choice.problem) or board.active() is not None,
    )
    if other_run() is not None:
        st.caption("Another session is training (see the top of the page): one run at a time.")
    if clicked and choice.problem is None:
        job = TrainingJob(report, choice.options, folders, owner=_session_token())
        if board.start(job):
            st.session_state[JOB_KEY] = job
        st.rerun()  # redraw: widgets locked and the progress below, or the other run's


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
            if snap.stopping:
                st.button(
                    "Stopping…", icon=":material/stop_circle:", disabled=True, key="train_stopping"
                )
            else:
                st.button(
                    "Stop training",
                    icon=":material/stop_circle:",
                    key="train_stop",
                    on_click=job.stop,
                )
        if running and snap.state is not State.RUNNING:
            st.rerun()  # the run ended: redraw the page (results, unlocked widgets)

    panel()


def _eta(progress: Progress) -> str:
    remaining = progress.remaining_s
    if remaining is None or progress.done >= progress.total:
        return ""
    return f" · about {_duration(remaining)} left"


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


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


def _draw_progress(job: TrainingJob, snap: Snapshot) -> None:
    f = snap.features
    st.progress(
        (f.done / max(f.total, 1)) if f else 0.0,
        text=features_text(snap),
    )
    if snap.stage == "training" or snap.epochs is not None:
        e = snap.epochs
        st.progress(
            e.done / max(e.total, 1) if e else 0.0,
            text=epochs_text(e) if e else "Training: building the network…",
        )
    if snap.history.get("loss"):
        st.plotly_chart(job.live_curves(snap), config=PLOT_CONFIG, key="live_curves")


# ============================================================================ 4. results and 5. save


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


def _finished(job: TrainingJob) -> tuple[HoldoutResult, Prepared]:
    if job.result is None or job.data is None:
        raise RuntimeError(f"training run {job.id} has no result")
    return job.result, job.data


def show_results(job: TrainingJob, snap: Snapshot) -> None:
    result, data = _finished(job)
    st.header("4. Results", divider="gray")
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
    kind = ui.protocol_kind(result.protocol)
    if kind == ui.RANDOM_SPLIT:
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
    st.plotly_chart(plots.training_curves(result.history), config=PLOT_CONFIG, key="result_curves")


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
        return f"Features for {f.total:,} clips computed in {_duration(f.elapsed_s)}; cached for next time."
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
    problem: str | None = None
    overwrite = False
    try:
        store.validate_name(name)
    except SERError as error:
        problem = str(error)
    else:
        existing = _existing(name)
        if existing is not None and existing.shipped:
            problem = f"'{name}' is a shipped model and is never overwritten. Choose another name."
        elif existing is not None:
            st.warning(
                f"A model named **{name}** already exists. Choose another name, or tick "
                "the box to replace it.",
                icon=":material/warning:",
            )
            overwrite = st.checkbox(f"Overwrite {name}", key=f"train_overwrite_{job.id}")
            if not overwrite:
                problem = ""  # said above; just keep Save disabled
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
            info = save_model(job, name, overwrite=overwrite)
        except SERError as error:
            st.error(f"Not saved: {error}", icon=":material/error:")
        else:
            job.saved = info
            st.rerun()


def _existing(name: str) -> store.ModelInfo | None:
    if not (store.default_models_dir() / f"{name}.json").is_file():
        return None
    try:
        return store.find_model(name)
    except SERError:
        return None


def save_model(job: TrainingJob, name: str, *, overwrite: bool) -> store.ModelInfo:
    """Write the held-out model with the metadata the CLI writes (atomically, by the store)."""
    result, data = _finished(job)
    meta = train.metadata(
        data,
        job.options,
        evaluation=train.holdout_evaluation(result),
        command=command_line(job.folders, job.options, name),
        train_index=result.train_index,
    )
    return store.save_model(result.model, meta, name=name, overwrite=overwrite)
