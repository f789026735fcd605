"""The Streamlit side of the app, shared by its pages.

- Models: the installed models (re-read whenever the models folder changes), each loaded once
  per process (``st.cache_resource`` keyed by name and the files' modification times), the
  sidebar picker, and a background warm-up of the default model.
- Clips: uploads, recordings and the example clip become ``Clip``; each is recognised once per
  session and model, and a bad clip becomes an error message, never an exception.
- Results: one clip in full (headline, probabilities, waveform, spectrogram, emotion over
  time, caveats), or many as a table with a CSV download.

Nothing here judges audio or emotions: that is the ``ser`` package's job. TensorFlow is
imported only by the model loader. pandas and plotly are imported here, with this module,
before any page runs: plotly uses whatever ``sys.modules`` holds, so a page drawing a chart
while another thread was still importing pandas met a half-imported pandas.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects  # noqa: F401  see the module's docstring
import streamlit as st

from ser import plots
from ser.audio import FILE_EXTENSIONS, MAX_DURATION_S, MIN_DURATION_S, SUPPORTED_FORMATS
from ser.errors import ModelError, SERError
from ser.store import (
    ModelInfo,
    default_model,
    default_models_dir,
    list_models,
)

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator
    from streamlit.runtime.uploaded_file_manager import UploadedFile

    from ser.predict import Narrower, Recognizer, Result

log = logging.getLogger("ser.app")

ROOT = Path(__file__).resolve().parent
EXAMPLE_CLIP = ROOT / "assets" / "example-speech.wav"
UPLOAD_TYPES = list(FILE_EXTENSIONS)
PLOT_CONFIG = {"displaylogo": False}

EMOJI = {
    "neutral": "😐",
    "calm": "😌",
    "happy": "😄",
    "sad": "😢",
    "angry": "😠",
    "fearful": "😨",
    "disgust": "🤢",
    "surprised": "😲",
}
CORPUS_NAMES = {
    "ravdess": "RAVDESS",
    "tess": "TESS",
    "savee": "SAVEE",
    "crema-d": "CREMA-D",
    "emodb": "EmoDB",
    "ased": "ASED",
    "emospeech": "EmoSpeech",
    "folders": "own folders",
}

# Session-state keys. The picker's own key is dropped by Streamlit whenever a page without the
# picker runs, so the choice is also kept under a key no widget owns.
MODEL_WIDGET_KEY = "model"
CHOSEN_MODEL_KEY = "chosen_model"


_MARKDOWN_ACTIVE = re.compile(r"([\\\[\]<>$])")


def md(text: str) -> str:
    """``text`` for a Markdown element, with what could make links, HTML or LaTeX escaped.

    File names and error messages come from the visitor: a file called
    ``[prize](https://example.com).wav`` must show as that name, not as a link.
    """
    return _MARKDOWN_ACTIVE.sub(r"\\\1", text)


# ============================================================================ routing


def through_app() -> None:
    """Make sure this page runs inside ``app.py``'s navigation, and keep the Train page's form
    while another page runs; call it first on every page.

    Because a ``pages/`` folder exists, Streamlit runs its old folder-based navigation until
    the first ``st.navigation`` call in the process. So when a fresh server's first request
    is a page's own address (a bookmark of /models, say), Streamlit runs that page file by
    itself: no wide layout, file names in the sidebar. Switch the old mode off and rerun:
    the rerun goes through ``app.py`` and lands on the same page.

    Only before ``app.py`` has ever run in the process: AppTest resets the old mode before
    every run (its first run goes through ``app.py``), and there a rerun would only lose
    button clicks.
    """
    import training_ui  # here: it imports this module

    training_ui.keep_form()  # the Train page's form and run survive a visit to another page
    if _warmup_started:  # set by app.py's call to start_warmup
        return
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # moved in some later Streamlit: nothing to fix there, presumably
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


# ============================================================================ models


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


def _problem(info: ModelInfo) -> str | None:
    return info.problem or _load_failures.get((info.name, _stamp(info)))


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


# next() on a count is atomic: exactly one caller sees 0, with no lock to hold.
_warmup_calls = itertools.count()
_warmup_started = False
_warmup_thread: threading.Thread | None = None


def start_warmup() -> None:
    """Load the default model in a background thread, once per process.

    The first page renders while TensorFlow imports and the model loads, and whoever
    needs a model first waits only for what is left.
    """
    global _warmup_started, _warmup_thread
    if next(_warmup_calls) == 0:
        thread = threading.Thread(target=_warm_up, name="ser-model-warmup", daemon=True)
        _warmup_thread, _warmup_started = thread, True
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


def model_label(info: ModelInfo) -> str:
    """The picker's text: the name alone, which fits the sidebar (the figures, with the
    protocol that produced them, are in the caption under it)."""
    return info.name


def model_heading(info: ModelInfo) -> str:
    """The picker's text for a usable model; name and "broken" for the others."""
    return model_label(info) if _problem(info) is None else f"{info.name} (broken)"


def corpora(info: ModelInfo) -> str:
    names = info.metadata.get("trained_on", {}).get("corpora", {})
    return ", ".join(CORPUS_NAMES.get(n, n) for n in names) or "unknown data"


def model_title(meta: dict[str, Any]) -> str:
    """What kind of model it is: its type's current title (a saved copy can be out of date)."""
    from ser.models import ModelType

    kind = meta.get("model_type", "")
    if kind in {t.value for t in ModelType}:
        return ModelType(kind).title
    return meta.get("title") or kind or "Model"


def unseen_corpora_figure(meta: dict[str, Any]) -> str | None:
    """One sentence on how the model does on corpora it never heard, or None if not measured."""
    across = meta.get("cross_corpus") or {}
    four, held = across.get("four_class") or {}, across.get("corpora") or {}
    summary = four if four.get("mean_accuracy") is not None else across
    if summary.get("mean_accuracy") is None:
        return None
    which = "4 emotions" if summary is four else "the emotions they share"
    names = ", ".join(CORPUS_NAMES.get(n, n) for n in held)
    return (
        f"On corpora it never heard ({names}; {across.get('protocol', '')}): {summary['mean_accuracy']:.1%} "
        f"mean accuracy on {which}, worst {summary['worst_accuracy']:.1%}"
    )


# What produced a figure, in the words every page uses. Only the first three hold speakers out.
SPEAKER_HOLDOUT = "speaker hold-out"
KFOLD_BY_SPEAKER = "k-fold by speaker"
LEAVE_ONE_SPEAKER_OUT = "leave-one-speaker-out"
RANDOM_SPLIT = "random split"
LEAVE_ONE_CORPUS_OUT = "leave-one-corpus-out"
SPEAKER_PROTOCOLS = (SPEAKER_HOLDOUT, KFOLD_BY_SPEAKER, LEAVE_ONE_SPEAKER_OUT)


def protocol_kind(protocol: str) -> str:
    """Which of the five protocols a saved protocol text names (``ser.train`` writes them)."""
    text = protocol.lower()
    if "random" in text:
        return RANDOM_SPLIT
    if "leave-one-speaker-out" in text:
        return LEAVE_ONE_SPEAKER_OUT
    if "corpus" in text or "corpora" in text or "tested on unseen" in text:
        return LEAVE_ONE_CORPUS_OUT
    if "fold" in text:
        return KFOLD_BY_SPEAKER
    return SPEAKER_HOLDOUT


def measured_on(protocol: str) -> str:
    """Where a figure was measured, e.g. "on speakers it never heard (k-fold by speaker)".

    A random split's test clips share speakers with training, so it is never said to be on
    unseen speakers.
    """
    kind = protocol_kind(protocol)
    if kind == RANDOM_SPLIT:
        return f"on a {RANDOM_SPLIT} (speakers leak into the test, so it is overstated)"
    if kind == LEAVE_ONE_CORPUS_OUT:
        return f"on corpora it never heard ({kind})"
    return f"on speakers it never heard ({kind})"


def model_description(info: ModelInfo, *, protocol: bool = False) -> str:
    """A sentence or two on what the model is and how well it did, naming the protocol;
    ``protocol`` adds the saved protocol's own words (which speakers, which folds)."""
    meta = info.metadata
    evaluation = meta.get("evaluation", {})
    trained = meta.get("trained_on", {})
    title = model_title(meta)
    if info.accuracy is not None:
        figures = f"{info.accuracy:.1%} accuracy"
        if info.uar is not None:
            figures += f", {info.uar:.1%} UAR"
        figures += f" {measured_on(str(evaluation.get('protocol', '')))}"
        if protocol and evaluation.get("protocol"):
            figures += f": {evaluation['protocol']}"
    else:
        figures = "Not evaluated on held-out data"
    if (unseen := unseen_corpora_figure(meta)) is not None:
        figures += f". {unseen}"
    data = f"Trained on {corpora(info)}"
    if trained.get("clips"):
        data += f": {trained['clips']:,} clips"
        if trained.get("speakers"):
            data += f" from {trained['speakers']} speakers"
    return f"**{title}.** {figures}. {data}."


@dataclass
class ModelChoice:
    """The model picked in the sidebar, and the sidebar slot that shows whether it is ready."""

    info: ModelInfo
    status: DeltaGenerator

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
        """Called at the end of a page: the page is on screen, now make sure the model is."""
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
    usable = [m for m in models if _problem(m) is None]
    unusable = [(m.name, _problem(m)) for m in models if _problem(m) is not None]
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
    _show_recall(info)
    status = sidebar.empty()
    _show_unusable(unusable)
    return ModelChoice(info, status)


def _show_recall(info: ModelInfo) -> None:
    """Which emotions the model gets right on held-out clips, named by protocol (also loads
    the chart code in the browser before the first result needs it)."""
    evaluation = info.metadata.get("evaluation", {})
    confusion, labels = evaluation.get("confusion"), evaluation.get("labels")
    if confusion and labels and len(confusion) == len(labels):
        kind = protocol_kind(str(evaluation.get("protocol", "")))
        figure = plots.recall_bars(np.asarray(confusion), labels, protocol=kind)
        st.sidebar.plotly_chart(figure, config=PLOT_CONFIG, key="model_recall")


def _show_unusable(unusable: Sequence[tuple[str, str | None]]) -> None:
    for name, problem in unusable:
        st.sidebar.caption(
            f":material/block: **{name}** is broken and cannot be used: {md(problem or '')}"
        )


# ============================================================================ clips


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


def clips_from_uploads(files: Sequence[UploadedFile] | UploadedFile | None) -> list[Clip]:
    if files is None:
        return []
    if not isinstance(files, Sequence):
        files = [files]
    return [
        Clip(f.name, f.getvalue(), _MIME.get(Path(f.name).suffix.lower().lstrip("."), f.type))
        for f in files
    ]


def clips_from_recording(recording: UploadedFile | None) -> list[Clip]:
    if recording is None:
        return []
    return [Clip("recording.wav", recording.getvalue(), "audio/wav")]


def example_clips() -> list[Clip]:
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


def _narrower(recognizer: Recognizer) -> Narrower:
    """For the default model: the shipped model that a recording's rate fully feeds, if any."""
    from ser.predict import narrower_for

    def usable() -> list[ModelInfo]:
        return [m for m in installed_models() if _problem(m) is None]

    return narrower_for(recognizer, models=usable, load=load_recognizer)


def _recognise_one(recognizer: Recognizer, clip: Clip, narrower: Narrower | None) -> Outcome:
    model = recognizer.info.name
    if (too_large := _too_large(clip)) is not None:
        return Outcome(clip, model, error=too_large)
    try:
        result = recognizer.recognise(clip.data, name=clip.name, narrower=narrower)
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
    model_id = (recognizer.info.name, _stamp(recognizer.info))
    default = default_model([m for m in installed_models() if _problem(m) is None])
    # Only the default hands recordings on: a model picked by hand answers everything itself.
    narrower = (
        _narrower(recognizer)
        if default is not None and default.name == recognizer.info.name
        else None
    )
    current: dict[tuple[Any, ...], Outcome] = {}
    outcomes = []
    for clip in clips:
        k = (model_id, clip.name, clip.digest)
        outcome = current.get(k) or previous.get(k) or _recognise_one(recognizer, clip, narrower)
        current[k] = outcome
        outcomes.append(outcome)
    st.session_state[memo_key] = current  # only the clips on screen stay in memory
    return outcomes


# ============================================================================ results


def headline(result: Result) -> str:
    """E.g. "😄 Happy — 72%"."""
    p = result.prediction
    return f"{EMOJI.get(p.emotion, '🗣️')} {p.emotion.capitalize()} — {p.confidence:.0%}"


def show_clips(clips: Sequence[Clip], choice: ModelChoice | None, *, key: str) -> None:
    """Recognise the clips and show them: one in full, several as a table plus one in full."""
    if not clips:
        return
    if choice is None:
        st.info("Install or train a model to recognise clips (see the sidebar).")
        return
    with st.spinner(f"Loading model {choice.info.name} (once per server start)…"):
        recognizer = choice.recognizer()
    with st.spinner(f"Listening to {len(clips)} clip{'s' if len(clips) > 1 else ''}…"):
        outcomes = recognise(recognizer, clips, key=key)
    picked = choice.info.name
    if len(outcomes) == 1:
        show_outcome(outcomes[0], key=key, picked=picked)
        return
    show_table(outcomes, recognizer.labels, key=key)
    good = [i for i, o in enumerate(outcomes) if o.result is not None]
    if not good:
        return
    st.divider()
    shown = st.selectbox(
        "Show the details of",
        options=good,
        format_func=lambda i: f"{outcomes[i].clip.name}: {headline(outcomes[i].result)}",
        key=f"{key}-detail",
    )
    show_outcome(outcomes[shown], key=f"{key}-detail", picked=picked)


def _answering_model(outcome: Outcome, picked: str | None) -> ModelInfo | None:
    """The model that answered, when it is not the one the sidebar describes (the default
    hands a low-rate recording on)."""
    if picked is None or outcome.model == picked:
        return None
    return next((m for m in installed_models() if m.name == outcome.model), None)


def show_outcome(outcome: Outcome, *, key: str, picked: str | None = None) -> None:
    """One clip in full, or its error message; ``picked`` is the sidebar's model."""
    if outcome.result is None:
        st.error(md(outcome.error or ""), icon=":material/error:")
        return
    result = outcome.result
    audio = result.audio
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.subheader(headline(result), anchor=False)
        st.caption(
            f"Most likely emotion in **{md(outcome.clip.name)}** ({audio.duration_s:.1f} s), "
            f"according to model **{outcome.model}**."
        )
        if (handed := _answering_model(outcome, picked)) is not None:
            st.caption(f"About **{handed.name}**, which answered: {model_description(handed)}")
        st.audio(outcome.clip.data, format=outcome.clip.mime)
        for caveat in result.caveats:
            st.warning(md(caveat), icon=":material/warning:")
    with right:
        st.plotly_chart(
            plots.probability_bars(result.prediction.as_dict()),
            key=f"{key}-probabilities",
            config=PLOT_CONFIG,
        )
    _show_views(result, key=key)


def _show_views(result: Result, *, key: str) -> None:
    """Emotion over time (long clips), waveform and spectrogram, one tab at a time.

    Only the open tab is computed and sent: a spectrogram is the heaviest thing on the page.
    """
    audio, timeline = result.audio, result.timeline
    names = ["Waveform", "Spectrogram"]
    if timeline is not None:
        names.insert(0, "Emotion over time")
    tabs = st.tabs(names, key=f"{key}-views", on_change="rerun")
    for name, tab in zip(names, tabs, strict=True):
        if tab.open is False:
            continue
        with tab:
            if name == "Emotion over time" and timeline is not None:
                figure = plots.emotion_over_time(
                    timeline.start_s,
                    timeline.probabilities,
                    timeline.labels,
                    window_s=timeline.window_s,
                )
            elif name == "Waveform":
                figure = plots.waveform(audio.samples, sample_rate_hz=audio.sample_rate_hz)
            else:
                figure = plots.spectrogram(audio.samples, sample_rate_hz=audio.sample_rate_hz)
            st.plotly_chart(figure, key=f"{key}-{name}", config=PLOT_CONFIG)
            if name == "Emotion over time" and timeline is not None:
                st.caption(
                    f"The clip is longer than the clips the model learnt from, so it is judged "
                    f"in {timeline.window_s:g} s windows; the headline averages them."
                )


def outcomes_table(outcomes: Sequence[Outcome], labels: Sequence[str]) -> pd.DataFrame:
    """One row per clip: file, the model that answered, emotion, confidence, error, each
    emotion's probability, caveats (the CSV; a failed clip's figures are empty)."""
    rows = []
    for o in outcomes:
        row: dict[str, Any] = {"file": o.clip.name, "model": o.model, "emotion": None}
        row |= {"confidence": None, "error": o.error or ""}
        row |= dict.fromkeys(labels)
        if o.result is not None:
            p = o.result.prediction
            row |= {"emotion": p.emotion, "confidence": round(p.confidence, 4)}
            row |= {k: round(v, 4) for k, v in p.as_dict().items()}
        row["caveats"] = "; ".join(o.result.caveats) if o.result is not None else ""
        rows.append(row)
    return pd.DataFrame(rows)


def show_table(outcomes: Sequence[Outcome], labels: Sequence[str], *, key: str) -> None:
    failed = sum(o.result is None for o in outcomes)
    summary = f"**{len(outcomes)} clips**: {len(outcomes) - failed} recognised"
    if failed:
        summary += f", {failed} could not be used (see the *error* column)"
    models = list(dict.fromkeys(o.model for o in outcomes))  # the default hands some clips on
    st.markdown(
        summary
        + f". Model{'s' if len(models) > 1 else ''} "
        + ", ".join(f"**{m}**" for m in models)
        + "."
    )
    table = outcomes_table(outcomes, labels)
    percent = {k: st.column_config.NumberColumn(k, format="percent") for k in labels}
    st.dataframe(
        table,
        hide_index=True,
        key=f"{key}-table",
        placeholder="–",  # a failed clip has no figures: a dash, not "None"
        column_config={
            "confidence": st.column_config.ProgressColumn(
                "confidence", format="percent", min_value=0.0, max_value=1.0
            ),
            **percent,
            "error": st.column_config.TextColumn("error", width="large"),
        },
    )
    st.download_button(
        "Download as CSV",
        data=table.to_csv(index=False).encode("utf-8"),
        file_name="emotions.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
        key=f"{key}-csv",
    )


# ============================================================================ models page


def models_overview(models: Sequence[ModelInfo]) -> pd.DataFrame:
    default = default_model([m for m in models if _problem(m) is None])
    rows = []
    for m in models:
        problem = _problem(m)
        trained = m.metadata.get("trained_on", {})
        rows.append(
            {
                "model": m.name,
                "status": f"broken: {problem}"
                if problem
                else ("default" if m is default else "ok"),
                "type": model_title(m.metadata) if m.metadata else "",
                "accuracy": m.accuracy,
                "UAR": m.uar,
                "protocol": _protocol_cell(m),
                "unseen corpora": _unseen_mean(m.metadata),
                "trained on": corpora(m) if m.metadata else "",
                "clips": trained.get("clips"),
                "speakers": trained.get("speakers"),
                "emotions": ", ".join(m.labels),
                "created (UTC)": m.metadata.get("created_utc", ""),
            }
        )
    return pd.DataFrame(rows)


def _protocol_cell(info: ModelInfo) -> str:
    protocol = str(info.metadata.get("evaluation", {}).get("protocol", ""))
    return f"{protocol_kind(protocol)}: {protocol}" if protocol else ""


def _unseen_mean(meta: dict[str, Any]) -> float | None:
    """Mean accuracy on corpora never heard: 4-class where measured, else on the shared emotions."""
    across = meta.get("cross_corpus") or {}
    return (across.get("four_class") or {}).get("mean_accuracy") or across.get("mean_accuracy")


def show_models_overview(models: Sequence[ModelInfo]) -> None:
    st.dataframe(
        models_overview(models),
        hide_index=True,
        key="models-table",
        column_config={
            "accuracy": st.column_config.NumberColumn("accuracy", format="percent"),
            "UAR": st.column_config.NumberColumn("UAR", format="percent"),
            "unseen corpora": st.column_config.NumberColumn(
                "unseen corpora",
                format="percent",
                help="Mean accuracy on whole corpora the model never heard (4 emotions where measured)",
            ),
        },
    )


def cross_corpus_table(meta: dict[str, Any]) -> pd.DataFrame:
    """One row per corpus the model never heard: its figures, before and after calibration."""
    across = meta.get("cross_corpus") or {}
    rows = []
    for name, f in {**(across.get("corpora") or {}), **(across.get("extra_tests") or {})}.items():
        four = f.get("four_class") or {}
        rows.append(
            {
                "held-out corpus": CORPUS_NAMES.get(name, name),
                "trained on": ", ".join(CORPUS_NAMES.get(n, n) for n in f.get("trained_on", [])),
                "emotions": ", ".join(f.get("labels", [])),
                "accuracy": f.get("accuracy"),
                "UAR": f.get("uar"),
                "4-class accuracy": four.get("accuracy"),
                "ECE": f.get("ece"),
                "ECE calibrated": f.get("ece_calibrated"),
            }
        )
    return pd.DataFrame(rows)


def show_model_details(info: ModelInfo) -> None:
    """Figures, training data, the command that reproduces it, folds and confusion matrix."""
    if _problem(info) is not None:
        st.error(f"This model cannot be used: {md(_problem(info) or '')}")
        if not info.metadata:
            return
    meta = info.metadata
    evaluation = meta.get("evaluation", {})
    kind = protocol_kind(str(evaluation.get("protocol", "")))
    st.markdown(model_description(info, protocol=True))
    cols = st.columns(4)
    cols[0].metric(
        "Accuracy",
        f"{info.accuracy:.1%}" if info.accuracy is not None else "–",
        help=f"Share of held-out clips labelled correctly ({kind}).",
    )
    cols[1].metric(
        "UAR",
        f"{info.uar:.1%}" if info.uar is not None else "–",
        help="Unweighted average recall: the mean of each emotion's recall, so "
        f"rare emotions count as much as common ones ({kind}).",
    )
    cols[2].metric("Clips", f"{meta.get('trained_on', {}).get('clips', 0):,}")
    cols[3].metric("Emotions", len(info.labels))
    if meta.get("command"):
        st.markdown("Reproduce it with:")
        st.code(meta["command"], language="bash", wrap_lines=True)
    folds = evaluation.get("folds")
    confusion = evaluation.get("confusion")
    if folds:
        left, right = st.columns([1, 2], gap="large")
    else:
        right, left = st.columns([2, 1], gap="large")
    if folds:
        with left:
            st.markdown(
                f"**Per fold** ({kind}: {FOLD_MEANING.get(kind, 'each fold tests on clips left out of training')})"
            )
            table = pd.DataFrame(folds)
            table.insert(0, "fold", range(1, len(folds) + 1))
            st.dataframe(
                table,
                hide_index=True,
                key=f"folds-{info.name}",
                column_config={
                    "accuracy": st.column_config.NumberColumn("accuracy", format="percent"),
                    "uar": st.column_config.NumberColumn("UAR", format="percent"),
                },
            )
    if confusion:
        with right:
            st.plotly_chart(
                plots.confusion_matrix(
                    np.asarray(confusion), evaluation.get("labels", info.labels), protocol=kind
                ),
                key=f"confusion-{info.name}",
                config=PLOT_CONFIG,
            )
    if meta.get("cross_corpus"):
        st.markdown(
            f"**On corpora it never heard** ({meta['cross_corpus'].get('protocol', '')}). A user's voice and "
            "microphone are a new corpus, so these are the figures to expect. ECE is the gap between "
            "confidence and accuracy; *calibrated* applies the temperature the app uses, fitted on "
            "the other corpora."
        )
        st.dataframe(
            cross_corpus_table(meta),
            hide_index=True,
            key=f"corpora-{info.name}",
            column_config={
                c: st.column_config.NumberColumn(c, format="percent")
                for c in ("accuracy", "UAR", "4-class accuracy")
            },
        )
    with st.expander("Training settings and metadata"):
        st.json({k: v for k, v in meta.items() if k not in ("evaluation",)}, expanded=False)


FOLD_MEANING = {
    KFOLD_BY_SPEAKER: "each fold tests on speakers left out of training",
    LEAVE_ONE_SPEAKER_OUT: "each fold tests on one speaker left out of training",
    LEAVE_ONE_CORPUS_OUT: "each fold tests on a corpus left out of training",
    RANDOM_SPLIT: "clips of the same speakers on both sides: overstated",
}

CREDITS = """
### Data and licences

The models are trained on acted emotional speech:

- **RAVDESS**: Livingstone, S. R., & Russo, F. A. (2018). *The Ryerson Audio-Visual Database
  of Emotional Speech and Song (RAVDESS)*. PLoS ONE 13(5): e0196391.
  [doi:10.1371/journal.pone.0196391](https://doi.org/10.1371/journal.pone.0196391).
  Licence: [CC BY-NC-SA 4.0](https://creativecommons.org/licenses/by-nc-sa/4.0/).
- **TESS**: Dupuis, K., & Pichora-Fuller, M. K. (2010). *Toronto Emotional Speech Set
  (TESS)*. University of Toronto. [doi:10.5683/SP2/E8H2MF](https://doi.org/10.5683/SP2/E8H2MF).
  Licence: [CC BY-NC-ND 4.0](https://creativecommons.org/licenses/by-nc-nd/4.0/).

**Non-commercial use only.** Both licences forbid commercial use, and models trained on
these recordings inherit that restriction: use the app and its models for research,
teaching and personal experiments, not in a product or service you sell. A model trained
on other recordings (the Train page reads SAVEE, CREMA-D, EmoDB and your own folders too)
carries the licence terms of those recordings.
"""

EXAMPLE_NOTE = (
    "A 2.6 s synthetic voice saying *“Kids are talking by the door”*, one of the "
    "sentences the models learnt from. It was not spoken with any emotion, so no answer is the "
    "right one: it shows what the page does, not how accurate the model is. It was recorded at "
    "16 kHz, so with the default model picked it is answered by the 16 kHz model, and the page "
    "says so."
)

ABOUT = """
The app guesses the emotion in a short clip of speech: it computes features of the sound
(a log-mel spectrogram with, for the default model, how pitch, loudness and timbre move; or
MFCCs) and passes them to a neural network trained on actors speaking with a given emotion.
Each figure names the protocol that produced it. The shipped models' are measured by
k-fold by speaker, on **speakers they never heard** during training, which is what you can
expect on a new voice, at best (a random split's figure is not: its test speakers were heard). Real,
spontaneous speech is subtler than acted speech, and background noise, other languages and
very short clips all make it worse. Recordings unlike the training corpora cost most: trained
on one of the two corpora below and tested on the other (7 emotions), the default model's
recipe scored 54% and 26%. Treat a result as a hint, not a verdict, and never use it to make
decisions about people.
"""
