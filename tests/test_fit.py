"""ser.fit's pieces that need no network: crops, masks, weights and the batch a fit uses.
Fits themselves, which train, are in tests/test_train.py (slow)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ser import fit
from ser.models import RECIPES, ModelType
from ser.options import TrainOptions


def test_clips_are_cropped_at_random_in_training_centred_in_test_or_padded() -> None:
    clips = [np.arange(10.0)[:, None].repeat(2, axis=1), np.arange(3.0)[:, None].repeat(2, axis=1)]
    rng = np.random.default_rng(0)

    centred = fit._fixed_length(clips, 4, rng=None)
    cropped = [fit._fixed_length(clips, 4, rng=rng)[0, :, 0] for _ in range(20)]

    assert centred.shape == (2, 4, 2) and centred.dtype == np.float32
    assert list(centred[0, :, 0]) == [3, 4, 5, 6]  # the middle of ten frames
    assert list(centred[1, :, 0]) == [0, 1, 2, 2]  # three frames, the last repeated
    assert {c[0] for c in cropped} > {3.0}  # other starts too, always a run of four
    assert all(list(c) == list(np.arange(c[0], c[0] + 4)) for c in cropped)
    assert fit._fixed_length([np.ones(5), np.zeros(5)], None, rng=None).shape == (2, 5)


def test_spec_augment_masks_with_the_fill_and_keeps_the_shape() -> None:
    batch = np.ones((8, 50, 20), dtype=np.float32)
    fill = np.full(20, -1.0, dtype=np.float32)

    masked = fit._spec_augment(batch.copy(), np.random.default_rng(1), fill)

    assert masked.shape == batch.shape
    assert set(np.unique(masked)) <= {1.0, -1.0}
    assert (masked == -1.0).any() and (masked == 1.0).mean() > 0.5


def test_each_corpus_then_each_class_carries_the_same_weight() -> None:
    corpora = ["tess"] * 6 + ["ravdess"] * 2  # one corpus three times the other's size
    clips = [SimpleNamespace(corpus=SimpleNamespace(value=c)) for c in corpora]
    data = SimpleNamespace(clips=clips)
    targets = np.array([0, 0, 0, 0, 0, 1, 0, 1])
    index = np.arange(8)
    recipe = SimpleNamespace(balance_corpora=True, class_weights=False)

    by_corpus = fit._sample_weights(data, index, targets, 2, recipe)
    both = fit._sample_weights(
        data, index, targets, 2, SimpleNamespace(**{**vars(recipe), "class_weights": True})
    )

    assert by_corpus[:6].sum() == by_corpus[6:].sum()
    assert by_corpus.sum() == 8  # as many as there are clips
    assert both[targets == 0].sum() == both[targets == 1].sum()
    unweighted = SimpleNamespace(balance_corpora=False, class_weights=False)
    assert list(fit._sample_weights(data, index, targets, 2, unweighted)) == [1.0] * 8


def test_one_device_fits_with_the_recipes_batch_and_learning_rate() -> None:
    options = TrainOptions(model_type=ModelType.MFCC_CNN)
    recipe = RECIPES[ModelType.MFCC_CNN]

    spread = fit.fit_scaling(options)

    assert spread.replicas == 1
    assert spread.global_batch_size == recipe.batch_size
    assert spread.learning_rate == recipe.learning_rate
    assert fit.fit_scaling(TrainOptions(batch_size=7)).global_batch_size == 7


def _softmax_on_standardised(dim: int, n_labels: int, train: np.ndarray):  # noqa: ANN202
    import keras

    from ser.models import _scaler

    inputs = keras.Input(shape=(dim,))
    outputs = keras.layers.Dense(n_labels, activation="softmax")(_scaler(train)(inputs))
    return keras.Model(inputs, outputs)


def test_the_exact_linear_fit_is_scikit_learns_logistic_regression() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 20)) * rng.uniform(0.1, 10, size=20) + rng.normal(size=20)
    targets = (x[:, 0] / x[:, 0].std() + rng.normal(size=300) > 0).astype(int) + (x[:, 1] > 0)
    weights = rng.uniform(0.5, 2.0, size=300)
    model = _softmax_on_standardised(20, 3, x)
    history = fit.fit_linear_exactly(
        model, x, np.eye(3)[targets], weights, inverse_penalty=0.01, iterations=500
    )
    scaled = StandardScaler().fit(x)
    reference = LogisticRegression(C=0.01, tol=1e-10, max_iter=5000).fit(
        scaled.transform(x), targets, sample_weight=weights
    )
    want = reference.predict_proba(scaled.transform(x))
    np.testing.assert_allclose(np.asarray(model(x.astype(np.float32))), want, atol=2e-3)
    assert history["loss"][-1] < history["loss"][0] and 0.5 < history["accuracy"][-1] <= 1


def test_the_exact_linear_fit_reports_each_step_and_stops_when_asked() -> None:
    from ser.errors import TrainingStopped

    rng = np.random.default_rng(1)
    x, targets = rng.normal(size=(100, 5)), rng.integers(0, 2, size=100)
    seen: list[int] = []

    def report(done: int, figures: dict[str, float]) -> None:
        seen.append(done)
        assert set(figures) == {"loss", "accuracy", "val_accuracy"}
        if done == 3:
            raise TrainingStopped("stop")

    model = _softmax_on_standardised(5, 2, x)
    with pytest.raises(TrainingStopped):
        fit.fit_linear_exactly(
            model,
            x,
            np.eye(2)[targets],
            np.ones(100),
            inverse_penalty=1.0,
            iterations=50,
            validation=(x[:10], np.eye(2)[targets[:10]]),
            report=report,
        )
    assert seen == [1, 2, 3]
