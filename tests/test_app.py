"""The Streamlit app, run headless with ``streamlit.testing.v1.AppTest``.

The app sees a models folder made here ($SER_MODELS_DIR): two small untrained networks (one
shipped, the default; one not), one whose metadata has no model file, and one whose model
file is garbage with a matching checksum, so it only fails when it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from ser.audio import load_audio
from ser.card import ModelCard
from ser.errors import AudioError
from ser.predict import Recognizer
from ser.store import ModelInfo
from tests import interpreter, signals
from ui import models
from ui.markdown import md

pytestmark = pytest.mark.slow

APP = Path(__file__).resolve().parents[1] / "app.py"
HEADLINE = re.compile(r"^\S+ ([A-Z][a-z]+) — (\d{1,3})%$")  # e.g. "😄 Happy — 72%"
RATE_HZ = 22_050  # the feature settings' default, so the models below use it
LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


RANDOM = "random 20% split (speakers leak: overstates accuracy)"


def _metadata(name: str, *, accuracy: float, shipped: bool, protocol: str = "test fixture") -> dict:
    from ser.features import FeatureConfig

    return {
        "model_type": "mfcc_lstm",
        "title": "Classic LSTM on mean MFCC",
        "labels": list(LABELS),
        "features": FeatureConfig().to_dict(),
        "trained_on": {"corpora": {"ravdess": 96}, "clips": 96, "speakers": 4},
        "evaluation": {
            "protocol": protocol,
            "mean_accuracy": accuracy,
            "mean_uar": accuracy - 0.01,
            "folds": [{"accuracy": accuracy, "uar": accuracy - 0.01}] * 2,
            "labels": list(LABELS),
            "confusion": (np.eye(len(LABELS), dtype=int) * 10 + 1).tolist(),
        },
        "command": f"python -m ser train --data DATA --name {name}",
        "shipped": shipped,
    }


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from ser.models import ModelType, build_model
    from ser.store import save_model

    folder = tmp_path_factory.mktemp("models")
    features = np.random.default_rng(0).normal(size=(32, 40)).astype(np.float32)
    for name, accuracy, shipped, protocol in (
        ("a-small", 0.40, False, RANDOM),
        ("b-shipped", 0.61, True, "RAVDESS 6-fold by actor"),
    ):
        model = build_model(ModelType.MFCC_LSTM, n_labels=len(LABELS), train_features=features)
        meta = _metadata(name, accuracy=accuracy, shipped=shipped, protocol=protocol)
        save_model(model, meta, name=name, models_dir=folder)
    # Listed as broken: metadata without its model file.
    (folder / "no-file.json").write_text(
        json.dumps(_metadata("no-file", accuracy=0.9, shipped=False))
    )
    # Listed as usable (the checksum matches) but fails when loaded.
    garbage = b"this is not a keras archive"
    (folder / "c-damaged.keras").write_bytes(garbage)
    meta = {
        **_metadata("c-damaged", accuracy=0.3, shipped=False),
        "sha256": hashlib.sha256(garbage).hexdigest(),
    }
    (folder / "c-damaged.json").write_text(json.dumps(meta))
    previous = os.environ.get("SER_MODELS_DIR")
    os.environ["SER_MODELS_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("SER_MODELS_DIR", None)
    else:
        os.environ["SER_MODELS_DIR"] = previous


@pytest.fixture
def app(models_dir: Path) -> AppTest:
    models.forget_load_failures()  # a model that failed to load in one test is retried in the next
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def speech_wav(seconds: float = 3.0, *, seed: int = 0) -> bytes:
    samples = signals.speech_like(duration_s=seconds, sample_rate_hz=16_000, seed=seed)
    return signals.audio_bytes(samples, sample_rate_hz=16_000, subtype="PCM_16")


def package_message(data: bytes, name: str) -> str:
    """What ``ser`` says about a bad clip: the app must show exactly this."""
    with pytest.raises(AudioError) as caught:
        load_audio(data, sample_rate_hz=RATE_HZ, name=name)
    return str(caught.value)


def headlines(at: AppTest) -> list[str]:
    return [h.value for h in at.subheader if HEADLINE.match(h.value)]


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.main.caption]


def plotly_charts(at: AppTest) -> list:
    """The charts of the page itself (the sidebar has the model's recall chart)."""
    return list(at.main.get("plotly_chart"))


# ---------------------------------------------------------------------------- the page


def test_app_renders_with_the_default_model_preselected(app: AppTest) -> None:
    assert app.title[0].value == "What emotion is in this voice?"
    picker = app.sidebar.selectbox(key="model")
    # Usable models only, by name (which the sidebar holds whole); the default chosen. The
    # figures, with the protocol that produced them, are in the caption under it.
    assert picker.value == "b-shipped"
    assert picker.options == ["a-small", "b-shipped", "c-damaged"]
    sidebar = " ".join(c.value for c in app.sidebar.caption)
    assert "**no-file** is broken and cannot be used: model file missing" in sidebar
    assert "61.0% accuracy, 60.0% UAR on speakers it never heard (k-fold by speaker)" in sidebar
    assert "RAVDESS" in sidebar
    assert "Model **b-shipped** is ready." in sidebar
    assert not app.error
    assert len(app.tabs) >= 3


def test_uploading_a_clip_shows_the_emotion_and_charts(app: AppTest) -> None:
    app.file_uploader(key="uploads").set_value(("speech.wav", speech_wav(), "audio/wav")).run()
    assert not app.exception, app.exception
    assert not app.error
    [headline] = headlines(app)
    emotion, percent = HEADLINE.match(headline).groups()
    assert emotion.lower() in LABELS
    assert 0 < int(percent) <= 100
    assert (
        "Most likely emotion in **speech.wav** (3.0 s), according to model **b-shipped**."
        in captions(app)
    )
    figures = [chart.proto.spec for chart in plotly_charts(app)]
    assert len(figures) == 2  # probabilities, and the open tab's waveform
    [recall] = [chart.proto.spec for chart in app.sidebar.get("plotly_chart")]
    assert "Recognised (k-fold by speaker)" in recall
    assert all(label in figures[0] for label in LABELS)
    assert "Waveform" in figures[1]
    assert '"time (s)"' in figures[1]
    assert len(app.get("audio")) == 1  # playback of what was received
    # Only the open tab is drawn; opening another draws that one.
    app.session_state["upload-views"] = "Spectrogram"
    app.run()
    figures = [chart.proto.spec for chart in plotly_charts(app)]
    assert len(figures) == 2
    assert "Spectrogram" in figures[1]
    assert '"frequency (Hz)"' in figures[1]


def test_a_long_clip_also_shows_the_emotion_over_time(app: AppTest) -> None:
    app.file_uploader(key="uploads").set_value(("long.wav", speech_wav(8.0), "audio/wav")).run()
    assert not app.exception
    assert len(headlines(app)) == 1
    specs = [chart.proto.spec for chart in plotly_charts(app)]
    assert len(specs) == 2
    assert "Emotion over time" in specs[1]  # the first tab for a long clip
    assert any("judged in 3 s windows" in c for c in captions(app))


def test_switching_model_changes_the_results_model(app: AppTest) -> None:
    app.file_uploader(key="uploads").set_value(("speech.wav", speech_wav(), "audio/wav")).run()
    assert any("model **b-shipped**" in c for c in captions(app))
    app.sidebar.selectbox(key="model").set_value("a-small").run()
    assert not app.exception
    assert any("model **a-small**" in c for c in captions(app))
    assert not any("model **b-shipped**" in c for c in captions(app))
    assert len(headlines(app)) == 1


def test_a_model_that_fails_to_load_falls_back_to_the_default(app: AppTest) -> None:
    app.file_uploader(key="uploads").set_value(("speech.wav", speech_wav(), "audio/wav")).run()
    app.sidebar.selectbox(key="model").set_value("c-damaged").run()
    assert not app.exception, app.exception
    picker = app.sidebar.selectbox(key="model")
    assert picker.value == "b-shipped"
    assert "c-damaged (30% acc., RAVDESS)" not in picker.options
    [warning] = [w.value for w in app.sidebar.warning]
    assert "**c-damaged** cannot be used" in warning
    assert "using **b-shipped**" in warning
    sidebar = " ".join(c.value for c in app.sidebar.caption)
    assert (
        "**c-damaged** is broken and cannot be used: Model 'c-damaged' could not be loaded"
        in sidebar
    )
    assert any("model **b-shipped**" in c for c in captions(app))


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("notes.wav", b"this is a text file, not audio\n" * 20),
        ("empty.wav", b""),
        (
            "silent.wav",
            signals.audio_bytes(
                signals.silence(duration_s=2, sample_rate_hz=16_000), sample_rate_hz=16_000
            ),
        ),
        ("short.wav", speech_wav(0.2)),
        ("cut.wav", speech_wav()[:30]),
    ],
)
def test_a_bad_file_shows_the_packages_message_and_the_app_goes_on(
    app: AppTest, name: str, data: bytes
) -> None:
    app.file_uploader(key="uploads").set_value((name, data, "audio/wav")).run()
    assert not app.exception, app.exception
    assert [e.value for e in app.error] == [package_message(data, name)]
    assert not headlines(app)
    # The next clip works.
    app.file_uploader(key="uploads").set_value(("speech.wav", speech_wav(), "audio/wav")).run()
    assert not app.exception
    assert not app.error
    assert len(headlines(app)) == 1


def test_a_file_name_cannot_inject_markdown(app: AppTest) -> None:
    name = "[prize](https://example.com) $x$.wav"
    app.file_uploader(key="uploads").set_value((name, speech_wav(), "audio/wav")).run()
    assert not app.exception, app.exception
    assert any(r"**\[prize\](https://example.com) \$x\$.wav**" in c for c in captions(app))
    app.file_uploader(key="uploads").set_value((name, b"not audio" * 10, "audio/wav")).run()
    [error] = [e.value for e in app.error]
    assert error == md(package_message(b"not audio" * 10, name))
    assert r"'\[prize\](https://example.com) \$x\$.wav'" in error


def test_many_files_give_a_table_with_an_error_row(app: AppTest) -> None:
    bad = b"not audio at all" * 10
    app.file_uploader(key="uploads").set_value(
        [
            ("one.wav", speech_wav(seed=1), "audio/wav"),
            ("bad.wav", bad, "audio/wav"),
            ("two.wav", speech_wav(2.5, seed=2), "audio/wav"),
        ]
    ).run()
    assert not app.exception, app.exception
    table = app.dataframe[0].value
    assert list(table["file"]) == ["one.wav", "bad.wav", "two.wav"]
    assert list(table.columns[:4]) == ["file", "model", "emotion", "confidence"]
    assert set(table["model"]) == {"b-shipped"}
    assert set(LABELS) <= set(table.columns)
    assert "error" in table.columns
    assert list(table["error"]) == ["", package_message(bad, "bad.wav"), ""]
    good = table.iloc[[0, 2]]
    assert set(good["emotion"]) <= set(LABELS)
    np.testing.assert_allclose(good[list(LABELS)].sum(axis=1), 1.0, atol=1e-3)
    assert np.allclose(good["confidence"], good[list(LABELS)].max(axis=1))
    assert table.iloc[1][["emotion", "confidence"]].isna().all()
    assert app.dataframe[0].proto.placeholder == "–"  # drawn as a dash, not "None"
    assert any("1 could not be used" in m.value for m in app.markdown)
    assert len(app.get("download_button")) == 1
    # Details of each good file, one at a time.
    detail = app.selectbox(key="upload-detail")
    assert detail.options[0].startswith("one.wav: ")
    assert detail.options[1].startswith("two.wav: ")
    assert len(detail.options) == 2
    assert any("Most likely emotion in **one.wav**" in c for c in captions(app))
    detail.set_value(2).run()
    assert any("Most likely emotion in **two.wav**" in c for c in captions(app))


def test_a_recording_is_recognised(app: AppTest) -> None:
    app.audio_input(key="recording").set_value(("rec.wav", speech_wav(2.0), "audio/wav")).run()
    assert not app.exception, app.exception
    assert len(headlines(app)) == 1
    assert any("Most likely emotion in **recording.wav**" in c for c in captions(app))


def test_the_example_says_what_is_true_of_it(app: AppTest) -> None:
    note = " ".join(m.value for m in app.main.markdown if "synthetic voice" in m.value)
    assert "hesitant" not in note  # the models answer it with any confidence
    assert "not spoken with any emotion" in note and "no answer is the right one" in note
    assert "recorded at 16 kHz" in note
    assert (
        load_audio(
            APP.parent / "assets" / "example-speech.wav", sample_rate_hz=RATE_HZ
        ).source_sample_rate_hz
        == 16_000
    )


def test_a_random_split_figure_is_never_said_to_be_on_unseen_speakers(app: AppTest) -> None:
    app.selectbox(key="model").set_value("a-small").run()
    [caption] = [c.value for c in app.sidebar.caption if "accuracy" in c.value]
    assert "random split" in caption and "never heard" not in caption
    [recall] = [chart.proto.spec for chart in app.sidebar.get("plotly_chart")]
    assert "Recognised (random split)" in recall
    app.switch_page("pages/models.py").run()
    table = app.dataframe[0].value.set_index("model")
    assert table.loc["a-small", "protocol"].startswith("random split: ")
    assert table.loc["b-shipped", "protocol"].startswith("k-fold by speaker: ")
    details = [
        m.value for m in app.main.markdown if "a-small" in m.value or "40.0% accuracy" in m.value
    ]
    assert details and all("never heard" not in d for d in details)
    specs = [chart.proto.spec for chart in plotly_charts(app)]
    assert any("Confusion matrix (random split)" in spec for spec in specs)
    assert any("Confusion matrix (k-fold by speaker)" in spec for spec in specs)


def test_the_example_clip_is_one_click_away(app: AppTest) -> None:
    assert (APP.parent / "assets" / "example-speech.wav").stat().st_size < 100_000
    app.button(key="example").click().run()
    assert not app.exception, app.exception
    assert len(headlines(app)) == 1
    assert any("Most likely emotion in **example-speech.wav**" in c for c in captions(app))
    app.run()  # the result stays on later reruns
    assert len(headlines(app)) == 1


# ---------------------------------------------------------------------------- models page


def test_a_model_is_described_by_its_type_not_a_stale_saved_title() -> None:
    def title(**fields: str) -> str:
        card = ModelCard.from_dict({"labels": ["a", "b"], "features": {}, **fields}, validate=False)
        return card.kind_title

    saved = {"model_type": "logmel_cnn", "title": "2-D CNN on log-mel spectrogram (strongest)"}
    assert title(**saved) == "2-D CNN on log-mel spectrogram"  # another may be stronger now
    assert title(model_type="from_the_future", title="New kind") == "New kind"
    assert title() == "Model"


def test_models_page_lists_models_figures_and_licences(app: AppTest) -> None:
    app.switch_page("pages/models.py").run()
    assert not app.exception, app.exception
    table = app.dataframe[0].value
    assert list(table["model"]) == ["a-small", "b-shipped", "c-damaged", "no-file"]
    status = dict(zip(table["model"], table["status"], strict=True))
    assert status["b-shipped"] == "default"
    assert status["no-file"].startswith("broken")
    assert table.set_index("model").loc["b-shipped", "accuracy"] == pytest.approx(0.61)
    text = " ".join(m.value for m in app.markdown)
    for needed in (
        "CC BY-NC-SA 4.0",
        "CC BY-NC-ND 4.0",
        "Livingstone",
        "Dupuis",
        "Non-commercial use only",
    ):
        assert needed in text
    assert "python -m ser train --data DATA --name b-shipped" in [c.value for c in app.code]
    specs = [chart.proto.spec for chart in plotly_charts(app)]
    assert any("Confusion matrix" in spec for spec in specs)


def test_the_sidebar_chart_is_drawn_after_the_uploader(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart's code is the page's heaviest load: on a first visit the chart comes after
    the uploader, and the model's background load starts only then: started before the page,
    it slowed the page."""
    from ui import clips

    events: list[str] = []
    real_recall, real_uploads = models._show_recall, clips.from_uploads
    real_load = models.load_recognizer
    monkeypatch.setattr(
        models, "_show_recall", lambda info: (events.append("chart"), real_recall(info))[1]
    )
    monkeypatch.setattr(
        clips, "from_uploads", lambda u: (events.append("uploader"), real_uploads(u))[1]
    )

    def load_in_page(info: ModelInfo) -> Recognizer:
        if threading.current_thread().name != "ser-model-warmup":  # the page's own wait
            events.append("model")
        return real_load(info)

    monkeypatch.setattr(models, "load_recognizer", load_in_page)
    real_warmup = models.start_warmup
    monkeypatch.setattr(models, "start_warmup", lambda: (events.append("warm-up"), real_warmup()))
    models.forget_load_failures()
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert events.count("chart") == 1
    order = [events.index(e) for e in ("uploader", "warm-up", "chart", "model")]
    assert order == sorted(order), events
    assert len(at.sidebar.get("plotly_chart")) == 1
    # Later runs draw it in its place, so it does not vanish while a clip is answered.
    events.clear()
    at.run()
    assert not at.exception, at.exception
    assert [e for e in events if e not in ("model", "warm-up")] == ["chart", "uploader"]
    assert len(at.sidebar.get("plotly_chart")) == 1


def test_a_first_run_cut_short_leaves_the_chart_to_the_next_run_in_its_place(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload made the moment the page shows stops the first run before its end: the next
    run, the one that answers, draws the chart first in the sidebar, so the browser loads the
    chart code while the server listens."""
    from ui import clips

    events: list[str] = []
    real_recall, real_uploads = models._show_recall, clips.from_uploads
    real_finish = models.ModelChoice.finish_loading
    monkeypatch.setattr(
        models, "_show_recall", lambda info: (events.append("chart"), real_recall(info))[1]
    )
    monkeypatch.setattr(
        clips, "from_uploads", lambda u: (events.append("uploader"), real_uploads(u))[1]
    )
    monkeypatch.setattr(models.ModelChoice, "finish_loading", lambda self: None)  # cut short
    models.forget_load_failures()
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert events == ["uploader"]
    assert not at.sidebar.get("plotly_chart")
    monkeypatch.setattr(models.ModelChoice, "finish_loading", real_finish)
    at.run()
    assert not at.exception, at.exception
    assert events == ["uploader", "chart", "uploader"]
    assert len(at.sidebar.get("plotly_chart")) == 1


def test_the_recognise_page_sends_its_uploader_before_pandas_or_opensmile_load() -> None:
    """What the Recognise page imports before its uploader is on its way to the browser: pandas
    and openSMILE took about half a second of a fresh server's first page (docs/benchmarks.md;
    Streamlit itself imports Plotly). A fresh interpreter, since this one has them all."""
    code = (
        "import sys\n"
        "import streamlit\n"
        "import live_ui\n"  # the page's own imports, as pages/recognise.py has them
        "from ui import clips, models, results, routing, texts\n"
        "late = [m for m in ('pandas', 'opensmile', 'tensorflow') if m in sys.modules]\n"
        "print(late)\n"
    )
    run = interpreter.run_python(code)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]"
