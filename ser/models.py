"""Model types, their training recipes, and the Keras networks that implement them.

Feature scaling lives inside each network (a ``Normalization`` layer adapted on
the training set, or per-utterance statistics), so a saved ``.keras`` file plus
its JSON metadata is everything prediction needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np

from .features import FeatureConfig, FeatureKind

if TYPE_CHECKING:
    import keras


class ModelType(str, Enum):
    """The closed set of networks this package can train."""

    MFCC_LSTM = "mfcc_lstm"  # the card's classic model: LSTM on the 40-dim mean MFCC
    CRNN = "crnn"  # the stronger model: conv + BiLSTM with attention pooling over frames

    @property
    def title(self) -> str:
        return _TITLES[self]


_TITLES = {
    ModelType.MFCC_LSTM: "Classic LSTM on mean MFCC",
    ModelType.CRNN: "CRNN on MFCC frames (stronger)",
}


@dataclass(frozen=True)
class Recipe:
    """How a model type is fed and trained; saved with every model it produces."""

    features: FeatureConfig
    epochs: int
    batch_size: int
    learning_rate: float
    crop_s: float | None = None  # sequence models train on fixed-length crops

    def crop_frames(self) -> int | None:
        if self.crop_s is None:
            return None
        return round(self.crop_s * self.features.frames_per_second)


RECIPES: dict[ModelType, Recipe] = {
    ModelType.MFCC_LSTM: Recipe(
        features=FeatureConfig(kind=FeatureKind.MEAN_MFCC),
        epochs=120,
        batch_size=32,
        learning_rate=1e-3,
    ),
    ModelType.CRNN: Recipe(
        features=FeatureConfig(kind=FeatureKind.MFCC_FRAMES),
        epochs=40,
        batch_size=32,
        learning_rate=1e-3,
        crop_s=3.0,
    ),
}


def build_model(
    model_type: ModelType, *, n_labels: int, train_features: np.ndarray
) -> keras.Model:
    """A compiled network for ``model_type``; ``train_features`` adapt its scaling."""
    builders = {ModelType.MFCC_LSTM: _build_mfcc_lstm, ModelType.CRNN: _build_crnn}
    return builders[model_type](n_labels=n_labels, train_features=train_features)


def _compile(model: keras.Model, *, learning_rate: float) -> keras.Model:
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _build_mfcc_lstm(*, n_labels: int, train_features: np.ndarray) -> keras.Model:
    import keras
    from keras import layers

    dim = train_features.shape[-1]
    scale = layers.Normalization(name="scale")
    scale.adapt(train_features)
    inputs = keras.Input(shape=(dim,), name="mean_mfcc")
    x = scale(inputs)
    x = layers.Reshape((1, dim))(x)  # one time step of 40 coefficients
    x = layers.LSTM(128)(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(n_labels, activation="softmax", name="emotion")(x)
    model = keras.Model(inputs, outputs, name="mfcc_lstm")
    return _compile(model, learning_rate=RECIPES[ModelType.MFCC_LSTM].learning_rate)


def _build_crnn(*, n_labels: int, train_features: np.ndarray) -> keras.Model:
    import keras
    from keras import layers

    dim = train_features.shape[-1]
    scale = layers.Normalization(axis=-1, name="scale")
    scale.adapt(train_features.reshape(-1, dim))
    inputs = keras.Input(shape=(None, dim), name="frames")
    x = scale(inputs)
    for filters in (64, 128):
        x = layers.Conv1D(filters, 5, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling1D(2, padding="same")(x)
    x = layers.Bidirectional(layers.LSTM(64, return_sequences=True))(x)
    pooled = layers.Concatenate()(
        [layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)]
    )
    x = layers.Dropout(0.4)(pooled)
    outputs = layers.Dense(n_labels, activation="softmax", name="emotion")(x)
    model = keras.Model(inputs, outputs, name="crnn")
    return _compile(model, learning_rate=RECIPES[ModelType.CRNN].learning_rate)
