"""Hostile input and public deployment: bounded memory, no hangs, nothing listed that should not be.

``MESSAGES`` is the table: every hostile case, with the exact message a person sees. Each test
below makes its case (generated here, tiny, never a committed file), runs it through the
package, the command line or the app, and checks the message against the table, so the table
cannot drift from what is really shown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser.audio import MAX_CHANNELS, MAX_SAMPLE_RATE_HZ, load_audio, printable
from ser.datasets import scan
from ser.errors import AudioError
from tests import signals

ROOT = Path(__file__).resolve().parents[1]
RATE_HZ = 22_050
PEAK_GROWTH_LIMIT_MB = 300

# case -> the message a person sees ({name} is the file's name as shown).
MESSAGES = {
    # Memory bomb: a header that promises far more audio than its bytes.
    "flac-120s-192khz-8ch": None,  # 242 KB of FLAC, 1.4 GB decoded at once: answered, in bounded memory
    "flac-299s-655khz-8ch": "'{name}' has a sample rate of 655,350 Hz; the maximum is 192,000 Hz. "
    "Resample it to 48 kHz and try again.",
    "16-channels": "'{name}' has 16 channels; the maximum is 8. Mix it down to mono and try again.",
    # Special files: refused before they are opened, so nothing waits for a writer.
    "fifo": "'{name}' is a pipe (FIFO), not a regular file.",
    "device": "'{name}' is a device, not a regular file.",
    "folder": "'{name}' is a folder, not an audio file.",
    "fifo-in-dataset": "a pipe (FIFO), not a regular file",  # the scan's reason, the file skipped
    # File names: any bytes, shown escaped; never a traceback, never obeyed by a terminal.
    "non-utf8-name": None,  # answered; shown as 'caf\\xe9.wav'
    # The Train page: off unless the deployer turns it on; confined to the data root if named.
    "training-default": "Training is turned off on this deployment. To train a model, run the app "
    "on your own machine with `SER_ENABLE_TRAINING=1` (or `SER_DATA_DIR` set to the folder that "
    "holds your datasets), or use `python -m ser train`.",
    "training-switch-typo": "Training is turned off on this deployment. SER_DISABLE_TRAINING='y' is "
    "not understood, so training stays off. Use one of: 1, true, yes, on, 0, false, no, off.",
    "outside-data-root": "'{name}' is outside the data folder this server trains from ({root}). "
    "Type a folder under it.",
    # Model metadata: one schema, checked when the folder is read; a misfit is listed as broken.
    "evaluation-null": "metadata invalid: evaluation must not be null",
    "labels-null": "metadata invalid: labels must not be null",
    "trained-on-null": "metadata invalid: trained_on must not be null",
    "sample-rate-0": "metadata invalid: features.sample_rate_hz must be positive, not 0",
    "duplicate-labels": "metadata invalid: labels must be distinct: neutral, neutral, happy, sad, "
    "angry, fearful, disgust, surprised",
    "accuracy-as-text": "metadata invalid: evaluation.mean_accuracy must not be text",
    "not-an-object": "metadata invalid: the metadata must be an object, not a list",
    "escape-codes-in-name": "'\\x1b[31mred\\x1b[0m.wav' is not a recognisable audio file. "
    "Supported formats: WAV, FLAC, OGG, MP3, M4A, MP4, AAC, 3GP, WebM.",
}


def seen(case: str, name: str) -> str:
    message = MESSAGES[case]
    assert message is not None
    return message.format(name=name)


# ---------------------------------------------------------------------------- crafted files


def silent_flac(path: Path, *, duration_s: float, rate_hz: int, channels: int) -> Path:
    """A FLAC of ``duration_s`` that is silent after 20 ms of noise: a few bytes per second,
    however high the rate and the channel count, which is what makes it a bomb."""
    rng = np.random.default_rng(0)
    total = round(duration_s * rate_hz)
    head = (rng.standard_normal((rate_hz // 50, channels)) * 3000).astype(np.int16)
    quiet = np.zeros((1 << 18, channels), dtype=np.int16)
    with sf.SoundFile(
        path, "w", samplerate=rate_hz, channels=channels, format="FLAC", subtype="PCM_16"
    ) as out:
        out.write(head)
        done = len(head)
        while done < total:
            step = min(len(quiet), total - done)
            out.write(quiet[:step])
            done += step
    return path


PEAK_SCRIPT = """
import resource, sys
import ser.audio as audio
from ser.errors import SERError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    clip = audio.load_audio(sys.argv[1], sample_rate_hz=22050)
    outcome = f"{clip.duration_s:.1f} s"
except SERError as error:
    outcome = str(error)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{(peak - before) / 1024:.0f}\\t{outcome}")
"""


def peak_growth_mb(path: Path) -> tuple[float, str]:
    """Growth of the peak RSS of a fresh process while it loads ``path``, and the outcome."""
    run = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    growth, outcome = run.stdout.strip().split("\t", 1)
    return float(growth), outcome


# ---------------------------------------------------------------------------- memory bomb


@pytest.mark.slow
def test_a_flac_bomb_of_120_s_at_192_khz_and_8_channels_loads_in_bounded_memory(
    tmp_path: Path,
) -> None:
    path = silent_flac(tmp_path / "bomb.flac", duration_s=120, rate_hz=192_000, channels=8)
    assert path.stat().st_size < 400_000  # decoded at once: 120 * 192,000 * 8 floats = 737 MB
    growth_mb, outcome = peak_growth_mb(path)
    assert outcome == "120.0 s"
    assert growth_mb < PEAK_GROWTH_LIMIT_MB, growth_mb  # before the fix: 1,410 MB


def test_a_rate_beyond_the_limit_is_refused_from_the_header(tmp_path: Path) -> None:
    path = silent_flac(tmp_path / "fast.flac", duration_s=0.1, rate_hz=655_350, channels=8)
    with pytest.raises(AudioError) as caught:
        load_audio(path, sample_rate_hz=RATE_HZ)
    assert str(caught.value) == seen("flac-299s-655khz-8ch", "fast.flac")
    assert MAX_SAMPLE_RATE_HZ == 192_000


@pytest.mark.slow
def test_the_299_s_bomb_at_655_khz_is_refused_in_no_memory(tmp_path: Path) -> None:
    """The issue's second case in full (1.9 MB; 13 GB if decoded at once)."""
    path = silent_flac(tmp_path / "bomb655.flac", duration_s=299, rate_hz=655_350, channels=8)
    growth_mb, outcome = peak_growth_mb(path)
    assert outcome == seen("flac-299s-655khz-8ch", "bomb655.flac")
    assert growth_mb < 50, growth_mb  # before the fix: 11,978 MB


def test_too_many_channels_are_refused_from_the_header() -> None:
    data = signals.audio_bytes(
        signals.tone(frequency_hz=200, duration_s=1.0, sample_rate_hz=8_000, channels=16),
        sample_rate_hz=8_000,
    )
    with pytest.raises(AudioError) as caught:
        load_audio(data, sample_rate_hz=RATE_HZ, name="array.wav")
    assert str(caught.value) == seen("16-channels", "array.wav")
    assert MAX_CHANNELS == 8


def test_eight_channels_at_192_khz_still_decode_like_mono() -> None:
    """Block-wise mixing and resampling give what mixing and resampling the whole clip gives."""
    mono = signals.speech_like(duration_s=2.0, sample_rate_hz=192_000, seed=3)
    wide = signals.audio_bytes(
        np.repeat(mono[:, None], 8, axis=1), sample_rate_hz=192_000, subtype="FLOAT"
    )
    narrow = signals.audio_bytes(mono, sample_rate_hz=192_000, subtype="FLOAT")
    a = load_audio(wide, sample_rate_hz=RATE_HZ)
    b = load_audio(narrow, sample_rate_hz=RATE_HZ)
    assert a.source_channels == 8
    np.testing.assert_allclose(a.samples, b.samples, atol=1e-6)


# ---------------------------------------------------------------------------- special files


def refused_within(
    load: Callable[[], object], *, unblock: Callable[[], None], timeout_s: float = 5.0
) -> str:
    """The message ``load`` refuses with, failing (not hanging) if it blocks."""
    outcome: list[BaseException | object] = []
    worker = threading.Thread(target=lambda: outcome.append(_call(load)), daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        unblock()
        worker.join(timeout_s)
        pytest.fail(f"blocked for {timeout_s} s")
    [result] = outcome
    assert isinstance(result, AudioError), result
    return str(result)


def _call(load: Callable[[], object]) -> BaseException | object:
    try:
        return load()
    except BaseException as error:  # handed to the test thread
        return error


def _unblock_fifo(path: Path) -> Callable[[], None]:
    def unblock() -> None:
        descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(descriptor)

    return unblock


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "03-01-05-01-01-01-01.wav"
    os.mkfifo(fifo)
    message = refused_within(
        lambda: load_audio(fifo, sample_rate_hz=RATE_HZ), unblock=_unblock_fifo(fifo)
    )
    assert message == seen("fifo", fifo.name)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_device_is_refused_not_read_for_ever(tmp_path: Path) -> None:
    link = tmp_path / "endless.wav"
    link.symlink_to("/dev/zero")
    message = refused_within(lambda: load_audio(link, sample_rate_hz=RATE_HZ), unblock=lambda: None)
    assert message == seen("device", link.name)


def test_a_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "clip.wav"
    folder.mkdir()
    with pytest.raises(AudioError) as caught:
        load_audio(folder, sample_rate_hz=RATE_HZ)
    assert str(caught.value) == seen("folder", folder.name)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_named_like_a_clip_is_skipped_by_the_scan(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    fifo = corpus / "happy" / "waiting.wav"
    os.mkfifo(fifo)
    outcome: list[object] = []
    worker = threading.Thread(
        target=lambda: outcome.append(_call(lambda: scan([corpus]))), daemon=True
    )
    worker.start()
    worker.join(10)
    if worker.is_alive():
        _unblock_fifo(fifo)()
        pytest.fail("the scan waited on a FIFO")
    [report] = outcome
    assert {s.path.name: s.reason for s in report.skipped} == {
        "waiting.wav": MESSAGES["fifo-in-dataset"]
    }
    assert len(report.clips) == 4


# ---------------------------------------------------------------------------- file names


NON_UTF8 = b"caf\xe9.wav"  # Latin-1, as old archives and Windows zips write names
ESCAPES = "\x1b[31mred\x1b[0m.wav"


def _corpus(root: Path) -> Path:
    """One folder per emotion, two clips each, at 16 kHz."""
    corpus = root / "corpus"
    for k, emotion in enumerate(("angry", "happy")):
        (corpus / emotion).mkdir(parents=True)
        for i in range(2):
            samples = signals.speech_like(duration_s=1.2, sample_rate_hz=16_000, seed=10 * k + i)
            signals.write_audio(
                corpus / emotion / f"{emotion}{i}.wav", samples, sample_rate_hz=16_000
            )
    return corpus


def _non_utf8(path: Path) -> str:
    """``path`` renamed to a name that is not UTF-8; returned as Python spells such names."""
    target = os.fsencode(path.parent) + b"/" + NON_UTF8
    os.rename(path, target)
    return os.fsdecode(target)


def test_printable_escapes_bytes_and_terminal_codes() -> None:
    assert printable(os.fsdecode(NON_UTF8)) == "caf\\xe9.wav"
    assert printable(ESCAPES) == "\\x1b[31mred\\x1b[0m.wav"
    assert printable("r\u202egnp.wav") == "r\\u202egnp.wav"  # right-to-left override
    assert printable("Ünïcødé 😊.wav") == "Ünïcødé 😊.wav"


def test_a_good_clip_with_a_non_utf8_name_is_answered(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    name = _non_utf8(corpus / "happy" / "happy0.wav")
    assert load_audio(name, sample_rate_hz=RATE_HZ).duration_s == pytest.approx(1.2)
    report = scan([corpus])
    assert os.fsdecode(NON_UTF8) in {c.path.name for c in report.clips}


def test_a_terminal_escape_in_a_name_is_shown_not_obeyed(tmp_path: Path) -> None:
    with pytest.raises(AudioError) as caught:
        load_audio(b"not audio at all" * 8, sample_rate_hz=RATE_HZ, name=ESCAPES)
    assert str(caught.value) == MESSAGES["escape-codes-in-name"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ser", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=300,
    )


@pytest.mark.slow
def test_cli_scan_lists_odd_names_escaped(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    _non_utf8(corpus / "happy" / "happy0.wav")
    (corpus / "happy" / ESCAPES.replace(".wav", ".txt")).write_text("notes")
    if hasattr(os, "mkfifo"):
        os.mkfifo(corpus / "angry" / "pipe.wav")
    run = _cli("scan", "--data", str(corpus))
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and "\x1b" not in run.stdout
    assert "4 clips" in run.stderr
    assert "\\x1b[31mred\\x1b[0m.txt: not an audio file (.txt)" in run.stdout
    if hasattr(os, "mkfifo"):
        assert f"pipe.wav: {MESSAGES['fifo-in-dataset']}" in run.stdout


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_cli_predict_answers_past_a_fifo_and_odd_names(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    odd = _non_utf8(corpus / "happy" / "happy0.wav")
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    escaped = tmp_path / ESCAPES
    escaped.write_bytes(b"not audio at all" * 8)
    good = corpus / "angry" / "angry0.wav"
    run = _cli("predict", odd, str(fifo), str(escaped), str(good))
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr and "\x1b" not in run.stdout
    lines = run.stdout.splitlines()
    assert len(lines) == 4, run.stdout
    assert lines[0].startswith(f"{printable(odd)}: ") and "error" not in lines[0]
    assert lines[1] == f"{fifo}: error: {seen('fifo', 'pipe.wav')}"
    assert lines[2].endswith(f": error: {MESSAGES['escape-codes-in-name']}")
    assert lines[3].startswith(f"{good}: ") and "error" not in lines[3]


# ---------------------------------------------------------------------------- the Train page


SWITCHES = ("SER_ENABLE_TRAINING", "SER_DISABLE_TRAINING", "SER_DATA_DIR")


@pytest.fixture
def no_switches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in SWITCHES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SER_MODELS_DIR", str(tmp_path / "models"))  # no model: a quick page
    return monkeypatch


@pytest.mark.parametrize(
    ("settings", "enabled", "case"),
    [
        ({}, False, "training-default"),
        ({"SER_DISABLE_TRAINING": "y"}, False, "training-switch-typo"),  # it failed open
        ({"SER_ENABLE_TRAINING": "1", "SER_DISABLE_TRAINING": "y"}, False, "training-switch-typo"),
        ({"SER_ENABLE_TRAINING": "1", "SER_DISABLE_TRAINING": "1"}, False, "training-default"),
        ({"SER_ENABLE_TRAINING": "off"}, False, "training-default"),
        ({"SER_ENABLE_TRAINING": "1"}, True, None),
        ({"SER_ENABLE_TRAINING": " Yes "}, True, None),
        ({"SER_DATA_DIR": "/srv/data"}, True, None),
    ],
)
def test_the_training_switch_takes_only_known_values_and_fails_closed(
    settings: dict[str, str], enabled: bool, case: str | None, no_switches: pytest.MonkeyPatch
) -> None:
    from ui import access

    for name, value in settings.items():
        no_switches.setenv(name, value)
    switch = access.training_access()
    assert switch.enabled is enabled
    assert switch.message == (MESSAGES[case] if case else "")


def test_a_data_root_confines_the_scan(tmp_path: Path) -> None:
    from ser.errors import DatasetError
    from ui.access import confine

    root = (tmp_path / "data").resolve()
    (root / "ravdess").mkdir(parents=True)
    assert confine(["ravdess", str(root / "ravdess")], root) == (str(root / "ravdess"),) * 2
    for outside in ("/etc", "../", str(tmp_path), "ravdess/../../"):
        with pytest.raises(DatasetError) as caught:
            confine([outside], root)
        assert str(caught.value) == MESSAGES["outside-data-root"].format(name=outside, root=root)


@pytest.mark.slow
def test_a_visitor_cannot_scan_outside_the_data_root(
    tmp_path: Path, no_switches: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    root = _corpus(tmp_path).resolve()
    no_switches.setenv("SER_DATA_DIR", str(root))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("pages/train.py").run()
    at.text_area(key="train_folders").set_value("/etc").run()
    at.button(key="train_scan_button").click().run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [
        MESSAGES["outside-data-root"].format(name="/etc", root=root)
    ]
    assert not at.get("plotly_chart") and not at.dataframe  # nothing of /etc is listed
    at.text_area(key="train_folders").set_value(str(root)).run()
    at.button(key="train_scan_button").click().run()
    assert not at.exception, at.exception
    assert not any("outside the data folder" in e.value for e in at.error)
    assert "**4 usable clips**" in at.success[0].value


@pytest.mark.slow
def test_the_train_page_is_off_by_default(no_switches: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, at.exception
    assert [i.value for i in at.info] == [MESSAGES["training-default"]]
    assert not at.text_area and not at.button


@pytest.mark.slow
def test_the_train_page_lists_odd_names_escaped_and_skips_a_fifo(
    tmp_path: Path, no_switches: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    root = _corpus(tmp_path).resolve()
    _non_utf8(root / "happy" / "happy0.wav")
    (root / "happy" / "notes.txt").write_text("x")
    os.rename(root / "happy" / "notes.txt", os.fsencode(root / "happy") + b"/caf\xe9.txt")
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "angry" / "pipe.wav")
    no_switches.setenv("SER_DATA_DIR", str(root))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("pages/train.py").run()
    at.button(key="train_scan_button").click().run()  # the data root is filled in
    at.run()  # and every rerun after it
    assert not at.exception, at.exception
    assert "**4 usable clips**" in at.success[0].value
    [skipped] = [d.value for d in at.dataframe]
    shown = dict(zip(skipped["file"], skipped["reason"], strict=True))
    assert shown[str(root / "happy" / "caf\\xe9.txt")] == "not an audio file (.txt)"
    if hasattr(os, "mkfifo"):
        assert shown[str(root / "angry" / "pipe.wav")] == MESSAGES["fifo-in-dataset"]


# ---------------------------------------------------------------------------- model metadata


BAD_METADATA: dict[str, Callable[[dict], object]] = {
    "evaluation-null": lambda m: {**m, "evaluation": None},
    "labels-null": lambda m: {**m, "labels": None},
    "trained-on-null": lambda m: {**m, "trained_on": None},
    "sample-rate-0": lambda m: {**m, "features": {**m["features"], "sample_rate_hz": 0}},
    "duplicate-labels": lambda m: {
        **m,
        "labels": [m["labels"][0], *m["labels"][:1], *m["labels"][2:]],
    },
    "accuracy-as-text": lambda m: {**m, "evaluation": {**m["evaluation"], "mean_accuracy": "63%"}},
    "not-an-object": lambda m: [m],
}


@pytest.fixture
def bad_models(tmp_path: Path) -> Path:
    """A models folder: one good model and one copy of it per bad metadata case."""
    import shutil

    folder = tmp_path / "models"
    folder.mkdir()
    source = ROOT / "models" / "classic-lstm"
    meta = json.loads(source.with_suffix(".json").read_text())
    shutil.copy(source.with_suffix(".keras"), folder / "good.keras")
    (folder / "good.json").write_text(json.dumps({**meta, "name": "good"}))
    for case, damage in BAD_METADATA.items():
        shutil.copy(source.with_suffix(".keras"), folder / f"{case}.keras")
        (folder / f"{case}.json").write_text(json.dumps(damage({**meta, "name": case})))
    return folder


def test_every_bad_metadata_case_is_listed_as_broken_with_its_reason(bad_models: Path) -> None:
    from ser import store

    problems = {m.name: m.problem for m in store.list_models(bad_models)}
    assert problems == {"good": None, **{case: MESSAGES[case] for case in BAD_METADATA}}
    assert store.default_model(store.list_models(bad_models)).name == "good"
    for info in store.list_models(bad_models):
        info.summary()  # never raises


@pytest.mark.slow
def test_models_and_predict_never_traceback_on_bad_metadata(
    bad_models: Path, tmp_path: Path
) -> None:
    models = _cli("--models-dir", str(bad_models), "models")
    assert models.returncode == 0 and "Traceback" not in models.stderr, models.stderr
    for case in BAD_METADATA:
        assert f"  {case}: BROKEN ({MESSAGES[case]})" in models.stdout.splitlines()
    listed = _cli("--models-dir", str(bad_models), "models", "--json")
    assert {m["name"]: m["problem"] for m in json.loads(listed.stdout)}["labels-null"] == MESSAGES[
        "labels-null"
    ]
    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"unused: the model is refused first")
    for case in ("evaluation-null", "sample-rate-0"):
        run = _cli("--models-dir", str(bad_models), "predict", "--model", case, str(clip))
        assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
        assert run.stderr.strip() == f"error: Model '{case}' cannot be used: {MESSAGES[case]}."


@pytest.mark.slow
def test_the_app_lists_bad_metadata_as_broken_and_goes_on(
    bad_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SER_MODELS_DIR", str(bad_models))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run()
    assert not at.exception, at.exception
    assert at.sidebar.selectbox(key="model").options == ["good"]  # the broken one is not offered
    captions = " ".join(c.value for c in at.sidebar.caption)
    for case in BAD_METADATA:
        assert f"**{case}** is broken and cannot be used: {MESSAGES[case]}" in captions
    at.switch_page("pages/models.py").run()
    assert not at.exception, at.exception


# ---------------------------------------------------------------------------- degenerate data


def _folders_corpus(root: Path, counts: dict[str, int], *, silent: str | None = None) -> Path:
    """One folder per emotion with ``counts`` clips; the ``silent`` emotion's clips scan fine
    (a valid header) but every one of them fails to load."""
    for k, (emotion, count) in enumerate(counts.items()):
        (root / emotion).mkdir(parents=True)
        for i in range(count):
            samples = signals.speech_like(duration_s=1.0, sample_rate_hz=16_000, seed=100 * k + i)
            if emotion == silent:
                samples = np.zeros_like(samples)
                samples[i] = (
                    0.001  # far too quiet to judge; each file differs, so none is dropped as a duplicate
                )
            signals.write_audio(
                root / emotion / f"{emotion}{i}.wav", samples, sample_rate_hz=16_000
            )
    return root


DEGENERATE = {
    "one-emotion-left": "Training needs at least two emotions; found 1 (angry) after leaving out "
    "5 clips that could not be read.",
    "two-clip-random-split": "Training needs at least 5 clips of each emotion for a random 20% "
    "split, so that the held-out part holds some of each; happy has 1, angry has 1. Add clips, "
    "or leave that emotion out.",
}
MESSAGES.update(DEGENERATE)


def test_training_refuses_when_every_clip_of_an_emotion_fails_to_load(tmp_path: Path) -> None:
    from ser import train
    from ser.errors import TrainingError

    corpus = _folders_corpus(tmp_path / "data", {"happy": 5, "angry": 5}, silent="happy")
    assert len(scan([corpus]).clips) == 10  # the scan sees nothing wrong
    with pytest.raises(TrainingError) as caught:
        train.prepare([corpus], train.TrainOptions(), cache_dir=tmp_path / "cache")
    assert str(caught.value) == MESSAGES["one-emotion-left"]


def test_training_refuses_too_few_clips_per_emotion(tmp_path: Path) -> None:
    from ser import train
    from ser.errors import TrainingError

    corpus = _folders_corpus(tmp_path / "data", {"happy": 1, "angry": 1})
    options = train.TrainOptions(validation=train.Validation.RANDOM)
    with pytest.raises(TrainingError) as caught:
        train.prepare([corpus], options, cache_dir=tmp_path / "cache")
    assert str(caught.value) == MESSAGES["two-clip-random-split"]


@pytest.mark.slow
def test_cli_train_refuses_degenerate_data_and_saves_nothing(tmp_path: Path) -> None:
    corpus = _folders_corpus(tmp_path / "data", {"happy": 1, "angry": 1})
    models = tmp_path / "models"
    run = _cli(
        "--models-dir",
        str(models),
        "train",
        "--data",
        str(corpus),
        "--name",
        "tiny",
        "--validation",
        "random",
        "--epochs",
        "1",
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.strip().endswith(f"error: {MESSAGES['two-clip-random-split']}")
    assert not models.exists() or not list(models.iterdir())


# ---------------------------------------------------------------------------- saving


MESSAGES["name-taken"] = "A model named '{name}' already exists; choose another name."
MESSAGES["name-shipped"] = "'{name}' is a shipped model and is never overwritten."


class _SlowModel:
    """Stands in for a Keras model: saving takes long enough for two saves to overlap."""

    def save(self, path: Path) -> None:
        time.sleep(0.3)
        Path(path).write_bytes(b"weights")


def test_two_saves_under_one_name_at_once_do_not_both_succeed(tmp_path: Path) -> None:
    from ser import store
    from ser.errors import ModelError

    meta = {"labels": ["happy", "sad"], "features": {"kind": "mean_mfcc"}}
    outcomes: list[object] = []
    threads = [
        threading.Thread(
            target=lambda: outcomes.append(
                _call(
                    lambda: store.save_model(_SlowModel(), meta, name="twin", models_dir=tmp_path)
                )
            )
        )  # type: ignore[arg-type]
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(outcomes) == 2 and len(errors) == 1, outcomes
    assert isinstance(errors[0], ModelError)
    assert str(errors[0]) == MESSAGES["name-taken"].format(name="twin")


@pytest.mark.slow
def test_cli_train_refuses_a_taken_name_before_the_run(bad_models: Path, tmp_path: Path) -> None:
    run = _cli(
        "--models-dir",
        str(bad_models),
        "train",
        "--data",
        str(tmp_path / "nowhere"),
        "--name",
        "good",
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.strip() == f"error: {MESSAGES['name-shipped'].format(name='good')}"  # a copy


# ---------------------------------------------------------------------------- cut Ogg files


MESSAGES["ogg-cut"] = "The file seems to be cut short: only the first {seconds} s could be decoded."
MESSAGES["ogg-cut-after-headers"] = (
    "'{name}' is damaged or incomplete (perhaps cut short): no audio could be decoded."
)
OGG_SUBTYPES = [s for s in ("VORBIS", "OPUS") if s in sf.available_subtypes("OGG")]


def _ogg(subtype: str) -> bytes:
    samples = signals.speech_like(duration_s=4.0, sample_rate_hz=48_000, seed=2)
    return signals.audio_bytes(samples, sample_rate_hz=48_000, format="OGG", subtype=subtype)


@pytest.mark.parametrize("subtype", OGG_SUBTYPES)
@pytest.mark.parametrize("kept", [0.3, 0.8, 0.999])
def test_a_cut_ogg_file_is_answered_with_the_cut_short_caveat(subtype: str, kept: float) -> None:
    from ser.audio import assess_quality

    data = _ogg(subtype)
    audio = load_audio(data[: int(len(data) * kept)], sample_rate_hz=RATE_HZ, name="cut.ogg")
    assert audio.truncated
    seconds = f"{audio.duration_s:.1f}"
    assert assess_quality(audio)[0] == MESSAGES["ogg-cut"].format(seconds=seconds)


@pytest.mark.parametrize("subtype", OGG_SUBTYPES)
def test_a_whole_ogg_file_is_not_called_cut(subtype: str) -> None:
    assert not load_audio(_ogg(subtype), sample_rate_hz=RATE_HZ).truncated


def test_an_ogg_vorbis_file_cut_after_its_headers_is_called_cut_not_empty() -> None:
    data = _ogg("VORBIS")
    with pytest.raises(AudioError) as caught:
        load_audio(data[: len(data) // 10], sample_rate_hz=RATE_HZ, name="memo.ogg")
    assert str(caught.value) == MESSAGES["ogg-cut-after-headers"].format(name="memo.ogg")
