"""Keep Streamlit from clearing Keras's state while a run trains in the background."""

from __future__ import annotations

import functools
from typing import Any

from ser.jobs import training_threads_alive


def keep_keras_state_while_training() -> None:
    """Make Streamlit's ``keras.backend.clear_session()`` wait while a run trains.

    After every script run, fragment reruns included, Streamlit calls
    ``keras.backend.clear_session()`` (``_clean_problem_modules`` in
    ``streamlit/runtime/scriptrunner/script_runner.py``). That replaces Keras's global state
    for every thread and empties TensorFlow's kernel cache, so a network being built in the
    training thread gets duplicate layer names ("The name "dropout" is used 2 times in the
    model") and training crawls while kernels are rebuilt every second. While a training
    thread is alive the call is skipped; otherwise it runs as before.
    """
    import keras

    backend = keras.backend
    original = backend.clear_session
    if getattr(original, "_ser_training_guard", False):
        return

    @functools.wraps(original)
    def clear_session(*args: Any, **kwargs: Any) -> Any:
        if training_threads_alive():
            return None
        return original(*args, **kwargs)

    clear_session._ser_training_guard = True  # type: ignore[attr-defined]
    backend.clear_session = clear_session
