"""One exception family for everything a person can get wrong or meet.

Every message is written for the person using the app or the command line:
it says what is wrong and, where it can, what to do instead. Callers show
``str(error)`` and never a traceback.
"""

from __future__ import annotations


class SERError(Exception):
    """Base of every error this package raises on purpose."""


class AudioError(SERError):
    """The clip cannot be used: unreadable, unsupported, empty, too short, silent..."""


class UnsupportedFormatError(AudioError):
    """The file is not audio, or is audio in a format or encoding that cannot be decoded."""


class EmptyAudioError(AudioError):
    """The file has no bytes, or its header declares no samples."""


class DamagedAudioError(AudioError):
    """The file is malformed, cut short beyond use, or holds NaN or infinite samples."""


class TooShortError(AudioError):
    """The clip is shorter than the minimum duration."""


class TooLongError(AudioError):
    """The clip is longer than the maximum duration."""


class SilentAudioError(AudioError):
    """The clip is digital silence or too quiet to judge."""


class DatasetError(SERError):
    """A dataset folder is missing, unreadable or holds nothing usable."""


class ModelError(SERError):
    """A model is missing, broken, inconsistent or has an invalid name."""


class TrainingError(SERError):
    """Training could not run or could not be saved."""


class TrainingStopped(TrainingError):
    """Training was stopped on request; nothing was saved."""
