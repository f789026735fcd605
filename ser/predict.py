"""From a clip to per-emotion probabilities, and to the emotion over time.

A ``Recognizer`` holds one loaded model and the settings saved beside it. It is
immutable after loading, so one instance serves many threads at once. The
network is called through a ``tf.function`` traced once: about 1 ms per clip
here, where an eager call costs ~60 ms and ``model.predict`` ~45 ms.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import features as feats
from .audio import (
    Audio,
    assess_quality,
    fills_band,
    load_audio,
    speech_duration_s,
)
from .errors import ModelError, SERError
from .evaluation import with_temperature
from .familiarity import Familiarity
from .runtime import NumpyModel
from .store import ModelInfo, find_model, list_models, load_network, model_for_band

# For the band a recording holds (Hz), a model that band fills (or None): see Recognizer.recognise.
Narrower = Callable[[float], "Recognizer | None"]
LONG_CLIP_S = 5.0  # beyond this a clip also gets the emotion over time
WINDOW_S = 3.0  # about the length of the training clips
HOP_S = 1.0
STDIN_NAME = "stdin"
LOW_CONFIDENCE = 0.4  # of the (calibrated) top probability: below it the answer is a guess
MIN_WINDOW_SPEECH_S = 0.5  # a window with less speech than this does not sway the headline
# Measured: a familiar RAVDESS clip is as its 6-fold figures say; most ASED and EmoSpeech clips
# are unfamiliar, and there the model is near its unseen-corpus figures (docs/model-card.md).
UNFAMILIAR = "Unlike the recordings this model learnt from (their sound, level or voices)"


@dataclass(frozen=True)
class Prediction:
    """Probabilities over ``labels`` for one stretch of audio."""

    labels: tuple[str, ...]
    probabilities: np.ndarray

    @property
    def emotion(self) -> str:
        return self.labels[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probabilities))

    def as_dict(self) -> dict[str, float]:
        return {label: float(p) for label, p in zip(self.labels, self.probabilities, strict=True)}


@dataclass(frozen=True)
class Timeline:
    """The emotion over time: one row of probabilities per window."""

    labels: tuple[str, ...]
    start_s: np.ndarray  # window starts
    window_s: float
    probabilities: np.ndarray  # (windows, labels)
    speech_s: np.ndarray | None = None  # seconds of speech in each window

    def overall(self) -> np.ndarray:
        """The clip's probabilities: the mean over windows that hold speech (all, if none do)."""
        if self.speech_s is None:
            return self.probabilities.mean(axis=0)
        speaking = self.speech_s >= MIN_WINDOW_SPEECH_S
        rows = self.probabilities[speaking] if speaking.any() else self.probabilities
        return rows.mean(axis=0)

    def as_records(self) -> list[dict[str, object]]:
        """One JSON-ready row per window: start_s, end_s, emotion, confidence, probabilities."""
        records = []
        for start, row in zip(self.start_s, self.probabilities, strict=True):
            prediction = Prediction(self.labels, row)
            records.append(
                {
                    "start_s": round(float(start), 3),
                    "end_s": round(float(start) + self.window_s, 3),
                    "emotion": prediction.emotion,
                    "confidence": round(prediction.confidence, 4),
                    "probabilities": {k: round(v, 4) for k, v in prediction.as_dict().items()},
                }
            )
        return records


@dataclass(frozen=True)
class Result:
    """Everything the app shows for one clip."""

    name: str
    audio: Audio
    prediction: Prediction
    timeline: Timeline | None = None
    caveats: list[str] = field(default_factory=list)
    model: str = ""  # the model that answered
    familiar: bool | None = None  # like the speech the model learnt from; None: not known


class Recognizer:
    """One loaded model, ready to be called on clips."""

    def __init__(self, info: ModelInfo, model: object) -> None:
        self.info = info
        self.labels = tuple(info.labels)
        self.config = info.features
        # Fitted on held-out corpora at training time (ser.evaluation); 1.0 for older models.
        self.temperature = float((info.metadata.get("calibration") or {}).get("temperature") or 1.0)
        # The training clips' summary (ser.familiarity); None for models saved without one.
        familiarity = info.metadata.get("familiarity")
        self.familiarity = Familiarity.from_dict(familiarity) if familiarity else None
        # A numpy network (ser.runtime) is called as it is; a Keras one through a traced graph.
        self._call = model if isinstance(model, NumpyModel) else self._traced(model)
        self._warm_up()

    @classmethod
    def load(cls, name_or_path: str | None = None, models_dir: Path | None = None) -> Recognizer:
        info = find_model(name_or_path, models_dir)
        return cls(info, load_network(info))

    @property
    def runs_in_numpy(self) -> bool:
        """Whether the network runs in numpy (``ser.runtime``), without TensorFlow."""
        return isinstance(self._call, NumpyModel)

    def _traced(self, model: Any) -> Callable[[np.ndarray], np.ndarray]:
        import tensorflow as tf

        shape = (
            (None, self.config.dim)
            if not self.config.is_sequence
            else (None, None, self.config.dim)
        )
        call = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec(shape=shape, dtype=tf.float32)],
        )
        return lambda x: call(x).numpy()

    def _warm_up(self) -> None:
        """Trace the graph now, so the first user does not pay for it."""
        silence = np.zeros(int(self.config.sample_rate_hz * WINDOW_S), dtype=np.float32)
        self.probabilities(feats.extract(silence, config=self.config)[np.newaxis])

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for a batch of feature arrays of equal shape."""
        raw = self._call(np.asarray(batch, dtype=np.float32))
        return (
            raw if self.temperature == 1.0 else with_temperature(raw, temperature=self.temperature)
        )

    def predict_samples(self, samples: np.ndarray) -> Prediction:
        """Probabilities for mono samples at the model's rate."""
        return self._predict_features(feats.extract(samples, config=self.config))

    def _predict_features(self, x: np.ndarray) -> Prediction:
        return Prediction(self.labels, self.probabilities(x[np.newaxis])[0])

    def timeline(
        self,
        samples: np.ndarray,
        *,
        window_s: float = WINDOW_S,
        hop_s: float = HOP_S,
        progress: Callable[[float], None] | None = None,
    ) -> Timeline:
        """Probabilities for sliding windows over the clip; the share of windows done goes to
        ``progress`` as they are.

        Each window is prepared (levelled, trimmed) and featurised on its own, exactly as that
        stretch uploaded alone would be, so a window's answer is the answer for that crop.
        """
        rate = self.config.sample_rate_hz
        width, hop = max(1, round(window_s * rate)), max(1, round(hop_s * rate))
        starts = np.arange(0, max(1, len(samples) - width + 1), hop)
        # Windows on all cores: feature extraction releases the GIL (openSMILE's too), and a
        # five-minute clip has about 300 windows.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            windows = pool.map(
                lambda s: feats.extract(samples[s : s + width], config=self.config), starts
            )
            rows = []
            for x in windows:
                rows.append(self._predict_features(x).probabilities)
                if progress is not None:
                    progress(len(rows) / len(starts))
        speech_s = np.array(
            [speech_duration_s(samples[s : s + width], sample_rate_hz=rate) for s in starts]
        )
        return Timeline(self.labels, starts / rate, window_s, np.stack(rows), speech_s)

    def recognise_audio(
        self,
        audio: Audio,
        *,
        name: str = "clip",
        progress: Callable[[float], None] | None = None,
    ) -> Result:
        """Overall prediction, the timeline for a long clip, and quality caveats; a long clip's
        share done goes to ``progress`` (the timeline's windows are most of its time)."""
        timeline, whole = None, None  # the whole clip's features: for the answer and familiarity
        if audio.duration_s > LONG_CLIP_S:
            with ThreadPoolExecutor(
                max_workers=1
            ) as beside:  # the whole clip, while the windows run
                pending = (
                    None
                    if self.familiarity is None
                    else beside.submit(feats.extract, audio.samples, config=self.config)
                )
                timeline = self.timeline(audio.samples, progress=progress)
                whole = None if pending is None else pending.result()
            prediction = Prediction(self.labels, timeline.overall())
        else:
            whole = feats.extract(audio.samples, config=self.config)
            prediction = self._predict_features(whole)
        caveats = assess_quality(audio, heard_band_hz=self.config.heard_band_hz)
        familiar = None if whole is None else self._is_familiar_features(whole)
        if familiar is False:
            caveats.append(self._unfamiliar())
        if prediction.confidence < LOW_CONFIDENCE:
            caveats.append(self._low_confidence(prediction.confidence))
        return Result(name, audio, prediction, timeline, caveats, self.info.name, familiar)

    def is_familiar(self, samples: np.ndarray) -> bool | None:
        """Whether the whole clip lies within the training clips' range (None: not known)."""
        return self._is_familiar_features(feats.extract(samples, config=self.config))

    def _is_familiar_features(self, x: np.ndarray) -> bool | None:
        return None if self.familiarity is None else not self.familiarity.is_unfamiliar(x)

    def _unfamiliar(self) -> str:
        """The caveat for an unfamiliar clip, with the two figures it is between."""
        card = self.info.card
        unseen = card.cross_corpus.best_summary if card and card.cross_corpus else None
        if unseen is None or card.accuracy is None:
            return f"{UNFAMILIAR}: the answer may be less reliable than its figures say."
        return (
            f"{UNFAMILIAR}: expect nearer its accuracy on corpora it never heard "
            f"({unseen.mean_accuracy:.0%}) than on new speakers of its own corpora "
            f"({card.accuracy:.0%})."
        )

    def _low_confidence(self, confidence: float) -> str:
        if self.temperature == 1.0:
            return f"Low confidence: the top emotion has only {confidence:.0%}; treat this result as a guess."
        return (
            f"Low confidence: the top emotion has only {confidence:.0%}. The probabilities are calibrated "
            f"on corpora the model never heard, where an answer this sure is right about {confidence:.0%} "
            "of the time: treat it as a guess."
        )

    def recognise(
        self,
        source: str | os.PathLike[str] | bytes,
        *,
        name: str | None = None,
        narrower: Narrower | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> Result:
        """Decode, validate and recognise one clip from a path or raw bytes (``progress``: as
        for ``recognise_audio``).

        A recording that lacks part of this model's band (made at a lower rate, or band-limited
        before it was saved) goes to ``narrower(the band it holds)`` instead, when that gives
        another model: this one would take the missing band for a cue.
        """
        label = name or (None if isinstance(source, bytes) else Path(source).name)
        audio = load_audio(source, sample_rate_hz=self.config.sample_rate_hz, name=label)
        band_hz = audio.band_held_hz if narrower else self.config.heard_band_hz
        other = None
        if narrower is not None and not fills_band(
            band_hz, heard_band_hz=self.config.heard_band_hz
        ):
            other = narrower(band_hz)
        if other is None or other.info.name == self.info.name:
            return self.recognise_audio(audio, name=label or "recording", progress=progress)
        result = (  # decoded once where both models read the same rate
            other.recognise_audio(audio, name=label or "recording", progress=progress)
            if other.config.sample_rate_hz == audio.sample_rate_hz
            else other.recognise(source, name=name, progress=progress)
        )
        result.caveats.insert(0, self._handed_to(other, audio, band_hz))
        return result

    def _handed_to(self, other: Recognizer, audio: Audio, band_hz: float) -> str:
        """Why ``other`` answered a recording holding frequencies up to ``band_hz``."""
        rate_hz = audio.source_sample_rate_hz
        held = (
            f"was made at {rate_hz / 1000:g} kHz"
            if not fills_band(rate_hz / 2, heard_band_hz=self.config.heard_band_hz)
            else f"holds almost nothing above {band_hz / 1000:.1f} kHz"
        )
        return (
            f"Answered by the model {other.info.name}, which hears up to "
            f"{other.config.heard_band_hz / 1000:g} kHz: this recording {held}, and "
            f"{self.info.name} learnt from higher frequencies."
        )

    def recognise_many(
        self, sources: Sequence[str | os.PathLike[str] | bytes], *, narrower: Narrower | None = None
    ) -> Iterator[tuple[str, Result | SERError]]:
        """Each file's result, or the error that stopped it; one bad file stops nothing.

        Raw bytes (a file piped in) are named "stdin".
        """
        for source in sources:
            name = STDIN_NAME if isinstance(source, bytes) else str(source)
            label = STDIN_NAME if isinstance(source, bytes) else Path(source).name
            try:
                yield name, self.recognise(source, name=label, narrower=narrower)
            except SERError as error:
                yield name, error


def narrower_for(
    recognizer: Recognizer,
    *,
    models: Callable[[], Sequence[ModelInfo]],
    load: Callable[[ModelInfo], Recognizer],
) -> Narrower:
    """For ``recognizer``: the best shipped model among ``models()`` whose band a recording
    fills, loaded by ``load``; None when there is none or it cannot load (``recognizer`` then
    answers, with its caveat about the missing band)."""

    def narrower(band_hz: float) -> Recognizer | None:
        info = model_for_band(models(), band_hz=band_hz, labels=recognizer.labels)
        if info is None:
            return None
        try:
            return load(info)
        except ModelError:  # a damaged file
            return None

    return narrower


def shipped_narrower(recognizer: Recognizer, models_dir: Path | None = None) -> Narrower:
    """``narrower_for`` the models folder, listed (and checksummed) once, each model loaded once."""
    listed = functools.cache(lambda: list_models(models_dir))
    loaded: dict[str, Recognizer] = {}

    def load(info: ModelInfo) -> Recognizer:
        if info.name not in loaded:
            loaded[info.name] = Recognizer(info, load_network(info))
        return loaded[info.name]

    return narrower_for(recognizer, models=listed, load=load)
