"""Security: safe model loading, no pickles, names that cannot escape, read-only data folders,
a switch that turns training off, and bounded uploads.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ser import audio, cli, store, train
from ser.errors import ModelError, TooLongError
from ser.models import ModelType
from tests import signals

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
SKIP_DIRS = {".venv", ".git", "artifacts", "__pycache__", ".ruff_cache", ".pytest_cache"}
ESCAPING_NAMES = [
    "../x",
    "../../etc/passwd",
    "/tmp/x",
    "a/b",
    "..",
    ".",
    "a b",
    "x\n",
    "a\0b",
    "naïve",
    "x;rm -rf ~",
    "$(id)",
    "~root",
    "a.keras",
    ".hidden",
    "-rf",
    "",
]


def _repo_files(*suffixes: str) -> list[Path]:
    """The project's files (not the virtualenv, git's or caches'), optionally by suffix."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        found += [Path(folder, f) for f in files if not suffixes or Path(f).suffix in suffixes]
    return sorted(found)


# ---------------------------------------------------------------------------- safe loading


@pytest.fixture(scope="module")
def code_carrying_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder whose one model holds a Python lambda: arbitrary code if deserialised."""
    import keras

    from ser.features import FeatureConfig

    folder = tmp_path_factory.mktemp("evil-models")
    inputs = keras.Input(shape=(40,))
    hidden = keras.layers.Lambda(lambda x: x * 2.0)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(hidden))
    meta = {
        "labels": ["neutral", "happy", "sad", "angry"],
        "features": FeatureConfig().to_dict(),
        "shipped": False,
    }
    store.save_model(model, meta, name="evil", models_dir=folder)
    return folder


def test_a_model_carrying_code_is_refused_by_safe_mode(code_carrying_model: Path) -> None:
    info = store.find_model("evil", code_carrying_model)
    assert info.ok  # the files are intact: only safe mode stands in the way

    with pytest.raises(ModelError) as caught:
        store.load_keras(info)

    assert str(caught.value).startswith("Model 'evil' could not be loaded: ")
    assert "safe_mode" in str(caught.value)


def test_the_command_line_refuses_it_too_even_by_typed_path(
    code_carrying_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = signals.write_audio(
        tmp_path / "a.wav",
        signals.speech_like(duration_s=1.0, sample_rate_hz=16_000),
        sample_rate_hz=16_000,
    )
    typed = str(code_carrying_model / "evil.keras")

    assert cli.main(["predict", "--model", typed, str(clip)]) == 1

    err = capsys.readouterr().err
    assert err.startswith("error: Model 'evil' could not be loaded: ")
    assert "Traceback" not in err


def test_every_model_load_in_the_code_uses_safe_mode() -> None:
    calls = []
    for path in _repo_files(".py"):
        if path.parts[-2] == "tests":
            continue
        for match in re.finditer(r"load_model\((.*?)\)", path.read_text()):
            calls.append((path.name, match[1]))
    assert calls, "no model loading found at all"
    assert all("safe_mode=True" in args for _, args in calls), calls


def test_shipped_models_hold_only_a_config_and_weights() -> None:
    archives = list((ROOT / "models").glob("*.keras"))
    if not archives:
        pytest.skip("no shipped model in models/ yet")
    for archive in archives:
        with zipfile.ZipFile(archive) as zipped:
            assert set(zipped.namelist()) == {"metadata.json", "config.json", "model.weights.h5"}
            config = zipped.read("config.json").decode()
        assert '"Lambda"' not in config and "__lambda__" not in config, archive.name


# ---------------------------------------------------------------------------- no pickles

# Modules that turn bytes into arbitrary objects, and calls that do it.
UNSAFE_MODULES = [
    "pickle",
    "cPickle",
    "_pickle",
    "joblib",
    "dill",
    "cloudpickle",
    "shelve",
    "marshal",
]
UNSAFE_IMPORT = re.compile(
    r"^\s*(?:import|from)\s+(?:" + "|".join(UNSAFE_MODULES) + r")\b", re.MULTILINE
)
UNSAFE_CALLS = re.compile(
    r"allow_pickle\s*=\s*True|read_pickle|to_pickle|torch\.load|persist\s*=\s*['\"]disk"
)


def test_no_pickle_imports_or_pickle_files_anywhere() -> None:
    sources = _repo_files(".py")
    assert len(sources) > 20  # the walk really saw the project
    offenders = [
        f"{p.relative_to(ROOT)}: {m[0].strip()}"
        for p in sources
        if p != Path(__file__)
        for m in [*UNSAFE_IMPORT.finditer(p.read_text()), *UNSAFE_CALLS.finditer(p.read_text())]
    ]
    assert offenders == []
    pickled = _repo_files(".pkl", ".pickle", ".joblib", ".dill", ".npy", ".npz", ".h5")
    assert pickled == []


def test_the_feature_cache_is_read_without_pickle(tmp_path: Path, tiny_corpus: Path) -> None:
    clip = next(tiny_corpus.rglob("*.wav"))
    config = train.TrainOptions().features
    first = train._clip_features(str(clip), config.to_dict(), "", str(tmp_path))
    [entry] = list(tmp_path.rglob("*.npy"))
    # A cache entry replaced by a pickle (an object array) is not unpickled, just recomputed.
    np.save(entry, np.array([{"payload": 1}], dtype=object), allow_pickle=True)

    again = train._clip_features(str(clip), config.to_dict(), "", str(tmp_path))

    np.testing.assert_array_equal(again, first)


# ---------------------------------------------------------------------------- names


@pytest.mark.parametrize("name", ESCAPING_NAMES)
def test_no_model_name_escapes_the_models_folder(name: str, tmp_path: Path) -> None:
    folder = tmp_path / "sandbox" / "models"
    folder.mkdir(parents=True)

    with pytest.raises(ModelError, match="is not a valid model name"):
        store.find_model(name, folder) if not name.endswith(".keras") else store.validate_name(name)
    with pytest.raises(ModelError, match="is not a valid model name"):
        store.save_model(object(), {}, name=name, models_dir=folder)  # type: ignore[arg-type]

    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("name", ["../x", "/tmp/ser-escape", "a b"])
def test_the_command_line_refuses_escaping_names(
    name: str, tmp_path: Path, tiny_models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    shutil.copytree(tiny_models_dir, models)
    before = sorted(p.name for p in tmp_path.rglob("*"))

    predict = cli.main(["--models-dir", str(models), "predict", "--model", name, "x.wav"])
    predict_err = capsys.readouterr().err
    trained = cli.main(
        ["--models-dir", str(models), "train", "--data", str(tmp_path), "--name", name]
    )
    train_err = capsys.readouterr().err

    message = (
        f"error: '{name}' is not a valid model name: use 1-64 letters, digits, '-' or '_', "
        "starting with a letter or digit.\n"
    )
    assert (predict, trained) == (1, 1)
    assert (predict_err, train_err) == (message, message)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert not Path("/tmp/ser-escape.keras").exists()


# ---------------------------------------------------------------------------- data is read only


def _snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_mode)
        for p in [folder, *folder.rglob("*")]
    }


def test_training_reads_the_data_folder_and_never_writes_into_it(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    before = _snapshot(corpus)

    # What the Train page runs: scan, features (cached elsewhere), hold-out fit, save.
    options = train.TrainOptions(model_type=ModelType.MFCC_LSTM, epochs=1)
    data = train.prepare([corpus], options, cache_dir=tmp_path / "cache")
    held = train.train_holdout(data, options)
    meta = train.metadata(data, options, evaluation=None, command="tests")
    store.save_model(held.model, meta, name="from-corpus", models_dir=tmp_path / "models")

    assert len(data.clips) == 96
    assert _snapshot(corpus) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "corpus", "models"]


# ---------------------------------------------------------------------------- training switch


@pytest.mark.slow
@pytest.mark.parametrize("disabled", [True, False])
def test_ser_disable_training_turns_the_train_page_off(
    disabled: bool, tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (ROOT / "pages" / "train.py").is_file():
        pytest.fail("pages/train.py is missing")
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SER_MODELS_DIR", str(tiny_models_dir))
    monkeypatch.delenv("SER_DATA_DIR", raising=False)
    monkeypatch.setenv("SER_ENABLE_TRAINING", "1")
    if disabled:
        monkeypatch.setenv("SER_DISABLE_TRAINING", "1")
    else:
        monkeypatch.delenv("SER_DISABLE_TRAINING", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.switch_page("pages/train.py").run()

    assert not at.exception, at.exception
    inputs = [*at.main.text_input, *at.main.text_area, *at.main.button]
    info = " ".join(i.value for i in at.main.info)
    if disabled:  # nothing to type a server folder into, nothing to start
        assert "Training is turned off on this deployment" in info
        assert inputs == []
    else:
        assert "turned off" not in info
        assert inputs != []


def test_the_readme_documents_the_training_switch() -> None:
    readme = ROOT / "README.md"
    assert readme.is_file(), "README.md is missing"
    assert "SER_DISABLE_TRAINING" in readme.read_text()


# ---------------------------------------------------------------------------- bounds


def test_uploads_are_bounded_in_the_streamlit_config() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    limit_mb = config["server"]["maxUploadSize"]
    assert isinstance(limit_mb, int)
    assert 0 < limit_mb <= 50  # Streamlit's own default is 200 MB


def test_the_duration_limit_is_enforced_at_the_boundary() -> None:
    assert audio.MAX_DURATION_S == 300.0

    def clip(seconds: float) -> bytes:  # 1 kHz, 8-bit: 300 kB for 5 minutes
        second = signals.tone(frequency_hz=250, duration_s=1.0, sample_rate_hz=1_000)
        return signals.audio_bytes(
            np.tile(second, round(seconds)), sample_rate_hz=1_000, subtype="PCM_U8"
        )

    assert audio.load_audio(clip(300), sample_rate_hz=1_000).duration_s == 300.0
    with pytest.raises(TooLongError, match=r"is too long \(5:01\); the maximum is 5:00"):
        audio.load_audio(clip(301), sample_rate_hz=1_000)


def test_streamlit_really_reads_the_upload_limit() -> None:
    """The limit is in force (file uploads and recordings alike), not just written down."""
    shown = subprocess.run(
        [sys.executable, "-m", "streamlit", "config", "show"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    configured = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert f"\nmaxUploadSize = {configured['server']['maxUploadSize']}\n" in shown
