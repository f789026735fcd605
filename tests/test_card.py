"""ser.card: a model's JSON read once into a typed, validated card that writes back the same."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ser import card as cards
from ser import store
from ser.card import ModelCard
from ser.features import FeatureConfig

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "models").glob("*.json"))


def _minimal(**fields: object) -> dict:
    return {"labels": ["sad", "happy"], "features": FeatureConfig().to_dict(), **fields}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_card_round_trips_to_the_same_json(path: Path) -> None:
    document = json.loads(path.read_text())
    card = ModelCard.from_dict(document)
    assert card.to_dict() == document
    assert ModelCard.from_json(card.to_json()) == card


def test_the_figures_are_fields_not_lookups() -> None:
    document = _minimal(
        model_type="mfcc_cnn",
        evaluation={
            "protocol": "RAVDESS 6-fold by actor",
            "mean_accuracy": 0.5,
            "mean_uar": 0.45,
            "folds": [{"accuracy": 0.5, "uar": 0.45}],
            "labels": ["sad", "happy"],
            "confusion": [[3, 1], [2, 2]],
            "mean_ece": 0.1,  # a field the card does not name: kept
        },
        trained_on={"corpora": {"ravdess": 8, "tess": 4}, "clips": 12, "speakers": 3},
        cross_corpus={
            "protocol": "leave-one-corpus-out",
            "temperature": 2.0,
            "mean_accuracy": 0.3,
            "worst_accuracy": 0.2,
            "four_class": {"mean_accuracy": 0.4, "worst_accuracy": 0.35},
            "corpora": {"tess": {"trained_on": ["ravdess"], "accuracy": 0.2, "labels": ["sad"]}},
            "extra_tests": {},
        },
        calibration={"temperature": 2.0, "fitted_on": "folds"},
        future_field={"kept": True},
    )
    card = ModelCard.from_dict(document)
    assert (card.accuracy, card.uar, card.protocol_kind) == (0.5, 0.45, cards.KFOLD_BY_SPEAKER)
    assert card.corpora == ("ravdess", "tess") and card.clips == 12 and card.speakers == 3
    assert card.worst_unseen_accuracy == 0.2
    assert card.unseen_mean_accuracy == 0.4  # 4-class where measured
    assert card.temperature == 2.0
    assert card.kind_title == "CNN on MFCC frames"
    assert card.cross_corpus is not None and card.cross_corpus.held_out()["tess"].accuracy == 0.2
    assert card.evaluation is not None and card.evaluation.extra == {"mean_ece": 0.1}
    assert card.extra == {"future_field": {"kept": True}}
    scores = card.scores()
    assert scores is not None
    np.testing.assert_allclose(scores.recall, [0.75, 0.5])  # Scores' recall, not recomputed
    assert card.to_dict() == document


def test_a_card_says_which_field_does_not_fit_the_schema() -> None:
    with pytest.raises(ValueError, match=r"evaluation\.mean_accuracy must be between 0 and 1"):
        ModelCard.from_dict(_minimal(evaluation={"mean_accuracy": 1.5}))
    with pytest.raises(ValueError, match="labels is missing"):
        ModelCard.from_dict({"features": FeatureConfig().to_dict()})


def test_a_model_listed_by_the_store_carries_its_card(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text(json.dumps(_minimal(evaluation={"mean_accuracy": 0.6})))
    (tmp_path / "broken.json").write_text("{not json")
    infos = {info.name: info for info in store.list_models(tmp_path)}
    assert infos["m"].card is not None and infos["m"].card.accuracy == 0.6
    assert infos["m"].accuracy == 0.6 and infos["m"].labels == ["sad", "happy"]
    assert infos["broken"].card is None and infos["broken"].accuracy is None


@pytest.mark.parametrize(
    ("protocol", "kind"),
    [
        ("random 20% split (speakers leak: overstates accuracy)", cards.RANDOM_SPLIT),
        ("held-out speakers: ravdess:21, ravdess:22", cards.SPEAKER_HOLDOUT),
        ("RAVDESS 6-fold by actor", cards.KFOLD_BY_SPEAKER),
        ("5-fold by speaker", cards.KFOLD_BY_SPEAKER),
        ("leave-one-speaker-out", cards.LEAVE_ONE_SPEAKER_OUT),
        ("trained on ravdess, tested on unseen tess", cards.LEAVE_ONE_CORPUS_OUT),
    ],
)
def test_each_saved_protocol_is_named_by_its_kind(protocol: str, kind: str) -> None:
    assert cards.protocol_kind(protocol) == kind
