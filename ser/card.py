"""A saved model's metadata, typed: ``ModelCard``, read once, then fields rather than lookups.

A model's JSON (``ser.store`` writes and checks it against ``store.SCHEMA``) becomes a frozen
``ModelCard`` with ``ModelCard.from_dict``, which validates it, and goes back with
``to_dict``: ``from_dict(d).to_dict() == d`` for what this package writes. Fields this version
does not know are kept in each part's ``extra``, so a newer file loses nothing here.

The figures say which protocol produced them: ``protocol_kind`` names the five protocols in
the words every page uses; only the speaker ones hold speakers out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from .features import FeatureConfig

if TYPE_CHECKING:
    from .train import Scores

# What produced a figure. Only the first three hold speakers out.
SPEAKER_HOLDOUT = "speaker hold-out"
KFOLD_BY_SPEAKER = "k-fold by speaker"
LEAVE_ONE_SPEAKER_OUT = "leave-one-speaker-out"
RANDOM_SPLIT = "random split"
LEAVE_ONE_CORPUS_OUT = "leave-one-corpus-out"
SPEAKER_PROTOCOLS = (SPEAKER_HOLDOUT, KFOLD_BY_SPEAKER, LEAVE_ONE_SPEAKER_OUT)


def protocol_kind(protocol: str) -> str:
    """Which of the five protocols a saved protocol text names (``ser.train`` writes them)."""
    text = protocol.lower()
    if "random" in text:
        return RANDOM_SPLIT
    if "leave-one-speaker-out" in text:
        return LEAVE_ONE_SPEAKER_OUT
    if "corpus" in text or "corpora" in text or "tested on unseen" in text:
        return LEAVE_ONE_CORPUS_OUT
    if "fold" in text:
        return KFOLD_BY_SPEAKER
    return SPEAKER_HOLDOUT


# --------------------------------------------------------------------------------- parts


def _known(cls: type, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``data`` split into the fields ``cls`` declares (but ``extra``) and the rest."""
    names = {f.name for f in fields(cls)} - {"extra"}
    return {k: v for k, v in data.items() if k in names}, {
        k: v for k, v in data.items() if k not in names
    }


def _plain(part: Any) -> dict[str, Any]:
    """A part's fields as JSON-ready values, absent (None) ones left out, ``extra`` last."""
    out: dict[str, Any] = {}
    for f in fields(part):
        value = getattr(part, f.name)
        if f.name == "extra" or value is None:
            continue
        out[f.name] = _plain_value(value)
    return {**out, **part.extra}


def _plain_value(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__") and hasattr(value, "extra"):
        return _plain(value)
    if isinstance(value, FeatureConfig):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _plain_value(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain_value(v) for v in value]
    return value


def _matrix(value: Any) -> tuple[tuple[int, ...], ...] | None:
    return None if value is None else tuple(tuple(int(c) for c in row) for row in value)


def _labels(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


@dataclass(frozen=True)
class Fold:
    """One fold's figures."""

    accuracy: float | None = None
    uar: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fold:
        known, extra = _known(cls, data)
        return cls(**known, extra=extra)


@dataclass(frozen=True)
class Evaluation:
    """The held-out figures the model is judged by, and the protocol that produced them."""

    protocol: str | None = None
    mean_accuracy: float | None = None
    mean_uar: float | None = None
    folds: tuple[Fold, ...] | None = None
    labels: tuple[str, ...] | None = None
    confusion: tuple[tuple[int, ...], ...] | None = None  # summed over folds; rows are true
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. mean_ece

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        known, extra = _known(cls, data)
        folds = known.pop("folds", None)
        return cls(
            **{
                **known,
                "labels": _labels(known.get("labels")),
                "confusion": _matrix(known.get("confusion")),
            },
            folds=None if folds is None else tuple(Fold.from_dict(f) for f in folds),
            extra=extra,
        )

    @property
    def kind(self) -> str:
        return protocol_kind(self.protocol or "")

    def scores(self, labels: tuple[str, ...]) -> Scores | None:
        """The confusion matrix as ``Scores`` (recall, precision...), if it fits ``labels``
        (the model's, when the evaluation names none)."""
        from .train import Scores

        names = self.labels or labels
        if not self.confusion or len(self.confusion) != len(names):
            return None
        return Scores(tuple(names), np.asarray(self.confusion, dtype=np.int64))


@dataclass(frozen=True)
class TrainedOn:
    """The clips the network learnt from."""

    corpora: Mapping[str, int] | None = None  # corpus name -> clips
    clips: int | None = None
    speakers: int | None = None
    emotions: Mapping[str, int] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainedOn:
        known, extra = _known(cls, data)
        return cls(**known, extra=extra)


@dataclass(frozen=True)
class Summary:
    """Figures over several unseen corpora."""

    mean_accuracy: float | None = None
    worst_accuracy: float | None = None
    mean_uar: float | None = None
    mean_ece: float | None = None
    mean_ece_calibrated: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Summary:
        known, extra = _known(cls, data or {})
        return cls(**known, extra=extra)


@dataclass(frozen=True)
class CorpusFigures:
    """The model on one corpus it never heard."""

    trained_on: tuple[str, ...] | None = None
    clips: int | None = None
    accuracy: float | None = None
    uar: float | None = None
    ece: float | None = None
    ece_calibrated: float | None = None
    labels: tuple[str, ...] | None = None
    confusion: tuple[tuple[int, ...], ...] | None = None
    four_class: CorpusFigures | None = None  # on neutral, happy, sad and angry alone
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CorpusFigures:
        known, extra = _known(cls, data)
        four = known.pop("four_class", None)
        return cls(
            **{
                **known,
                "trained_on": _labels(known.get("trained_on")),
                "labels": _labels(known.get("labels")),
                "confusion": _matrix(known.get("confusion")),
            },
            four_class=None if four is None else cls.from_dict(four),
            extra=extra,
        )


@dataclass(frozen=True)
class CrossCorpus:
    """Figures on whole corpora the model never heard, and the temperature they fit.

    In the JSON the summary over all shared emotions sits at the top level; here it is
    ``summary``, beside ``four_class``.
    """

    protocol: str | None = None
    temperature: float | None = None
    summary: Summary = field(default_factory=Summary)
    four_class: Summary | None = None
    corpora: Mapping[str, CorpusFigures] | None = None
    extra_tests: Mapping[str, CorpusFigures] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _SUMMARY = frozenset(f.name for f in fields(Summary)) - {"extra"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CrossCorpus:
        summary = {k: v for k, v in data.items() if k in cls._SUMMARY}
        known, extra = _known(cls, {k: v for k, v in data.items() if k not in cls._SUMMARY})
        known.pop("summary", None)  # not a JSON field: the summary is spread at the top
        four = known.pop("four_class", None)
        corpora, tests = known.pop("corpora", None), known.pop("extra_tests", None)
        return cls(
            **known,
            summary=Summary.from_dict(summary),
            four_class=None if four is None else Summary.from_dict(four),
            corpora=_per_corpus(corpora),
            extra_tests=_per_corpus(tests),
            extra=extra,
        )

    def to_dict(self) -> dict[str, Any]:
        plain = _plain(self)
        spread = plain.pop("summary")
        head = {k: plain.pop(k) for k in ("protocol", "temperature") if k in plain}
        return {**head, **spread, **plain}

    @property
    def best_summary(self) -> Summary | None:
        """The 4-class summary where measured, else the one on the emotions shared; None
        where neither has a figure."""
        for summary in (self.four_class, self.summary):
            if summary is not None and summary.mean_accuracy is not None:
                return summary
        return None

    def held_out(self) -> dict[str, CorpusFigures]:
        """Every corpus it was scored on: held out in turn, then the extra test sets."""
        return {**(self.corpora or {}), **(self.extra_tests or {})}


def _per_corpus(data: Mapping[str, Any] | None) -> dict[str, CorpusFigures] | None:
    return None if data is None else {k: CorpusFigures.from_dict(v) for k, v in data.items()}


@dataclass(frozen=True)
class Calibration:
    """The temperature that makes the model's confidence match its accuracy."""

    temperature: float
    fitted_on: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        known, extra = _known(cls, data)
        return cls(**known, extra=extra)


# --------------------------------------------------------------------------------- the card


@dataclass(frozen=True)
class ModelCard:
    """Everything a model's JSON says, typed."""

    labels: tuple[str, ...]
    features: FeatureConfig
    model_type: str | None = None
    title: str | None = None  # as saved: ``kind_title`` prefers the type's current title
    training: Mapping[str, Any] | None = None  # ``TrainOptions.to_dict()`` as it was
    trained_on: TrainedOn | None = None
    evaluation: Evaluation | None = None
    cross_corpus: CrossCorpus | None = None
    calibration: Calibration | None = None
    command: str | None = None
    shipped: bool | None = None
    created_utc: str | None = None
    name: str | None = None
    sha256: str | None = None
    format: int | None = None
    versions: Mapping[str, str] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, validate: bool = True) -> ModelCard:
        """The card of a model's metadata; ``ValueError`` naming the first field that does
        not fit ``store.SCHEMA`` (unless ``validate`` is off, for hand-made metadata)."""
        if validate:
            from .store import validate_metadata

            validate_metadata(dict(data))
        known, extra = _known(cls, data)
        parts = {
            "trained_on": TrainedOn.from_dict,
            "evaluation": Evaluation.from_dict,
            "cross_corpus": CrossCorpus.from_dict,
            "calibration": Calibration.from_dict,
        }
        for key, parse in parts.items():
            if known.get(key) is not None:
                known[key] = parse(known[key])
        return cls(
            **{
                **known,
                "labels": tuple(known.get("labels", ())),
                "features": FeatureConfig.from_dict(known.get("features") or {}),
            },
            extra=extra,
        )

    def to_dict(self) -> dict[str, Any]:
        plain = _plain(self)
        if self.cross_corpus is not None:
            plain["cross_corpus"] = self.cross_corpus.to_dict()
        return plain

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        return cls.from_dict(json.loads(text))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    # ------------------------------------------------------------------------- figures

    @property
    def accuracy(self) -> float | None:
        """Held-out accuracy (the mean over folds), by ``protocol``."""
        return self.evaluation.mean_accuracy if self.evaluation else None

    @property
    def uar(self) -> float | None:
        return self.evaluation.mean_uar if self.evaluation else None

    @property
    def protocol(self) -> str:
        """The saved protocol text ("RAVDESS 6-fold by actor"...), "" if not evaluated."""
        return (self.evaluation.protocol or "") if self.evaluation else ""

    @property
    def protocol_kind(self) -> str:
        return protocol_kind(self.protocol)

    def scores(self) -> Scores | None:
        """The held-out confusion matrix as ``Scores``, where it was saved."""
        return self.evaluation.scores(self.labels) if self.evaluation else None

    @property
    def worst_unseen_accuracy(self) -> float | None:
        """Accuracy on the corpus it did worst on among those it never heard, if measured."""
        return self.cross_corpus.summary.worst_accuracy if self.cross_corpus else None

    @property
    def unseen_mean_accuracy(self) -> float | None:
        """Mean accuracy on corpora never heard: 4-class where measured, else on the shared emotions."""
        best = self.cross_corpus.best_summary if self.cross_corpus else None
        return best.mean_accuracy if best else None

    @property
    def temperature(self) -> float:
        return self.calibration.temperature if self.calibration else 1.0

    # ------------------------------------------------------------------------- data

    @property
    def corpora(self) -> tuple[str, ...]:
        """The corpora it learnt from, as the metadata names them ("ravdess"...)."""
        return tuple((self.trained_on.corpora or {}) if self.trained_on else ())

    @property
    def clips(self) -> int | None:
        return self.trained_on.clips if self.trained_on else None

    @property
    def speakers(self) -> int | None:
        return self.trained_on.speakers if self.trained_on else None

    @property
    def kind_title(self) -> str:
        """What kind of model it is: its type's current title (a saved copy can be out of
        date), else the saved title, else the type's name."""
        from .models import ModelType

        if self.model_type in {t.value for t in ModelType}:
            return ModelType(self.model_type).title
        return self.title or self.model_type or "Model"
