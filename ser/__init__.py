"""Speech emotion recognition: audio in, per-emotion probabilities out.

Stages, one module each: ``audio`` (decode, validate) -> ``features`` (MFCC) ->
``datasets`` (folder layouts) -> ``models`` (Keras networks) -> ``train``
(fit, speaker-independent evaluation) -> ``store`` (models folder) ->
``predict`` (clips to probabilities) -> ``plots`` (plotly figures).
Importing this package is cheap; TensorFlow loads only when a model does.
"""

import contextlib

# openSMILE (the eGeMAPS features) must be loaded before TensorFlow: loaded after it, its first
# extraction aborts the process ("malloc(): invalid size"). Every TensorFlow import in the
# package, the app and the tests comes after this one (tested in tests/test_features.py).
with contextlib.suppress(ImportError):
    import opensmile.core.lib  # noqa: F401

__version__ = "0.1.0"
