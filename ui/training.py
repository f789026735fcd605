"""The Train page's runs in the sessions: one run at a time per server, found again by id.

``job_board`` (one ``ser.jobs.Registry`` per server process, through ``st.cache_resource``)
lets one run train at a time: while it runs, every other session sees its progress and cannot
start another. The run lives there, not in the session: a visitor who leaves the page finds
the form and the run as they were, and one who closes the tab finds the run again through
the address (``?run=ID``), its result still to be saved.

The page reads the dataset folders it is pointed at and writes nothing into them: features go
to the cache (``SER_CACHE_DIR`` or ``~/.cache/ser``), models to the models folder
(``SER_MODELS_DIR`` or ``models/``) through ``ser.store``, which writes atomically.
"""

from __future__ import annotations

import uuid

import streamlit as st

from ser import jobs
from ser.datasets import NAME_SPEAKERS, ScanReport
from ser.jobs import TrainingJob
from ser.models import ModelType
from ser.train import Augmentation, TrainOptions
from ui.keras_guard import keep_keras_state_while_training
from ui.texts import AUGMENT_LABELS

# Session-state keys (widget keys are literal where the widgets are drawn).
SCAN_KEY = "train_scan"  # (folders, ScanReport) of the last successful scan
SCAN_ERROR_KEY = "train_scan_error"  # (folders, message) of the last failed scan
JOB_KEY = "train_job"  # this session's last TrainingJob
FOLDERS_WIDGET = "train_folders"
RUN_PARAM = "run"  # the address's ?run=ID: the run a reopened tab finds again
BUTTON_KEYS = frozenset(
    {"train_scan_button", "train_start", "train_stop", "train_stopping", "train_save"}
)
# The options' widget keys, which a run found again fills in.
MODEL_TYPE_WIDGET = "train_model_type"
BATCH_SIZE_WIDGET = "train_batch_size"
VALIDATION_WIDGET = "train_validation"
SPEAKERS_WIDGET = "train_speakers"  # how own folders name speakers: None, subfolder or name:
SPEAKER_PATTERN_WIDGET = "train_speaker_pattern"


def epochs_widget(model_type: ModelType) -> str:
    return f"train_epochs_{model_type.value}"


def augment_widget(augmentation: Augmentation) -> str:
    return f"train_augment_{augmentation.value}"


@st.cache_resource(show_spinner=False)
def job_board() -> jobs.Registry[TrainingJob]:
    """The process's runs: one under way at a time, each found again by its id."""
    return jobs.Registry()


def _session_token() -> str:
    return st.session_state.setdefault("train_session_token", uuid.uuid4().hex)


def start_job(report: ScanReport, options: TrainOptions, folders: tuple[str, ...]) -> None:
    """Start a run for this session, unless another session's run is under way."""
    job = TrainingJob(
        report,
        options,
        folders,
        owner=_session_token(),
        before_training=keep_keras_state_while_training,
    )
    if job_board().start(job):
        st.session_state[JOB_KEY] = job


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


def other_run() -> TrainingJob | None:
    """The run under way in another session, if any."""
    active = job_board().active()
    return active if active is not None and active is not own_job() else None


def _restore_form(job: TrainingJob) -> None:
    """The form as it was when the run started (a new session has none of it)."""
    st.session_state[FOLDERS_WIDGET] = "\n".join(job.folders)
    st.session_state[SCAN_KEY] = (job.folders, job.report)
    options = job.options
    st.session_state[MODEL_TYPE_WIDGET] = options.model_type
    st.session_state[epochs_widget(options.model_type)] = options.epochs
    st.session_state[BATCH_SIZE_WIDGET] = options.batch_size
    st.session_state[VALIDATION_WIDGET] = options.validation
    rule = options.speakers
    if rule is not None and rule.startswith(NAME_SPEAKERS):
        st.session_state[SPEAKERS_WIDGET] = NAME_SPEAKERS
        st.session_state[SPEAKER_PATTERN_WIDGET] = rule.removeprefix(NAME_SPEAKERS)
    else:
        st.session_state[SPEAKERS_WIDGET] = rule
    for aug in AUGMENT_LABELS:
        st.session_state[augment_widget(aug)] = aug in options.augment


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
