"""The command line contract: JSON lines, one per file, non-zero exit when any failed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ser import cli, store
from tests.signals import speech_like, write_audio

ROOT = Path(__file__).parents[1]


@pytest.fixture
def clips(tmp_path: Path) -> list[Path]:
    good = write_audio(
        tmp_path / "good.wav",
        speech_like(duration_s=1.5, sample_rate_hz=48_000, speech_fraction=1.0),
        sample_rate_hz=48_000,
    )
    bad = tmp_path / "notes.wav"
    bad.write_text("meeting notes")
    return [good, bad]


def test_predict_json_answers_every_file_and_fails_at_the_end(
    clips: list[Path], tiny_models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["--models-dir", str(tiny_models_dir), "predict", "--json", *map(str, clips)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    assert [line["file"] for line in lines] == [str(c) for c in clips]
    good, bad = lines
    assert set(good) >= {"file", "emotion", "confidence", "probabilities"}
    assert good["emotion"] == max(good["probabilities"], key=good["probabilities"].get)
    assert sum(good["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert "not a recognisable audio file" in bad["error"]


def test_predict_json_gives_a_long_clips_timeline(
    tmp_path: Path, tiny_models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long = write_audio(
        tmp_path / "long.wav",
        speech_like(duration_s=8.0, sample_rate_hz=16_000, speech_fraction=1.0),
        sample_rate_hz=16_000,
    )
    short = write_audio(
        tmp_path / "short.wav",
        speech_like(duration_s=2.0, sample_rate_hz=16_000, speech_fraction=1.0),
        sample_rate_hz=16_000,
    )
    assert (
        cli.main(
            [
                "--models-dir",
                str(tiny_models_dir),
                "predict",
                "--model",
                "tiny-cnn",
                "--json",
                str(long),
                str(short),
            ]
        )
        == 0
    )
    long_line, short_line = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    timeline = long_line["timeline"]
    assert [w["start_s"] for w in timeline] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert all(w["end_s"] == pytest.approx(w["start_s"] + 3.0) for w in timeline)
    for window in timeline:
        assert set(window) == {"start_s", "end_s", "emotion", "confidence", "probabilities"}
        assert window["emotion"] == max(window["probabilities"], key=window["probabilities"].get)
        assert window["confidence"] == pytest.approx(
            max(window["probabilities"].values()), abs=1e-4
        )
    assert "timeline" not in short_line


def test_predict_all_good_exits_zero(clips: list[Path], tiny_models_dir: Path) -> None:
    assert (
        cli.main(
            ["--models-dir", str(tiny_models_dir), "predict", "--model", "tiny-cnn", str(clips[0])]
        )
        == 0
    )


def test_unknown_model_is_a_clear_error(
    clips: list[Path], tiny_models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        ["--models-dir", str(tiny_models_dir), "predict", "--model", "nope", str(clips[0])]
    )
    assert code == 1
    assert "No model named 'nope'. Installed: tiny-classic, tiny-cnn." in capsys.readouterr().err


def test_models_marks_the_default(
    tiny_models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--models-dir", str(tiny_models_dir), "models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    default = store.default_model(store.list_models(tiny_models_dir))
    assert [line for line in lines if line.startswith("* ")] == [f"* {default.summary()}"]


def test_python_dash_m_ser_is_the_command_line(
    tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import runpy

    monkeypatch.setattr(sys, "argv", ["ser", "--models-dir", str(tiny_models_dir), "models"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("ser", run_name="__main__")  # what `python -m ser` runs, in process
    run_as_module = capsys.readouterr().out

    assert exited.value.code == 0
    assert cli.main(["--models-dir", str(tiny_models_dir), "models"]) == 0
    assert run_as_module == capsys.readouterr().out
    assert "tiny-classic" in run_as_module


@pytest.mark.slow
def test_train_then_predict_with_the_new_model(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    models = tmp_path / "models"
    args = [
        "--models-dir",
        str(models),
        "train",
        "--data",
        str(tiny_corpus),
        "--name",
        "cli-model",
        "--epochs",
        "30",
    ]
    assert cli.main(args) == 0
    info = store.find_model("cli-model", models)
    assert info.ok
    assert info.metadata["command"] == (
        f"python -m ser train --data {tiny_corpus} --name cli-model --epochs 30"
    )
    assert info.metadata["trained_on"]["clips"] == 96
    assert info.metadata["evaluation"]["protocol"].startswith("held-out speakers")
    assert info.accuracy > 0.5


@pytest.mark.slow
def test_evaluate_prints_folds_and_means(
    tiny_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    assert cli.main(["evaluate", "--data", str(tiny_corpus), "--epochs", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["protocol"] == "RAVDESS 6-fold by actor"
    assert len(result["folds"]) == 2
    assert result["mean_accuracy"] == pytest.approx(
        sum(f["accuracy"] for f in result["folds"]) / 2, abs=1e-3
    )


def _predict_json(*args: str | Path) -> list[dict]:
    """``python -m ser predict --json ARGS`` in a subprocess: one answer per file."""
    out = subprocess.run(
        [sys.executable, "-m", "ser", "predict", "--json", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.slow
def test_predict_with_the_shipped_default_model_in_a_subprocess(clips: list[Path]) -> None:
    if store.default_model(store.list_models(ROOT / "models")) is None:
        pytest.skip("no shipped model in models/ yet")
    (line,) = _predict_json(clips[0])
    assert line["emotion"] in line["probabilities"]
    assert line["model"] == store.default_model(store.list_models(ROOT / "models")).name


@pytest.mark.slow
def test_the_shipped_default_hands_a_16_khz_recording_to_a_shipped_model_that_it_feeds(
    clips: list[Path], tmp_path: Path
) -> None:
    shipped = [m for m in store.list_models(ROOT / "models") if m.ok and m.shipped]
    if not any(m.features.sample_rate_hz <= 16_000 for m in shipped):
        pytest.skip("no shipped model at 16 kHz or below")
    low = write_audio(
        tmp_path / "phone.wav",
        speech_like(duration_s=1.5, sample_rate_hz=16_000, speech_fraction=1.0),
        sample_rate_hz=16_000,
    )
    by_name = {m.name: m for m in shipped}
    default = store.default_model(shipped).name
    wide = max(
        (m for m in shipped if m.features.sample_rate_hz > 16_000), key=lambda m: m.accuracy or 0.0
    ).name
    # Without --model: a model that hears the recording whole answers (the default, if it does);
    # a model asked for by name answers everything itself.
    for model_args, first, expected_low in (([], default, True), (["--model", wide], wide, False)):
        full_line, low_line = _predict_json(*model_args, clips[0], low)
        assert full_line["model"] == first
        assert (by_name[low_line["model"]].features.sample_rate_hz <= 16_000) is expected_low
        handed_on = low_line["model"] != first
        assert low_line["caveats"][0].startswith("Answered by the model ") is handed_on


@pytest.mark.slow
def test_the_shipped_default_hands_phone_calls_to_the_shipped_narrow_band_model(
    clips: list[Path], tmp_path: Path
) -> None:
    """An 8 kHz file, and the same call saved at 44.1 kHz, hold nothing above 4 kHz: the model
    that answers them heard no more, and a full-band recording stays with the default."""
    from ser.audio import band_limited

    shipped = [m for m in store.list_models(ROOT / "models") if m.ok and m.shipped]
    narrow = [m.name for m in shipped if m.features.band_limit_hz is not None]
    if not narrow:
        pytest.skip("no shipped band-limited model")
    speech = speech_like(duration_s=1.5, sample_rate_hz=44_100, speech_fraction=1.0)
    call = band_limited(speech, sample_rate_hz=44_100, source_rate_hz=8_000)
    saved_high = write_audio(tmp_path / "call-44k.wav", call, sample_rate_hz=44_100)
    low = speech_like(duration_s=1.5, sample_rate_hz=8_000, speech_fraction=1.0)
    saved_low = write_audio(tmp_path / "call-8k.wav", low, sample_rate_hz=8_000)
    full = write_audio(tmp_path / "full.wav", speech, sample_rate_hz=44_100)

    full_line, high_line, low_line = _predict_json(full, saved_high, saved_low)
    assert full_line["model"] == store.default_model(shipped).name
    assert high_line["model"] in narrow and low_line["model"] in narrow
    assert "holds almost nothing above" in high_line["caveats"][0]
    assert "was made at 8 kHz" in low_line["caveats"][0]


@pytest.mark.slow
def test_keep_holdout_model_saves_the_evaluated_model(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    models = tmp_path / "models"
    args = [
        "--models-dir",
        str(models),
        "train",
        "--data",
        str(tiny_corpus),
        "--name",
        "held",
        "--epochs",
        "5",
        "--keep-holdout-model",
    ]
    assert cli.main(args) == 0
    meta = store.find_model("held", models).metadata
    held_out = sum(sum(row) for row in meta["evaluation"]["confusion"])
    assert meta["trained_on"]["clips"] == 96 - held_out  # only the training side
    assert meta["trained_on"]["speakers"] == 6


@pytest.mark.slow
def test_train_says_which_clips_were_left_out(
    tiny_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    silent = corpus / "Actor_01" / "03-01-01-01-01-01-01.wav"
    write_audio(
        silent, speech_like(duration_s=1.2, sample_rate_hz=16_000) * 0, sample_rate_hz=16_000
    )
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    args = [
        "--models-dir",
        str(tmp_path / "models"),
        "evaluate",
        "--data",
        str(corpus),
        "--epochs",
        "1",
        "--json",
    ]
    assert cli.main(args) == 0
    assert f"left out {silent}: '{silent.name}' is silent" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_on_an_unseen_corpus(
    tiny_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    unseen = tmp_path / "unseen"
    for seed, emotion in enumerate(("neutral", "angry")):
        (unseen / emotion).mkdir(parents=True)
        clip = speech_like(
            duration_s=1.2, sample_rate_hz=16_000, seed=seed
        )  # distinct: duplicates are dropped
        write_audio(unseen / emotion / "a.wav", clip, sample_rate_hz=16_000)
    args = ["evaluate", "--data", str(tiny_corpus), "--test-data", str(unseen), "--epochs", "2"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "result: accuracy" in out and "(trained on ravdess, tested on unseen folders)" in out
    assert "recall: neutral " in out and "fold 1" not in out
    assert cli.main([*args, "--folds", "6"]) == 1
    assert "--folds goes with cross-validation" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("argument", ["-", "/dev/stdin"])
def test_predict_reads_a_clip_piped_in(
    argument: str, tiny_models_dir: Path, tmp_path: Path
) -> None:
    clip = write_audio(
        tmp_path / "c.wav",
        speech_like(duration_s=1.5, sample_rate_hz=16_000, speech_fraction=1.0),
        sample_rate_hz=16_000,
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ser",
            "--models-dir",
            str(tiny_models_dir),
            "predict",
            "--model",
            "tiny-cnn",
            "--json",
            argument,
        ],
        input=clip.read_bytes(),
        capture_output=True,
        timeout=300,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    line = json.loads(run.stdout.decode().strip().splitlines()[-1])
    assert line["file"] == "stdin"
    assert line["emotion"] in line["probabilities"]


def test_the_saved_command_names_data_folders_by_ser_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model's JSON must not carry the training machine's paths; pasted, it still runs."""
    from ser.cli import reproduce_command

    data = tmp_path / "corpora"
    (data / "ravdess").mkdir(parents=True)
    monkeypatch.setenv("SER_DATA_DIR", str(data))
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--data", str(data / "ravdess"), "--data", "corpora/ravdess", "--data"]
    argv += [str(tmp_path / "mine folder"), "--name", "x"]
    command = reproduce_command(argv)
    assert command == (
        "python -m ser train --data $SER_DATA_DIR/ravdess --data $SER_DATA_DIR/ravdess "
        f"--data '{tmp_path / 'mine folder'}' --name x"
    )
    monkeypatch.delenv("SER_DATA_DIR")
    assert str(data / "ravdess") in reproduce_command(argv)
