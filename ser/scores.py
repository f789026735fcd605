"""Scores: accuracy, UAR and the confusion matrix of a model on held-out clips, each
predicted whole as in the app, and their means over folds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

    from .prepare import Prepared


@dataclass(frozen=True)
class Scores:
    """Accuracy, UAR and the confusion matrix (rows: true, columns: predicted)."""

    labels: tuple[str, ...]
    confusion: np.ndarray

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(1, self.confusion.sum()))

    @property
    def recall(self) -> np.ndarray:
        return np.diag(self.confusion) / np.maximum(self.confusion.sum(axis=1), 1)

    @property
    def precision(self) -> np.ndarray:
        return np.diag(self.confusion) / np.maximum(self.confusion.sum(axis=0), 1)

    @property
    def uar(self) -> float:
        """Unweighted average recall over the classes present in the test set."""
        present = self.confusion.sum(axis=1) > 0
        return float(self.recall[present].mean()) if present.any() else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": round(self.accuracy, 4),
            "uar": round(self.uar, 4),
            "labels": list(self.labels),
            "confusion": self.confusion.tolist(),
        }


def score(model: keras.Model, data: Prepared, test_index: np.ndarray) -> Scores:
    """Scores on the held-out clips, each clip predicted whole, as in the app."""
    return score_features(
        model, [data.features[i] for i in test_index], data.targets[test_index], data.labels
    )


def score_features(
    model: keras.Model, features: list[np.ndarray], targets: np.ndarray, labels: tuple[str, ...]
) -> Scores:
    """Scores of ``model`` on clips' features, each clip predicted whole."""
    if not features:
        return Scores(labels, np.zeros((len(labels), len(labels)), dtype=np.int64))
    return scores_of(predict_probabilities(model, features), np.asarray(targets), labels)


def predict_probabilities(model: keras.Model, features: list[np.ndarray]) -> np.ndarray:
    """(clips, labels): the model's probabilities for each whole clip, in order."""
    return _outputs_whole(model, features)


def scores_of(probabilities: np.ndarray, targets: np.ndarray, labels: tuple[str, ...]) -> Scores:
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(confusion, (targets, probabilities.argmax(axis=1)), 1)
    return Scores(labels, confusion)


def _outputs_whole(model: keras.Model, features: list[np.ndarray]) -> np.ndarray:
    """``model``'s output for each whole clip, in order."""
    if features[0].ndim == 1:
        return np.asarray(model.predict_on_batch(np.stack(features)))
    by_length: dict[int, list[int]] = {}  # equal lengths batch together without padding
    for i, f in enumerate(features):
        by_length.setdefault(len(f), []).append(i)
    rows: list[np.ndarray] = [np.empty(0)] * len(features)
    for index in by_length.values():
        batch = np.asarray(model.predict_on_batch(np.stack([features[i] for i in index])))
        for i, row in zip(index, batch, strict=True):
            rows[i] = row
    return np.stack(rows)


@dataclass(frozen=True)
class Evaluation:
    """Per-fold scores and their means; the confusion matrix summed over folds."""

    protocol: str
    folds: tuple[Scores, ...]
    # Each fold's held-out probabilities and true label indices, for calibration figures.
    outputs: tuple[tuple[np.ndarray, np.ndarray], ...] = ()

    @property
    def mean_accuracy(self) -> float:
        return float(np.mean([f.accuracy for f in self.folds]))

    @property
    def mean_uar(self) -> float:
        return float(np.mean([f.uar for f in self.folds]))

    @property
    def total(self) -> Scores:
        return Scores(self.folds[0].labels, sum(f.confusion for f in self.folds))

    def mean_ece(self, *, temperature: float = 1.0) -> float | None:
        """Expected calibration error averaged over folds, after ``temperature``; None without outputs."""
        from .evaluation import expected_calibration_error, with_temperature

        if not self.outputs:
            return None
        return float(
            np.mean(
                [
                    expected_calibration_error(with_temperature(p, temperature=temperature), t)
                    for p, t in self.outputs
                ]
            )
        )

    def to_dict(self, *, temperature: float | None = None) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "protocol": self.protocol,
            "mean_accuracy": round(self.mean_accuracy, 4),
            "mean_uar": round(self.mean_uar, 4),
            "folds": [
                {"accuracy": round(f.accuracy, 4), "uar": round(f.uar, 4)} for f in self.folds
            ],
            "labels": list(self.folds[0].labels),
            "confusion": self.total.confusion.tolist(),
        }
        if self.outputs:
            figures["mean_ece"] = round(self.mean_ece() or 0.0, 4)
            if temperature is not None:
                figures["mean_ece_calibrated"] = round(
                    self.mean_ece(temperature=temperature) or 0.0, 4
                )
        return figures
