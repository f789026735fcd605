"""Training and speaker-independent evaluation: one code path for the CLI and the app.

The path a reader can follow in one sitting, a module per stage:
``scan`` folders -> ``prepare`` (ser.prepare; features from ser.cache, all cores) -> split
by speaker (ser.splits) -> ``fit`` (ser.fit) -> score (ser.scores) -> ``save`` with the
metadata that rebuilds the figures. This module runs the protocols (cross-validation, the
hold-out, across corpora) and writes that metadata; the options are ser.options. Every name
the stages define is importable from here too, as it always was.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .cache import (  # noqa: F401  (re-exported)
    _augment,
    _cache_path,
    _clip_batch,
    _clip_features,
    _file_key,
    default_cache_dir,
    extract_features,
)
from .datasets import ravdess_actor
from .errors import TrainingError
from .familiarity import fit_familiarity
from .fit import (  # noqa: F401  (re-exported)
    _batches,
    _fit_backup,
    _fixed_length,
    _raise_if_stopped,
    _reporter,
    _sample_weights,
    _spec_augment,
    _train_statistics_heads,
    _training_set,
    fit,
    fit_scaling,
)
from .models import STATISTICS_HEAD_EPOCHS  # noqa: F401  (re-exported)
from .options import (  # noqa: F401  (re-exported)
    HEAD_STAGE,
    Augmentation,
    Progress,
    ProgressFn,
    TrainOptions,
    Validation,
    is_head_stage,
)
from .prepare import (  # noqa: F401  (re-exported)
    MIN_CLIPS_PER_EMOTION,
    Prepared,
    _feature_jobs,
    _relabel,
    _require_enough,
    cached_count,
    prepare,
    prepare_across_corpora,
)
from .scores import (  # noqa: F401  (re-exported)
    Evaluation,
    Scores,
    _outputs_whole,
    predict_probabilities,
    score,
    score_features,
    scores_of,
)
from .splits import (  # noqa: F401  (re-exported)
    HOLDOUT_ACTORS,
    HOLDOUT_SPEAKER_FOLDS,
    RAVDESS_FOLDS,
    VALIDATION_RULES,
    Split,
    _holds_ravdess_holdout,
    _known_speakers,
    holdout_split,
    ravdess_folds,
    speaker_folds,
    speaker_holdout_problem,
    validation_problem,
)


def cross_validate(
    data: Prepared,
    options: TrainOptions,
    *,
    n_folds: int = RAVDESS_FOLDS,
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
) -> Evaluation:
    """RAVDESS 6-fold by actor when RAVDESS is present, else group k-fold by speaker."""
    if n_folds < 2:
        raise TrainingError(f"Cross-validation needs at least 2 folds, not {n_folds}.")
    use_ravdess = n_folds == RAVDESS_FOLDS and any(ravdess_actor(c.speaker) for c in data.clips)
    folds = ravdess_folds(data.clips) if use_ravdess else speaker_folds(data.speakers, n_folds)
    folds = [fold for fold in folds if len(fold[1])]  # a partial RAVDESS copy lacks some actors
    protocol = "RAVDESS 6-fold by actor" if use_ravdess else f"{n_folds}-fold by speaker"
    results, outputs = [], []
    for k, (train_index, test_index) in enumerate(folds, start=1):
        model, _ = fit(
            data, train_index, options, progress=progress, stop=stop, stage=f"fold {k}/{len(folds)}"
        )
        probabilities = predict_probabilities(model, [data.features[i] for i in test_index])
        outputs.append((probabilities, data.targets[test_index]))
        results.append(scores_of(probabilities, data.targets[test_index], data.labels))
    return Evaluation(protocol, tuple(results), tuple(outputs))


def evaluate_across_corpora(
    data: Prepared,
    split: Split,
    options: TrainOptions,
    *,
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
) -> Evaluation:
    """Train on one side's corpora and score the other's: speakers, rooms and scripts unseen."""
    train_index, test_index = split
    model, _ = fit(data, train_index, options, progress=progress, stop=stop)

    def corpora(index: np.ndarray) -> str:
        return " + ".join(sorted({data.clips[i].corpus.value for i in index}))

    protocol = f"trained on {corpora(train_index)}, tested on unseen {corpora(test_index)}"
    return Evaluation(protocol, (score(model, data, test_index),))


@dataclass(frozen=True)
class HoldoutResult:
    """A model trained on the training side, with its held-out scores and curves."""

    model: Any
    scores: Scores
    history: dict[str, list[float]]
    protocol: str
    train_index: np.ndarray  # the clips the model learnt from
    evaluation: Evaluation | None = None  # k-fold by speaker: every fold's figures


def train_holdout(
    data: Prepared,
    options: TrainOptions,
    *,
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
) -> HoldoutResult:
    """Train on the training side of one split and score the held-out side; for k-fold by
    speaker, score every fold, then train the model on every clip."""
    if options.validation is Validation.SPEAKER_FOLDS:
        return _train_speaker_folds(data, options, progress=progress, stop=stop)
    train_index, test_index = holdout_split(data, options.validation, seed=options.seed)
    model, history = fit(
        data, train_index, options, test_index=test_index, progress=progress, stop=stop
    )
    held_out = {data.clips[i].speaker for i in test_index}
    protocol = (
        "random 20% split (speakers leak: overstates accuracy)"
        if options.validation is Validation.RANDOM
        else f"held-out speakers: {', '.join(sorted(held_out))}"
    )
    return HoldoutResult(model, score(model, data, test_index), history, protocol, train_index)


def _train_speaker_folds(
    data: Prepared,
    options: TrainOptions,
    *,
    progress: ProgressFn | None,
    stop: threading.Event | None,
) -> HoldoutResult:
    if (problem := validation_problem(data.clips, Validation.SPEAKER_FOLDS)) is not None:
        raise TrainingError(problem)
    n_speakers = len(set(data.speakers.tolist()))
    n_folds = min(HOLDOUT_SPEAKER_FOLDS, n_speakers)
    evaluation = cross_validate(data, options, n_folds=n_folds, progress=progress, stop=stop)
    if n_folds == n_speakers:
        evaluation = replace(evaluation, protocol=f"leave-one-speaker-out ({n_speakers} speakers)")
    everything = np.arange(len(data.clips))
    model, history = fit(data, everything, options, progress=progress, stop=stop, stage="all clips")
    return HoldoutResult(
        model, evaluation.total, history, evaluation.protocol, everything, evaluation
    )


def holdout_evaluation(held: HoldoutResult) -> dict[str, Any]:
    """A hold-out's figures in the shape cross-validation reports them (one 'fold'), or
    the folds' own for k-fold by speaker."""
    if held.evaluation is not None:
        return held.evaluation.to_dict()
    return {
        "protocol": held.protocol,
        "mean_accuracy": round(held.scores.accuracy, 4),
        "mean_uar": round(held.scores.uar, 4),
        **held.scores.to_dict(),
    }


def metadata(
    data: Prepared,
    options: TrainOptions,
    *,
    evaluation: dict[str, Any] | None,
    command: str,
    shipped: bool = False,
    train_index: np.ndarray | None = None,
) -> dict[str, Any]:
    """What a saved model carries: labels, features, data, figures, and how to redo them.

    ``train_index`` names the clips the network learnt from, when not all of them.
    """
    import keras
    import librosa

    index = np.arange(len(data.clips)) if train_index is None else np.asarray(train_index)
    clips = [data.clips[i] for i in index]
    targets = data.targets[index]
    corpora = dict(Counter(clip.corpus.value for clip in clips))
    return {
        "model_type": options.model_type.value,
        "title": options.model_type.title,
        "labels": list(data.labels),
        "features": options.features.to_dict(),
        "training": {**options.to_dict(), "distribution": fit_scaling(options).to_dict()},
        "trained_on": {
            "corpora": corpora,
            "clips": len(clips),
            "speakers": len({c.speaker for c in clips}),
            "emotions": {label: int((targets == i).sum()) for i, label in enumerate(data.labels)},
        },
        "evaluation": evaluation or {},
        "familiarity": fit_familiarity([data.features[i] for i in index]).to_dict(),
        "command": command,
        "shipped": shipped,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": {"keras": keras.__version__, "librosa": librosa.__version__},
    }
