"""Live recognition: frames of any rate into a window and a take, updates that drop, not queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import numpy as np
import pytest

from ser import live
from ser.audio import Audio
from ser.errors import SilentAudioError, TooShortError
from ser.predict import Prediction, Recognizer, Result
from tests.signals import noise, silence, speech_like, tone

MIC_RATE_HZ = 48_000  # what WebRTC's Opus decoder hands over
FRAME = 960  # 20 ms at 48 kHz


class PitchRecognizer:
    """Says "low" or "high" by a window's strongest frequency, so any cross-talk shows."""

    labels = ("low", "high")

    def __init__(self, *, rate_hz: int = 16_000, delay_s: float = 0.0) -> None:
        self.config = SimpleNamespace(sample_rate_hz=rate_hz)
        self.delay_s = delay_s
        self.calls = 0

    def predict_samples(self, samples: np.ndarray) -> Prediction:
        self.calls += 1
        time.sleep(self.delay_s)
        spectrum = np.abs(np.fft.rfft(samples))
        peak_hz = np.argmax(spectrum) * self.config.sample_rate_hz / len(samples)
        high = float(peak_hz > 400)
        return Prediction(self.labels, np.array([1 - high, high], np.float32))

    def recognise_audio(self, audio: Audio, *, name: str = "clip") -> Result:
        return Result(name, audio, self.predict_samples(audio.samples), model="pitch")


def frames(samples: np.ndarray, *, size: int = FRAME) -> Iterator[np.ndarray]:
    """int16 frames, as a microphone stream hands them over."""
    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype(np.int16)
    for start in range(0, len(pcm), size):
        yield pcm[start : start + size]


def feed(session: live.LiveSession, samples: np.ndarray, *, rate_hz: int = MIC_RATE_HZ) -> None:
    for frame in frames(samples):
        session.push(live.to_mono(frame, channels=1, planar=False), sample_rate_hz=rate_hz)


def at_once(job: Callable[[], None]) -> None:
    job()


def voice(duration_s: float, *, f0_hz: float = 140.0, seed: int = 0) -> np.ndarray:
    return speech_like(
        duration_s=duration_s,
        sample_rate_hz=MIC_RATE_HZ,
        seed=seed,
        f0_hz=f0_hz,
        speech_fraction=0.8,
    )


# ------------------------------------------------------------------------------ frames


def test_to_mono_scales_and_mixes_packed_and_planar_frames() -> None:
    packed = np.array([[16384, -16384, 32767, 32767]], np.int16)  # L R L R
    np.testing.assert_allclose(live.to_mono(packed, channels=2, planar=False), [0.0, 32767 / 32768])
    planar = np.array([[0.5, 1.0], [0.5, 0.0]], np.float32)
    np.testing.assert_allclose(live.to_mono(planar, channels=2, planar=True), [0.5, 0.5])
    assert live.to_mono(np.array([-32768], np.int16), channels=1, planar=False).dtype == np.float32


def test_resampling_in_chunks_matches_resampling_at_once() -> None:
    signal = voice(2.0)
    resampler = live.StreamResampler(to_rate_hz=22_050)
    sizes = np.random.default_rng(0).integers(1, 3000, size=200)
    pieces, start = [], 0
    for size in sizes:
        pieces.append(resampler(signal[start : start + size], from_rate_hz=MIC_RATE_HZ))
        start += size
    pieces.append(resampler(signal[start:], from_rate_hz=MIC_RATE_HZ))
    pieces.append(resampler.flush())
    chunked = np.concatenate(pieces)
    whole = live.StreamResampler(to_rate_hz=22_050)
    at_once_out = np.concatenate([whole(signal, from_rate_hz=MIC_RATE_HZ), whole.flush()])
    assert abs(len(chunked) - 2.0 * 22_050) <= 2
    np.testing.assert_allclose(chunked, at_once_out, atol=1e-5)


def test_a_new_input_rate_starts_a_new_stream() -> None:
    resampler = live.StreamResampler(to_rate_hz=16_000)
    a = resampler(np.ones(48_000, np.float32), from_rate_hz=48_000)
    b = resampler(np.ones(44_100, np.float32), from_rate_hz=44_100)
    rest = resampler.flush()
    assert abs(len(a) + len(b) + len(rest) - 32_000) <= 2  # what 48 kHz held back comes out too
    assert len(resampler(np.ones(100, np.float32), from_rate_hz=16_000)) == 100


def test_ring_keeps_the_last_samples_in_order() -> None:
    ring = live.Ring(capacity=5)
    ring.extend(np.arange(3, dtype=np.float32))
    np.testing.assert_array_equal(ring.latest(), [0, 1, 2])
    ring.extend(np.arange(3, 7, dtype=np.float32))
    np.testing.assert_array_equal(ring.latest(), [2, 3, 4, 5, 6])
    ring.extend(np.arange(10, 22, dtype=np.float32))  # more than it holds at once
    np.testing.assert_array_equal(ring.latest(), [17, 18, 19, 20, 21])
    assert len(ring) == 5


# ------------------------------------------------------------------------------ updates


def test_an_update_every_half_second_of_audio_on_the_last_three_seconds() -> None:
    session = live.LiveSession(PitchRecognizer(), run=at_once)
    feed(session, voice(6.0))
    updates = session.history()
    # The first after 1 s of audio, then one per 0.5 s: 1.0, 1.5, ..., 6.0.
    assert [u.index for u in updates] == list(range(1, 12))
    np.testing.assert_allclose([u.at_s for u in updates], np.arange(1.0, 6.01, 0.5), atol=0.03)
    assert max(u.window_s for u in updates) == pytest.approx(live.WINDOW_S, abs=0.01)
    assert updates[0].window_s == pytest.approx(1.0, abs=0.03)
    assert {u.emotion for u in updates} == {"low"}
    assert session.stats().dropped == 0


def test_frames_of_any_size_and_rate_give_the_same_updates() -> None:
    session = live.LiveSession(PitchRecognizer(), run=at_once)
    signal = speech_like(duration_s=4.0, sample_rate_hz=44_100, seed=1, speech_fraction=0.8)
    pcm = np.round(signal * 32767).astype(np.int16)
    stereo = np.repeat(pcm[:, None], 2, axis=1).reshape(1, -1)  # packed, as s16 stereo
    for start in range(0, stereo.shape[1], 2 * 441 * 7):
        chunk = stereo[:, start : start + 2 * 441 * 7]
        session.push(
            live.to_mono(chunk, channels=2, planar=False), sample_rate_hz=44_100, channels=2
        )
    assert len(session.history()) == 7  # 1.0, 1.5, ..., 4.0 s
    # The resampler holds a little back until the stream ends.
    assert session.take().duration_s == pytest.approx(4.0, abs=0.03)
    session.finish()
    assert session.take().duration_s == pytest.approx(4.0, abs=1e-3)
    assert session.take().source_channels == 2


@pytest.mark.parametrize(
    "quiet",
    [
        silence(duration_s=4.0, sample_rate_hz=MIC_RATE_HZ),
        noise(level_dbfs=-65.0, duration_s=4.0, sample_rate_hz=MIC_RATE_HZ),  # a quiet room
        noise(level_dbfs=-30.0, duration_s=4.0, sample_rate_hz=MIC_RATE_HZ),  # a loud fan
        tone(frequency_hz=50.0, duration_s=4.0, sample_rate_hz=MIC_RATE_HZ, amplitude=0.1),  # hum
    ],
    ids=["digital", "room", "fan", "hum"],
)
def test_silence_shows_as_silence_not_as_an_emotion(quiet: np.ndarray) -> None:
    recognizer = PitchRecognizer()
    session = live.LiveSession(recognizer, run=at_once)
    feed(session, quiet)
    assert {u.emotion for u in session.history()} == {live.SILENCE}
    assert all(u.prediction is None and u.confidence is None for u in session.history())
    assert recognizer.calls == 0


def test_speech_then_a_pause_turns_to_silence_once_the_window_holds_no_speech() -> None:
    session = live.LiveSession(PitchRecognizer(), run=at_once)
    feed(session, np.concatenate([voice(3.0), silence(duration_s=4.0, sample_rate_hz=MIC_RATE_HZ)]))
    emotions = [u.emotion for u in session.history()]
    assert emotions[:5] == ["low"] * 5
    assert emotions[-3:] == [live.SILENCE] * 3


def test_a_due_update_is_dropped_while_the_previous_one_runs() -> None:
    jobs: list[Callable[[], None]] = []
    session = live.LiveSession(PitchRecognizer(), run=jobs.append)
    feed(session, voice(5.0))  # 9 updates due; none has finished
    assert len(jobs) == 1  # nothing queued behind the one running
    jobs.pop()()
    feed(session, voice(0.02))
    assert len(jobs) == 1  # the next one judges the newest window, not a backlog
    jobs.pop()()
    updates = session.history()
    assert [u.at_s for u in updates] == pytest.approx([1.0, 5.02], abs=0.03)
    assert updates[1].index == 9  # the updates in between were dropped, and counted
    assert session.stats().dropped == 7 and session.stats().updates == 2


def test_a_slow_machine_shows_fewer_updates_and_never_falls_behind() -> None:
    """Audio arrives faster than updates finish: the pool never holds more than one job."""
    recognizer = PitchRecognizer(delay_s=0.2)
    session = live.LiveSession(recognizer)  # the shared pool, on its own threads
    start = time.perf_counter()
    feed(session, voice(10.0))  # as fast as it goes: far faster than real time
    fed_s = time.perf_counter() - start
    time.sleep(0.5)
    stats = session.stats()
    assert recognizer.calls <= fed_s / 0.2 + 2
    # Each interval was judged or dropped (the last may still wait for its frame).
    assert stats.updates + stats.dropped >= 18
    assert stats.dropped > 0


def test_the_take_is_bounded_and_the_window_goes_on() -> None:
    session = live.LiveSession(PitchRecognizer(), run=at_once, max_take_s=2.0)
    feed(session, voice(4.0))
    session.finish()
    assert session.take().duration_s == pytest.approx(2.0, abs=0.001)
    assert session.stats().received_s == pytest.approx(4.0, abs=0.01)
    assert session.latest().at_s == pytest.approx(4.0, abs=0.03)


def test_restart_forgets_the_take_and_an_update_still_running() -> None:
    jobs: list[Callable[[], None]] = []
    session = live.LiveSession(PitchRecognizer(), run=jobs.append)
    feed(session, voice(2.0))
    session.restart()
    jobs.pop()()  # finishes after the restart: it belongs to the old take
    assert session.history() == [] and session.take().duration_s == 0
    feed(session, voice(1.0))
    assert len(jobs) == 1  # not stuck waiting for the discarded one


def test_two_sessions_at_once_show_no_cross_talk() -> None:
    recognizer = PitchRecognizer(delay_s=0.01)  # one model, shared as in the app
    sessions = {"low": live.LiveSession(recognizer), "high": live.LiveSession(recognizer)}
    signals = {
        "low": voice(6.0, f0_hz=120.0, seed=1),
        "high": tone(frequency_hz=900.0, duration_s=6.0, sample_rate_hz=MIC_RATE_HZ, amplitude=0.3),
    }
    syllables = np.abs(np.sin(np.linspace(0, 24 * np.pi, len(signals["high"]))))
    signals["high"] *= syllables.astype(np.float32)

    def speak(name: str) -> None:
        for frame in frames(signals[name]):
            sessions[name].push(
                live.to_mono(frame, channels=1, planar=False), sample_rate_hz=MIC_RATE_HZ
            )
            time.sleep(0.0005)

    threads = [threading.Thread(target=speak, args=(name,)) for name in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(0.2)
    for name, session in sessions.items():
        assert session.history(), name
        assert {u.emotion for u in session.history()} == {name}
        session.finish()
        assert session.take().duration_s == pytest.approx(6.0, abs=1e-3)


# ------------------------------------------------------------------------------ the take


@pytest.fixture(scope="module")
def shipped() -> Recognizer:
    from ser.store import default_model, list_models

    if default_model(list_models()) is None:
        pytest.skip("no usable model in models/")
    return Recognizer.load(None)


@pytest.mark.slow
def test_the_take_is_answered_as_an_upload_of_it_would_be(shipped: Recognizer) -> None:
    session = live.LiveSession(shipped, run=at_once)
    feed(session, voice(7.0, seed=5))
    result = session.result()
    take = session.take()
    assert result.audio.duration_s == pytest.approx(7.0, abs=0.01)
    assert result.timeline is not None  # longer than 5 s: the emotion over time too
    expected = shipped.recognise_audio(take, name="live take")
    np.testing.assert_allclose(
        result.prediction.probabilities, expected.prediction.probabilities, atol=1e-5
    )
    assert result.model == shipped.info.name


def test_a_live_update_costs_far_less_than_its_interval(shipped: Recognizer) -> None:
    session = live.LiveSession(shipped, run=at_once)
    feed(session, voice(8.0, seed=6))
    costs = [u.cost_s for u in session.history()]
    assert len(costs) == 15
    # a third: the default reads openSMILE functionals (about 65 ms an update on an idle
    # machine, python -m ser.bench live), and the suite runs two workers at once
    assert float(np.median(costs)) < live.INTERVAL_S / 3


def test_a_take_too_short_or_silent_says_so(shipped: Recognizer) -> None:
    session = live.LiveSession(shipped, run=at_once)
    feed(session, voice(0.3))
    with pytest.raises(TooShortError, match="at least"):
        session.result()
    session.restart()
    feed(session, silence(duration_s=2.0, sample_rate_hz=MIC_RATE_HZ))
    with pytest.raises(SilentAudioError, match="microphone"):
        session.result()


@pytest.mark.slow
def test_the_live_benchmark_reports_cost_and_interval(
    shipped: Recognizer, capsys: pytest.CaptureFixture[str]
) -> None:
    from ser import bench

    bench.main(["live", "--seconds", "3"])
    out = capsys.readouterr().out
    assert "one update (features + model on the last 3 s)" in out
    assert "of the 500 ms interval" in out
    assert "interval between updates, in real time" in out


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        ("", []),
        ('[{"urls": "stun:stun.example.org:3478"}]', [{"urls": "stun:stun.example.org:3478"}]),
        (
            {"urls": ["turn:t.example.org"], "username": "u", "credential": "c"},
            [{"urls": ["turn:t.example.org"], "username": "u", "credential": "c"}],
        ),
    ],
)
def test_ice_servers_come_from_json_or_secrets(value: object, expected: list[dict]) -> None:
    import live_ui

    assert live_ui.parse_ice_servers(value) == expected


@pytest.mark.parametrize("value", ["not json", '{"url": "x"}', "[]", '[{"urls": ""}]', "3"])
def test_bad_ice_servers_say_what_is_expected(value: str) -> None:
    import live_ui

    with pytest.raises(ValueError, match="SER_ICE_SERVERS"):
        live_ui.parse_ice_servers(value)


def _live_tab_page() -> None:  # run by AppTest: the Recognise page's tabs, no model
    import streamlit as st

    import live_ui

    default = st.query_params.get("tab")
    upload, tab = st.tabs(["Upload", "Live"], default=default, **live_ui.tabs_options())
    with upload:
        st.write("upload here")
    with tab:
        live_ui.show_live(None, is_open=getattr(tab, "open", None))


@pytest.mark.parametrize("tab", [None, "Live"])
def test_the_live_tab_runs_only_when_open(tab: str | None) -> None:
    """The WebRTC player reruns the page once drawn, and a run starting mid-upload loses the
    upload: so where Streamlit tracks the open tab, a visitor on another tab never gets it."""
    from streamlit.testing.v1 import AppTest

    import live_ui

    if not live_ui.LAZY_TABS:
        pytest.skip("this Streamlit runs every tab (the Live tab then waits for a switch)")
    app = AppTest.from_function(_live_tab_page)
    if tab:
        app.query_params["tab"] = tab
    app.run()
    assert not app.exception, app.exception
    intro = [m.value for m in app.markdown if m.value.startswith("Press **Start**")]
    assert len(intro) == (1 if tab == "Live" else 0)
