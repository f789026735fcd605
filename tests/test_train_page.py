"""The Train page, run headless with ``streamlit.testing.v1.AppTest``.

Training runs in a background thread (``ser.jobs.TrainingJob``); the page polls it with a
fragment. AppTest does not fire ``run_every`` timers, so the tests call ``at.run()`` until the
run has ended. Every test points ``SER_MODELS_DIR`` and ``SER_CACHE_DIR`` at temporary folders,
so nothing is written into the repository.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ser import jobs, store, train
from ser.features import FeatureConfig
from ser.models import ModelType
from ser.train import Validation
from ui.training import job_board
from ui.training_run import epochs_text

pytestmark = pytest.mark.slow

APP = Path(__file__).resolve().parents[1] / "app.py"
TRAIN_PAGE = "pages/train.py"
RUN_TIMEOUT_S = 60


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("SER_MODELS_DIR", str(folder))
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "feature-cache"))
    monkeypatch.delenv("SER_DATA_DIR", raising=False)
    monkeypatch.delenv("SER_DISABLE_TRAINING", raising=False)
    monkeypatch.setenv("SER_ENABLE_TRAINING", "1")  # off unless turned on
    return folder


@pytest.fixture(autouse=True)
def no_run_left_behind() -> Iterator[None]:
    """A test that fails midway must not leave a run holding the one-run-at-a-time lock."""
    yield
    active = job_board().active()
    if active is not None:
        active.stop()
        active.join(60)
    assert job_board().active() is None


def train_page() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S).run()
    at.switch_page(TRAIN_PAGE).run()
    assert not at.exception, at.exception
    return at


def scan(at: AppTest, *folders: Path | str) -> AppTest:
    at.text_area(key="train_folders").input("\n".join(str(f) for f in folders)).run()
    at.button(key="train_scan_button").click().run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:  # noqa: ANN001 - an AppTest ElementList
    return "\n".join(str(e.value) for e in elements)


def progress_texts(at: AppTest) -> str:
    return "\n".join(p.proto.text for p in at.get("progress"))


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def chart_titled(at: AppTest, title: str) -> dict:
    for spec in chart_specs(at):
        if spec["layout"].get("title", {}).get("text") == title:
            return spec
    raise AssertionError(f"no chart titled {title!r}")


def poll(at: AppTest, done: Callable[[AppTest], bool], *, timeout_s: float, what: str) -> AppTest:
    """Rerun the page (as the fragment's timer would) until ``done`` or the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        at.run()
        assert not at.exception, at.exception
        if done(at):
            return at
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out waiting for {what}; progress: {progress_texts(at)!r}; "
                f"errors: {texts(at.error)!r}; warnings: {texts(at.warning)!r}"
            )
        time.sleep(1.0)


def start_training(at: AppTest, *, epochs: int) -> AppTest:
    at.number_input(key="train_epochs_mfcc_lstm").set_value(epochs).run()
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    return at


def finished(at: AppTest) -> bool:
    return bool(at.metric) or bool(at.error) or any("stopped" in w.value for w in at.warning)


def dataset_help(at: AppTest):  # noqa: ANN201 - an AppTest Expander
    return next(e for e in at.expander if e.label == "Where to get a dataset")


def fake_model_json(folder: Path, name: str, *, shipped: bool) -> Path:
    """Metadata alone is enough for the name checks (the store reads it to decide)."""
    path = folder / f"{name}.json"
    meta = {"labels": ["angry", "sad"], "features": FeatureConfig().to_dict(), "shipped": shipped}
    path.write_text(json.dumps(meta))
    return path


# ---------------------------------------------------------------------------- the whole flow


def test_scan_train_save_and_pick_on_recognise_page(tiny_corpus: Path, models_dir: Path) -> None:
    at = scan(train_page(), tiny_corpus)

    # The scan, before any training: layout, counts per emotion and per speaker.
    assert "96 usable clips" in texts(at.success)
    assert "RAVDESS (96 clips)" in texts(at.success)
    emotions = chart_titled(at, "Clips per emotion")["data"][0]
    assert dict(zip(emotions["x"], emotions["y"], strict=True)) == {
        "neutral": 24,
        "happy": 24,
        "sad": 24,
        "angry": 24,
    }
    speakers = chart_titled(at, "Clips per speaker")["data"][0]
    assert speakers["x"] == [f"{a:02d}" for a in range(1, 9)] and set(speakers["y"]) == {12}
    assert chart_titled(at, "Clips per speaker")["layout"]["xaxis"]["title"]["text"] == (
        "RAVDESS speaker"
    )
    assert "No file was skipped" in texts(at.caption)
    assert not dataset_help(at).proto.expanded  # local data: the dataset sources stay folded
    assert not at.warning  # speaker-independent hold-out is the default: no warning
    assert at.radio(key="train_validation").value is Validation.SPEAKER
    assert "in the cache" not in texts(at.caption)  # a fresh cache: features to compute
    assert not list(models_dir.iterdir())

    at = start_training(at, epochs=20)
    at = poll(at, finished, timeout_s=90, what="training to finish")
    assert not at.error, texts(at.error)

    # Results: accuracy and UAR, the protocol, confusion matrix, per-emotion table, curves.
    metrics = {m.label: m.value for m in at.metric}
    accuracy = float(metrics["Held-out accuracy"].rstrip("%")) / 100
    assert accuracy > 0.5, metrics  # chance is 25%: the tiny corpus is easy to learn
    assert "UAR" in metrics
    assert "held-out speakers: ravdess:01, ravdess:06" in texts(at.caption)
    # One run, two held-out figures: each named, the headline's the same on both.
    [note] = [c.value for c in at.caption if "The curves' held-out line" in c.value]
    assert (
        f"Held-out accuracy {metrics['Held-out accuracy']} is the saved model on each whole" in note
    )
    assert "centre crop, epoch by epoch (last epoch " in note
    confusion = chart_titled(at, "Confusion matrix (speaker hold-out)")["data"][0]
    assert confusion["x"] == ["neutral", "happy", "sad", "angry"]
    table = at.dataframe[0].value
    assert list(table.columns) == ["emotion", "clips", "precision", "recall"]
    assert table["clips"].sum() == 24
    assert chart_titled(at, "Training curves")["data"]
    assert "cached for next time" in texts(at.caption)  # the first run computed features
    assert "are in the cache: extraction is skipped" in texts(at.caption)  # the next won't

    # Name checks, inline: invalid, a shipped model's name, an existing user model's name.
    name_box = next(t for t in at.text_input if t.label == "Model name")
    name_box.input("bad name!").run()
    assert "is not a valid model name" in texts(at.error)
    assert at.button(key="train_save").disabled
    shipped = fake_model_json(models_dir, "shipped-one", shipped=True)
    next(t for t in at.text_input if t.label == "Model name").input("shipped-one").run()
    assert "is a shipped model and is never overwritten" in texts(at.error)
    assert at.button(key="train_save").disabled
    mine = fake_model_json(models_dir, "mine", shipped=False)
    next(t for t in at.text_input if t.label == "Model name").input("mine").run()
    assert "already exists" in texts(at.warning)
    assert at.button(key="train_save").disabled
    next(c for c in at.checkbox if c.label == "Overwrite mine").check().run()
    assert not at.button(key="train_save").disabled
    shipped.unlink()
    mine.unlink()

    # Save: the pair appears in the models folder, in the store's list and on Recognise.
    next(t for t in at.text_input if t.label == "Model name").input("tiny-page").run()
    at.button(key="train_save").click().run()
    assert not at.exception, at.exception
    assert "Saved as **tiny-page** — choose it on the Recognise page" in texts(at.success)
    assert sorted(p.name for p in models_dir.iterdir()) == ["tiny-page.json", "tiny-page.keras"]
    [info] = store.list_models(models_dir)
    assert info.ok and info.name == "tiny-page"
    assert info.accuracy == pytest.approx(accuracy, abs=0.0005)
    assert info.metadata["command"].startswith(
        f"python -m ser train --data {tiny_corpus.resolve()} --model-type mfcc_lstm --epochs 20"
    )
    assert "--emotions" not in info.metadata["command"]  # all emotions, as by default
    assert info.metadata["training"]["validation"] == "speaker"
    assert info.metadata["training"]["emotions"] is None
    assert info.metadata["training"]["recipe"] == {  # the recipe's settings, as they were
        "learning_rate": 0.001,
        "class_weights": True,
        "crop_s": None,
        "spec_augment": False,
        "statistics_heads": 0,
        "head_cepstra": 0,
        "head_smoothing_frames": 0,
        "head_shape_moments": False,
        "head_smooth_change": False,
        "balance_corpora": True,
        "network": True,
        "head_linear": False,
        "linear_weight": 0.0,
        "linear_relative_extremes": False,
        "head_corpus_adversary": 0.0,
        "head_mixup": 0.0,
        "exact_linear_c": None,
    }

    at.switch_page("pages/recognise.py").run()
    assert not at.exception, at.exception
    assert "tiny-page" in at.selectbox(key="model").options  # the picker shows names


def test_the_fused_model_trains_saves_and_recognises_from_the_pages(
    tiny_corpus: Path, models_dir: Path
) -> None:
    """The two-stage type: the CNN, then its statistics head, then one saved file that answers."""
    at = scan(train_page(), tiny_corpus)
    at.radio(key="train_model_type").set_value(ModelType.LOGMEL_FUSION).run()
    at.number_input(key="train_epochs_logmel_fusion").set_value(3).run()
    at.button(key="train_start").click().run()
    at = poll(at, finished, timeout_s=120, what="the fused model to finish")
    assert not at.error, texts(at.error)
    assert "Held-out accuracy" in {m.label for m in at.metric}

    next(t for t in at.text_input if t.label == "Model name").input("tiny-fused").run()
    at.button(key="train_save").click().run()
    assert "Saved as **tiny-fused**" in texts(at.success)
    [info] = store.list_models(models_dir)
    assert info.ok and info.metadata["model_type"] == "logmel_fusion"
    assert info.metadata["features"]["level_dbfs"] == -20.0

    at.switch_page("pages/recognise.py").run()
    picker = at.selectbox(key="model")
    picker.select(next(o for o in picker.options if o.startswith("tiny-fused"))).run()
    at.button(key="example").click().run()
    assert not at.exception, at.exception
    assert any("Most likely emotion in **example-speech.wav**" in c.value for c in at.main.caption)


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("fold 2/6", "Epoch 5 / 80"),
        ("fold 2/6 · statistics head", "Statistics head: epoch 5 / 80"),
        ("fold 2/6 · statistics head 3/3", "Statistics head 3/3: epoch 5 / 80"),
        ("fold 2/6 · statistics head (linear)", "Statistics head (linear): epoch 5 / 80"),
    ],
)
def test_progress_says_which_network_is_training(stage: str, expected: str) -> None:
    progress = train.Progress(stage, 5, 80, 10.0, {"loss": 0.5})
    assert epochs_text(progress).startswith(expected)
    assert train.is_head_stage(stage) == ("head" in expected)


# ---------------------------------------------------------------------------- bad data


def _unreadable_only(root: Path) -> Path:
    folder = root / "Actor_01"
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"03-01-0{i + 1}-01-01-01-01.wav").write_bytes(b"not audio at all" * 20)
    return root


def _one_emotion(root: Path, corpus: Path) -> Path:
    for clip in corpus.glob("Actor_*/03-01-01-*.wav"):  # neutral only
        target = root / clip.parent.name / clip.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, target)
    return root


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("empty", "No usable clips in {path}: it holds no files."),
        ("missing", "Dataset folder not found: {path}"),
        ("a file", "Not a folder: {path}"),
        ("unreadable", "No usable clips in {path}: none of its 3 files is usable (3 x unreadable"),
    ],
    ids=["empty", "missing", "a-file", "unreadable-only"],
)
def test_a_bad_folder_gets_a_clear_message_and_nothing_is_written(
    case: str, expected: str, tmp_path: Path, models_dir: Path
) -> None:
    path = tmp_path / "data"
    if case == "empty":
        path.mkdir()
    elif case == "a file":
        path.write_text("hello")
    elif case == "unreadable":
        _unreadable_only(path)
    at = scan(train_page(), path)
    assert expected.format(path=path.resolve()) in texts(at.error)
    assert "RAVDESS: Actor_01/03-01-05-01-01-01-01.wav" in texts(at.markdown)  # the layouts
    assert not at.get("plotly_chart")  # no counts, no options, no Train button
    assert not [b for b in at.button if b.key == "train_start"]
    if case == "missing":  # no local data at all: how to get a dataset, shown open
        assert "https://zenodo.org/records/1188976" in texts(at.markdown)
        assert dataset_help(at).proto.expanded
    assert not list(models_dir.iterdir())


def test_one_emotion_only_cannot_train(tmp_path: Path, tiny_corpus: Path, models_dir: Path) -> None:
    at = scan(train_page(), _one_emotion(tmp_path / "neutral", tiny_corpus))
    assert "24 usable clips" in texts(at.success)
    assert "Training needs at least two emotions" in texts(at.error)
    assert at.button(key="train_start").disabled
    assert not list(models_dir.iterdir())


# ---------------------------------------------------------------------------- options


def test_random_split_is_offered_only_with_a_warning(tiny_corpus: Path, models_dir: Path) -> None:
    at = scan(train_page(), tiny_corpus)
    assert "overstates accuracy" not in texts(at.warning)
    at.radio(key="train_validation").set_value(Validation.RANDOM).run()
    assert "**overstates accuracy**, typically by 10-25 points" in texts(at.warning)
    assert "--validation random" in at.code[0].value


def test_merging_and_choosing_emotions_shape_the_run(tiny_corpus: Path, models_dir: Path) -> None:
    at = scan(train_page(), tiny_corpus)
    merge = next(m for m in at.multiselect if m.label == "Merge emotions")
    merge.select(("sad", "neutral")).run()
    learn = next(m for m in at.multiselect if m.label == "Emotions to learn")
    assert learn.options == ["neutral", "happy", "angry"]  # sad is learnt as neutral
    learn.unselect("happy").run()
    command = at.code[0].value
    assert "--emotions neutral,angry --merge sad=neutral" in command
    assert not at.error


def test_the_switch_turns_training_off(monkeypatch: pytest.MonkeyPatch, models_dir: Path) -> None:
    monkeypatch.setenv("SER_DISABLE_TRAINING", "1")
    at = train_page()
    assert "Training is turned off on this deployment" in texts(at.info)
    assert not at.text_area and not at.button


def test_the_switch_as_a_streamlit_secret(models_dir: Path) -> None:
    at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S)
    at.secrets["SER_DISABLE_TRAINING"] = "true"
    at.run()
    at.switch_page(TRAIN_PAGE).run()
    assert "Training is turned off on this deployment" in texts(at.info)
    assert not at.text_area


# ---------------------------------------------------------------------------- stop, one at a time


def test_stop_ends_the_run_cleanly_and_one_run_at_a_time(
    tiny_corpus: Path, models_dir: Path
) -> None:
    at = start_training(scan(train_page(), tiny_corpus), epochs=2000)
    poll(at, lambda a: "Epoch " in progress_texts(a), timeout_s=60, what="the first epoch")
    assert "Epoch " in progress_texts(at) and "/ 2000" in progress_texts(at)
    assert at.text_area(key="train_folders").disabled  # options are locked while it runs

    # Another session sees the run and cannot start a second one.
    other = scan(train_page(), tiny_corpus)
    assert "Training in progress (started by another session)" in texts(other.info)
    assert "Epoch " in progress_texts(other)
    assert other.button(key="train_start").disabled

    at.button(key="train_stop").click().run()
    at = poll(at, finished, timeout_s=60, what="the run to stop")
    stopped = texts(at.warning)
    assert "Training stopped after" in stopped and "nothing was saved" in stopped, stopped
    assert not at.metric  # no results for a stopped run
    assert not list(models_dir.iterdir())
    other.run()
    assert "started by another session" not in texts(other.info)
    assert not other.button(key="train_start").disabled


def test_a_failure_in_the_run_is_reported_not_raised(
    tiny_corpus: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise MemoryError("out of memory")

    monkeypatch.setattr(jobs.train, "train_holdout", broken)
    at = start_training(scan(train_page(), tiny_corpus), epochs=5)
    at = poll(at, finished, timeout_s=60, what="the run to fail")
    message = texts(at.error)
    assert "Training failed unexpectedly (MemoryError: out of memory)" in message
    assert "No model was saved; existing models are untouched" in message
    assert not list(models_dir.iterdir())


def test_leaving_the_page_mid_run_keeps_the_form_and_the_run(
    tiny_corpus: Path, models_dir: Path
) -> None:
    at = scan(train_page(), tiny_corpus)
    at = start_training(at, epochs=400)  # long enough to still run after two page visits

    at.switch_page("pages/models.py").run()
    at.switch_page(TRAIN_PAGE).run()
    assert not at.exception, at.exception
    assert "The folders changed" not in texts(at.info)
    assert at.text_area(key="train_folders").value == str(tiny_corpus)
    assert at.number_input(key="train_epochs_mfcc_lstm").value == 400
    assert at.button(key="train_start").disabled  # the form is there, locked while it runs
    at.button(key="train_stop").click().run()
    at = poll(
        at, lambda a: "nothing was saved" in texts(a.warning), timeout_s=60, what="the run to stop"
    )


def test_a_closed_tab_finds_the_run_again_and_can_save_it(
    tiny_corpus: Path, models_dir: Path
) -> None:
    first = start_training(scan(train_page(), tiny_corpus), epochs=10)
    run_id = first.query_params["run"]
    run_id = run_id[0] if isinstance(run_id, list) else run_id
    del first  # the tab is closed: its session is gone, the run goes on on the server

    at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S)
    at.query_params["run"] = run_id
    at.run()
    at.switch_page(TRAIN_PAGE).run()
    at = poll(at, finished, timeout_s=90, what="training to finish")
    assert not at.error, texts(at.error)
    assert at.text_area(key="train_folders").value == str(tiny_corpus.resolve())
    assert "Held-out accuracy" in {m.label for m in at.metric}
    next(t for t in at.text_input if t.label == "Model name").input("found-again").run()
    at.button(key="train_save").click().run()
    assert "Saved as **found-again**" in texts(at.success)
    assert (models_dir / "found-again.keras").is_file()
