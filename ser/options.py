"""What decides a training run (``TrainOptions``), and how its slow steps report
(``Progress``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .distribute import Distribution
from .features import FeatureConfig
from .models import RECIPES, ModelType, Recipe


class Validation(str, Enum):
    SPEAKER = "speaker"  # held-out speakers: the honest figure
    SPEAKER_FOLDS = "speaker_folds"  # k-fold by speaker; leave-one-speaker-out when few
    RANDOM = "random"  # leaks speakers: overstates accuracy by 10-25 points


class Augmentation(str, Enum):
    NOISE = "noise"
    PITCH = "pitch"
    STRETCH = "stretch"
    CHANNEL = "channel"  # another room, microphone and voice: ser.augment.channel_variant


@dataclass(frozen=True)
class Progress:
    """One report from a slow step; the UI and the CLI draw it their own way."""

    stage: str
    done: int
    total: int
    elapsed_s: float
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def rate_per_s(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def remaining_s(self) -> float | None:
        rate = self.rate_per_s
        return (self.total - self.done) / rate if rate > 0 else None


ProgressFn = Callable[[Progress], None]
HEAD_STAGE = "statistics head"  # last part of a stage name (maybe with "i/n") that reports a head


def is_head_stage(stage: str) -> bool:
    """Whether a report comes from a fused model's statistics heads, not its CNN."""
    return stage.rpartition(" · ")[2].startswith(HEAD_STAGE)


@dataclass(frozen=True)
class TrainOptions:
    """Everything that decides a trained model; saved in its metadata."""

    model_type: ModelType = ModelType.MFCC_LSTM
    epochs: int | None = None  # None: the recipe's
    batch_size: int | None = None
    emotions: tuple[str, ...] | None = None  # a subset to learn; None: all found
    merge: tuple[tuple[str, str], ...] = ()  # e.g. (("calm", "neutral"),)
    augment: tuple[Augmentation, ...] = ()
    validation: Validation = Validation.SPEAKER
    seed: int = 42
    speakers: str | None = None  # how own folders name speakers: datasets.name_speakers
    # Where and how fits run; not in ``to_dict``: the scaling it causes is saved by ``metadata``.
    distribution: Distribution = field(default_factory=Distribution)

    @property
    def recipe(self) -> Recipe:
        return RECIPES[self.model_type]

    @property
    def features(self) -> FeatureConfig:
        return self.recipe.features

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type.value,
            "epochs": self.epochs or self.recipe.epochs,
            "batch_size": self.batch_size or self.recipe.batch_size,
            "emotions": list(self.emotions) if self.emotions else None,
            "merge": [list(pair) for pair in self.merge],
            "augment": [a.value for a in self.augment],
            "validation": self.validation.value,
            "seed": self.seed,
            "speakers": self.speakers,
            "recipe": self.recipe.training_settings(),  # e.g. how many heads: recipes change
        }
