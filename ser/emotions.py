"""The closed set of emotion labels every corpus is mapped onto."""

from __future__ import annotations

from enum import Enum


class Emotion(str, Enum):
    """Canonical emotion labels, in the order models list them by default."""

    NEUTRAL = "neutral"
    CALM = "calm"
    HAPPY = "happy"
    SAD = "sad"
    ANGRY = "angry"
    FEARFUL = "fearful"
    DISGUST = "disgust"
    SURPRISED = "surprised"


ALL_EMOTIONS: tuple[str, ...] = tuple(e.value for e in Emotion)
