"""Small and own datasets: how speakers are named, and the splits a few speakers allow."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from ser import train
from ser.card import LEAVE_ONE_SPEAKER_OUT, protocol_kind
from ser.command import add_training_arguments, options_from_args, train_arguments
from ser.datasets import Corpus, LabelledClip, name_speakers, scan
from ser.errors import DatasetError, TrainingError
from ser.models import ModelType
from ser.train import VALIDATION_RULES, TrainOptions, Validation, validation_problem
from tests.conftest import make_tiny_corpus
from tests.signals import speech_like, write_audio


def _write(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = speech_like(duration_s=0.8, sample_rate_hz=16_000, seed=seed, speech_fraction=1.0)
    write_audio(path, samples, sample_rate_hz=16_000)


@pytest.fixture(scope="module")
def own_folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Own recordings: a folder per speaker above the emotion folders, names carrying the
    speaker too, and one clip in a top-level emotion folder (nobody's)."""
    root = tmp_path_factory.mktemp("own")
    for seed, relative in enumerate(
        ["anna/angry/anna_1.wav", "anna/happy/anna_2.wav", "ben/angry/ben_1.wav", "sad/x_1.wav"]
    ):
        _write(root / relative, seed)
    return root


def _speakers(report) -> dict[str, str]:
    return {clip.path.name: clip.speaker for clip in report.clips}


def test_own_folders_are_one_unknown_speaker_until_told(own_folders: Path) -> None:
    report = scan([own_folders])
    assert set(_speakers(report).values()) == {"folders:unknown"}
    assert name_speakers(report, None) is report


def test_a_folder_per_speaker_names_them_and_a_top_level_clip_stays_unknown(
    own_folders: Path,
) -> None:
    named = _speakers(name_speakers(scan([own_folders]), "subfolder"))
    assert named == {
        "anna_1.wav": "folders:anna",
        "anna_2.wav": "folders:anna",
        "ben_1.wav": "folders:ben",
        "x_1.wav": "folders:unknown",
    }


def test_a_file_name_pattern_names_them(own_folders: Path) -> None:
    named = _speakers(name_speakers(scan([own_folders]), "name:^([a-z]+)_"))
    assert named["anna_2.wav"] == "folders:anna" and named["x_1.wav"] == "folders:x"
    none_match = _speakers(name_speakers(scan([own_folders]), "name:^speaker-(\\d+)"))
    assert set(none_match.values()) == {"folders:unknown"}


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("name:([a-z", "not a valid regular expression"),
        ("name:^[a-z]+_", "needs a group"),
        ("folder", "Unknown speaker rule"),
    ],
)
def test_a_bad_rule_is_refused_with_what_is_wrong(
    own_folders: Path, rule: str, message: str
) -> None:
    with pytest.raises(DatasetError, match=message):
        name_speakers(scan([own_folders]), rule)


def test_named_corpora_keep_their_own_speakers(tmp_path: Path) -> None:
    make_tiny_corpus(tmp_path, actors=range(1, 3), clips_per_emotion=1)
    report = scan([tmp_path])
    assert _speakers(name_speakers(report, "name:^(\\d+)-")) == _speakers(report)


def _clips(speakers: list[str]) -> list[LabelledClip]:
    return [
        LabelledClip(Path(f"{i}.wav"), "happy", s, Corpus.FOLDERS) for i, s in enumerate(speakers)
    ]


def test_four_ravdess_actors_are_refused_a_hold_out_but_offered_k_fold() -> None:
    clips = [
        LabelledClip(Path(f"{a}_{i}.wav"), "happy", f"ravdess:{a:02d}", Corpus.RAVDESS)
        for a in range(1, 5)
        for i in range(3)
    ]
    refused = validation_problem(clips, Validation.SPEAKER)
    # The page's hint and its refusal are the same words: the rule, then what was found.
    assert refused == f"{VALIDATION_RULES[Validation.SPEAKER]} Found 4 speakers."
    assert validation_problem(clips, Validation.SPEAKER_FOLDS) is None


@pytest.mark.parametrize(
    ("speakers", "found"),
    [
        (["folders:anna"] * 3, "Found 1 speakers."),
        (["folders:anna", "folders:unknown"], "some unknown: say how your folders name speakers."),
    ],
)
def test_k_fold_needs_two_known_speakers(speakers: list[str], found: str) -> None:
    said = validation_problem(_clips(speakers), Validation.SPEAKER_FOLDS)
    assert said is not None
    assert said.startswith(VALIDATION_RULES[Validation.SPEAKER_FOLDS]) and said.endswith(found)


def test_the_speaker_rule_goes_through_the_command_line_and_back() -> None:
    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    args = ["--data", "d", "--validation", "speaker_folds", "--speakers", "name:^([a-z]+)_"]
    options = options_from_args(parser.parse_args(args))
    assert options.speakers == "name:^([a-z]+)_"
    again = options_from_args(parser.parse_args(train_arguments(["d"], options)))
    assert again.speakers == options.speakers and again.validation is Validation.SPEAKER_FOLDS


@pytest.mark.slow
def test_three_speakers_are_scored_leave_one_speaker_out_then_trained_on_all(
    tmp_path: Path,
) -> None:
    corpus = make_tiny_corpus(tmp_path / "data", actors=range(1, 4), clips_per_emotion=2)
    options = TrainOptions(
        model_type=ModelType.MFCC_LSTM, epochs=2, validation=Validation.SPEAKER_FOLDS
    )
    data = train.prepare([corpus], options, cache_dir=tmp_path / "cache")
    held = train.train_holdout(data, options)
    assert held.protocol == "leave-one-speaker-out (3 speakers)"
    assert protocol_kind(held.protocol) == LEAVE_ONE_SPEAKER_OUT
    assert held.evaluation is not None and len(held.evaluation.folds) == 3
    assert int(held.scores.confusion.sum()) == len(data.clips)  # every clip scored once
    np.testing.assert_array_equal(held.train_index, np.arange(len(data.clips)))
    figures = train.holdout_evaluation(held)
    assert len(figures["folds"]) == 3 and figures["protocol"] == held.protocol


def test_a_split_that_cannot_be_drawn_fails_in_the_rules_words() -> None:
    data = train.Prepared(
        tuple(_clips(["folders:anna"] * 4)), (), np.zeros(4, dtype=np.int64), ("happy",), {}, None
    )  # type: ignore[arg-type]
    with pytest.raises(TrainingError) as caught:
        train.holdout_split(data, Validation.SPEAKER, seed=0)
    assert str(caught.value).startswith(VALIDATION_RULES[Validation.SPEAKER])


@pytest.mark.slow
def test_the_train_page_offers_k_fold_and_asks_how_own_folders_name_speakers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_train_page import scan as scan_on_page
    from tests.test_train_page import texts, train_page

    monkeypatch.setenv("SER_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SER_DATA_DIR", raising=False)
    monkeypatch.delenv("SER_DISABLE_TRAINING", raising=False)
    monkeypatch.setenv("SER_ENABLE_TRAINING", "1")
    root = tmp_path / "own"
    for seed, speaker in enumerate(["anna", "ben", "cara"]):
        for e, emotion in enumerate(("angry", "happy")):
            for take in range(2):
                _write(root / speaker / emotion / f"{speaker}_{take}.wav", seed * 10 + e * 2 + take)
    at = scan_on_page(train_page(), root)
    at.radio(key="train_validation").set_value(Validation.SPEAKER_FOLDS).run()
    assert VALIDATION_RULES[Validation.SPEAKER_FOLDS] in texts(at.caption)  # the hint
    refusal = texts(at.error)
    assert refusal.startswith(VALIDATION_RULES[Validation.SPEAKER_FOLDS])  # the same words
    assert "say how your folders name speakers" in refusal
    assert at.button(key="train_start").disabled
    at.radio(key="train_speakers").set_value("subfolder").run()
    assert not at.exception, at.exception
    assert not texts(at.error) and not at.button(key="train_start").disabled
    assert "--validation speaker_folds" in at.code[0].value
    assert "--speakers subfolder" in at.code[0].value
