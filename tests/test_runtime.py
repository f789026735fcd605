"""ser.runtime: the numpy inference of stock-layer models gives Keras's probabilities."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ser import features as feats
from ser import runtime, store
from ser.predict import Recognizer
from tests.signals import speech_like

ROOT = Path(__file__).resolve().parents[1]


def _frames_of_clips(config: feats.FeatureConfig) -> list[np.ndarray]:
    """Real feature frames of speech-like clips from 0.3 s to 6 s, and a one-frame input."""
    clips = [
        speech_like(duration_s=s, sample_rate_hz=config.sample_rate_hz, seed=i)
        for i, s in enumerate((0.3, 1.0, 2.5, 6.0))
    ]
    frames = [feats.extract(c, config=config) for c in clips]
    return [*frames, frames[0][:1]]


def _runnable_shipped() -> list[store.ModelInfo]:
    infos = []
    for info in store.list_models(ROOT / "models"):
        try:
            runtime.load(info.keras_path)
        except runtime.UnsupportedModel:
            continue
        infos.append(info)
    return infos


def test_the_default_model_runs_without_tensorflow() -> None:
    """The app's first answer counts on it: TensorFlow takes seconds to import."""
    info = store.default_model(store.list_models(ROOT / "models"))
    assert info is not None
    network = store.load_network(info)
    assert isinstance(network, runtime.NumpyModel)
    probabilities = network(_frames_of_clips(info.features)[1][np.newaxis])
    assert probabilities.shape == (1, len(info.labels))
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def test_an_unknown_layer_is_refused_not_run(tmp_path: Path) -> None:
    config = {
        "class_name": "Functional",
        "config": {
            "layers": [
                {"class_name": "InputLayer", "name": "x", "config": {"batch_shape": [None, 4]}},
                {
                    "class_name": "Lambda",
                    "name": "code",
                    "config": {"function": "__import__('os').system('touch pwned')"},
                    "inbound_nodes": [{"args": [{"config": {"keras_history": ["x", 0, 0]}}]}],
                },
            ],
            "input_layers": ["x", 0, 0],
            "output_layers": ["code", 0, 0],
        },
    }
    import h5py

    with h5py.File(tmp_path / "empty.h5", "w"):
        pass
    path = tmp_path / "evil.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.write(tmp_path / "empty.h5", "model.weights.h5")
    with pytest.raises(runtime.UnsupportedModel, match="Lambda"):
        runtime.load(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
@pytest.mark.parametrize("info", _runnable_shipped(), ids=lambda i: i.name)
def test_shipped_models_give_the_probabilities_keras_gives(info: store.ModelInfo) -> None:
    network, keras_model = runtime.load(info.keras_path), store.load_keras(info)
    inputs = (
        _frames_of_clips(info.features)
        if info.features.is_sequence
        else [np.random.default_rng(0).normal(size=(5, info.features.dim)).astype(np.float32)]
    )
    for x in inputs:
        batch = x[np.newaxis] if info.features.is_sequence else x
        expected = np.asarray(keras_model(batch, training=False))
        # Both sum in float32, in different orders (oneDNN's, numpy's), and a band's variance
        # (the mean square less the squared mean) magnifies that: up to 1.2e-4 measured on a
        # shipped model. A layer read wrongly moves probabilities by far more.
        np.testing.assert_allclose(network(batch), expected, atol=3e-4)


@pytest.mark.slow
def test_a_fresh_statistics_model_matches_keras_at_every_length(tmp_path: Path) -> None:
    from ser import models

    rng = np.random.default_rng(1)
    statistics = rng.normal(size=(40, 10 * 10 + 3 * 10)).astype(np.float32)
    extractor = models.statistics_extractor(
        10, n_mels=8, n_cepstra=3, smoothing_frames=5, shape_moments=True, smooth_change=True
    )
    heads = [models.build_statistics_head(n_labels=4, train_statistics=statistics)]
    linear = models.build_linear_head(
        n_labels=4, train_statistics=statistics, learning_rate=1e-3, name="linear_head"
    )
    model = models.statistics_model(extractor, heads, linear=linear, linear_weight=0.3)
    model.save(tmp_path / "fresh.keras")
    network = runtime.load(tmp_path / "fresh.keras")
    for n_frames in (1, 2, 4, 5, 9, 33):
        x = rng.normal(size=(2, n_frames, 10)).astype(np.float32) * 3
        np.testing.assert_allclose(network(x), np.asarray(model(x, training=False)), atol=1e-5)


@pytest.mark.slow
def test_models_it_cannot_run_are_loaded_with_keras(tiny_models_dir: Path) -> None:
    import keras

    info = store.find_model("tiny-classic", tiny_models_dir)  # an LSTM
    with pytest.raises(runtime.UnsupportedModel):
        runtime.load(info.keras_path)
    assert isinstance(store.load_network(info), keras.Model)
    recognizer = Recognizer.load("tiny-classic", tiny_models_dir)
    assert not recognizer.runs_in_numpy
    assert recognizer.probabilities(np.zeros((1, info.features.dim), np.float32)).shape == (
        1,
        len(info.labels),
    )


@pytest.mark.slow
def test_predict_answers_with_the_default_model_without_importing_tensorflow(
    tmp_path: Path,
) -> None:
    from tests.signals import write_audio

    clip = write_audio(
        tmp_path / "clip.wav",
        speech_like(duration_s=2.0, sample_rate_hz=16_000),
        sample_rate_hz=16_000,
    )
    code = (
        "import sys; from ser.predict import Recognizer; "
        f"r = Recognizer.load(); assert r.runs_in_numpy; "
        f"print(r.recognise({str(clip)!r}).prediction.emotion); "
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
