"""Model types, their training recipes, and the Keras networks that implement them.

Feature scaling lives inside each network (a ``Normalization`` layer adapted on the
training set), so a saved ``.keras`` file plus its JSON metadata is everything
prediction needs. Only built-in layers are used, so models load with ``safe_mode=True``.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from .features import (
    FUNCTIONALS_DIM,
    STATISTICS_FIGURES,
    STATISTICS_SMOOTHING_FRAMES,
    FeatureConfig,
    FeatureKind,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    import keras


class ModelType(str, Enum):
    """The closed set of networks this package can train."""

    MFCC_LSTM = "mfcc_lstm"  # the card's classic model: LSTM on the 40-dim mean MFCC
    MFCC_CNN = "mfcc_cnn"  # 1-D CNN over MFCC frames, mean+max pooling
    LOGMEL_CNN = "logmel_cnn"  # 2-D CNN over the log-mel spectrogram
    LOGMEL_FUSION = "logmel_fusion"  # that CNN averaged with a band-statistics MLP
    LOGMEL_VOICE = "logmel_voice"  # the same, three MLPs also fed voice tracks and cepstra
    LOGMEL_VOICE_16K = "logmel_voice_16k"  # the same at 16 kHz: hears only 0-8 kHz
    EGEMAPS_LINEAR = "egemaps_linear"  # a linear classifier on openSMILE's eGeMAPS functionals
    COMPARE_LINEAR = "compare_linear"  # a linear classifier on openSMILE's ComParE functionals
    STATISTICS_LINEAR = "statistics_linear"  # a linear classifier on whole-clip band statistics
    STATISTICS_MLP = "statistics_mlp"  # three MLPs on those statistics, averaged; no CNN
    STATISTICS_BLEND = "statistics_blend"  # those MLPs blended with the linear classifier
    # a linear classifier on ComParE and the statistics side by side, blended with the MLPs
    COMPARE_BLEND = "compare_blend"
    COMPARE_BLEND_NARROW = "compare_blend_narrow"  # the same, hearing only 0-4 kHz: phone calls

    @property
    def title(self) -> str:
        return _DESCRIPTIONS[self][0]

    @property
    def caption(self) -> str:
        """A sentence for choosing it: how slow it is to train and what it reads."""
        return _DESCRIPTIONS[self][1]


# Each type's title and caption: the one table of what the types are, for every page.
_DESCRIPTIONS = {
    ModelType.MFCC_LSTM: (
        "Classic LSTM on mean MFCC",
        "Fast. An LSTM on one 40-number summary (mean MFCC) of each clip.",
    ),
    ModelType.MFCC_CNN: (
        "CNN on MFCC frames",
        "Slower, usually more accurate. A 1-D CNN over the MFCC frames of each clip.",
    ),
    ModelType.LOGMEL_CNN: (
        "2-D CNN on log-mel spectrogram",
        "Slow to train. A 2-D CNN over the log-mel spectrogram of each clip, levelled first so "
        "the microphone's gain does not sway it.",
    ),
    ModelType.LOGMEL_FUSION: (
        "Log-mel CNN + band-statistics MLP",
        "Slowest to train. The 2-D CNN, averaged with a small network on each band's "
        "statistics over the whole clip.",
    ),
    ModelType.LOGMEL_VOICE: (
        "Log-mel CNN + MLPs on band, cepstral and voice statistics",
        "Slowest to train, most accurate. As the one above, with three small networks that "
        "also read how pitch, voicing, loudness and timbre move through the clip.",
    ),
    ModelType.LOGMEL_VOICE_16K: (
        "Log-mel CNN + MLPs on band, cepstral and voice statistics, 0-8 kHz",
        "As the one above, hearing only up to 8 kHz: for recordings made at 16 kHz (many "
        "phones and corpora), which hold nothing higher.",
    ),
    ModelType.EGEMAPS_LINEAR: (
        "Linear classifier on eGeMAPS voice functionals",
        "Fast. A linear classifier on openSMILE's eGeMAPS summary of each clip's voice: "
        "pitch, loudness, timbre and their variation.",
    ),
    ModelType.COMPARE_LINEAR: (
        "Linear classifier on ComParE voice and spectral functionals",
        "Fast. A linear classifier on openSMILE's ComParE summary of each clip (6,373 measures "
        "of voice, loudness, spectrum and timbre): the most honest probabilities on corpora "
        "it never heard.",
    ),
    ModelType.STATISTICS_LINEAR: (
        "Linear classifier on band, cepstral and voice statistics, 0-8 kHz",
        "Fast. A linear classifier on how each mel band, cepstral coefficient and voice track "
        "(pitch, voicing, loudness) moves through the clip: no CNN, so less to learn a studio by.",
    ),
    ModelType.STATISTICS_MLP: (
        "MLPs on band, cepstral and voice statistics, 0-8 kHz",
        "Fast. Three small networks, averaged, on the statistics the linear classifier reads: "
        "the default's statistics heads without its CNN, every corpus weighted alike, each "
        "trained to hide which corpus a clip came from.",
    ),
    ModelType.STATISTICS_BLEND: (
        "MLPs blended with a linear classifier on band, cepstral and voice statistics, 0-8 kHz",
        "Fast. The three small networks above (60%) and the linear classifier (40%) on the same "
        "statistics: the networks are better on voices like the training ones, the linear "
        "classifier on recordings unlike them.",
    ),
    ModelType.COMPARE_BLEND: (
        "Linear classifier on ComParE and band statistics, blended with MLPs, 0-8 kHz",
        "Fast. One linear classifier on openSMILE's ComParE functionals and the band, cepstral "
        "and voice statistics side by side (80%), blended with the three small networks on the "
        "statistics (20%): the best measured on corpora it never heard.",
    ),
    ModelType.COMPARE_BLEND_NARROW: (
        "Linear classifier on ComParE and band statistics, blended with MLPs, 0-4 kHz",
        "Fast. As the one above, hearing only up to 4 kHz: for phone calls and other "
        "recordings that hold nothing higher. The default hands such recordings to it.",
    ),
}


@dataclass(frozen=True)
class Recipe:
    """How a model type is fed and trained; saved with every model it produces."""

    features: FeatureConfig
    epochs: int
    batch_size: int
    learning_rate: float
    class_weights: bool = True  # balance the classes (RAVDESS has half as many neutral clips)
    crop_s: float | None = None  # sequence models train on random crops of this length
    spec_augment: bool = False  # mask random time steps and feature bands in training crops
    statistics_heads: int = 0  # MLPs on whole-clip band statistics, averaged, then with the network
    head_cepstra: int = 0  # the heads also read statistics of this many cepstral coefficients
    head_smoothing_frames: int = (
        0  # ... and extremes of the columns' moving average over this many frames
    )
    head_shape_moments: bool = False  # ... and the columns' skewness and kurtosis
    # ... and the mean squared change of the columns' moving average: how fast a stretch of
    # speech moves, not one frame (needs head_smoothing_frames; docs/experiments.md)
    head_smooth_change: bool = False
    balance_corpora: bool = False  # weight clips so that every corpus counts alike in training
    network: bool = True  # False: no network on the frames, the statistics heads alone
    head_linear: bool = (
        False  # the heads are one softmax layer (an L2-penalised logistic regression)
    )
    linear_weight: float = 0.0  # MLP heads and also a linear one, whose probabilities weigh this
    # The linear head reads each column's extremes as distances from the column's clip mean:
    # measured in both protocols and not kept by the shipped recipes (docs/experiments.md).
    linear_relative_extremes: bool = False
    # The MLP heads learn against a corpus classifier on their last hidden layer, through a
    # gradient reversal of up to this strength (domain-adversarial training): they are pushed
    # towards what does not tell the training corpora apart. 0: off.
    head_corpus_adversary: float = 0.0
    # The MLP heads learn the emotion from mixup pairs of training clips (Zhang et al. 2018):
    # statistics and targets blended by a share drawn from Beta(this, this). 0: off; measured
    # and not kept by the shipped recipes (docs/experiments.md).
    head_mixup: float = 0.0
    # A linear model on whole-clip vectors fitted to its optimum, as a logistic regression with
    # this inverse L2 penalty (scikit-learn's C): full-batch L-BFGS, ``epochs`` its iterations
    # (each a pass over the training clips). Adam's epochs stopped far from that optimum there
    # (docs/experiments.md). None: trained by epochs of Adam.
    exact_linear_c: float | None = None

    def training_settings(self) -> dict[str, Any]:
        """The settings beyond features, epochs and batch size, which are saved on their own."""
        settings = asdict(self)
        for saved_elsewhere in ("features", "epochs", "batch_size"):
            del settings[saved_elsewhere]
        return settings

    def crop_frames(self) -> int | None:
        if self.crop_s is None:
            return None
        return round(self.crop_s * self.features.frames_per_second)


# The CNNs' shared recipe: random 3 s crops with masking, no class weights.
_CROPPED_CNN = Recipe(
    features=FeatureConfig(kind=FeatureKind.MFCC_FRAMES, trim_db=30.0),
    epochs=45,
    batch_size=32,
    learning_rate=1e-3,
    class_weights=False,
    crop_s=3.0,
    spec_augment=True,
)

# Settings chosen by speaker-independent measurement (RAVDESS 6-fold by actor); see README.
RECIPES: dict[ModelType, Recipe] = {
    ModelType.MFCC_LSTM: Recipe(
        features=FeatureConfig(kind=FeatureKind.MEAN_MFCC, trim_db=30.0),
        epochs=80,
        batch_size=32,
        learning_rate=1e-3,
        balance_corpora=True,
    ),
    ModelType.MFCC_CNN: _CROPPED_CNN,
    # 64 mel bands keep the harmonics (pitch) that 40 MFCCs smooth away; 2-D kernels see them.
    # Levelled first: otherwise the answer follows the microphone's gain.
    ModelType.LOGMEL_CNN: replace(
        _CROPPED_CNN,
        features=FeatureConfig(
            kind=FeatureKind.LOGMEL_FRAMES, n_mels=64, trim_db=30.0, level_dbfs=-20.0
        ),
    ),
}
# The two see the clip differently (3 s crops vs whole-clip statistics), so their errors differ
# and their average beats either alone.
RECIPES[ModelType.LOGMEL_FUSION] = replace(RECIPES[ModelType.LOGMEL_CNN], statistics_heads=1)
# Pitch, voicing, loudness and spectral-shape tracks ride beside the mel bands: the CNN sees
# only the bands, the head the statistics of both.
# Its heads also read statistics of 20 cepstral coefficients, smoothed extremes and shape
# moments, and three of them are averaged: each screened as a gain on folds 1, 3 and 5 (README).
RECIPES[ModelType.LOGMEL_VOICE] = replace(
    RECIPES[ModelType.LOGMEL_FUSION],
    features=replace(
        RECIPES[ModelType.LOGMEL_FUSION].features, kind=FeatureKind.LOGMEL_VOICE_FRAMES
    ),
    statistics_heads=3,
    head_cepstra=20,
    head_smoothing_frames=9,  # about 0.2 s
    head_shape_moments=True,
)

# The same at 16 kHz (64 ms windows, 24 ms hops), so it hears only 0-8 kHz. CREMA-D, EmoDB and
# many phones record at 16 kHz, and a model that learnt from the band above 8 kHz takes such a
# recording's empty band for a cue (held-out fold 1: 68% as recorded, 20% from a 16 kHz copy;
# python -m ser.bench channels). Recordings below 22.05 kHz are answered by this one.
RECIPES[ModelType.LOGMEL_VOICE_16K] = replace(
    RECIPES[ModelType.LOGMEL_VOICE],
    features=replace(
        RECIPES[ModelType.LOGMEL_VOICE].features, sample_rate_hz=16_000, n_fft=1024, hop_length=384
    ),
)

# Built to carry across corpora (leave-one-corpus-out, README): a small standard set of voice
# functionals, levelled, at 16 kHz (0-8 kHz), with every training corpus weighted alike.
RECIPES[ModelType.EGEMAPS_LINEAR] = Recipe(
    features=FeatureConfig(
        kind=FeatureKind.EGEMAPS, sample_rate_hz=16_000, trim_db=30.0, level_dbfs=-20.0
    ),
    epochs=40,
    batch_size=64,
    learning_rate=3e-3,
    balance_corpora=True,
)

# The same on the ComParE 2016 set (6,373 functionals), fitted as the logistic regression it
# was screened as (C = 0.001; docs/experiments.md).
RECIPES[ModelType.COMPARE_LINEAR] = replace(
    RECIPES[ModelType.EGEMAPS_LINEAR],
    features=replace(RECIPES[ModelType.EGEMAPS_LINEAR].features, kind=FeatureKind.COMPARE),
    epochs=300,
    exact_linear_c=1e-3,
)

# Built to carry across corpora: the 16 kHz model's whole-clip statistics (its CNN left out:
# in leave-one-corpus-out it learnt the training studios), read by one linear layer, with every
# training corpus weighted alike. Screened as an L2-penalised logistic regression (docs/experiments.md).
RECIPES[ModelType.STATISTICS_LINEAR] = replace(
    RECIPES[ModelType.LOGMEL_VOICE_16K],
    epochs=60,
    batch_size=64,
    learning_rate=3e-3,
    class_weights=True,
    crop_s=None,
    spec_augment=False,
    statistics_heads=1,
    balance_corpora=True,
    network=False,
    head_linear=True,
)

# The same statistics read by the 16 kHz model's three MLP heads, its CNN left out, each
# trained against a corpus classifier (screened and measured in docs/experiments.md).
RECIPES[ModelType.STATISTICS_MLP] = replace(
    RECIPES[ModelType.STATISTICS_LINEAR],
    statistics_heads=3,
    head_linear=False,
    head_corpus_adversary=0.3,
)

# Both, blended 0.6 / 0.4: screened with tools/screen_blend.py at weights 0-1 of the linear
# layer (docs/experiments.md); 0.4 kept RAVDESS 6-fold above 58% with most of the linear
# layer's gain on held-out corpora.
RECIPES[ModelType.STATISTICS_BLEND] = replace(RECIPES[ModelType.STATISTICS_MLP], linear_weight=0.4)

# ComParE and the statistics side by side, read by one exactly fitted linear layer (C = 0.003;
# the statistics' extremes relative to their clip means), its probabilities blended 0.8 / 0.2
# with the three MLP heads of statistics_mlp on the statistics alone: screened in both
# protocols against the blend above (docs/experiments.md).
RECIPES[ModelType.COMPARE_BLEND] = replace(
    RECIPES[ModelType.STATISTICS_MLP],
    features=replace(
        RECIPES[ModelType.STATISTICS_MLP].features, kind=FeatureKind.COMPARE_STATISTICS
    ),
    epochs=300,  # the linear layer's L-BFGS steps; the MLP heads train STATISTICS_HEAD_EPOCHS
    exact_linear_c=3e-3,
    linear_weight=0.8,
    linear_relative_extremes=True,
)

# The same, hearing only 0-4 kHz, for recordings that hold nothing higher (phone calls, 8 kHz
# files): the default scores RAVDESS fold 1 from an 8 kHz copy at 30% against 70% as recorded
# (python -m ser.bench channels), and a model that learnt from the band above 4 kHz takes its
# absence for a cue. Screened on band-limited copies of every clip (docs/experiments.md).
RECIPES[ModelType.COMPARE_BLEND_NARROW] = replace(
    RECIPES[ModelType.COMPARE_BLEND],
    features=replace(RECIPES[ModelType.COMPARE_BLEND].features, band_limit_hz=4_000),
)

STATISTICS_HEAD_EPOCHS = 80
STATISTICS_HEAD_BATCH = 64


def build_model(model_type: ModelType, *, n_labels: int, train_features: np.ndarray) -> keras.Model:
    """A compiled network for ``model_type``; ``train_features`` adapt its scaling."""
    logmel_cnn = functools.partial(_build_logmel_cnn, n_mels=RECIPES[model_type].features.n_mels)
    builders = {
        ModelType.MFCC_LSTM: _build_mfcc_lstm,
        ModelType.MFCC_CNN: _build_mfcc_cnn,
        ModelType.LOGMEL_CNN: logmel_cnn,
        ModelType.LOGMEL_FUSION: logmel_cnn,  # the head joins after training: see fuse()
        ModelType.LOGMEL_VOICE: logmel_cnn,
        ModelType.LOGMEL_VOICE_16K: logmel_cnn,
        ModelType.EGEMAPS_LINEAR: _build_egemaps_linear,
        ModelType.COMPARE_LINEAR: _build_compare_linear,
        ModelType.COMPARE_BLEND: build_compare_statistics_linear,
        ModelType.COMPARE_BLEND_NARROW: build_compare_statistics_linear,
    }
    model = builders[model_type](n_labels=n_labels, train_features=train_features)
    return _compile(model, learning_rate=RECIPES[model_type].learning_rate)


def _compile(model: keras.Model, *, learning_rate: float) -> keras.Model:
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _scaler(train_features: np.ndarray) -> keras.layers.Layer:
    """Per-coefficient standardisation, adapted on the training features."""
    from keras import layers

    scale = layers.Normalization(axis=-1, name="scale")
    scale.adapt(train_features.reshape(-1, train_features.shape[-1]))
    return scale


def _build_mfcc_lstm(*, n_labels: int, train_features: np.ndarray) -> keras.Model:
    import keras
    from keras import layers

    dim = train_features.shape[-1]
    inputs = keras.Input(shape=(dim,), name="mean_mfcc")
    x = _scaler(train_features)(inputs)
    x = layers.GaussianNoise(0.3)(x)  # training only: the strongest regulariser we measured
    x = layers.Reshape((1, dim))(x)  # one time step of 40 coefficients
    x = layers.LSTM(128)(x)
    x = layers.Dropout(0.4)(x)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(n_labels, activation="softmax", name="emotion")(x)
    return keras.Model(inputs, outputs, name="mfcc_lstm")


def _build_egemaps_linear(*, n_labels: int, train_features: np.ndarray) -> keras.Model:
    """Standardised functionals, then one softmax layer: across corpora a linear model held up
    better than MLPs, which learnt the training corpora's rooms and voices (README)."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(train_features.shape[-1],), name="egemaps")
    x = _scaler(train_features)(inputs)
    x = layers.GaussianNoise(0.3)(x)  # training only
    outputs = layers.Dense(
        n_labels,
        activation="softmax",
        kernel_regularizer=keras.regularizers.L2(1e-3),
        name="emotion",
    )(x)
    return keras.Model(inputs, outputs, name="egemaps_linear")


def _build_compare_linear(*, n_labels: int, train_features: np.ndarray) -> keras.Model:
    """Standardised ComParE functionals, then one softmax layer: a logistic regression, whose
    penalty the exact fit applies (``Recipe.exact_linear_c``)."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(train_features.shape[-1],), name="compare")
    outputs = layers.Dense(n_labels, activation="softmax", name="emotion")(
        _scaler(train_features)(inputs)
    )
    return keras.Model(inputs, outputs, name="compare_linear")


def _build_mfcc_cnn(*, n_labels: int, train_features: np.ndarray) -> keras.Model:
    import keras
    from keras import layers

    width, dropout = 32, 0.3
    l2 = keras.regularizers.L2(1e-4)
    inputs = keras.Input(shape=(None, train_features.shape[-1]), name="frames")  # any length
    x = _scaler(train_features)(inputs)
    for block, (filters, kernel) in enumerate([(width, 5), (2 * width, 5), (2 * width, 3)]):
        x = layers.Conv1D(filters, kernel, padding="same", use_bias=False, kernel_regularizer=l2)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        if block < 2:
            x = layers.MaxPooling1D(2, padding="same")(x)
        x = layers.SpatialDropout1D(dropout / 2)(x)
    x = layers.Concatenate()([layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)])
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(2 * width, activation="relu", kernel_regularizer=l2)(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_labels, activation="softmax", name="emotion", kernel_regularizer=l2)(x)
    return keras.Model(inputs, outputs, name="mfcc_cnn")


def _build_logmel_cnn(*, n_labels: int, train_features: np.ndarray, n_mels: int) -> keras.Model:
    """The CNN reads the first ``n_mels`` columns; any after them are left to the head."""
    import keras
    from keras import layers

    n_columns, dropout = train_features.shape[-1], 0.3
    l2 = keras.regularizers.L2(1e-4)
    inputs = keras.Input(shape=(None, n_columns), name="frames")  # any length
    x = _scaler(train_features)(inputs)
    if n_columns > n_mels:  # stock layers only (safe_mode): crop the columns via a transpose
        x = layers.Permute((2, 1))(x)
        x = layers.Cropping1D((0, n_columns - n_mels))(x)
        x = layers.Permute((2, 1))(x)
    x = layers.Reshape((-1, n_mels, 1))(x)  # an image: time x mel band x 1 channel
    for filters in (16, 32, 64, 64):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=l2)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2, padding="same")(x)
        x = layers.SpatialDropout2D(dropout / 3)(x)
    x = layers.Reshape((-1, x.shape[2] * x.shape[3]))(x)  # back to a sequence of frames
    x = layers.Concatenate()([layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)])
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(64, activation="relu", kernel_regularizer=l2)(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_labels, activation="softmax", name="emotion", kernel_regularizer=l2)(x)
    return keras.Model(inputs, outputs, name="logmel_cnn")


# --- the band-statistics head of LOGMEL_FUSION ----------------------------------------------


def band_statistics(
    frames: keras.KerasTensor,
    *,
    smoothing_frames: int = 0,
    shape_moments: bool = False,
    smooth_change: bool = False,
) -> keras.KerasTensor:
    """Per band over the clip: mean, variance, minimum, maximum and mean squared change.

    With ``smoothing_frames``, also the minimum and maximum of the bands' moving average over
    that many frames: extremes of a stretch of speech rather than of one frame. With
    ``shape_moments``, also each band's skewness and kurtosis; with ``smooth_change`` (and
    ``smoothing_frames``), last, the mean squared change of the moving average. Built from
    stock layers so the fused model stays loadable with ``safe_mode=True``.
    """
    from keras import layers

    average = layers.GlobalAveragePooling1D
    mean = average()(frames)
    variance = layers.Subtract()(
        [average()(layers.Multiply()([frames, frames])), layers.Multiply()([mean, mean])]
    )
    figures = [mean, variance, _minimum(frames), _maximum(frames), _change_power(frames)]
    smooth = None
    if smoothing_frames:
        smooth = layers.AveragePooling1D(smoothing_frames, strides=1, padding="same")(frames)
        figures += [_minimum(smooth), _maximum(smooth)]
    if shape_moments:  # of each band standardised over the clip
        z = layers.LayerNormalization(axis=1, center=False, scale=False, epsilon=1e-6)(frames)
        z_squared = layers.Multiply()([z, z])
        skewness = average()(layers.Multiply()([z_squared, z]))
        kurtosis = average()(layers.Multiply()([z_squared, z_squared]))
        figures += [skewness, kurtosis]
    if smooth_change and smooth is not None:
        figures.append(_change_power(smooth))
    return layers.Concatenate()(figures)


def _change_power(frames: keras.KerasTensor) -> keras.KerasTensor:
    """Each column's mean squared frame-to-frame change."""
    from keras import layers

    # Each frame twice, so even a one-frame clip has a frame-to-frame change (zero, not NaN);
    # this halves the figure for every clip alike, which the head's scaling absorbs.
    doubled = layers.UpSampling1D(2)(frames)
    change = layers.Subtract()(
        [layers.Cropping1D((1, 0))(doubled), layers.Cropping1D((0, 1))(doubled)]
    )
    return layers.GlobalAveragePooling1D()(layers.Multiply()([change, change]))


def relative_extremes_basis(
    n_columns: int,
    *,
    smoothing_frames: int = 0,
    shape_moments: bool = False,
    smooth_change: bool = False,
) -> np.ndarray:
    """(n, n) for ``band_statistics``' n figures: ``statistics @ basis`` holds each column's
    minimum and maximum (and smoothed ones) less its mean, every other figure as it was.

    Linear, so it changes nothing a model could learn; it changes what standardisation and an
    L2 penalty favour: a constant offset of a column (a microphone's gain or tilt) then moves
    only its mean.
    """
    names = ["mean", "variance", "minimum", "maximum", "change"]
    names += ["smooth minimum", "smooth maximum"] if smoothing_frames else []
    names += ["skewness", "kurtosis"] if shape_moments else []
    names += ["smooth change"] if smooth_change and smoothing_frames else []
    basis = np.eye(len(names) * n_columns, dtype=np.float32)
    columns = np.arange(n_columns)
    for k, name in enumerate(names):
        if name.endswith(("minimum", "maximum")):
            basis[columns, k * n_columns + columns] = -1.0  # less the mean (figure 0)
    return basis


def _maximum(frames: keras.KerasTensor) -> keras.KerasTensor:
    from keras import layers

    return layers.GlobalMaxPooling1D()(frames)


def _minimum(frames: keras.KerasTensor) -> keras.KerasTensor:
    from keras import layers

    return layers.Rescaling(-1.0)(layers.GlobalMaxPooling1D()(layers.Rescaling(-1.0)(frames)))


def statistics_extractor(
    n_bands: int,
    *,
    n_mels: int = 0,
    n_cepstra: int = 0,
    smoothing_frames: int = 0,
    shape_moments: bool = False,
    smooth_change: bool = False,
) -> keras.Model:
    """Frames (any length) to their band statistics (see ``band_statistics``); its only weights are fixed.

    With ``n_cepstra``, the frames' cepstral coefficients 1 … n_cepstra (a DCT of the first
    ``n_mels`` columns, the log-mel bands) join the columns summarised: the variance, minimum
    and maximum of a weighted sum of bands are not functions of the bands' own statistics.
    """
    import keras
    from keras import layers

    inputs = keras.Input(shape=(None, n_bands), name="frames")
    frames = inputs
    if n_cepstra:
        dct = layers.Dense(n_cepstra, use_bias=False, trainable=False, name="cepstra")
        cepstra = dct(inputs)
        dct.set_weights([cepstral_basis(n_bands, n_mels=n_mels, n_cepstra=n_cepstra)])
        frames = layers.Concatenate()([inputs, cepstra])
    statistics = band_statistics(
        frames,
        smoothing_frames=smoothing_frames,
        shape_moments=shape_moments,
        smooth_change=smooth_change,
    )
    return keras.Model(inputs, statistics, name="band_statistics")


def cepstral_basis(n_bands: int, *, n_mels: int, n_cepstra: int) -> np.ndarray:
    """(n_bands, n_cepstra): the DCT-II (ortho, as for MFCCs) of the first ``n_mels`` columns, from c1.

    c0, the frame's mean level, is left out (the loudness track follows it); the columns after
    the bands (the voice tracks) get zeros.
    """
    import scipy.fft

    basis = np.zeros((n_bands, n_cepstra), dtype=np.float32)
    basis[:n_mels] = scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=1)[
        :, 1 : n_cepstra + 1
    ]
    return basis


def build_compare_statistics_linear(*, n_labels: int, train_features: np.ndarray) -> keras.Model:
    """ComParE and the statistics (extremes relative to their clip means), standardised, then
    one softmax layer, whose penalty the exact fit applies."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(train_features.shape[-1],), name="compare_statistics")
    compare, statistics = _split_compare_statistics(inputs)
    basis = relative_extremes_basis(
        statistics.shape[-1] // STATISTICS_FIGURES,
        smoothing_frames=STATISTICS_SMOOTHING_FRAMES,
        shape_moments=True,
    )
    relative = layers.Dense(basis.shape[1], use_bias=False, trainable=False, name="relative")
    joined = layers.Concatenate(name="side_by_side")([compare, relative(statistics)])
    relative.set_weights([basis])
    n_compare = FUNCTIONALS_DIM[FeatureKind.COMPARE]
    scaled = np.concatenate(
        [train_features[:, :n_compare], train_features[:, n_compare:] @ basis], 1
    )
    outputs = layers.Dense(n_labels, activation="softmax", name="emotion")(_scaler(scaled)(joined))
    return keras.Model(inputs, outputs, name="compare_statistics_linear")


def _split_compare_statistics(
    inputs: keras.KerasTensor,
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """A ``COMPARE_STATISTICS`` vector's two parts, by stock layers (``safe_mode`` loads them)."""
    from keras import layers

    n_compare = FUNCTIONALS_DIM[FeatureKind.COMPARE]
    n_statistics = inputs.shape[-1] - n_compare
    column = layers.Reshape((inputs.shape[-1], 1))(inputs)
    compare = layers.Cropping1D((0, n_statistics))(column)
    statistics = layers.Cropping1D((n_compare, 0))(column)
    return layers.Flatten()(compare), layers.Flatten()(statistics)


def compare_statistics_model(
    linear: keras.Model, heads: Sequence[keras.Model], *, linear_weight: float
) -> keras.Model:
    """``COMPARE_STATISTICS`` vectors in, probabilities out: the linear model's, blended at
    ``linear_weight`` with the average of the MLP heads that read the statistics alone."""
    import keras

    inputs = keras.Input(shape=linear.inputs[0].shape[1:], name="compare_statistics")
    _, statistics = _split_compare_statistics(inputs)
    outputs = _blend(heads, statistics, linear(inputs), linear_weight=linear_weight)
    return _compile(keras.Model(inputs, outputs, name="compare_blend"), learning_rate=1e-3)


def build_statistics_head(
    *, n_labels: int, train_statistics: np.ndarray, name: str = "statistics_head"
) -> keras.Model:
    """A compiled MLP from band statistics to emotion probabilities."""
    import keras
    from keras import layers

    inputs, hidden = _statistics_hidden(train_statistics)
    outputs = layers.Dense(n_labels, activation="softmax")(hidden)
    return _compile(keras.Model(inputs, outputs, name=name), learning_rate=1e-3)


def _statistics_hidden(
    train_statistics: np.ndarray,
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The MLP heads' input and last hidden layer."""
    import keras
    from keras import layers

    l2 = keras.regularizers.L2(1e-4)
    inputs = keras.Input(shape=(train_statistics.shape[-1],), name="statistics")
    x = _scaler(train_statistics)(inputs)
    x = layers.GaussianNoise(0.3)(x)
    x = layers.Dropout(0.2)(x)
    for width in (256, 128):
        x = layers.Dense(width, activation="relu", kernel_regularizer=l2)(x)
        x = layers.Dropout(0.4)(x)
    return inputs, x


def build_adversarial_statistics_head(
    *,
    n_labels: int,
    n_corpora: int,
    train_statistics: np.ndarray,
    name: str = "statistics_head",
    mixup: bool = False,
) -> tuple[keras.Model, keras.Model, keras.Variable]:
    """An MLP head as ``build_statistics_head``'s, and the compiled two-output model that trains
    it against a corpus classifier (domain-adversarial training, Ganin et al. 2016).

    The corpus classifier learns to tell the training corpora apart from the head's last hidden
    layer; the gradient it sends back is reversed and scaled by the returned variable, so the
    head's layers learn to hide the corpus. Fit the two-output model with targets
    ``[emotions, corpora]``; keep the head (stock layers only), which shares its weights. With
    ``mixup`` the trainer takes two inputs, ``[clips, mixed clips]``: the emotion is learnt
    from the mixed ones (their targets mixed alike), the corpus from the clips as they are.
    """
    import keras
    from keras import layers

    inputs, hidden = _statistics_hidden(train_statistics)
    to_emotion = layers.Dense(n_labels, activation="softmax", name="emotion")
    emotion = to_emotion(hidden)
    head = keras.Model(inputs, emotion, name=name)
    reversal = _gradient_reversal(name="reversal")
    corpus = layers.Dense(64, activation="relu")(reversal(hidden))
    corpus = layers.Dense(n_corpora, activation="softmax", name="corpus")(corpus)
    trainer_inputs = inputs
    if mixup:  # the same layers read the mixed clips for the emotion
        mixed = keras.Input(shape=(train_statistics.shape[-1],), name="mixed")
        emotion = to_emotion(keras.Model(inputs, hidden)(mixed))
        trainer_inputs = [inputs, mixed]
    trainer = keras.Model(trainer_inputs, [emotion, corpus], name=f"{name}_adversarial")
    trainer.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss=["categorical_crossentropy", "categorical_crossentropy"],
        metrics=[["accuracy"], []],
    )
    return trainer, head, reversal.strength


def _gradient_reversal(*, name: str) -> keras.layers.Layer:
    """Identity forwards; backwards, the gradient times ``-layer.strength``. In training graphs
    only: never part of a saved model, so ``safe_mode`` loading needs no registration for it."""
    import keras

    class GradientReversal(keras.layers.Layer):
        def __init__(self) -> None:
            super().__init__(name=name)
            self.strength = keras.Variable(0.0, trainable=False, name="strength")

        def call(self, x: keras.KerasTensor) -> keras.KerasTensor:
            strength = self.strength

            @keras.ops.custom_gradient
            def reverse(x: keras.KerasTensor):  # noqa: ANN202
                def gradient(*args: keras.KerasTensor, upstream=None):  # noqa: ANN001, ANN202
                    upstream = args[0] if upstream is None else upstream
                    return -keras.ops.convert_to_tensor(strength) * upstream

                return keras.ops.multiply(x, 1.0), gradient

            return reverse(x)

        def compute_output_shape(self, input_shape: tuple) -> tuple:
            return input_shape

    return GradientReversal()


LINEAR_HEAD_L2 = 3e-2  # about a logistic regression's C = 0.003 on a few thousand clips


def build_linear_head(
    *,
    n_labels: int,
    train_statistics: np.ndarray,
    learning_rate: float,
    name: str = "statistics_head",
    basis: np.ndarray | None = None,
) -> keras.Model:
    """A compiled softmax layer on standardised statistics: an L2-penalised logistic regression.

    With ``basis``, the statistics are first mapped by it (a fixed layer; see
    ``relative_extremes_basis``).
    """
    import keras
    from keras import layers

    inputs = keras.Input(shape=(train_statistics.shape[-1],), name="statistics")
    x = inputs
    if basis is not None:
        mapped = layers.Dense(basis.shape[1], use_bias=False, trainable=False, name="relative")
        x = mapped(x)
        mapped.set_weights([basis])
        train_statistics = train_statistics @ basis
    x = _scaler(train_statistics)(x)
    outputs = layers.Dense(
        n_labels, activation="softmax", kernel_regularizer=keras.regularizers.L2(LINEAR_HEAD_L2)
    )(x)
    return _compile(keras.Model(inputs, outputs, name=name), learning_rate=learning_rate)


def statistics_model(
    extractor: keras.Model,
    heads: Sequence[keras.Model],
    *,
    linear: keras.Model | None = None,
    linear_weight: float = 0.0,
) -> keras.Model:
    """Frames in, probabilities out: the statistics and the heads that read them (averaged),
    blended with a ``linear`` head's probabilities at ``linear_weight``."""
    import keras

    inputs = keras.Input(shape=extractor.inputs[0].shape[1:], name="frames")
    statistics = extractor(inputs)
    linear_out = None if linear is None else linear(statistics)
    outputs = _blend(heads, statistics, linear_out, linear_weight=linear_weight)
    return _compile(keras.Model(inputs, outputs, name="statistics_model"), learning_rate=1e-3)


def _blend(
    heads: Sequence[keras.Model],
    statistics: keras.KerasTensor,
    linear_out: keras.KerasTensor | None,
    *,
    linear_weight: float,
) -> keras.KerasTensor:
    """The heads' average on ``statistics``, blended with ``linear_out`` at ``linear_weight``."""
    from keras import layers

    outputs = [head(statistics) for head in heads]
    average = layers.Average(name="heads_average")(outputs) if len(outputs) > 1 else outputs[0]
    if linear_out is None:
        return average
    weighted = [
        layers.Rescaling(1.0 - linear_weight)(average),
        layers.Rescaling(linear_weight)(linear_out),
    ]
    return layers.Add(name="emotion")(weighted)


def fuse(cnn: keras.Model, extractor: keras.Model, heads: Sequence[keras.Model]) -> keras.Model:
    """One model whose output is the plain average of the CNN's and the heads' probabilities.

    The heads are averaged first, so together they weigh as much as the CNN.
    """
    import keras
    from keras import layers

    inputs = keras.Input(shape=cnn.inputs[0].shape[1:], name="frames")
    statistics = extractor(inputs)
    heads_out = [head(statistics) for head in heads]
    heads_mean = layers.Average(name="heads_average")(heads_out) if len(heads) > 1 else heads_out[0]
    average = layers.Average(name="emotion")([cnn(inputs), heads_mean])
    return _compile(keras.Model(inputs, average, name="logmel_fusion"), learning_rate=1e-3)


def forget_training_state(model: keras.Model) -> keras.Model:
    """``model``, done training, and its sub-models (a fused model's parts) drop their optimizers.

    Else their Adam moments are saved with the model: up to two thirds of the file, never read
    by prediction. (A ``clone_model`` copy would not do: it is compiled again.)
    """
    import keras

    for part in (model, *(layer for layer in model.layers if isinstance(layer, keras.Model))):
        part.optimizer = None
        part.compiled = False
    return model
