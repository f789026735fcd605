"""Bad and awkward clips, through every layer a person meets: one table, three checks.

Each case is a file a person might really supply, with the EXACT message they must see, or
(for awkward but usable clips) the exact caveats that come with an answer. Every case is run
through

1. the package: ``Recognizer.recognise`` on the bytes and on a file path;
2. the command line: one ``python -m ser predict --json`` run over all the files, with a
   good file after each bad one: the bad file's line carries the message, every other file
   is still answered, and the exit status is 1;
3. the Recognise page (``AppTest``, one session for the whole table): a refused clip's
   message is the page's only ``st.error``, with no exception, and a good clip uploaded next
   is recognised; an answered clip shows the package's headline and caveats.

All three use the same model (the default of the tiny test models), so answers must agree.
The ``ser.audio`` unit table (tests/test_audio.py) covers the decoder's branches; this one
covers what a person sees.
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from ser import audio
from ser.audio import MAX_DURATION_S, load_audio
from ser.errors import AudioError
from ser.predict import UNFAMILIAR, Recognizer, Result
from tests import signals

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
SUPPORTED = "Supported formats: WAV, FLAC, OGG, MP3, M4A, MP4, AAC, 3GP, WebM."
CLIPPED = (
    "100.0% of the samples are clipped at full scale, "
    "so the sound is distorted and the result may be less reliable."
)
LOW_RATE = (
    "The recording's sample rate is low (8 kHz), "
    "so it lacks high frequencies the model learnt from."
)


# ---------------------------------------------------------------------------- the clips


# Above every model's rate, as most recordings are: a rate below a model's earns a caveat.
CLEAN_RATE_HZ = 44_100


def _speech(duration_s: float = 3.0, *, rate_hz: int = CLEAN_RATE_HZ, seed: int = 11) -> np.ndarray:
    return signals.speech_like(duration_s=duration_s, sample_rate_hz=rate_hz, seed=seed)


def _wav(samples: np.ndarray, *, rate_hz: int = CLEAN_RATE_HZ, subtype: str = "PCM_16") -> bytes:
    return signals.audio_bytes(samples, sample_rate_hz=rate_hz, subtype=subtype)


def _speech_wav(duration_s: float = 3.0, **kwargs: object) -> bytes:
    return _wav(_speech(duration_s), **kwargs)  # type: ignore[arg-type]


def _with_sample(value: float) -> bytes:
    samples = _speech(2.0)
    samples[4_000] = value
    return _wav(samples, subtype="FLOAT")


def _phone(case: str, **options: str) -> bytes:
    """Speech as a phone or browser records it, encoded by PyAV."""
    muxer, codec, _ = signals.PHONE_FORMATS[case]
    rate_hz = signals.CODEC_RATES_HZ[codec]
    return signals.encoded(
        _speech(rate_hz=rate_hz), sample_rate_hz=rate_hz, muxer=muxer, codec=codec, options=options
    )


def _ten_minutes_at_8_khz() -> bytes:
    # 440 Hz fits 8 kHz exactly, so one second tiles seamlessly: 9.6 MB made in milliseconds.
    second = signals.tone(frequency_hz=440, duration_s=1.0, sample_rate_hz=8_000)
    return _wav(np.tile(second, 600), rate_hz=8_000)


@dataclass(frozen=True)
class Case:
    """A file as a person supplies it, and what they must be told about it."""

    id: str
    name: str
    make: Callable[[], bytes]
    message: str | None = None  # the exact refusal, or None: the clip is answered
    caveats: tuple[str, ...] = ()  # the exact quality caveats of an answered clip
    # Answered as the clean 44.1 kHz mono 16-bit speech is, to within this (probabilities).
    same_as_clean_within: float | None = None

    @functools.cached_property
    def data(self) -> bytes:
        return self.make()


CASES = [
    Case(
        "text-named-wav",
        "notes.wav",
        lambda: b"Meeting notes: bring the slides.\n" * 20,
        message=f"'notes.wav' is not a recognisable audio file. {SUPPORTED}",
    ),
    Case(
        "wav-cut-after-header",
        "cut-header.wav",
        lambda: _speech_wav()[: signals.WAV_HEADER_BYTES],
        message="'cut-header.wav' is damaged or incomplete (perhaps cut short): "
        "no audio could be decoded.",
    ),
    Case(
        "wav-cut-in-header",
        "cut-30.wav",
        lambda: _speech_wav()[:30],
        message="'cut-30.wav' is damaged or incomplete (perhaps cut short) and cannot be read.",
    ),
    Case(
        # 44-byte header + 0.25 s of 16-bit samples at 44.1 kHz, out of 3 s.
        "wav-cut-mid-data-too-short",
        "cut-early.wav",
        lambda: _speech_wav()[: signals.WAV_HEADER_BYTES + 22_050],
        message="'cut-early.wav' is damaged or cut short: only 0.25 s could be decoded, "
        "and at least 0.5 s is needed.",
    ),
    Case(
        "wav-cut-mid-data-usable",
        "cut-late.wav",
        lambda: _speech_wav()[: signals.WAV_HEADER_BYTES + 176_400],
        caveats=("The file seems to be cut short: only the first 2.0 s could be decoded.",),
    ),
    Case(
        "wav-header-only",
        "header-only.wav",
        signals.wav_header_only,
        message="'header-only.wav' contains no audio (its header declares no samples).",
    ),
    Case("zero-bytes", "empty.wav", lambda: b"", message="'empty.wav' is empty (0 bytes)."),
    Case(
        # 3 s of audio whose header claims 10 s: answered, and said to be cut short.
        "wav-header-claims-more",
        "claims-more.wav",
        lambda: signals.wav_claiming_more(_speech_wav(), claimed_bytes=882_000),
        caveats=("The file seems to be cut short: only the first 3.0 s could be decoded.",),
    ),
    Case(
        "speech-0.1s",
        "blip.wav",
        lambda: _speech_wav(0.1),
        message="'blip.wav' is too short (0.10 s); it must be at least 0.5 s long.",
    ),
    Case(
        "digital-silence-10s",
        "silence.wav",
        lambda: _wav(signals.silence(duration_s=10.0, sample_rate_hz=16_000), rate_hz=16_000),
        message="'silence.wav' is silent (every sample is zero or constant).",
    ),
    Case(
        "very-low-level-noise",
        "hiss.wav",
        lambda: _wav(
            signals.noise(level_dbfs=-80, duration_s=3.0, sample_rate_hz=16_000), rate_hz=16_000
        ),
        message="'hiss.wav' is too quiet to judge: its loudest part is at -80 dBFS, below the "
        "-60 dBFS minimum. Record closer to the microphone.",
    ),
    Case(
        # At the models' own rate, so no resampling softens the clipping.
        "clipped-square-wave",
        "square.wav",
        lambda: _wav(
            signals.square(frequency_hz=200, duration_s=2.0, sample_rate_hz=22_050), rate_hz=22_050
        ),
        caveats=(CLIPPED,),
    ),
    Case(
        "nan-in-float-wav",
        "nan.wav",
        lambda: _with_sample(math.nan),
        message="'nan.wav' contains invalid samples (NaN or infinity).",
    ),
    Case(
        "inf-in-float-wav",
        "inf.wav",
        lambda: _with_sample(-math.inf),
        message="'inf.wav' contains invalid samples (NaN or infinity).",
    ),
    Case(
        "8-khz",
        "phone.wav",
        lambda: _wav(_speech(rate_hz=8_000), rate_hz=8_000),
        caveats=(LOW_RATE,),
    ),
    Case(
        "96-khz",
        "studio.wav",
        lambda: _wav(_speech(rate_hz=96_000), rate_hz=96_000, subtype="PCM_24"),
    ),
    Case(
        "6-channels",
        "surround.wav",
        lambda: _wav(np.repeat(_speech()[:, None], 6, axis=1)),
        same_as_clean_within=1e-6,  # the same samples in every channel: the same clip
    ),
    Case("8-bit", "8-bit.wav", lambda: _speech_wav(subtype="PCM_U8")),
    Case(
        # Differs from the 16-bit reference by its quantisation noise only.
        "32-bit-float",
        "float.wav",
        lambda: _speech_wav(subtype="FLOAT"),
        same_as_clean_within=0.01,
    ),
    Case(
        # Phones and Apple Voice Memos write M4A: decoded through PyAV, whatever the name says.
        "m4a-aac",
        "voice-memo.m4a",
        lambda: _phone("m4a-aac"),
    ),
    Case(
        # What browsers' MediaRecorder writes: Opus in WebM, with no length in its header.
        "webm-opus",
        "browser-recording.webm",
        lambda: _phone("webm-opus", live="1"),
    ),
    Case("mp4-aac", "phone-video.mp4", lambda: _phone("mp4-aac")),
    Case("3gp-amr", "old-phone.3gp", lambda: _phone("3gp-amr"), caveats=(LOW_RATE,)),
    Case(
        "fake-m4a",
        "voice-memo.wav",
        signals.fake_m4a,
        message="'voice-memo.wav' is damaged or incomplete (perhaps cut short) and cannot be read.",
    ),
    Case(
        # Named .wav so the page's picker takes it: the bytes decide.
        "wma",
        "voice-wma.wav",
        signals.fake_wma,
        message=f"'voice-wma.wav' is WMA audio. WMA is not supported; supported formats: "
        f"{SUPPORTED.removeprefix('Supported formats: ').rstrip('.')}. Convert it to WAV and try again.",
    ),
    Case(
        "10-minutes",
        "ten-minutes.wav",
        _ten_minutes_at_8_khz,
        message="'ten-minutes.wav' is too long (10:00); the maximum is 5:00 "
        "(minutes:seconds). Trim it and try again.",
    ),
]
CASE_PARAMS = [pytest.param(case, id=case.id) for case in CASES]


def test_the_table_covers_refusals_and_answers() -> None:
    assert len({case.name for case in CASES}) == len(CASES)  # one line per file on the CLI
    assert sum(case.message is None for case in CASES) >= 8
    assert sum(case.message is not None for case in CASES) >= 14


def quality_caveats(result: Result) -> list[str]:
    """The caveats about the clip itself, without the model's notes on its own answer
    (low confidence; unlike its training clips, which tests/test_familiarity.py covers)."""
    return [
        c
        for c in result.caveats
        if not c.startswith("Low confidence") and not c.startswith(UNFAMILIAR)
    ]


# ---------------------------------------------------------------------------- 1. the package


@pytest.fixture(scope="module")
def recognizer(tiny_models_dir: Path) -> Recognizer:
    return Recognizer.load(None, tiny_models_dir)  # the default, as the CLI and page use


@pytest.fixture(scope="module")
def clean_result(recognizer: Recognizer) -> Result:
    return recognizer.recognise(_speech_wav(), name="clean.wav")


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_package(case: Case, recognizer: Recognizer, clean_result: Result, tmp_path: Path) -> None:
    path = tmp_path / case.name
    path.write_bytes(case.data)
    for source in (case.data, path):
        if case.message is not None:
            with pytest.raises(AudioError) as caught:
                recognizer.recognise(source, name=case.name)
            assert str(caught.value) == case.message
            continue
        result = recognizer.recognise(source, name=case.name)
        assert quality_caveats(result) == list(case.caveats)
        probabilities = result.prediction.probabilities
        assert np.isfinite(probabilities).all()
        assert probabilities.sum() == pytest.approx(1.0, abs=1e-4)
        if case.same_as_clean_within is not None:
            np.testing.assert_allclose(
                probabilities,
                clean_result.prediction.probabilities,
                atol=case.same_as_clean_within,
            )


def test_ten_minutes_is_refused_from_the_header_without_decoding_in_little_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [case] = [c for c in CASES if c.id == "10-minutes"]
    path = tmp_path / case.name
    path.write_bytes(case.data)
    assert len(case.data) > 9_000_000 and MAX_DURATION_S == 300

    def no_decoding(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a clip refused by its header was decoded")

    monkeypatch.setattr(audio, "_sf_blocks", no_decoding)
    monkeypatch.setattr(audio, "_read_mono", no_decoding)
    tracemalloc.start()
    try:
        with pytest.raises(AudioError) as caught:
            load_audio(path, sample_rate_hz=22_050, name=case.name)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert str(caught.value) == case.message
    assert peak_bytes < 1_000_000, peak_bytes  # decoding it would need over 19 MB


# ---------------------------------------------------------------------------- 2. the command line


@dataclass(frozen=True)
class CliRun:
    returncode: int
    lines: list[dict]
    files: list[str]
    stderr: str


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory, tiny_models_dir: Path) -> CliRun:
    """One ``python -m ser predict --json`` over every case, a good clip after each."""
    folder = tmp_path_factory.mktemp("bad-input-cli")
    good = folder / "good.wav"
    good.write_bytes(_wav(_speech(seed=5)))
    files: list[str] = []
    for case in CASES:
        path = folder / case.name
        path.write_bytes(case.data)
        files += [str(path), str(good)]
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "ser",
            "--models-dir",
            str(tiny_models_dir),
            "predict",
            "--json",
            *files,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    return CliRun(completed.returncode, lines, files, completed.stderr)


@pytest.mark.slow
def test_cli_answers_every_file_in_order_and_exits_1(cli_run: CliRun) -> None:
    assert cli_run.returncode == 1, cli_run.stderr
    assert [line["file"] for line in cli_run.lines] == cli_run.files
    goods = [line for line in cli_run.lines if line["file"].endswith("/good.wav")]
    assert len(goods) == len(CASES)
    assert all("error" not in line for line in goods)
    assert len({json.dumps(line["probabilities"], sort_keys=True) for line in goods}) == 1
    assert "Traceback" not in cli_run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_cli(case: Case, cli_run: CliRun, recognizer: Recognizer) -> None:
    [line] = [line for line in cli_run.lines if Path(line["file"]).name == case.name]
    if case.message is not None:
        assert line == {"file": line["file"], "error": case.message}
        return
    assert "error" not in line
    expected = recognizer.recognise(case.data, name=case.name)
    assert line["emotion"] == expected.prediction.emotion
    assert line["confidence"] == pytest.approx(expected.prediction.confidence, abs=1e-4)
    assert [
        c
        for c in line["caveats"]
        if not c.startswith("Low confidence") and not c.startswith(UNFAMILIAR)
    ] == list(case.caveats)
    assert line["caveats"] == expected.caveats


# ---------------------------------------------------------------------------- 3. the page


@pytest.fixture(scope="module")
def page(tiny_models_dir: Path) -> Iterator[AppTest]:
    """One session of the app for the whole table: bad and good clips take turns in it."""
    from streamlit.testing.v1 import AppTest

    from ui import models

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SER_MODELS_DIR", str(tiny_models_dir))
        models.forget_load_failures()
        at = AppTest.from_file(str(APP), default_timeout=120)
        at.run()
        assert not at.exception, at.exception
        yield at


def _headlines(at: AppTest) -> list[str]:
    return [h.value for h in at.main.subheader if " — " in h.value]


def _upload(at: AppTest, name: str, data: bytes) -> None:
    at.file_uploader(key="uploads").set_value((name, data, "audio/wav")).run()


@pytest.mark.slow
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_page(case: Case, page: AppTest, recognizer: Recognizer) -> None:
    from ui.results import headline

    at = page
    _upload(at, case.name, case.data)
    assert not at.exception, at.exception
    if case.message is None:
        expected = recognizer.recognise(case.data, name=case.name)
        assert not at.main.error
        assert _headlines(at) == [headline(expected)]
        assert [w.value for w in at.main.warning] == expected.caveats
        captions = [c.value for c in at.main.caption]
        assert any(f"Most likely emotion in **{case.name}**" in c for c in captions), captions
        return
    assert [e.value for e in at.main.error] == [case.message]
    assert not _headlines(at)

    # The session goes on: the next, good clip is recognised.
    good = _wav(_speech(seed=5))
    _upload(at, "next.wav", good)
    assert not at.exception, at.exception
    assert not at.main.error
    assert _headlines(at) == [headline(recognizer.recognise(good, name="next.wav"))]


@pytest.mark.slow
def test_page_refuses_a_file_over_the_upload_limit_in_code(page: AppTest) -> None:
    import streamlit as st

    at = page
    limit_mb = st.get_option("server.maxUploadSize")
    # Not even audio: the size must be refused before any decoding is tried.
    # One byte over the browser's limit (10^6-byte megabytes), under the server's (2^20).
    _upload(at, "huge.wav", bytes(limit_mb * 1_000_000 + 1))
    assert not at.exception, at.exception
    [error] = [e.value for e in at.main.error]
    assert "huge.wav" in error
    assert (
        error
        == f"'huge.wav' is {limit_mb}.0 MB; the upload limit is {limit_mb} MB. Trim it or save it as FLAC or MP3 and try again."
    )
    assert "not a recognisable audio file" not in error
