"""The closed set of emotion labels every corpus is mapped onto, and how each one looks."""

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

# The one table of how an emotion is shown: its emoji in headlines and its colour in every chart.
_LOOKS: dict[Emotion, tuple[str, str]] = {
    Emotion.NEUTRAL: ("😐", "#9e9e9e"),
    Emotion.CALM: ("😌", "#4db6ac"),
    Emotion.HAPPY: ("😄", "#fbc02d"),
    Emotion.SAD: ("😢", "#1e88e5"),
    Emotion.ANGRY: ("😠", "#e53935"),
    Emotion.FEARFUL: ("😨", "#8e24aa"),
    Emotion.DISGUST: ("🤢", "#6d8b3a"),
    Emotion.SURPRISED: ("😲", "#fb8c00"),
}
EMOJI: dict[str, str] = {e.value: emoji for e, (emoji, _) in _LOOKS.items()}
COLOURS: dict[str, str] = {e.value: colour for e, (_, colour) in _LOOKS.items()}
SPEECH_EMOJI = "🗣️"  # for a label outside the table (a model trained on other names)
