"""Cross-corpus evaluation and calibration: how a model does on voices it never heard.

Unseen actors of a seen corpus share its studio, script and microphones; a user's voice and
microphone are a new corpus. ``leave_one_corpus_out`` holds out each corpus in turn, trains on
the others and scores the held-out one on the emotions both sides share (and on the 4-class
neutral/happy/sad/angry set where it exists). Probabilities are calibrated by one temperature
fitted on those held-out predictions (each corpus weighing alike), and expected calibration error (ECE) says how honest
they are.

The figures a reader can follow: ``restricted`` probabilities -> ``Scores`` and ``ece`` per
held-out corpus -> means and the worst -> a ``temperature`` saved beside the model.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .emotions import ALL_EMOTIONS
from .errors import TrainingError

if TYPE_CHECKING:
    from .store import ModelInfo
    from .train import Prepared, ProgressFn, Scores, TrainOptions

FOUR_CLASSES: tuple[str, ...] = ("neutral", "happy", "sad", "angry")
ECE_BINS = 10
_TEMPERATURE_RANGE = (0.05, 20.0)


# --- calibration ---------------------------------------------------------------------------


def with_temperature(probabilities: np.ndarray, *, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)``: the same ranking, confidence spread (T < 1) or shrunk (T > 1).

    A softmax output's log is its logits up to a constant, so this is temperature scaling of
    the logits, applied to probabilities.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, not {temperature}")
    logits = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, None)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=-1, keepdims=True)).astype(np.float32)


def expected_calibration_error(
    probabilities: np.ndarray, targets: np.ndarray, *, n_bins: int = ECE_BINS
) -> float:
    """Mean gap between confidence and accuracy over equal-width confidence bins, weighted by count."""
    probabilities = np.asarray(probabilities)
    if not len(probabilities):
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(targets)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    gap = 0.0
    for b in range(n_bins):
        members = bins == b
        if members.any():
            gap += members.sum() * abs(
                float(correct[members].mean()) - float(confidence[members].mean())
            )
    return gap / len(probabilities)


def _nll(probabilities: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    scaled = with_temperature(probabilities, temperature=temperature)
    return float(-np.mean(np.log(np.clip(scaled[np.arange(len(targets)), targets], 1e-12, None))))


def fit_temperature(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of held-out predictions."""
    return _temperature_for([(probabilities, targets)])


def _temperature_for(sets: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """One temperature for several sets of predictions (each over its own labels).

    Each set (a held-out corpus) weighs alike, whatever its number of clips, as every corpus
    does in training: the next unseen corpus is as likely to resemble a small one as a large
    one. Weighted by clips, TESS's 2,798 clips of two speakers set most of the temperature.
    """
    from scipy.optimize import minimize_scalar

    sets = [(p, t) for p, t in sets if len(t)]
    if not sets:
        return 1.0
    low, high = np.log(_TEMPERATURE_RANGE)
    result = minimize_scalar(
        lambda log_t: sum(_nll(p, t, float(np.exp(log_t))) for p, t in sets),
        bounds=(low, high),
        method="bounded",
    )
    return round(float(np.exp(result.x)), 4)


# --- scoring on a shared label set -----------------------------------------------------------


def restricted(probabilities: np.ndarray, labels: Sequence[str], keep: Sequence[str]) -> np.ndarray:
    """Probabilities over ``keep`` only (a subset of ``labels``), renormalised.

    A model that knows "calm" scored on a corpus without it must choose among the emotions the
    corpus has: this is how every figure on a shared label set is computed.
    """
    columns = [list(labels).index(label) for label in keep]
    kept = np.asarray(probabilities, dtype=np.float64)[:, columns]
    return (kept / np.maximum(kept.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class HeldOut:
    """One held-out test set's predictions on the label set it shares with training."""

    name: str
    labels: tuple[str, ...]
    probabilities: np.ndarray  # over ``labels``, renormalised
    targets: np.ndarray  # indices into ``labels``
    trained_on: tuple[str, ...]

    def scores(self) -> Scores:
        from .train import scores_of

        return scores_of(self.probabilities, self.targets, self.labels)

    def subset(self, keep: Sequence[str]) -> HeldOut | None:
        """The clips of ``keep``'s emotions, scored on those alone; None unless all of them are here."""
        if not set(keep) <= set(self.labels):
            return None
        keep = tuple(keep)
        members = np.isin(np.asarray(self.labels)[self.targets], keep)
        if not members.any():
            return None
        full = np.asarray(self.labels)[self.targets[members]]
        targets = np.array([keep.index(label) for label in full], dtype=np.int64)
        probabilities = restricted(self.probabilities[members], self.labels, keep)
        return replace(self, labels=keep, probabilities=probabilities, targets=targets)

    def figures(self, *, temperature: float | None) -> dict[str, Any]:
        scores = self.scores()
        calibrated = (
            with_temperature(self.probabilities, temperature=temperature)
            if temperature
            else self.probabilities
        )
        return {
            "clips": len(self.targets),
            "accuracy": round(scores.accuracy, 4),
            "uar": round(scores.uar, 4),
            "ece": round(expected_calibration_error(self.probabilities, self.targets), 4),
            "ece_calibrated": round(expected_calibration_error(calibrated, self.targets), 4),
            "labels": list(self.labels),
            "confusion": scores.confusion.tolist(),
        }


def held_out(
    name: str,
    probabilities: np.ndarray,
    true_labels: Sequence[str],
    *,
    model_labels: Sequence[str],
    trained_emotions: Sequence[str],
    trained_on: Sequence[str],
) -> HeldOut:
    """Predictions over ``model_labels`` for clips of ``true_labels``, on the shared label set."""
    present = set(true_labels)
    shared = tuple(
        e for e in ALL_EMOTIONS if e in present and e in set(trained_emotions) and e in model_labels
    )
    if len(shared) < 2:
        raise TrainingError(
            f"{name} shares {len(shared)} emotion(s) with the training side ({', '.join(shared) or 'none'}); "
            "a cross-corpus test needs at least two."
        )
    members = np.isin(np.asarray(true_labels), shared)
    targets = np.array(
        [shared.index(label) for label in np.asarray(true_labels)[members]], dtype=np.int64
    )
    return HeldOut(
        name,
        shared,
        restricted(np.asarray(probabilities)[members], model_labels, shared),
        targets,
        tuple(trained_on),
    )


# --- leave one corpus out ------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusEvaluation:
    """Leave-one-corpus-out results, the temperature they give, and extra test sets."""

    folds: tuple[HeldOut, ...]
    extra: tuple[HeldOut, ...] = ()
    temperatures: dict[str, float] = field(default_factory=dict)  # per fold, fitted on the others

    @property
    def temperature(self) -> float:
        """Fitted on every fold's held-out predictions: what a saved model carries."""
        return _pooled_temperature(self.folds)

    def to_dict(self) -> dict[str, Any]:
        corpora = {
            f.name: {
                "trained_on": list(f.trained_on),
                **f.figures(temperature=self.temperatures.get(f.name)),
            }
            for f in self.folds
        }
        four = {
            f.name: four_class.figures(temperature=self.temperatures.get(f.name))
            for f in self.folds
            if (four_class := f.subset(FOUR_CLASSES))
        }
        for name, figures in four.items():
            corpora[name]["four_class"] = figures
        extra = {
            f.name: {"trained_on": list(f.trained_on), **f.figures(temperature=self.temperature)}
            for f in self.extra
        }
        return {
            "protocol": "leave-one-corpus-out",
            "temperature": self.temperature,
            **_summary(list(corpora.values())),
            "four_class": _summary(list(four.values())),
            "corpora": corpora,
            "extra_tests": extra,
        }


def _summary(figures: list[dict[str, Any]]) -> dict[str, Any]:
    if not figures:
        return {}
    accuracy = [f["accuracy"] for f in figures]
    return {
        "mean_accuracy": round(float(np.mean(accuracy)), 4),
        "worst_accuracy": round(float(np.min(accuracy)), 4),
        "mean_uar": round(float(np.mean([f["uar"] for f in figures])), 4),
        "mean_ece": round(float(np.mean([f["ece"] for f in figures])), 4),
        "mean_ece_calibrated": round(float(np.mean([f["ece_calibrated"] for f in figures])), 4),
    }


def _pooled_temperature(folds: Sequence[HeldOut]) -> float:
    """One temperature for the folds' predictions (each fold's own labels, each fold alike)."""
    return _temperature_for([(f.probabilities, f.targets) for f in folds])


def corpus_names(data: Prepared) -> tuple[str, ...]:
    return tuple(sorted({clip.corpus.value for clip in data.clips}))


def leave_one_corpus_out(
    data: Prepared,
    options: TrainOptions,
    *,
    extra_tests: Sequence[Prepared] = (),
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
) -> CorpusEvaluation:
    """Hold out each corpus in turn, train on the rest, score it; extra sets score a model of all.

    Each fold's ECE after calibration uses a temperature fitted on the *other* folds only, so
    the calibrated figure is itself out of sample.
    """
    from .train import fit, predict_probabilities

    names = corpus_names(data)
    if len(names) < 2:
        raise TrainingError(
            f"Leave-one-corpus-out needs at least two corpora; found {len(names)} ({', '.join(names) or 'none'})."
        )
    corpus_of = np.array([clip.corpus.value for clip in data.clips])
    folds = []
    for k, name in enumerate(names, start=1):
        train_index, test_index = (
            np.flatnonzero(corpus_of != name),
            np.flatnonzero(corpus_of == name),
        )
        stage = f"held-out {name} ({k}/{len(names)})"
        model, _ = fit(data, train_index, options, progress=progress, stop=stop, stage=stage)
        folds.append(
            _held_out_of(data, model, name, train_index, test_index, predict_probabilities)
        )
    temperatures = {f.name: _pooled_temperature([o for o in folds if o is not f]) for f in folds}
    extra = ()
    if extra_tests:
        model, _ = fit(
            data,
            np.arange(len(data.clips)),
            options,
            progress=progress,
            stop=stop,
            stage="all corpora",
        )
        extra = tuple(_extra_of(data, model, test, predict_probabilities) for test in extra_tests)
    return CorpusEvaluation(tuple(folds), extra, temperatures)


def _held_out_of(
    data: Prepared,
    model: Any,
    name: str,
    train_index: np.ndarray,
    test_index: np.ndarray,
    predict: Any,
) -> HeldOut:
    probabilities = predict(model, [data.features[i] for i in test_index])
    trained = {data.labels[t] for t in data.targets[train_index]}
    return held_out(
        name,
        probabilities,
        [data.labels[t] for t in data.targets[test_index]],
        model_labels=data.labels,
        trained_emotions=sorted(trained),
        trained_on=sorted({data.clips[i].corpus.value for i in train_index}),
    )


def _extra_of(data: Prepared, model: Any, test: Prepared, predict: Any) -> HeldOut:
    probabilities = predict(model, list(test.features))
    return held_out(
        "+".join(corpus_names(test)),
        probabilities,
        [test.labels[t] for t in test.targets],
        model_labels=data.labels,
        trained_emotions=data.labels,
        trained_on=corpus_names(data),
    )


# --- a saved model on corpora it never heard ------------------------------------------------


def score_saved_model(
    info: ModelInfo,
    folders: Sequence[Any],
    *,
    cache_dir: Any = None,
    progress: ProgressFn | None = None,
    calibrated: bool = True,
) -> HeldOut:
    """A saved model's answers on the clips of ``folders``, on the shared emotions.

    Features are computed with the settings saved beside the model, as at prediction time;
    the saved temperature is applied unless ``calibrated`` is False.
    """
    from .datasets import scan
    from .store import load_keras
    from .train import extract_features, predict_probabilities

    report = scan(folders)
    jobs = [(clip.path, "") for clip in report.clips]
    values = extract_features(jobs, config=info.features, cache_dir=cache_dir, progress=progress)
    kept = [
        (clip, value)
        for clip, value in zip(report.clips, values, strict=True)
        if not isinstance(value, str)
    ]
    if not kept:
        raise TrainingError("None of the clips in the test folders could be read.")
    model = load_keras(info)
    probabilities = predict_probabilities(model, [value for _, value in kept])
    temperature = (
        float((info.metadata.get("calibration") or {}).get("temperature") or 1.0)
        if calibrated
        else 1.0
    )
    return held_out(
        "+".join(sorted({clip.corpus.value for clip, _ in kept})),
        with_temperature(probabilities, temperature=temperature),
        [clip.emotion for clip, _ in kept],
        model_labels=tuple(info.labels),
        trained_emotions=tuple(info.labels),
        trained_on=tuple((info.metadata.get("trained_on") or {}).get("corpora") or ()),
    )


def unseen_corpora(held: Sequence[HeldOut]) -> dict[str, Any]:
    """Figures of a saved model on corpora it never heard, and a temperature fitted on them.

    Each corpus's calibrated ECE uses a temperature fitted on the *other* corpora only.
    """
    temperatures = (
        {h.name: _pooled_temperature([o for o in held if o is not h]) for h in held}
        if len(held) > 1
        else {}
    )
    corpora = {}
    for h in held:
        figures = {
            "trained_on": list(h.trained_on),
            **h.figures(temperature=temperatures.get(h.name)),
        }
        if (four := h.subset(FOUR_CLASSES)) is not None:
            figures["four_class"] = four.figures(temperature=temperatures.get(h.name))
        corpora[h.name] = figures
    return {
        "protocol": "unseen corpora (never trained on)",
        "temperature": _pooled_temperature(held),
        **_summary(list(corpora.values())),
        "four_class": _summary([f["four_class"] for f in corpora.values() if "four_class" in f]),
        "corpora": corpora,
        "extra_tests": {},
    }
