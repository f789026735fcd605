"""The models folder: names cannot escape, saves are atomic, broken models say why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ser import store
from ser.errors import ModelError


@pytest.fixture
def models(tiny_models_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny models, free to damage."""
    folder = tmp_path / "models"
    shutil.copytree(tiny_models_dir, folder)
    return folder


@pytest.mark.parametrize(
    "name", ["../x", "/etc/passwd", "a/b", "a b", "", ".hidden", "x" * 65, "naïve", "a.keras", "-x"]
)
def test_names_that_could_escape_or_confuse_are_refused(name: str) -> None:
    with pytest.raises(ModelError, match="not a valid model name"):
        store.validate_name(name)


def test_find_model_refuses_escaping_names(models: Path) -> None:
    with pytest.raises(ModelError, match="not a valid model name"):
        store.find_model("../tiny-classic", models)


@pytest.mark.parametrize("name", ["my-model", "RAVDESS_crnn_2", "a"])
def test_plain_names_are_accepted(name: str) -> None:
    assert store.validate_name(name) == name


def test_listing_and_default(models: Path) -> None:
    infos = store.list_models(models)
    assert [m.name for m in infos] == ["tiny-classic", "tiny-cnn"]
    assert all(m.ok for m in infos)
    best = max(infos, key=lambda m: m.accuracy or 0)
    assert store.default_model(infos) is not None
    assert store.default_model(infos).name == best.name


def test_round_trip_keeps_labels_and_features(models: Path) -> None:
    info = store.find_model("tiny-classic", models)
    model = store.load_keras(info)
    assert info.labels == ["neutral", "happy", "sad", "angry"]
    assert model.outputs[0].shape[-1] == 4
    assert info.metadata["sha256"] == store._sha256(info.keras_path)


def test_shipped_models_are_never_overwritten(models: Path) -> None:
    info = store.find_model("tiny-classic", models)
    model = store.load_keras(info)
    with pytest.raises(ModelError, match="shipped model"):
        store.save_model(
            model, info.metadata, name="tiny-classic", models_dir=models, overwrite=True
        )


def test_existing_names_need_overwrite(models: Path) -> None:
    info = store.find_model("tiny-classic", models)
    model = store.load_keras(info)
    user_meta = {**info.metadata, "shipped": False}
    store.save_model(model, user_meta, name="mine", models_dir=models)
    with pytest.raises(ModelError, match="already exists"):
        store.save_model(model, user_meta, name="mine", models_dir=models)
    assert store.save_model(model, user_meta, name="mine", models_dir=models, overwrite=True).ok


def test_missing_model_file_is_reported_broken(models: Path) -> None:
    (models / "tiny-cnn.keras").unlink()
    info = store.find_model("tiny-cnn", models)
    assert info.problem == "model file missing"
    with pytest.raises(ModelError, match="cannot be used: model file missing"):
        store.load_keras(info)


def test_truncated_model_file_is_reported_broken(models: Path) -> None:
    path = models / "tiny-cnn.keras"
    path.write_bytes(path.read_bytes()[:1000])
    assert store.find_model("tiny-cnn", models).problem == "model file does not match its metadata"


def test_not_a_model_is_refused_at_load(models: Path) -> None:
    (models / "tiny-cnn.keras").write_text("not a model")
    meta_path = models / "tiny-cnn.json"
    meta = json.loads(meta_path.read_text())
    meta.pop("sha256")  # no checksum to catch it: loading itself must refuse
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="could not be loaded"):
        store.load_keras(store.find_model("tiny-cnn", models))


def test_label_count_disagreeing_with_the_network_is_refused(models: Path) -> None:
    meta_path = models / "tiny-classic.json"
    meta = json.loads(meta_path.read_text())
    meta["labels"] = meta["labels"][:3]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="4 outputs but its metadata lists 3 labels"):
        store.load_keras(store.find_model("tiny-classic", models))


def test_unreadable_metadata_is_reported_broken(models: Path) -> None:
    (models / "tiny-classic.json").write_text("{not json")
    info = store.find_model("tiny-classic", models)
    assert not info.ok
    assert info.problem.startswith("metadata unreadable")
    assert "BROKEN" in info.summary()


def test_a_failed_save_leaves_nothing_visible(
    models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = store.find_model("tiny-classic", models)
    model = store.load_keras(info)
    before = sorted(p.name for p in models.iterdir())

    def disk_full(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model, "save", disk_full)
    with pytest.raises(ModelError, match="No space left on device"):
        store.save_model(model, {**info.metadata, "shipped": False}, name="new", models_dir=models)
    assert sorted(p.name for p in models.iterdir()) == before


def test_models_load_in_safe_mode_only(models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    calls: list[dict] = []
    real = keras.saving.load_model
    monkeypatch.setattr(
        keras.saving, "load_model", lambda *a, **k: calls.append(k) or real(*a, **k)
    )
    store.load_keras(store.find_model("tiny-classic", models))
    assert calls == [{"safe_mode": True, "compile": False}]


def test_saved_metadata_is_readable_by_other_users(models: Path) -> None:
    info = store.find_model("tiny-classic", models)
    saved = store.save_model(
        store.load_keras(info),
        {**info.metadata, "shipped": False},
        name="shared",
        models_dir=models,
    )
    assert (saved.keras_path.with_suffix(".json").stat().st_mode & 0o777) == 0o644


def _info(
    name: str,
    *,
    rate_hz: int,
    accuracy: float,
    shipped: bool = True,
    labels: tuple[str, ...] = ("a", "b"),
    band_limit_hz: int | None = None,
) -> store.ModelInfo:
    metadata = {
        "labels": list(labels),
        "features": {
            "kind": "logmel_frames",
            "sample_rate_hz": rate_hz,
            "band_limit_hz": band_limit_hz,
        },
        "shipped": shipped,
        "evaluation": {"mean_accuracy": accuracy},
    }
    return store.ModelInfo(name, Path(f"{name}.keras"), metadata)


def test_a_recording_below_a_models_rate_goes_to_the_best_shipped_model_it_feeds() -> None:
    models = [
        _info("full", rate_hz=22_050, accuracy=0.63),
        _info("narrow", rate_hz=16_000, accuracy=0.61),
        _info("narrower-but-worse", rate_hz=8_000, accuracy=0.40),
        _info("trained-here", rate_hz=16_000, accuracy=0.90, shipped=False),
        _info("other-labels", rate_hz=16_000, accuracy=0.95, labels=("a", "c")),
    ]

    def pick(rate_hz: int) -> str | None:
        info = store.model_for_band(models, band_hz=rate_hz / 2, labels=["a", "b"])
        return None if info is None else info.name

    assert [pick(r) for r in (48_000, 22_050, 16_000, 11_025, 8_000, 4_000)] == [
        "full",
        "full",
        "narrow",
        "narrower-but-worse",
        "narrower-but-worse",
        None,
    ]


def test_a_band_limited_model_answers_only_recordings_that_lack_the_band() -> None:
    models = [
        _info("full", rate_hz=16_000, accuracy=0.60),
        _info("phone", rate_hz=16_000, accuracy=0.70, band_limit_hz=4_000),
    ]

    def pick(band_hz: float) -> str | None:
        info = store.model_for_band(models, band_hz=band_hz, labels=["a", "b"])
        return None if info is None else info.name

    # More accurate on its own band-limited clips, but never the default for a whole band.
    assert store.default_model(models).name == "full"
    assert [pick(b) for b in (8_000, 6_400, 6_300, 3_600, 3_200, 3_100)] == [
        "full",
        "full",
        "phone",
        "phone",
        "phone",
        None,
    ]


def _card(
    name: str, *, accuracy: float, worst: float | None, shipped: bool = True
) -> store.ModelInfo:
    metadata = {
        "labels": ["sad", "happy"],
        "features": {},
        "shipped": shipped,
        "evaluation": {"mean_accuracy": accuracy},
    }
    if worst is not None:
        metadata["cross_corpus"] = {"worst_accuracy": worst}
    return store.ModelInfo(name, Path(f"{name}.keras"), metadata)


def test_the_default_protects_the_worst_unseen_corpus_among_accurate_enough_models() -> None:
    in_corpus_best = _card("a", accuracy=0.63, worst=0.26)
    across_best = _card("b", accuracy=0.61, worst=0.33)
    not_accurate_enough = _card("c", accuracy=0.46, worst=0.45)
    own = _card("d", accuracy=0.99, worst=0.99, shipped=False)
    models = [in_corpus_best, across_best, not_accurate_enough, own]
    assert store.default_model(models) is across_best
    assert store.default_model([in_corpus_best, not_accurate_enough]) is in_corpus_best
    # No model reaches the floor: the most accurate one.
    assert (
        store.default_model([not_accurate_enough, _card("e", accuracy=0.50, worst=None)]).name
        == "e"
    )


def _scored_on(name: str, *, accuracy: float, per_corpus: dict[str, float]) -> store.ModelInfo:
    info = _card(name, accuracy=accuracy, worst=min(per_corpus.values()))
    info.metadata["cross_corpus"]["corpora"] = {
        corpus: {"accuracy": a} for corpus, a in per_corpus.items()
    }
    return info


def test_models_are_compared_on_the_unseen_corpora_they_were_all_scored_on() -> None:
    """One held out on more corpora has more chances of a bad worst figure: the worst is
    taken over the corpora every accurate candidate was scored on."""
    two_corpora = _scored_on("two", accuracy=0.61, per_corpus={"ased": 0.35, "emo": 0.33})
    three_corpora = _scored_on(
        "three", accuracy=0.60, per_corpus={"ased": 0.38, "emo": 0.34, "ravdess": 0.25}
    )
    assert store.worst_unseen_accuracy(three_corpora) < store.worst_unseen_accuracy(two_corpora)
    assert store.default_model([two_corpora, three_corpora]) is three_corpora
    worse_on_common = _scored_on(
        "worse", accuracy=0.60, per_corpus={"ased": 0.30, "emo": 0.34, "ravdess": 0.40}
    )
    assert store.default_model([two_corpora, worse_on_common]) is two_corpora
