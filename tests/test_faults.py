"""Faults: damaged models, training killed at any point, and disk errors while saving.

- A model file missing, truncated, not a model, or disagreeing with its labels: the app's
  picker marks it broken with the reason, falls back to a working model, and that model
  answers (AppTest, on a copy of the tiny models with the default one damaged).
- ``python -m ser train`` killed with SIGKILL during feature extraction, during fitting and at
  three points of saving: every existing model still loads, the new one is not listed, and
  no half-written file is visible. Saving is hit deterministically by a small driver that
  runs the real command with a hook that SIGKILLs its own process at the chosen step.
- Disk full, permission denied, or a models folder that cannot exist: the error names the
  cause and leaves nothing visible.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ser import store
from ser.errors import ModelError
from ser.predict import Recognizer
from tests import signals

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
PRE_EXISTING = ["tiny-classic", "tiny-cnn"]


@pytest.fixture
def models(tiny_models_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny models, free to damage."""
    folder = tmp_path / "models"
    shutil.copytree(tiny_models_dir, folder)
    return folder


def _visible_files(folder: Path) -> dict[str, str]:
    """Non-hidden file name -> SHA-256 of its bytes."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if not p.name.startswith(".")
    }


def _assert_pre_existing_models_intact(folder: Path, before: dict[str, str]) -> None:
    infos = store.list_models(folder)
    assert [m.name for m in infos] == PRE_EXISTING
    for info in infos:
        assert info.ok, info.problem
        assert store.load_keras(info).outputs[0].shape[-1] == len(info.labels)
    for name in before:
        assert _visible_files(folder)[name] == before[name], f"{name} changed"


# ---------------------------------------------------------------------------- damaged models


def _speech_wav(seed: int = 3) -> bytes:
    samples = signals.speech_like(duration_s=2.5, sample_rate_hz=16_000, seed=seed)
    return signals.audio_bytes(samples, sample_rate_hz=16_000, subtype="PCM_16")


def _set_sha(meta_path: Path, keras_bytes: bytes) -> None:
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = hashlib.sha256(keras_bytes).hexdigest()
    meta_path.write_text(json.dumps(meta))


def _damage(folder: Path, name: str, how: str) -> None:
    keras_path, meta_path = folder / f"{name}.keras", folder / f"{name}.json"
    if how == "missing":
        keras_path.unlink()
    elif how == "truncated":
        keras_path.write_bytes(keras_path.read_bytes()[:5_000])
    elif how == "not-a-model":  # with a matching checksum: only loading can find out
        garbage = b"PK\x03\x04 this is not a keras archive" * 10
        keras_path.write_bytes(garbage)
        _set_sha(meta_path, garbage)
    elif how == "label-count":
        meta = json.loads(meta_path.read_text())
        meta["labels"] = meta["labels"][:-1]
        meta_path.write_text(json.dumps(meta))
    else:
        raise ValueError(how)


# How the problem is found: by listing the folder, or only when the model is loaded.
DAMAGE = {
    "missing": "listing",
    "truncated": "listing",
    "not-a-model": "loading",
    "label-count": "loading",
}


@pytest.mark.slow
@pytest.mark.parametrize("how", list(DAMAGE))
def test_the_app_marks_a_damaged_default_model_broken_and_falls_back(
    how: str, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    from ui import models as app_models
    from ui.results import headline

    infos = store.list_models(models)
    damaged = store.default_model(infos)
    [other] = [m for m in infos if m.name != damaged.name]
    _damage(models, damaged.name, how)
    # The reason, exactly as the package gives it.
    info = store.find_model(damaged.name, models)
    if DAMAGE[how] == "listing":
        assert not info.ok
        reason = info.problem
    else:
        assert info.ok
        with pytest.raises(ModelError) as caught:
            store.load_keras(info)
        reason = str(caught.value)
    if how == "label-count":
        assert "outputs but its metadata lists" in reason
    monkeypatch.setenv("SER_MODELS_DIR", str(models))
    app_models.forget_load_failures()

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()

    assert not at.exception, at.exception
    sidebar = [c.value for c in at.sidebar.caption]
    assert f":material/block: **{damaged.name}** is broken and cannot be used: {reason}" in sidebar
    picker = at.sidebar.selectbox(key="model")
    assert picker.value == other.name
    assert picker.options == [app_models.model_label(other)]
    warnings = [w.value for w in at.sidebar.warning]
    if DAMAGE[how] == "loading":  # it was the default until it failed to load: say so
        assert warnings == [
            f"Model **{damaged.name}** cannot be used ({reason}); using **{other.name}**."
        ]
    else:
        assert warnings == []
    assert f"Model **{other.name}** is ready." in " ".join(sidebar)

    # The working model answers, as the package does with it.
    clip = _speech_wav()
    at.file_uploader(key="uploads").set_value(("speech.wav", clip, "audio/wav")).run()
    assert not at.exception, at.exception
    assert not at.main.error
    expected = Recognizer.load(other.name, models).recognise(clip, name="speech.wav")
    assert [h.value for h in at.main.subheader if " — " in h.value] == [headline(expected)]
    captions = " ".join(c.value for c in at.main.caption)
    assert f"according to model **{other.name}**" in captions


# ---------------------------------------------------------------------------- training killed

# Runs ``python -m ser ARGS...`` after installing a hook that SIGKILLs this very process at
# the chosen point. It prints "KILLED-AT <point>" first, so the parent knows it got there.
DRIVER = textwrap.dedent(
    """
    import os, signal, sys, threading
    from pathlib import Path

    point, argv = sys.argv[1], sys.argv[2:]
    models = Path(argv[argv.index("--models-dir") + 1]).resolve()

    def die():
        sys.stderr.write(f"\\nKILLED-AT {point}\\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    if point.startswith("features:"):  # after N clips' features are computed and cached
        from ser import cache
        real, lock, done = cache._clip_features, threading.Lock(), [0]
        def counted(*args, **kwargs):
            result = real(*args, **kwargs)
            with lock:
                done[0] += 1
                if done[0] == int(point.split(":")[1]):
                    die()
            return result
        cache._clip_features = counted
    elif point == "save-mid-write":  # the temporary .keras half written
        import keras
        real_save = keras.Model.save
        def half_save(self, filepath, *args, **kwargs):
            real_save(self, filepath, *args, **kwargs)
            data = Path(filepath).read_bytes()
            Path(filepath).write_bytes(data[: len(data) // 2])
            die()
        keras.Model.save = half_save
    elif point in ("save-after-temp", "save-before-json"):
        from ser import store
        class Os:  # ser.store's view of os, with a deadly os.replace
            def __getattr__(self, name):
                return getattr(os, name)
            def replace(self, src, dst):
                dst = Path(dst)
                if dst.parent.resolve() == models:
                    if point == "save-after-temp" and dst.suffix == ".keras":
                        die()  # the temporary .keras is complete, not yet renamed
                    if point == "save-before-json" and dst.suffix == ".json":
                        die()  # the .keras renamed, its metadata written but not renamed
                return os.replace(src, dst)
        store.os = Os()
    else:
        raise SystemExit(f"unknown point {point}")

    from ser.cli import main
    sys.exit(main(argv))
    """
)


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by the runs below, in order: a killed extraction must not spoil it for later."""
    return tmp_path_factory.mktemp("killed-cache")


def _train_args(models: Path, corpus: Path, *, epochs: int) -> list[str]:
    return [
        "--models-dir",
        str(models),
        "train",
        "--data",
        str(corpus),
        "--name",
        "new",
        "--epochs",
        str(epochs),
    ]


def _env(cache: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SER_CACHE_DIR": str(cache),
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def _run_driver(point: str, args: list[str], cache: Path, tmp_path: Path) -> str:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    completed = subprocess.run(
        [sys.executable, str(driver), point, *args],
        cwd=ROOT,
        env=_env(cache),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert f"KILLED-AT {point}" in completed.stderr, completed.stderr[-3000:]
    assert completed.returncode == -signal.SIGKILL, completed.stderr[-3000:]
    return completed.stderr


def _kill_when(args: list[str], cache: Path, pattern: re.Pattern[bytes]) -> bytes:
    """Run ``python -m ser ARGS``; SIGKILL it from outside once its stderr matches."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ser", *args],
        cwd=ROOT,
        env=_env(cache),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    output, deadline = b"", time.monotonic() + 600
    try:
        while not pattern.search(output):
            assert time.monotonic() < deadline, output[-3000:]
            assert proc.poll() is None, f"ended before the kill: {output[-3000:]!r}"
            if select.select([proc.stderr], [], [], 1.0)[0]:
                output += os.read(proc.stderr.fileno(), 65536)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        proc.stderr.close()
    return output


@pytest.mark.slow
def test_killed_during_feature_extraction(
    models: Path, tiny_corpus: Path, feature_cache: Path, tmp_path: Path
) -> None:
    before = _visible_files(models)

    stderr = _run_driver(
        "features:40", _train_args(models, tiny_corpus, epochs=1), feature_cache, tmp_path
    )

    assert "training [" not in stderr  # it died in the features stage
    _assert_pre_existing_models_intact(models, before)
    assert _visible_files(models) == before
    # What the cache kept is whole: every entry loads (temporary files are never entries).
    entries = list(feature_cache.rglob("*.npy"))
    complete = [p for p in entries if ".tmp" not in p.name]
    assert 0 < len(complete) < 96
    for path in complete:
        assert np.load(path).ndim >= 1


@pytest.mark.slow
def test_killed_during_fitting(models: Path, tiny_corpus: Path, feature_cache: Path) -> None:
    before = _visible_files(models)

    # SIGKILL from outside once two of the 500 epochs are reported.
    output = _kill_when(
        _train_args(models, tiny_corpus, epochs=500),
        feature_cache,
        re.compile(rb"training \[[#.]+\] ([2-9]|\d\d+)/500 epochs"),
    )

    assert b"96 clips" in output  # the features were all there (some from the killed run)
    _assert_pre_existing_models_intact(models, before)
    assert _visible_files(models) == before


@pytest.mark.slow
@pytest.mark.parametrize("point", ["save-mid-write", "save-after-temp", "save-before-json"])
def test_killed_while_saving(
    point: str, models: Path, tiny_corpus: Path, feature_cache: Path, tmp_path: Path
) -> None:
    before = _visible_files(models)

    _run_driver(point, _train_args(models, tiny_corpus, epochs=1), feature_cache, tmp_path)

    _assert_pre_existing_models_intact(models, before)
    after = _visible_files(models)
    if point == "save-before-json":
        # The complete network, renamed, without its metadata: not a model, never listed.
        assert set(after) - set(before) == {"new.keras"}
        import keras

        keras.saving.load_model(models / "new.keras", safe_mode=True, compile=False)
    else:
        assert after == before
    hidden = sorted(p.name for p in models.iterdir() if p.name.startswith("."))
    assert all(name.startswith((".tmp-new-", ".new.json.")) for name in hidden), hidden
    store.list_models(models)  # the next listing sweeps the dead save's temporaries
    assert [p.name for p in models.iterdir() if p.name.startswith(".")] == []
    # The name is free again: the next save of "new" works and is listed.
    info = store.find_model("tiny-classic", models)
    saved = store.save_model(
        store.load_keras(info), {**info.metadata, "shipped": False}, name="new", models_dir=models
    )
    assert saved.ok
    assert [m.name for m in store.list_models(models)] == sorted([*PRE_EXISTING, "new"])


# ---------------------------------------------------------------------------- save errors


@pytest.fixture
def model_and_meta(models: Path) -> tuple[object, dict]:
    info = store.find_model("tiny-classic", models)
    return store.load_keras(info), {**info.metadata, "shipped": False}


def _oserror(code: int):  # noqa: ANN202
    def fail(*_args: object, **_kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize(
    ("code", "cause"),
    [(errno.ENOSPC, "No space left on device"), (errno.EACCES, "Permission denied")],
)
@pytest.mark.parametrize("stage", ["network", "metadata"])
def test_a_save_error_names_its_cause_and_leaves_nothing(
    code: int,
    cause: str,
    stage: str,
    models: Path,
    model_and_meta: tuple,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model, meta = model_and_meta
    before = _visible_files(models)
    if stage == "network":
        monkeypatch.setattr(model, "save", _oserror(code))
    else:  # the network is in place, then writing its metadata fails
        monkeypatch.setattr(store, "_atomic_write_text", _oserror(code))

    with pytest.raises(ModelError) as caught:
        store.save_model(model, meta, name="new", models_dir=models)

    assert str(caught.value) == f"Could not save model 'new' in {models}: {cause}"
    assert _visible_files(models) == before
    assert [p.name for p in models.iterdir() if p.name.startswith(".tmp-")] == []
    assert [m.name for m in store.list_models(models)] == PRE_EXISTING


def test_a_models_folder_under_a_file_is_refused_clearly(
    tmp_path: Path, model_and_meta: tuple
) -> None:
    model, meta = model_and_meta
    (tmp_path / "a-file").write_text("not a folder")
    folder = tmp_path / "a-file" / "models"

    with pytest.raises(ModelError) as caught:
        store.save_model(model, meta, name="new", models_dir=folder)

    assert str(caught.value) == f"Could not save model 'new' in {folder}: Not a directory"


@contextlib.contextmanager
def _small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (needs root and a system that allows it)."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="needs root")
def test_a_really_full_disk_is_reported_as_such(tmp_path: Path, model_and_meta: tuple) -> None:
    model, meta = model_and_meta
    with _small_filesystem(tmp_path / "small", "200k") as folder:  # the model needs ~1 MB
        with pytest.raises(ModelError) as caught:
            store.save_model(model, meta, name="new", models_dir=folder)

        assert (
            str(caught.value) == f"Could not save model 'new' in {folder}: No space left on device"
        )
        assert list(folder.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("point", ["save-after-temp", "save-before-json"])
def test_killed_while_overwriting_brings_the_old_model_back(
    point: str, models: Path, tiny_corpus: Path, feature_cache: Path, tmp_path: Path
) -> None:
    # A user's own model, which the run below overwrites (shipped models never are).
    info = store.find_model("tiny-classic", models)
    mine = {**info.metadata, "shipped": False}
    store.save_model(store.load_keras(info), mine, name="mine", models_dir=models)
    before = _visible_files(models)
    args = [
        "--models-dir",
        str(models),
        "train",
        "--data",
        str(tiny_corpus),
        "--name",
        "mine",
        "--epochs",
        "1",
        "--overwrite",
    ]

    _run_driver(point, args, feature_cache, tmp_path)

    # Listing finishes the interrupted overwrite by putting the old pair back, byte for byte.
    assert [m.name for m in store.list_models(models)] == ["mine", *PRE_EXISTING]
    assert _visible_files(models) == before
    restored = store.find_model("mine", models)
    assert restored.ok, restored.problem
    assert store.load_keras(restored).outputs[0].shape[-1] == len(restored.labels)
    assert not list(models.glob(".*.prev.*"))


def test_overwriting_leaves_no_backup_behind(models: Path) -> None:
    info = store.find_model("tiny-classic", models)
    model = store.load_keras(info)
    mine = {**info.metadata, "shipped": False}
    store.save_model(model, mine, name="mine", models_dir=models)
    store.save_model(
        model, {**mine, "command": "again"}, name="mine", models_dir=models, overwrite=True
    )
    assert store.find_model("mine", models).metadata["command"] == "again"
    assert not list(models.glob(".*.prev.*"))


def test_a_save_under_way_is_not_mistaken_for_a_crash(models: Path) -> None:
    info = store.find_model("tiny-classic", models)
    mine = {**info.metadata, "shipped": False}
    store.save_model(store.load_keras(info), mine, name="mine", models_dir=models)
    backup_keras, backup_json = store._backups(models, "mine")
    (models / "mine.json").rename(backup_json)  # as between two steps of an overwrite...
    (models / "mine.keras").rename(backup_keras)
    with store._save_lock(models):  # ...while its saver still holds the lock
        assert "mine" not in [m.name for m in store.list_models(models)]
        assert backup_json.exists()
    assert "mine" in [m.name for m in store.list_models(models)]  # now it was a crash
