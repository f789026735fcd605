"""Speech emotion recognition: audio in, per-emotion probabilities out.

Stages, one module each: ``audio`` (decode, validate) -> ``features`` (MFCC) ->
``datasets`` (folder layouts) -> ``models`` (Keras networks) -> ``train``
(fit, speaker-independent evaluation) -> ``store`` (models folder) ->
``predict`` (clips to probabilities) -> ``plots`` (plotly figures).
Importing this package is cheap; TensorFlow loads only when a model does.
"""

import ctypes
import importlib.util
from pathlib import Path


def _load_opensmile_library() -> None:
    """Load openSMILE's shared library (the eGeMAPS features) before TensorFlow can load.

    Loaded after TensorFlow, its first extraction aborts the process ("malloc(): invalid
    size"). Only the library is loaded, not the ``opensmile`` package, whose imports (pandas
    among them) take half a second that most uses never need; the package later finds the
    library already loaded. Every TensorFlow import in the package, the app and the tests
    comes after this one (tested in tests/test_features.py).
    """
    spec = importlib.util.find_spec("opensmile")  # finds the package without importing it
    if spec is None or spec.origin is None:
        return
    # libSMILEapi.so on Linux, libSMILEapi.dylib on macOS, SMILEapi.dll on Windows
    for library in sorted((Path(spec.origin).parent / "core" / "bin").glob("*/*SMILEapi.*")):
        try:
            ctypes.CDLL(str(library))
        except OSError:  # another platform's build: the package reports it when used
            continue


_load_opensmile_library()

__version__ = "0.1.0"
