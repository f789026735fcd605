"""Security: safe model loading, no pickles, names that cannot escape, read-only data folders,
a switch that turns training off, and bounded uploads.
"""

from __future__ import annotations

import ast
import os
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

# Modules that turn bytes into arbitrary objects.
UNSAFE_MODULES = frozenset(
    {"pickle", "cPickle", "_pickle", "joblib", "dill", "cloudpickle", "shelve", "marshal"}
)
UNSAFE_FUNCTIONS = frozenset({"read_pickle", "to_pickle"})  # pandas'


def _dotted(node: ast.expr) -> str:
    """``keras.saving.load_model`` for that expression; '' for anything but names and dots."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (inner := _dotted(node.value)):
        return f"{inner}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> ast.keyword | None:
    return next((k for k in call.keywords if k.arg == name), None)


def _is_constant(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def unsafe_loads(source: str, filename: str = "<string>") -> list[str]:
    """Each place in ``source`` that could run code hidden in a file, as "file:line: why".

    A Keras ``load_model`` call must say ``safe_mode=True`` (a literal: not a variable, not
    ``**options``, not left to a default a Keras release may change). ``allow_pickle`` must
    be absent or literally False. No pickle-like module is imported or called, nor pandas'
    pickle readers, ``torch.load`` or Streamlit's ``persist="disk"`` (it pickles).
    """
    found = []

    def flag(node: ast.AST, why: str) -> None:
        found.append(f"{filename}:{node.lineno}: {why}")

    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            for name in names:
                if name and name.split(".")[0] in UNSAFE_MODULES:
                    flag(node, f"imports {name}")
            continue
        if not isinstance(node, ast.Call):
            continue
        callee = _dotted(node.func)
        last, root = callee.rpartition(".")[2], callee.partition(".")[0]
        spread = any(k.arg is None for k in node.keywords)  # f(**options): anything inside
        if last == "load_model":
            safe = _keyword(node, "safe_mode")
            if spread or safe is None or not _is_constant(safe.value, True):
                flag(node, f"{callee}(...) without safe_mode=True")
        if root in UNSAFE_MODULES or last in UNSAFE_FUNCTIONS or callee == "torch.load":
            flag(node, f"calls {callee}")
        allow = _keyword(node, "allow_pickle")
        if (allow is not None and not _is_constant(allow.value, False)) or (
            spread and last == "load" and root in {"np", "numpy"}
        ):
            flag(node, f"{callee}(...) may allow pickles")
        persist = _keyword(node, "persist")
        if persist is not None and not _is_constant(persist.value, None):
            flag(node, f"{callee}(persist=...) pickles to disk")
    return found


def _code_files() -> list[Path]:
    """Every Python file of the project but its tests (which plant pickles on purpose)."""
    return [p for p in _repo_files(".py") if p.relative_to(ROOT).parts[0] != "tests"]


@pytest.mark.parametrize(
    "bad",
    [
        "model = keras.models.load_model(\n    path,\n    safe_mode=False,\n)\n",
        "keras.saving.load_model(path, compile=False)\n",  # the default is not a promise
        "from keras.models import load_model\nload_model(path, safe_mode=trusted)\n",
        "keras.saving.load_model(path, **options)\n",
        "x = np.load(\n    path,\n    allow_pickle=True,\n)\n",
        "numpy.load(path, **options)\n",
        "import pickle\n",
        "from joblib import load\n",
        "import dill as d\n",
        "data = pd.read_pickle(path)\n",
        "torch.load(path)\n",
        "@st.cache_data(persist='disk')\ndef f(): ...\n",
    ],
)
def test_the_checker_finds_a_planted_unsafe_load(bad: str) -> None:
    assert unsafe_loads(bad, "planted.py"), bad


def test_the_checker_passes_safe_loads() -> None:
    good = (
        "model = keras.saving.load_model(\n    info.keras_path, safe_mode=True, compile=False\n)\n"
        "features = np.load(cached)\n"
        "other = np.load(cached, allow_pickle=False)\n"
        "@st.cache_data(max_entries=4)\ndef f(): ...\n"
    )
    assert unsafe_loads(good) == []


def test_no_code_loads_models_or_arrays_unsafely_or_imports_pickle() -> None:
    files = _code_files()
    seen = {p.relative_to(ROOT).parts[0] for p in files}
    assert {"ser", "ui", "pages", "app.py"} <= seen, seen  # the walk really saw the project
    loads = [
        f"{p.relative_to(ROOT)}"
        for p in files
        if any(
            _dotted(n.func).endswith("load_model")
            for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, ast.Call)
        )
    ]
    assert loads, "no model loading found at all: the checker is looking in the wrong place"
    offenders = [
        problem for p in files for problem in unsafe_loads(p.read_text(), str(p.relative_to(ROOT)))
    ]
    assert offenders == []


def test_no_pickle_files_anywhere() -> None:
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


@pytest.mark.slow
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


@pytest.mark.slow
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
