"""Speech emotion recognition: audio in, per-emotion probabilities out.

Stages, one module each: ``audio`` (decode, validate) -> ``features`` (MFCC) ->
``datasets`` (folder layouts) -> ``models`` (Keras networks) -> ``train``
(fit, speaker-independent evaluation) -> ``store`` (models folder) ->
``predict`` (clips to probabilities) -> ``plots`` (plotly figures).
Importing this package is cheap; TensorFlow loads only when a model does.
"""

__version__ = "0.1.0"
