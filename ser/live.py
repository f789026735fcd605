"""Live recognition: the emotion of the last few seconds, while someone speaks.

A microphone stream hands over frames of any size and rate (``LiveSession.push``, on whatever
thread delivers them). They are mixed to mono, resampled to the model's rate as they come, and
kept twice: a ring of the last ``window_s`` seconds, and the whole take (up to ``max_take_s``).
Each time ``interval_s`` more seconds of audio have arrived, one update judges the ring: its
probabilities, or silence when it holds too little speech. Updates run off the delivering
thread, one at a time per session: while one runs, a due update is dropped, never queued, so a
slow machine shows fewer updates instead of falling behind. At the end ``result`` answers the
whole take as an upload of it would be answered.

Nothing here knows about Streamlit or WebRTC: ``live_ui`` feeds it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import soxr

from .audio import (
    MAX_DURATION_S,
    MIN_DURATION_S,
    SILENCE_DBFS,
    Audio,
    active_level_dbfs,
    speech_duration_s,
)
from .errors import SilentAudioError, TooShortError
from .predict import MIN_WINDOW_SPEECH_S, WINDOW_S, Prediction

if TYPE_CHECKING:
    from .predict import Recognizer, Result

log = logging.getLogger("ser.live")

INTERVAL_S = 0.5  # about twice a second
MIN_WINDOW_S = 1.0  # less audio than this is not worth an answer yet
HISTORY_S = 30.0  # updates kept for the strip of the recent past
SILENCE = "silence"
# Stricter than SILENCE_DBFS, which only refuses what cannot be judged at all: a live
# microphone always hears its room, and a room is not an emotion.
LIVE_SILENCE_DBFS = SILENCE_DBFS + 10.0
# Speech rises and falls with its syllables; a window whose loud and quiet 20 ms frames lie
# closer than this is a steady noise (a fan, a hum), however loud.
MIN_DYNAMICS_DB = 10.0
_FRAME_S = 0.02

# Runs every session's updates: each session has at most one in it at a time, so what waits
# here is bounded by the number of sessions. Two threads, for two cores.
_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _shared_executor() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="ser-live")
        return _executor


def _submit(job: Callable[[], None]) -> None:
    _shared_executor().submit(job)


# ---------------------------------------------------------------------------- frames


def to_mono(frame: np.ndarray, *, channels: int, planar: bool) -> np.ndarray:
    """One frame of samples as mono float32 in [-1, 1].

    ``frame`` is integer PCM (scaled by its type's range) or float, either planar
    ``(channels, samples)`` or packed, channels interleaved along the last axis.
    """
    frame = np.asarray(frame)
    if np.issubdtype(frame.dtype, np.integer):
        scaled = frame.astype(np.float32) / np.float32(-np.iinfo(frame.dtype).min)
    else:
        scaled = frame.astype(np.float32, copy=False)
    if channels <= 1:
        return scaled.reshape(-1)
    if planar:
        return scaled.reshape(channels, -1).mean(axis=0)
    return scaled.reshape(-1, channels).mean(axis=1)


class StreamResampler:
    """Resamples consecutive chunks of one stream as if they were one signal (soxr HQ).

    A change of input rate starts a new stream; the old one's tail is flushed first.
    """

    def __init__(self, *, to_rate_hz: int) -> None:
        self.to_rate_hz = to_rate_hz
        self._from_rate_hz: int | None = None
        self._stream: soxr.ResampleStream | None = None

    def __call__(self, samples: np.ndarray, *, from_rate_hz: int) -> np.ndarray:
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        if from_rate_hz == self.to_rate_hz:
            return samples
        tail = np.zeros(0, np.float32)
        if from_rate_hz != self._from_rate_hz:
            tail = self.flush()
            self._from_rate_hz = from_rate_hz
            self._stream = soxr.ResampleStream(
                from_rate_hz, self.to_rate_hz, 1, dtype="float32", quality="HQ"
            )
        out = self._stream.resample_chunk(samples)  # type: ignore[union-attr]
        return np.concatenate([tail, out]) if tail.size else out

    def flush(self) -> np.ndarray:
        """What the resampler still holds back (its filter's delay)."""
        if self._stream is None:
            return np.zeros(0, np.float32)
        out = self._stream.resample_chunk(np.zeros(0, np.float32), last=True)
        self._stream = self._from_rate_hz = None
        return out


class Ring:
    """The last ``capacity`` samples written, oldest first."""

    def __init__(self, *, capacity: int) -> None:
        self._data = np.zeros(max(1, capacity), np.float32)
        self._end = 0  # samples written in all

    def __len__(self) -> int:
        return min(self._end, len(self._data))

    def extend(self, samples: np.ndarray) -> None:
        size = len(self._data)
        samples = samples[-size:]
        start = self._end % size
        first = min(len(samples), size - start)
        self._data[start : start + first] = samples[:first]
        self._data[: len(samples) - first] = samples[first:]
        self._end += len(samples)

    def latest(self) -> np.ndarray:
        """A copy of what the ring holds, oldest first."""
        size = len(self._data)
        if self._end <= size:
            return self._data[: self._end].copy()
        start = self._end % size
        return np.concatenate([self._data[start:], self._data[:start]])


# ---------------------------------------------------------------------------- windows


def frame_levels_db(samples: np.ndarray, *, sample_rate_hz: int) -> np.ndarray:
    """Mean-square level of each whole 20 ms frame, in dB (floored at -120)."""
    frame = max(1, round(_FRAME_S * sample_rate_hz))
    n = len(samples) // frame
    powers = np.mean(np.square(samples[: n * frame].reshape(n, frame), dtype=np.float64), axis=1)
    return 10 * np.log10(np.maximum(powers, 1e-12))


def is_silence(samples: np.ndarray, *, sample_rate_hz: int) -> bool:
    """Too little speech in the window to call an emotion: quiet, steady, or mostly pauses."""
    if active_level_dbfs(samples, sample_rate_hz=sample_rate_hz) < LIVE_SILENCE_DBFS:
        return True
    levels = frame_levels_db(samples, sample_rate_hz=sample_rate_hz)
    if not levels.size or np.percentile(levels, 95) - np.percentile(levels, 5) < MIN_DYNAMICS_DB:
        return True
    return speech_duration_s(samples, sample_rate_hz=sample_rate_hz) < MIN_WINDOW_SPEECH_S


@dataclass(frozen=True)
class LiveUpdate:
    """One judgement of the last few seconds."""

    index: int  # 1 for the take's first update
    at_s: float  # where the window ends, in seconds of the take
    window_s: float  # seconds of audio judged
    prediction: Prediction | None  # None: silence
    cost_s: float  # time it took to compute

    @property
    def emotion(self) -> str:
        return SILENCE if self.prediction is None else self.prediction.emotion

    @property
    def confidence(self) -> float | None:
        return None if self.prediction is None else self.prediction.confidence


@dataclass(frozen=True)
class LiveStats:
    received_s: float  # seconds of audio received in this take
    kept_s: float  # of which kept for the result
    take_full: bool  # max_take_s kept: later audio is judged live but not kept
    updates: int
    dropped: int  # updates not computed because the previous one was still running
    mean_cost_s: float | None


class LiveSession:
    """One listener's stream: its window, its take and its updates. Thread-safe.

    ``run`` starts an update off the calling thread (default: a shared pool of two threads);
    tests pass ``lambda job: job()`` to run it at once.
    """

    def __init__(
        self,
        recognizer: Recognizer,
        *,
        window_s: float = WINDOW_S,
        interval_s: float = INTERVAL_S,
        max_take_s: float = MAX_DURATION_S,
        history_s: float = HISTORY_S,
        run: Callable[[Callable[[], None]], None] = _submit,
    ) -> None:
        self.recognizer = recognizer
        self.rate_hz = int(recognizer.config.sample_rate_hz)
        self.window_s, self.interval_s, self.max_take_s = window_s, interval_s, max_take_s
        self._history_len = max(1, math.ceil(history_s / interval_s))
        self._run = run
        self._lock = threading.Lock()
        self._generation = 0
        self.restart()

    def restart(self) -> None:
        """Forget the take and its updates; an update still running is discarded."""
        with self._lock:
            self._generation += 1
            self._resampler = StreamResampler(to_rate_hz=self.rate_hz)
            self._ring = Ring(capacity=round(self.window_s * self.rate_hz))
            self._take: list[np.ndarray] = []
            self._kept = 0  # samples at the model's rate
            # Timing follows the audio as it came in, not the resampler, which holds some back.
            self._received_s, self._next_due_s = 0.0, MIN_WINDOW_S
            self._source_rate_hz, self._source_channels = self.rate_hz, 1
            self._busy = False
            self._updates: deque[LiveUpdate] = deque(maxlen=self._history_len)
            self._count = self._dropped = 0
            self._cost_s = 0.0
            self._last_push = -math.inf  # time.monotonic() of the last frame

    # ------------------------------------------------------------------ feeding

    def push(self, samples: np.ndarray, *, sample_rate_hz: int, channels: int = 1) -> None:
        """Add mono float samples at ``sample_rate_hz``; may start an update (never waits for one)."""
        with self._lock:
            chunk = self._resampler(samples, from_rate_hz=sample_rate_hz)
            self._source_rate_hz, self._source_channels = sample_rate_hz, channels
            self._keep(chunk)
            self._received_s += len(samples) / sample_rate_hz
            self._last_push = time.monotonic()
            job = self._due_job()
        if job is not None:
            self._run(job)

    def finish(self) -> None:
        """The stream has ended: what the resampler still holds joins the window and the take."""
        with self._lock:
            self._keep(self._resampler.flush())

    def _keep(self, chunk: np.ndarray) -> None:
        self._ring.extend(chunk)
        room = round(self.max_take_s * self.rate_hz) - self._kept
        if room > 0:
            self._take.append(chunk[:room])
            self._kept += min(room, len(chunk))

    def _due_job(self) -> Callable[[], None] | None:
        """The update to run now, if one is due and none is running (call with the lock held)."""
        late_s = self._received_s - self._next_due_s
        if late_s < -1e-9 or self._busy:
            return None  # not due, or dropped (counted when the next one starts)
        missed = math.floor(late_s / self.interval_s + 1e-9)
        self._dropped += missed
        self._next_due_s += (missed + 1) * self.interval_s
        self._busy = True
        generation, window = self._generation, self._ring.latest()
        index, at_s = self._count + self._dropped + 1, self._received_s
        return lambda: self._update(window, generation=generation, index=index, at_s=at_s)

    def _update(self, window: np.ndarray, *, generation: int, index: int, at_s: float) -> None:
        update = None
        try:
            update = self.judge(window, index=index, at_s=at_s)
        except Exception:  # a bug; the pool would swallow it, and the next update may do better
            log.exception("live update %d failed", index)
        finally:
            with self._lock:
                if generation == self._generation:  # else a restart came in between
                    self._busy = False
                    if update is not None:
                        self._updates.append(update)
                        self._count += 1
                        self._cost_s += update.cost_s

    def judge(self, window: np.ndarray, *, index: int = 0, at_s: float = 0.0) -> LiveUpdate:
        """One update for ``window`` (mono, at the model's rate): silence or its probabilities."""
        start = time.perf_counter()
        silent = is_silence(window, sample_rate_hz=self.rate_hz)
        prediction = None if silent else self.recognizer.predict_samples(window)
        cost_s = time.perf_counter() - start
        return LiveUpdate(index, at_s, len(window) / self.rate_hz, prediction, cost_s)

    # ------------------------------------------------------------------ reading

    def latest(self) -> LiveUpdate | None:
        with self._lock:
            return self._updates[-1] if self._updates else None

    def history(self) -> list[LiveUpdate]:
        """The recent updates, oldest first (about ``history_s`` seconds of them)."""
        with self._lock:
            return list(self._updates)

    def idle_s(self) -> float:
        """Seconds since the last frame arrived (infinite before the first)."""
        with self._lock:
            return time.monotonic() - self._last_push

    def stats(self) -> LiveStats:
        with self._lock:
            mean = self._cost_s / self._count if self._count else None
            # Intervals already passed that no update will judge: the newest due one still may.
            late_s = self._received_s - self._next_due_s
            waiting = max(0, math.floor(late_s / self.interval_s + 1e-9))
            return LiveStats(
                self._received_s,
                self._kept / self.rate_hz,
                self._kept >= round(self.max_take_s * self.rate_hz),
                self._count,
                self._dropped + waiting,
                mean,
            )

    def take(self) -> Audio:
        """The take so far, at the model's rate (the first ``max_take_s`` seconds of it)."""
        with self._lock:
            samples = np.concatenate(self._take) if self._take else np.zeros(0, np.float32)
            return Audio(samples, self.rate_hz, self._source_rate_hz, self._source_channels)

    def result(self, *, name: str = "live take") -> Result:
        """The whole take answered like an upload of it: headline, timeline, caveats."""
        self.finish()
        audio = self.take()
        if audio.duration_s < MIN_DURATION_S:
            raise TooShortError(
                f"The take is {audio.duration_s:.1f} s long; speak for at least "
                f"{MIN_DURATION_S:g} s before stopping."
            )
        if active_level_dbfs(audio.samples, sample_rate_hz=self.rate_hz) < SILENCE_DBFS:
            raise SilentAudioError(
                "The take is silent or too quiet to judge: check that the right microphone is "
                "picked and not muted, and speak closer to it."
            )
        return self.recognizer.recognise_audio(audio, name=name)
