"""The Recognise page's Live tab: the emotion of the last few seconds while the visitor speaks.

streamlit-webrtc carries the microphone to the server over WebRTC; each audio frame lands in a
callback on its event-loop thread, which hands it to this browser session's
``ser.live.LiveSession`` (kept in ``st.session_state``, so every session has its own stream,
window and take). A fragment redraws the live view twice a second from what the session last
computed; it never computes anything itself. At stop, the take is answered like an upload and
shown with ``ui.results.show_outcome``.

WebRTC needs a path between browser and server. On localhost there always is one; across the
internet many networks need a TURN server to relay it: ``SER_ICE_SERVERS`` (JSON, from the
environment or Streamlit secrets) lists them.
"""

from __future__ import annotations

import functools
import gc
import inspect
import json
import logging
import os
import sys
import threading
import weakref
from types import ModuleType
from typing import TYPE_CHECKING, Any

import streamlit as st

from ser import live
from ser.audio import MAX_DURATION_S, to_wav_bytes
from ser.emotions import EMOJI
from ser.errors import SERError
from ui.clips import Clip, Outcome
from ui.markdown import md
from ui.models import ModelChoice
from ui.results import show_outcome

if TYPE_CHECKING:
    import av

    from ser.predict import Recognizer, Result

log = logging.getLogger("ser.app")

ICE_SERVERS_SETTING = "SER_ICE_SERVERS"
SESSION_KEY = "_live_session"
PLAYING_KEY = "_live_playing"
FEED_KEY = "_live_feed"
OUTCOME_KEY = "_live_outcome"
TAKE_NAME = "live take.wav"
SILENCE_EMOJI = "🤫"


# ============================================================================ settings


def parse_ice_servers(value: Any) -> list[dict[str, Any]]:
    """ICE servers from a JSON string or a list of mappings, each with ``urls``.

    Raises ``ValueError`` saying what is wrong; an empty value gives no servers.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"{ICE_SERVERS_SETTING} is not valid JSON ({error.msg})") from None
    if isinstance(value, dict):  # one server
        value = [value]
    servers = [dict(server) for server in value] if isinstance(value, list | tuple) else None
    if not servers or not all(_urls_ok(s.get("urls")) for s in servers):
        raise ValueError(
            f'{ICE_SERVERS_SETTING} must be a list of servers like [{{"urls": "turn:host:3478", '
            '"username": "...", "credential": "..."}]'
        )
    return servers


def _urls_ok(urls: Any) -> bool:
    if isinstance(urls, str):
        urls = [urls]
    return isinstance(urls, list) and bool(urls) and all(isinstance(u, str) and u for u in urls)


def ice_servers() -> tuple[list[dict[str, Any]], str | None]:
    """The configured ICE servers (environment first, then secrets) and any problem with them."""
    value: Any = os.environ.get(ICE_SERVERS_SETTING)
    if value is None:
        try:
            value = st.secrets.get(ICE_SERVERS_SETTING)
        except Exception:  # no secrets file at all: Streamlit raises rather than returning None
            value = None
        if value is not None and not isinstance(value, str):
            value = json.loads(json.dumps(value, default=dict))  # secrets' AttrDicts to plain data
    try:
        return parse_ice_servers(value), None
    except ValueError as error:
        return [], str(error)


# ============================================================================ the server

# Every live session of the process, to tell whether any is streaming (see _keep_keras_state).
_sessions: weakref.WeakSet[live.LiveSession] = weakref.WeakSet()
_sessions_lock = threading.Lock()
STREAMING_WITHIN_S = 2.0  # a session that had a frame this recently is streaming


def _streaming() -> bool:
    with _sessions_lock:
        sessions = list(_sessions)
    return any(s.idle_s() < STREAMING_WITHIN_S for s in sessions)


def _prepare_process() -> None:
    """Make Streamlit's clean-up after every script run cheap enough for a 2 Hz fragment.

    After every run, fragment reruns included, Streamlit collects garbage (``gc.collect(2)``)
    and calls ``keras.backend.clear_session()``, which collects again and empties TensorFlow's
    kernel cache. With TensorFlow loaded each collection walks a heap of millions of objects:
    measured here, about 0.4 s each and 0.2 s more for the next prediction, all holding the
    GIL, so the WebRTC event loop starved and audio arrived at half speed. So: the heap
    that exists once the model is loaded (modules, the model) is frozen out of collection
    (``gc.freeze``: it stays for the process's life anyway), and ``clear_session`` is skipped
    while a live session streams, as ``ui.keras_guard`` skips it while a run trains. Streamlit
    calls it only once Keras is imported, which a model run in numpy (``ser.runtime``) never
    does: then there is nothing to guard yet, and the next start checks again.
    """
    _freeze_heap()
    if "keras" not in sys.modules:
        return
    import keras

    backend = keras.backend
    original = backend.clear_session
    if getattr(original, "_ser_streaming_guard", False):
        return

    @functools.wraps(original)
    def clear_session(*args: Any, **kwargs: Any) -> Any:
        return None if _streaming() else original(*args, **kwargs)

    clear_session._ser_streaming_guard = True  # type: ignore[attr-defined]
    backend.clear_session = clear_session


@functools.cache
def _freeze_heap() -> None:
    gc.collect()
    gc.freeze()


# ============================================================================ the stream


def import_webrtc() -> ModuleType:
    """streamlit-webrtc, imported so that it cannot crash a process that holds TensorFlow.

    pylibsrtp (aiortc's SRTP) links its own OpenSSL, and TensorFlow's framework library exports
    BoringSSL functions of the same names: loaded after TensorFlow, pylibsrtp's self-test called
    TensorFlow's ``HMAC_Init_ex`` and the server died of a segmentation fault. Bound "deep",
    pylibsrtp looks up its own symbols first, whatever was loaded before it.
    """
    if "pylibsrtp" not in sys.modules:
        flags = sys.getdlopenflags()
        sys.setdlopenflags(flags | getattr(os, "RTLD_DEEPBIND", 0))
        try:
            import pylibsrtp  # noqa: F401
        finally:
            sys.setdlopenflags(flags)
    import streamlit_webrtc

    return streamlit_webrtc


def _session(recognizer: Recognizer) -> live.LiveSession:
    """This browser session's stream; a new one when the model changes."""
    session = st.session_state.get(SESSION_KEY)
    if session is None or session.recognizer is not recognizer:
        session = live.LiveSession(recognizer)
        st.session_state[SESSION_KEY] = session
        with _sessions_lock:
            _sessions.add(session)
    return session


class _Feed:
    """The frame callback: where this browser session's frames go once its stream plays.

    It runs on streamlit-webrtc's event loop, shared by every session, so it only hands
    frames over; frames before the session is known are not kept (a new take starts then).
    """

    def __init__(self) -> None:
        self.session: live.LiveSession | None = None

    def __call__(self, frame: av.AudioFrame) -> None:
        session = self.session
        if session is None:
            return
        channels = frame.layout.nb_channels
        samples = live.to_mono(frame.to_ndarray(), channels=channels, planar=frame.format.is_planar)
        session.push(samples, sample_rate_hz=frame.sample_rate, channels=channels)


def _served() -> bool:
    """Whether a Streamlit server runs this script: AppTest runs pages on a stand-in, where
    streamlit-webrtc, which reaches into the server's sessions, cannot work."""
    from streamlit.runtime import Runtime

    return Runtime.exists() and type(Runtime.instance()) is Runtime


# ============================================================================ the tab

#: Streamlit runs every tab's content on every run unless ``st.tabs`` tracks the open tab
#: (``on_change``; not in Streamlit 1.51), and then each tab says whether it is ``open``.
LAZY_TABS = "on_change" in inspect.signature(st.tabs).parameters
TABS_KEY = "recognise-tab"
ON_KEY = "live-on"


def tabs_options() -> dict[str, Any]:
    """``st.tabs`` options for a page with the Live tab: track the open tab where Streamlit can.

    The WebRTC player must exist only where the visitor opened the Live tab. Once drawn, it
    reports its first value to the server, which reruns the whole page; a run that starts while
    a file is being uploaded loses the upload (Streamlit drops the upload's addresses queued for
    the browser, or the browser drops the file it sent). On a page where every tab runs, every
    visitor's page reran that way right after it looked ready: eight visitors uploading at once
    (``tools/load_sessions.py``), up to six lost their uploads.
    """
    return {"key": TABS_KEY, "on_change": "rerun"} if LAZY_TABS else {}


def show_live(choice: ModelChoice | None, *, is_open: bool | None = True) -> None:
    """The Live tab: start, speak, watch the emotion change, stop, get the take's result.

    ``is_open``: whether the visitor has this tab open (a tab's ``.open``); False draws nothing,
    None (Streamlit cannot tell) asks for a switch before drawing the player.
    """
    if is_open is False:
        return
    st.markdown(
        "Press **Start**, allow the microphone and speak: the emotion of the last "
        f"{live.WINDOW_S:g} seconds updates about twice a second. Press **Stop** to get the "
        "whole take as a result, as if you had uploaded it."
    )
    servers, problem = ice_servers()
    if problem:
        st.warning(f"{md(problem)}; using no ICE servers.", icon=":material/warning:")
    if not servers:
        st.caption(
            ":material/info: No TURN server is set up, so live mode may not connect from every "
            "network (it needs a direct path between your browser and this server). If it does "
            "not start, use the **Record** tab instead."
        )
    if choice is None:
        st.info("Install or train a model to listen live (see the sidebar).")
        return
    try:
        webrtc = import_webrtc()
    except ImportError:
        st.error("Live mode needs streamlit-webrtc: `pip install -r requirements.txt`.")
        return
    if not _served():
        st.caption("Live mode needs the app served to a browser.")
        return
    if is_open is None and not st.toggle("Use the microphone live", key=ON_KEY):
        return
    feed = st.session_state.setdefault(FEED_KEY, _Feed())
    try:
        context = webrtc.webrtc_streamer(
            key="live-stream",
            mode=webrtc.WebRtcMode.SENDONLY,
            rtc_configuration={"iceServers": servers},
            media_stream_constraints={"audio": True, "video": False},
            sink_audio_track=webrtc.create_audio_sink_track(callback=feed, key="live-sink"),
            translations={"start": "Start", "stop": "Stop"},
        )
    except Exception:  # it reaches into Streamlit's internals: never take the page down with it
        log.exception("streamlit-webrtc could not start")
        st.error(
            "Live mode cannot start on this server (the details are in its log). "
            "Use the **Record** tab instead.",
            icon=":material/error:",
        )
        return
    was_playing = st.session_state.get(PLAYING_KEY, False)
    if context.state.playing:
        # Only now: the model loads while the rest of the page is already on screen.
        with st.spinner(f"Loading model {choice.info.name} (once per server start)…"):
            recognizer = choice.recognizer()
        _prepare_process()
        session = _session(recognizer)
        if not was_playing or feed.session is not session:
            session.restart()  # a new take
            st.session_state.pop(OUTCOME_KEY, None)
        feed.session = session
        st.session_state[PLAYING_KEY] = True
        _live_view(session)
        return
    st.session_state[PLAYING_KEY] = False
    if was_playing and feed.session is not None:
        st.session_state[OUTCOME_KEY] = _take_outcome(feed.session)
        feed.session = None
    if (outcome := st.session_state.get(OUTCOME_KEY)) is not None:
        _show_take(outcome)


# ============================================================================ the live view


@st.fragment(run_every=live.INTERVAL_S)
def _live_view(session: live.LiveSession) -> None:
    """What the session last computed: the current emotion, its bars, the recent past."""
    with st.container(key="live", border=True):
        update, history, stats = session.latest(), session.history(), session.stats()
        if update is None:
            st.subheader("👂 Listening…", anchor=False)
            st.caption(f"The first answer comes after {live.MIN_WINDOW_S:g} s of audio.")
            return
        st.subheader(live_headline(update), anchor=False)
        cost = f"computed in {update.cost_s * 1000:.0f} ms"
        st.caption(
            f"Update {update.index}: the {update.window_s:.1f} s up to {update.at_s:.1f} s into "
            f"the take, {cost}" + (f"; {stats.dropped} skipped while busy" if stats.dropped else "")
        )
        if update.prediction is not None:
            for label, p in update.prediction.as_dict().items():
                st.progress(min(1.0, max(0.0, p)), text=f"{EMOJI.get(label, '')} {label} {p:.0%}")
        else:
            st.caption("Too little speech in the window to call an emotion.")
        st.markdown(" ".join(_emoji(u) for u in history))
        st.caption(
            f"The last {len(history) * live.INTERVAL_S:g} s, oldest first "
            f"({SILENCE_EMOJI} is silence)."
        )
        if stats.take_full:
            st.warning(
                f"The take is kept for {MAX_DURATION_S / 60:g} minutes: the result at stop covers "
                "those, and the live view goes on.",
                icon=":material/timer:",
            )


def live_headline(update: live.LiveUpdate) -> str:
    """E.g. "😠 Angry — 61%", or "🤫 Silence"."""
    if update.prediction is None:
        return f"{SILENCE_EMOJI} Silence"
    return f"{_emoji(update)} {update.emotion.capitalize()} — {update.confidence:.0%}"


def _emoji(update: live.LiveUpdate) -> str:
    return SILENCE_EMOJI if update.prediction is None else EMOJI.get(update.emotion, "🗣️")


# ============================================================================ the take


def _take_outcome(session: live.LiveSession) -> Outcome:
    """The whole take, answered like an upload of it (or the reason it cannot be)."""
    model = session.recognizer.info.name
    try:
        result = session.result(name=TAKE_NAME)
    except SERError as error:
        return Outcome(Clip(TAKE_NAME, b""), model, error=str(error))
    except Exception as error:  # a bug; the page must stay up
        log.exception("answering the live take failed")
        return Outcome(
            Clip(TAKE_NAME, b""),
            model,
            error=f"The take could not be answered ({type(error).__name__}).",
        )
    wav = to_wav_bytes(result.audio.samples, sample_rate_hz=result.audio.sample_rate_hz)
    return Outcome(Clip(TAKE_NAME, wav), result.model, result=result)


def _show_take(outcome: Outcome) -> None:
    with st.container(key="live-result"):
        show_outcome(outcome, key="live-take")
        if outcome.result is not None:
            st.download_button(
                "Download the take's emotions as CSV",
                data=take_csv(outcome.result).encode("utf-8"),
                file_name="live-take-emotions.csv",
                mime="text/csv",
                icon=":material/download:",
                on_click="ignore",
                key="live-take-csv",
            )


def take_csv(result: Result) -> str:
    """One row per window of the take (or one for a short take): times, emotion, probabilities."""
    if result.timeline is not None:
        records = result.timeline.as_records()
    else:
        p = result.prediction
        records = [
            {
                "start_s": 0.0,
                "end_s": round(result.audio.duration_s, 3),
                "emotion": p.emotion,
                "confidence": round(p.confidence, 4),
                "probabilities": {k: round(v, 4) for k, v in p.as_dict().items()},
            }
        ]
    rows = [
        {**{k: v for k, v in r.items() if k != "probabilities"}, **r["probabilities"]}
        for r in records
    ]
    columns = ["start_s", "end_s", "emotion", "confidence", *result.prediction.labels]
    import pandas as pd  # loaded on first use: see ui/__init__.py

    return pd.DataFrame(rows, columns=columns).to_csv(index=False)
