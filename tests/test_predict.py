"""Prediction: probabilities over the saved labels, a timeline for long clips, thread safety."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from ser.audio import load_audio
from ser.errors import AudioError
from ser.predict import LONG_CLIP_S, Recognizer, shipped_narrower
from tests.conftest import TINY_EMOTIONS
from tests.signals import audio_bytes, speech_like, write_audio


# The log-mel pair trains a folder of its own (tiny_logmel_dir): its cases run in the full suite.
@pytest.fixture(
    scope="module",
    params=[
        "tiny-classic",
        "tiny-cnn",
        pytest.param("tiny-logmel", marks=pytest.mark.slow),
        pytest.param("tiny-fusion", marks=pytest.mark.slow),
    ],
)
def recognizer(request: pytest.FixtureRequest, tiny_models_dir: Path) -> Recognizer:
    if request.param in (
        "tiny-logmel",
        "tiny-fusion",
    ):  # in a folder of its own: other tests count tiny_models_dir
        return Recognizer.load(request.param, request.getfixturevalue("tiny_logmel_dir"))
    return Recognizer.load(request.param, tiny_models_dir)


def _clip(emotion: str, *, duration_s: float = 1.2, seed: int = 7) -> np.ndarray:
    _, f0_hz, syllable_s, amplitude = TINY_EMOTIONS[emotion]
    return speech_like(
        duration_s=duration_s,
        sample_rate_hz=16_000,
        seed=seed,
        f0_hz=f0_hz,
        syllable_s=syllable_s,
        amplitude=amplitude,
        speech_fraction=1.0,
    )


def test_probabilities_cover_the_saved_labels(recognizer: Recognizer) -> None:
    result = recognizer.recognise(audio_bytes(_clip("happy"), sample_rate_hz=16_000), name="x.wav")
    probabilities = result.prediction.as_dict()
    assert list(probabilities) == list(recognizer.info.labels)
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert result.timeline is None


def test_the_classic_model_recognises_the_emotions_it_learnt(
    tiny_models_dir: Path, tmp_path: Path
) -> None:
    recognizer = Recognizer.load("tiny-classic", tiny_models_dir)
    paths = [
        write_audio(tmp_path / f"{e}.wav", _clip(e, seed=999), sample_rate_hz=16_000)
        for e in TINY_EMOTIONS
    ]
    got = [recognizer.recognise(p).prediction.emotion for p in paths]
    assert sum(g == e for g, e in zip(got, TINY_EMOTIONS, strict=True)) >= 3


def test_compiled_call_matches_keras(recognizer: Recognizer) -> None:
    from ser import features as feats
    from ser.store import load_keras

    audio = load_audio(
        audio_bytes(_clip("sad"), sample_rate_hz=16_000),
        sample_rate_hz=recognizer.config.sample_rate_hz,
    )
    x = feats.extract(audio.samples, config=recognizer.config)[np.newaxis]
    expected = load_keras(recognizer.info).predict_on_batch(x)
    np.testing.assert_allclose(recognizer.probabilities(x), expected, rtol=1e-4, atol=1e-5)


def test_long_clip_gets_an_emotion_over_time(recognizer: Recognizer) -> None:
    samples = np.concatenate([_clip("sad", duration_s=4.0), _clip("happy", duration_s=4.0)])
    done: list[float] = []
    result = recognizer.recognise(audio_bytes(samples, sample_rate_hz=16_000), progress=done.append)
    assert result.audio.duration_s > LONG_CLIP_S
    timeline = result.timeline
    assert timeline is not None
    assert len(timeline.start_s) == 6  # 3 s windows every 1 s over 8 s
    assert done == pytest.approx([k / 6 for k in range(1, 7)])  # each window as it is done
    np.testing.assert_allclose(timeline.probabilities.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(result.prediction.probabilities, timeline.probabilities.mean(axis=0))


@pytest.mark.slow
def test_each_window_answers_as_that_crop_uploaded_alone(
    recognizer: Recognizer, tmp_path: Path
) -> None:
    rate = recognizer.config.sample_rate_hz
    parts = [
        _clip(e, duration_s=3.0, seed=20 + i)
        for i, e in enumerate(["sad", "angry", "happy", "neutral"])
    ]
    samples = np.concatenate(parts) * np.repeat(
        [0.3, 1.0, 0.6, 0.2], len(parts[0])
    )  # levels differ
    path = write_audio(tmp_path / "long.wav", samples, sample_rate_hz=16_000)
    result = recognizer.recognise(path)
    audio = result.audio
    for k in (0, 3, 6, 9):  # the windows that start where each part starts
        start = round(result.timeline.start_s[k] * rate)
        crop = write_audio(
            tmp_path / f"crop{k}.wav",
            audio.samples[start : start + 3 * rate],
            sample_rate_hz=rate,
            subtype="FLOAT",
        )
        alone = recognizer.recognise(crop).prediction.probabilities
        np.testing.assert_allclose(result.timeline.probabilities[k], alone, atol=2e-4)


def test_silent_windows_do_not_sway_a_long_clips_headline(recognizer: Recognizer) -> None:
    rate = recognizer.config.sample_rate_hz
    speech = load_audio(
        audio_bytes(_clip("angry", duration_s=4.0), sample_rate_hz=16_000), sample_rate_hz=rate
    ).samples
    quiet = (
        np.random.default_rng(0).normal(0, 1e-4, 6 * rate).astype(np.float32)
    )  # room tone, no speech
    timeline = recognizer.timeline(np.concatenate([speech, quiet]))
    speaking = timeline.speech_s >= 0.5
    assert speaking.any() and not speaking.all()
    np.testing.assert_allclose(
        timeline.overall(), timeline.probabilities[speaking].mean(axis=0), atol=1e-6
    )
    assert not np.allclose(timeline.overall(), timeline.probabilities.mean(axis=0), atol=1e-3)


def test_bytes_and_path_agree(recognizer: Recognizer, tmp_path: Path) -> None:
    samples = _clip("angry")
    path = write_audio(tmp_path / "a.flac", samples, sample_rate_hz=16_000, format="FLAC")
    from_path = recognizer.recognise(path).prediction.probabilities
    from_bytes = recognizer.recognise(path.read_bytes()).prediction.probabilities
    np.testing.assert_array_equal(from_path, from_bytes)


@pytest.mark.slow
def test_eight_threads_give_the_sequential_results(recognizer: Recognizer) -> None:
    clips = [
        audio_bytes(_clip(e, seed=s), sample_rate_hz=16_000)
        for s in range(4)
        for e in TINY_EMOTIONS
    ]
    sequential = [recognizer.recognise(c).prediction.probabilities for c in clips]
    assert len({p.tobytes() for p in sequential}) == len(clips)  # cross-talk would show
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(
            pool.map(lambda c: recognizer.recognise(c).prediction.probabilities, clips * 2)
        )
    for got, expected in zip(threaded, sequential * 2, strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.slow
def test_eight_threads_give_the_sequential_timelines_of_long_clips(recognizer: Recognizer) -> None:
    # 6-9 s clips, each a different pair of emotions: the windowed (timeline) path, batched.
    emotions = list(TINY_EMOTIONS)
    clips = [
        audio_bytes(
            np.concatenate(
                [
                    _clip(emotions[k % 4], duration_s=3.0 + k % 3, seed=k),
                    _clip(emotions[(k + 1 + k // 4) % 4], duration_s=3.5, seed=k),
                ]
            ),
            sample_rate_hz=16_000,
        )
        for k in range(8)
    ]
    sequential = [recognizer.recognise(c) for c in clips]
    assert all(r.timeline is not None for r in sequential)
    assert len({r.timeline.probabilities.tobytes() for r in sequential}) == len(clips)
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(recognizer.recognise, clips * 2))
    for got, expected in zip(threaded, sequential * 2, strict=True):
        np.testing.assert_array_equal(got.timeline.probabilities, expected.timeline.probabilities)
        np.testing.assert_array_equal(got.timeline.start_s, expected.timeline.start_s)
        np.testing.assert_array_equal(
            got.prediction.probabilities, expected.prediction.probabilities
        )


def test_many_files_one_bad_does_not_stop_the_rest(recognizer: Recognizer, tmp_path: Path) -> None:
    good = write_audio(tmp_path / "good.wav", _clip("happy"), sample_rate_hz=16_000)
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    outcomes = dict(recognizer.recognise_many([good, bad, good]))
    assert isinstance(outcomes[str(bad)], AudioError)
    assert "'bad.wav' is not a recognisable audio file" in str(outcomes[str(bad)])
    assert outcomes[str(good)].prediction.emotion in recognizer.labels


@pytest.mark.parametrize(("top", "warned"), [(0.3, True), (0.9, False)])
def test_low_confidence_earns_a_caveat(
    recognizer: Recognizer, monkeypatch: pytest.MonkeyPatch, top: float, warned: bool
) -> None:
    labels = recognizer.labels
    rest = (1 - top) / (len(labels) - 1)
    fixed = np.array([[top] + [rest] * (len(labels) - 1)])
    monkeypatch.setattr(recognizer, "probabilities", lambda x: np.repeat(fixed, len(x), axis=0))
    result = recognizer.recognise(audio_bytes(_clip("happy"), sample_rate_hz=16_000))
    assert any(c.startswith("Low confidence") for c in result.caveats) is warned


def test_a_narrower_model_answers_a_recording_made_below_the_models_rate(
    tiny_models_dir: Path,
) -> None:
    classic = Recognizer.load("tiny-classic", tiny_models_dir)  # 22.05 kHz
    other = Recognizer.load("tiny-cnn", tiny_models_dir)
    asked: list[float] = []

    def narrower(band_hz: float) -> Recognizer:
        asked.append(band_hz)
        return other

    low = classic.recognise(
        audio_bytes(_clip("happy"), sample_rate_hz=16_000), name="low.wav", narrower=narrower
    )
    full = speech_like(duration_s=1.2, sample_rate_hz=44_100, seed=7, speech_fraction=1.0)
    high = classic.recognise(
        audio_bytes(full, sample_rate_hz=44_100), name="high.wav", narrower=narrower
    )

    # Asked once, with the band a 16 kHz file holds: never about one that fills the model's band.
    assert len(asked) == 1 and 7_000 < asked[0] <= 8_000
    assert (low.model, high.model) == ("tiny-cnn", "tiny-classic")
    assert low.caveats[0] == (
        "Answered by the model tiny-cnn, which hears up to 11.025 kHz: this recording was made at "
        "16 kHz, and tiny-classic learnt from higher frequencies."
    )
    expected = other.recognise(audio_bytes(_clip("happy"), sample_rate_hz=16_000), name="low.wav")
    np.testing.assert_allclose(
        low.prediction.probabilities, expected.prediction.probabilities, atol=1e-6
    )


@pytest.mark.data
@pytest.mark.slow
def test_the_default_hands_a_16_khz_recording_to_a_model_that_hears_it_whole(
    shared_data_dir: Path,
) -> None:
    """CREMA-D, EmoDB and many phones record at 16 kHz, with nothing above 8 kHz: the default's
    answer must then come from a model that never learnt from that band (``ser.bench channels``),
    and be the answer that model gives the original."""
    clips = sorted(
        p for p in (shared_data_dir / "ravdess").rglob("*") if p.suffix in {".wav", ".flac"}
    )[::59]
    if len(clips) < 20:
        pytest.skip("RAVDESS not found among the corpora")
    default = Recognizer.load()
    narrower = shipped_narrower(default)
    unchanged = 0
    for clip in clips:
        copy = load_audio(clip, sample_rate_hz=16_000).samples
        answered = default.recognise(
            audio_bytes(copy, sample_rate_hz=16_000), name="copy", narrower=narrower
        )
        answering = default if answered.model == default.info.name else narrower(8_000)
        assert answering is not None and answering.info.name == answered.model
        assert answering.config.sample_rate_hz <= 16_000
        unchanged += answered.prediction.emotion == answering.recognise(clip).prediction.emotion
    assert unchanged >= 0.9 * len(clips)


def test_a_narrower_model_that_cannot_load_leaves_the_answer_to_the_model_asked(
    tiny_models_dir: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    folder = tmp_path / "models"
    shutil.copytree(tiny_models_dir, folder)
    meta = json.loads((folder / "tiny-cnn.json").read_text())
    meta["shipped"], meta["features"]["sample_rate_hz"] = True, 16_000
    del meta["sha256"]  # listed as usable: the damage shows only when it loads
    (folder / "tiny-cnn.json").write_text(json.dumps(meta))
    (folder / "tiny-cnn.keras").write_bytes(b"not a model")
    classic = Recognizer.load("tiny-classic", folder)

    result = classic.recognise(
        audio_bytes(_clip("sad"), sample_rate_hz=16_000),
        name="low.wav",
        narrower=shipped_narrower(classic, folder),
    )

    assert result.model == "tiny-classic"
    assert any("sample rate is low (16 kHz)" in caveat for caveat in result.caveats)


def test_a_phone_call_saved_at_a_high_rate_goes_to_a_band_limited_model(
    tiny_models_dir: Path, tmp_path: Path
) -> None:
    """A file's rate says what it could hold, not what was recorded: a phone call saved at
    44.1 kHz holds nothing above 4 kHz, and is answered by a model that never heard more."""
    import json
    import shutil

    from ser import audio

    folder = tmp_path / "models"
    shutil.copytree(tiny_models_dir, folder)
    meta = json.loads((folder / "tiny-cnn.json").read_text())
    meta["shipped"], meta["features"]["band_limit_hz"] = True, 4_000
    del meta["sha256"]
    (folder / "tiny-cnn.json").write_text(json.dumps(meta))
    classic = Recognizer.load("tiny-classic", folder)  # 22.05 kHz: hears up to 11 kHz
    narrower = shipped_narrower(classic, folder)
    speech = speech_like(duration_s=1.5, sample_rate_hz=44_100, seed=7, speech_fraction=1.0)
    call = audio.band_limited(speech, sample_rate_hz=44_100, source_rate_hz=8_000)

    full = classic.recognise(audio_bytes(speech, sample_rate_hz=44_100), narrower=narrower)
    phone = classic.recognise(audio_bytes(call, sample_rate_hz=44_100), narrower=narrower)

    assert (full.model, phone.model) == ("tiny-classic", "tiny-cnn")
    assert re.fullmatch(
        r"Answered by the model tiny-cnn, which hears up to 4 kHz: this recording holds almost "
        r"nothing above (3\.9|4\.0) kHz, and tiny-classic learnt from higher frequencies\.",
        phone.caveats[0],
    ), phone.caveats
    # The model that answers hears no more than the call holds: no caveat about a missing band.
    assert not any("holds almost nothing above" in c for c in phone.caveats[1:]), phone.caveats
    expected = Recognizer.load("tiny-cnn", folder).recognise(
        audio_bytes(call, sample_rate_hz=44_100)
    )
    np.testing.assert_allclose(
        phone.prediction.probabilities, expected.prediction.probabilities, atol=1e-6
    )


def test_a_handed_on_recording_is_decoded_and_measured_once(
    tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ser import audio

    classic = Recognizer.load("tiny-classic", tiny_models_dir)
    other = Recognizer.load("tiny-cnn", tiny_models_dir)  # the same rate as tiny-classic
    calls = {"decode": 0, "spectrum": 0}
    decode, spectrum = audio.load_audio, audio.audible_bandwidth_hz

    def counted(name: str, function):  # noqa: ANN001, ANN202
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr("ser.predict.load_audio", counted("decode", decode))
    monkeypatch.setattr(audio, "audible_bandwidth_hz", counted("spectrum", spectrum))
    speech = speech_like(duration_s=1.5, sample_rate_hz=44_100, seed=7, speech_fraction=1.0)
    call = audio.band_limited(speech, sample_rate_hz=44_100, source_rate_hz=8_000)

    result = classic.recognise(audio_bytes(call, sample_rate_hz=44_100), narrower=lambda _: other)

    assert result.model == "tiny-cnn"
    assert calls == {"decode": 1, "spectrum": 1}
