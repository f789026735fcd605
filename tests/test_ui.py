"""The app's ui/ modules, piece by piece, without running a page: what they compute is what the
pages show. The pages themselves run in tests/test_app.py and tests/test_train_page.py."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import live_ui
from ser import store
from ser.datasets import scan
from ser.jobs import Snapshot, State
from ser.models import ModelType
from ser.predict import Prediction
from ser.train import Augmentation, HoldoutResult, Progress, Scores, Validation
from ui import (
    describe,
    keras_guard,
    model_cards,
    models,
    texts,
    training,
    training_data,
    training_options,
    training_results,
    training_run,
)
from ui import results as shown
from ui.clips import Clip, Outcome
from ui.markdown import md

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shipped() -> list[store.ModelInfo]:
    infos = [m for m in store.list_models(ROOT / "models") if m.ok]
    if not infos:
        pytest.skip("no shipped model in models/")
    return infos


@pytest.fixture(scope="module")
def report(tiny_corpus: Path):  # noqa: ANN201 - a ScanReport
    return scan([tiny_corpus])


# ---------------------------------------------------------------------------- words


def test_visitors_text_cannot_make_links_html_or_latex() -> None:
    assert md("[prize](https://x.test).wav") == r"\[prize\](https://x.test).wav"
    assert md("<b>$x$</b>") == r"\<b\>\$x\$\</b\>"
    assert md("plain name.wav") == "plain name.wav"


def test_a_random_split_is_never_said_to_be_on_unseen_speakers() -> None:
    assert "never heard" not in describe.measured_on("random 20% split (speakers leak)")
    assert "overstated" in describe.measured_on("random 20% split (speakers leak)")
    assert describe.measured_on("RAVDESS 6-fold by actor").startswith("on speakers it never heard")
    assert describe.corpus_list(["ravdess", "tess"]) == "RAVDESS, TESS"


def test_each_shipped_model_is_described_with_its_figures_and_data(
    shipped: list[store.ModelInfo],
) -> None:
    for info in shipped:
        text = describe.model_description(info)
        card = info.card
        assert text.startswith(f"**{card.kind_title}.** ")
        if card.accuracy is not None:
            assert f"{card.accuracy:.1%} accuracy" in text
        assert f"Trained on {describe.corpora(card)}" in text


def test_every_choice_the_train_page_offers_has_a_label() -> None:
    assert set(texts.VALIDATION_LABELS) == set(Validation)
    assert set(texts.AUGMENT_LABELS) <= set(Augmentation)
    keys = {training.epochs_widget(t) for t in ModelType} | {
        training.augment_widget(a) for a in Augmentation
    }
    assert len(keys) == len(ModelType) + len(Augmentation)  # no two widgets share a key


# ---------------------------------------------------------------------------- models


def test_the_models_table_marks_the_default_and_broken_models(
    shipped: list[store.ModelInfo],
) -> None:
    broken = store.ModelInfo("gone", Path("gone.keras"), {}, "model file missing")
    table = model_cards.models_overview([*shipped, broken])
    status = dict(zip(table["model"], table["status"], strict=True))
    assert status["gone"] == "broken: model file missing"
    assert [m for m, s in status.items() if s == "default"] == [store.default_model(shipped).name]
    assert models.model_heading(broken) == "gone (broken)"
    assert models.model_heading(shipped[0]) == shipped[0].name


def test_the_cross_corpus_table_has_a_row_per_unseen_corpus(
    shipped: list[store.ModelInfo],
) -> None:
    measured = [m for m in shipped if m.card.cross_corpus and m.card.cross_corpus.held_out()]
    if not measured:
        pytest.skip("no shipped model measured across corpora")
    for info in measured:
        table = model_cards.cross_corpus_table(info.card)
        assert len(table) == len(info.card.cross_corpus.held_out())
        assert table["accuracy"].between(0, 1).all()


@pytest.mark.parametrize(
    ("guard", "install", "busy"),
    [
        (keras_guard, "keep_keras_state_while_training", "training_threads_alive"),
        (live_ui, "_prepare_process", "_streaming"),
    ],
    ids=["while-a-run-trains", "while-a-live-session-streams"],
)
def test_keras_clean_up_is_skipped_only_while_busy(
    guard: ModuleType, install: str, busy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras

    cleared: list[int] = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda: cleared.append(1))
    getattr(guard, install)()
    getattr(guard, install)()  # installed once, not wrapped twice

    busy_now = True
    monkeypatch.setattr(guard, busy, lambda: busy_now)
    keras.backend.clear_session()
    busy_now = False
    keras.backend.clear_session()

    assert cleared == [1]


def test_starting_live_mode_imports_no_tensorflow_for_a_numpy_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The default model runs in numpy: a live start must not pay seconds for TensorFlow."""
    import sys

    for name in [m for m in sys.modules if m == "keras" or m.startswith("keras.")]:
        monkeypatch.delitem(sys.modules, name)
    live_ui._prepare_process()
    assert "keras" not in sys.modules


# ---------------------------------------------------------------------------- results


def _result(emotion: str, probabilities: list[float], caveats: list[str]):  # noqa: ANN202
    from types import SimpleNamespace

    labels = ("neutral", "happy", "sad", "angry")
    prediction = Prediction(labels, np.array(probabilities))
    assert prediction.emotion == emotion
    return SimpleNamespace(prediction=prediction, caveats=caveats)


def test_a_headline_names_the_emotion_and_its_share() -> None:
    assert shown.headline(_result("happy", [0.1, 0.72, 0.1, 0.08], [])) == "😄 Happy — 72%"


def test_the_table_has_a_row_per_clip_with_empty_figures_for_a_failed_one() -> None:
    good = Outcome(Clip("a.wav", b""), "m", _result("sad", [0.1, 0.2, 0.6, 0.1], ["quiet"]))
    bad = Outcome(Clip("b.wav", b""), "m", error="'b.wav' is not audio")
    table = shown.outcomes_table([good, bad], ["neutral", "happy", "sad", "angry"])
    assert list(table["file"]) == ["a.wav", "b.wav"]
    assert list(table.columns) == [
        "file",
        "model",
        "emotion",
        "confidence",
        "error",
        "neutral",
        "happy",
        "sad",
        "angry",
        "caveats",
    ]
    assert table.loc[0, "sad"] == 0.6 and table.loc[0, "caveats"] == "quiet"
    assert table.loc[1, "error"] == "'b.wav' is not audio" and table.loc[1, "emotion"] is None


# ---------------------------------------------------------------------------- the Train page


def test_the_scan_summary_names_layouts_and_speakers(report) -> None:  # noqa: ANN001
    assert training_data.layouts_text(report) == "RAVDESS (96 clips)"
    chart = training_data.speakers_chart(report)
    assert chart.layout.xaxis.title.text == "RAVDESS speaker"
    assert list(chart.data[0].x) == [f"{a:02d}" for a in range(1, 9)]
    assert training_data.skipped_table(report).empty
    assert training_data._folders(" a \n\n b\n") == ("a", "b")


def test_options_that_cannot_train_are_refused_before_any_work(report) -> None:  # noqa: ANN001
    speaker = Validation.SPEAKER
    twice = [("calm", "neutral"), ("calm", "sad")]
    chained = [("calm", "neutral"), ("neutral", "sad")]
    assert "only one other" in training_options.problem(report, twice, ["sad", "happy"], speaker)
    assert "cannot itself receive" in training_options.problem(
        report, chained, ["sad", "happy"], speaker
    )
    assert "at least two emotions" in training_options.problem(report, [], ["sad"], speaker)
    assert training_options.problem(report, [], ["sad", "happy"], speaker) is None


def test_progress_reads_as_people_say_it() -> None:
    assert training_run.duration(59.4) == "59 s"
    assert training_run.duration(125) == "2 min 05 s"
    epoch = Progress("training", 3, 10, 30.0, {"loss": 0.5, "accuracy": 0.61})
    assert training_run.epochs_text(epoch) == (
        "Epoch 3 / 10 · about 1 min 10 s left · loss 0.500 · accuracy 61.0%"
    )
    features = Progress("features", 40, 96, 4.0)
    snap = Snapshot(State.RUNNING, "features", features, None, {}, 96, 96, None, False, 4.0)
    assert training_run.features_text(snap) == (
        "Features: 40 / 96 clips · 10 clips/s · about 6 s left · features from cache"
    )


def test_the_results_say_which_held_out_figure_is_which() -> None:
    scores = Scores(("sad", "happy"), np.array([[3, 1], [0, 4]]))
    held = HoldoutResult(None, scores, {"val_accuracy": [0.5, 0.7]}, "held-out", np.arange(8))
    table = training_results.per_emotion_table(held)
    assert list(table["clips"]) == [4, 4]
    assert list(table["recall"]) == [75.0, 100.0]
    assert list(table["precision"]) == [100.0, 80.0]
    note = training_results.two_figures_note(held)
    assert note.startswith("Held-out accuracy 87.5% is the saved model")
    assert "(last epoch 70.0%)" in note
    no_curves = HoldoutResult(None, scores, {}, "held-out", np.arange(8))
    assert training_results.two_figures_note(no_curves) is None


def test_a_page_routed_through_the_app_runs_on() -> None:
    from streamlit.testing.v1 import AppTest

    def page() -> None:
        import streamlit as st

        from ui import routing

        routing.through_app()
        st.write("the page ran")

    at = AppTest.from_function(page, default_timeout=60).run()

    assert not at.exception, at.exception
    assert [m.value for m in at.markdown] == ["the page ran"]
