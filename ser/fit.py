"""Fitting one network (and a fused model's statistics heads) on a split's training side:
crops, masks, balanced weights, epochs reported and a stop honoured between batches."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from .distribute import Backup, Scaling, backup_for, fit_network, scaling
from .errors import TrainingStopped
from .features import FUNCTIONALS_DIM, STATISTICS_FIGURES, FeatureKind
from .models import (
    STATISTICS_HEAD_BATCH,
    STATISTICS_HEAD_EPOCHS,
    Recipe,
    build_adversarial_statistics_head,
    build_compare_statistics_linear,
    build_linear_head,
    build_model,
    build_statistics_head,
    compare_statistics_model,
    forget_training_state,
    fuse,
    relative_extremes_basis,
    statistics_extractor,
    statistics_model,
)
from .options import HEAD_STAGE, Progress, ProgressFn, TrainOptions
from .scores import _outputs_whole

if TYPE_CHECKING:
    import keras

    from .prepare import Prepared


def _fixed_length(
    features: Sequence[np.ndarray], frames: int | None, *, rng: np.random.Generator | None
) -> np.ndarray:
    """Stack clips; sequence clips get a random (training) or centred crop, or edge padding."""
    if frames is None:
        return np.stack(features).astype(np.float32)
    out = []
    for f in features:
        spare = len(f) - frames
        if spare >= 0:
            start = int(rng.integers(0, spare + 1)) if rng is not None else spare // 2
            out.append(f[start : start + frames])
        else:
            out.append(np.pad(f, ((0, -spare), (0, 0)), mode="edge"))
    return np.stack(out).astype(np.float32)


def _spec_augment(batch: np.ndarray, rng: np.random.Generator, fill: np.ndarray) -> np.ndarray:
    """Two time masks (up to 15 frames) and two coefficient masks (up to 5) per crop."""
    _, n_frames, n_coefficients = batch.shape
    for crop in batch:
        for _ in range(2):
            width = int(rng.integers(0, 16))
            start = int(rng.integers(0, max(1, n_frames - width + 1)))
            crop[start : start + width] = fill
            width = int(rng.integers(0, 6))
            start = int(rng.integers(0, max(1, n_coefficients - width + 1)))
            crop[:, start : start + width] = fill[start : start + width]
    return batch


def _training_set(data: Prepared, index: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    features = [data.features[i] for i in index]
    targets = [data.targets[index]]
    for variant in data.augmented.values():
        features += [variant[i] for i in index]
        targets.append(data.targets[index])
    return features, np.concatenate(targets)


def _sample_weights(
    data: Prepared, train_index: np.ndarray, targets: np.ndarray, n_labels: int, recipe: Recipe
) -> np.ndarray:
    """Per training clip (augmented copies after the originals): corpora, then classes, balanced.

    With ``balance_corpora`` every corpus carries the same total weight: TESS's two speakers
    would otherwise outweigh the 65 of ASED. Class weights are then taken over those weights.
    """
    weights = np.ones(len(targets))
    if recipe.balance_corpora:
        corpus = _training_corpora(data, train_index, len(targets))
        names, inverse, counts = np.unique(corpus, return_inverse=True, return_counts=True)
        weights = len(corpus) / (len(names) * counts[inverse])
    if recipe.class_weights:
        per_class = np.bincount(targets, weights=weights, minlength=n_labels)
        weights = weights * (weights.sum() / (n_labels * np.maximum(per_class, 1e-9)))[targets]
    return weights.astype(np.float32)


def _training_corpora(data: Prepared, train_index: np.ndarray, n_rows: int) -> np.ndarray:
    """Each training row's corpus (augmented copies after the originals, as ``_training_set``)."""
    corpus = np.array([data.clips[i].corpus.value for i in train_index])
    return np.tile(corpus, n_rows // max(1, len(train_index)))


def _batches(
    features: list[np.ndarray], y: np.ndarray, weights: np.ndarray, recipe: Recipe, *, seed: int
) -> keras.utils.PyDataset:
    """Shuffled batches, re-cropped (and masked) afresh every epoch for sequence models."""
    rng = np.random.default_rng(seed)
    fill = np.concatenate(features[:: max(1, len(features) // 500)]).mean(axis=0).astype(np.float32)
    crop, size = recipe.crop_frames(), recipe.batch_size

    def batch(index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = _fixed_length([features[j] for j in index], crop, rng=rng)
        if recipe.spec_augment and x.ndim == 3:
            x = _spec_augment(x, rng, fill)
        return x, y[index], weights[index]

    return _shuffled_batches(len(features), size, rng, batch)


def _shuffled_batches(
    n_rows: int,
    batch_size: int,
    rng: np.random.Generator,
    batch: Callable[[np.ndarray], tuple],
) -> keras.utils.PyDataset:
    """Batches of ``batch(rows)`` over the rows in an order drawn afresh every epoch."""
    import keras

    class Shuffled(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.order = rng.permutation(n_rows)

        def __len__(self) -> int:
            return -(-n_rows // batch_size)

        def __getitem__(self, i: int) -> tuple:
            return batch(self.order[i * batch_size : (i + 1) * batch_size])

        def on_epoch_end(self) -> None:
            self.order = rng.permutation(n_rows)

    return Shuffled()


def fit(
    data: Prepared,
    train_index: np.ndarray,
    options: TrainOptions,
    *,
    test_index: np.ndarray | None = None,
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
    stage: str = "training",
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Train one network on ``train_index``; per-epoch figures go to ``progress``.

    Fixed epochs, no early stopping: the held-out side is watched, never used to choose. The
    model returned is for prediction: it carries no optimizer state.
    """
    import keras

    keras.utils.set_random_seed(options.seed)
    recipe = options.recipe
    epochs = options.epochs or recipe.epochs
    spread = fit_scaling(options)
    recipe = replace(recipe, batch_size=spread.global_batch_size)
    features, targets = _training_set(data, train_index)
    n_labels = len(data.labels)
    y = keras.utils.to_categorical(targets, n_labels)
    weights = _sample_weights(data, train_index, targets, n_labels, recipe)
    validation = None
    if test_index is not None and len(test_index):
        held_out = [data.features[i] for i in test_index]
        x_val = _fixed_length(held_out, recipe.crop_frames(), rng=None)
        validation = (x_val, keras.utils.to_categorical(data.targets[test_index], n_labels))
    if recipe.features.kind is FeatureKind.COMPARE_STATISTICS:
        return _fit_compare_blend(
            features,
            y,
            weights,
            recipe=replace(recipe, epochs=epochs),
            validation=validation,
            progress=progress,
            stop=stop,
            stage=stage,
            corpora=_training_corpora(data, train_index, len(targets)),
        )
    if not recipe.network:  # the statistics head alone, on whole clips
        extractor, heads, figures = _train_statistics_heads(
            features,
            y,
            weights,
            recipe=replace(recipe, epochs=epochs),
            progress=progress,
            stop=stop,
            stage=stage,
            corpora=_training_corpora(data, train_index, len(targets)),
        )
        linear = None
        if recipe.linear_weight:
            linear_recipe = replace(recipe, statistics_heads=1, head_linear=True, epochs=epochs)
            _, (linear,), _ = _train_statistics_heads(
                features,
                y,
                weights,
                recipe=linear_recipe,
                progress=progress,
                stop=stop,
                stage=stage,
                name="linear_head",
            )
        model = statistics_model(
            extractor, heads, linear=linear, linear_weight=recipe.linear_weight
        )
        return forget_training_state(model), figures
    sample = _fixed_length(features, recipe.crop_frames(), rng=np.random.default_rng(options.seed))
    if recipe.exact_linear_c is not None:
        model = build_model(options.model_type, n_labels=n_labels, train_features=sample)
        history = fit_linear_exactly(
            model,
            sample,
            y,
            weights,
            inverse_penalty=recipe.exact_linear_c,
            iterations=epochs,
            validation=validation,
            report=_iteration_reporter(stage, epochs, progress, stop),
        )
        return forget_training_state(model), history
    backup = _fit_backup(features, y, options, stage)
    if backup is not None and (resumed := backup.epochs_done()) and progress is not None:
        progress(Progress(stage, resumed, epochs, 0.0))  # where the resumed fit starts
    model, history = fit_network(
        lambda: build_model(options.model_type, n_labels=n_labels, train_features=sample),
        _batches(features, y, weights, recipe, seed=options.seed),
        spread=spread,
        epochs=epochs,
        validation_data=validation,
        callbacks=[_reporter(stage, epochs, progress, stop)],
        backup=backup,
    )
    _raise_if_stopped(stop, len(next(iter(history.values()), [])))
    if recipe.statistics_heads:
        extractor, heads, _ = _train_statistics_heads(
            features, y, None, recipe=recipe, progress=progress, stop=stop, stage=stage
        )
        model = fuse(model, extractor, heads)
    return forget_training_state(model), {k: [float(v) for v in vs] for k, vs in history.items()}


def _fit_compare_blend(
    features: list[np.ndarray],
    y: np.ndarray,
    weights: np.ndarray,
    *,
    recipe: Recipe,
    validation: tuple[np.ndarray, np.ndarray] | None,
    progress: ProgressFn | None,
    stop: threading.Event | None,
    stage: str,
    corpora: np.ndarray,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """The linear layer on ComParE and the statistics, fitted exactly, then the MLP heads on
    the statistics alone; one model blends them at the recipe's ``linear_weight``."""
    x = np.stack(features)
    linear = build_compare_statistics_linear(n_labels=y.shape[1], train_features=x)
    history = fit_linear_exactly(
        linear,
        x,
        y,
        weights,
        inverse_penalty=recipe.exact_linear_c,
        iterations=recipe.epochs,
        validation=validation,
        report=_iteration_reporter(f"{stage} · linear", recipe.epochs, progress, stop),
    )
    n_compare = FUNCTIONALS_DIM[FeatureKind.COMPARE]
    heads, _ = _train_heads(
        x[:, n_compare:],
        y,
        weights,
        recipe=recipe,
        n_columns=(x.shape[1] - n_compare) // STATISTICS_FIGURES,
        progress=progress,
        stop=stop,
        stage=stage,
        name="statistics_head",
        corpora=corpora,
    )
    model = compare_statistics_model(linear, heads, linear_weight=recipe.linear_weight)
    return forget_training_state(model), history


def fit_linear_exactly(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    *,
    inverse_penalty: float,
    iterations: int,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    report: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, list[float]]:
    """Set ``model``'s last layer (softmax, on its standardising layer's output) to the optimum
    of an L2-penalised logistic regression: scikit-learn's objective, ``C`` the inverse penalty,
    weighted cross-entropy summed over clips plus half the squared kernel (the bias is free).

    Full-batch L-BFGS (scipy) for at most ``iterations`` steps; per step, the figures Keras
    would log go to ``report`` (which may raise to stop). Returns those figures per step.
    """
    from scipy.optimize import minimize

    dense = model.layers[-1]
    standardise = _without_last_layer(model)
    inputs = standardise(x).astype(np.float64)
    n, dim, k = len(inputs), inputs.shape[1], y.shape[1]
    w = np.asarray(weights, np.float64)
    held_out = None if validation is None else (standardise(validation[0]), validation[1])

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        kernel, bias = flat[: dim * k].reshape(dim, k), flat[dim * k :]
        p = _softmax(inputs @ kernel + bias)
        loss = -np.sum(w * np.log(np.sum(p * y, axis=1) + 1e-300))
        residual = (p - y) * w[:, None]
        grad = np.concatenate(
            [(inputs.T @ residual + kernel / inverse_penalty).ravel(), residual.sum(axis=0)]
        )
        return (loss + 0.5 * np.sum(kernel**2) / inverse_penalty) / n, grad / n

    history: dict[str, list[float]] = {}

    def step(flat: np.ndarray) -> None:
        loss, _ = objective(flat)
        kernel, bias = flat[: dim * k].reshape(dim, k), flat[dim * k :]
        figures = {"loss": loss, "accuracy": _accuracy(inputs @ kernel + bias, y)}
        if held_out is not None:  # standardised once, not at every step
            figures["val_accuracy"] = _accuracy(held_out[0] @ kernel + bias, held_out[1])
        for name, value in figures.items():
            history.setdefault(name, []).append(float(value))
        if report is not None:
            report(len(history["loss"]), figures)

    start = np.zeros(dim * k + k)
    solution = minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        callback=step,
        options={"maxiter": iterations},
    )
    dense.set_weights(
        [
            solution.x[: dim * k].reshape(dim, k).astype(np.float32),
            solution.x[dim * k :].astype(np.float32),
        ]
    )
    return history


def _without_last_layer(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """numpy in, numpy out: ``model`` without its last layer."""
    import keras

    body = keras.Model(model.inputs[0], model.layers[-1].input)
    return lambda x: np.asarray(body(np.asarray(x, np.float32)), np.float64)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(logits.argmax(axis=1) == y.argmax(axis=1)))


def _iteration_reporter(
    stage: str, total: int, progress: ProgressFn | None, stop: threading.Event | None
) -> Callable[[int, dict[str, float]], None]:
    """Each L-BFGS step to ``progress``, as an epoch is; a set ``stop`` ends the fit."""
    started = time.monotonic()

    def report(done: int, figures: dict[str, float]) -> None:
        if stop is not None and stop.is_set():
            raise TrainingStopped(f"Training stopped after {done} steps; nothing was saved.")
        if progress is not None:
            progress(Progress(stage, done, total, time.monotonic() - started, dict(figures)))

    return report


def fit_scaling(options: TrainOptions) -> Scaling:
    """The batch and learning rate of ``options``' fits: per replica, scaled by the replicas."""
    recipe = options.recipe
    return scaling(
        options.distribution.strategy,
        per_replica_batch_size=options.batch_size or recipe.batch_size,
        base_learning_rate=recipe.learning_rate,
    )


def _fit_backup(
    features: list[np.ndarray], y: np.ndarray, options: TrainOptions, stage: str
) -> Backup | None:
    """The backup of this very fit (its clips, labels, options and stage), so that a resumed
    run finds each of its fits' own; None when the run keeps no backups."""
    if options.distribution.backup_dir is None:
        return None
    digest = hashlib.sha256(y.tobytes())
    for f in features:
        digest.update(np.ascontiguousarray(f).tobytes())
    identity = f"{stage}|{options.to_dict()}|{fit_scaling(options).to_dict()}|{digest.hexdigest()}"
    return backup_for(options.distribution, identity=identity)


def _raise_if_stopped(stop: threading.Event | None, epochs_done: int) -> None:
    if stop is not None and stop.is_set():
        raise TrainingStopped(f"Training stopped after {epochs_done} epochs; nothing was saved.")


def _train_statistics_heads(
    features: list[np.ndarray],
    y: np.ndarray,
    weights: np.ndarray | None,
    *,
    recipe: Recipe,
    progress: ProgressFn | None,
    stop: threading.Event | None,
    stage: str,
    name: str = "statistics_head",
    corpora: np.ndarray | None = None,
) -> tuple[keras.Model, list[keras.Model], dict[str, list[float]]]:
    """The statistics extractor, and heads trained on each whole clip's statistics (with the
    last head's history).

    Averaging MLP heads that differ only in their random start steadies the small, noisy head.
    ``corpora`` (each row's corpus name) is what the recipe's corpus adversary learns
    to tell apart; with fewer than two corpora there is nothing to hide and no adversary.
    """
    extractor = statistics_extractor(
        features[0].shape[-1],
        n_mels=recipe.features.n_mels,
        n_cepstra=recipe.head_cepstra,
        smoothing_frames=recipe.head_smoothing_frames,
        shape_moments=recipe.head_shape_moments,
        smooth_change=recipe.head_smooth_change,
    )
    statistics = _outputs_whole(extractor, features)
    n_columns = features[0].shape[-1] + recipe.head_cepstra
    heads, figures = _train_heads(
        statistics,
        y,
        weights,
        recipe=recipe,
        n_columns=n_columns,
        progress=progress,
        stop=stop,
        stage=stage,
        name=name,
        corpora=corpora,
    )
    return extractor, heads, figures


def _train_heads(
    statistics: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None,
    *,
    recipe: Recipe,
    n_columns: int,
    progress: ProgressFn | None,
    stop: threading.Event | None,
    stage: str,
    name: str,
    corpora: np.ndarray | None,
) -> tuple[list[keras.Model], dict[str, list[float]]]:
    """The recipe's heads trained on whole-clip statistics (with the last head's history)."""
    epochs = recipe.epochs if recipe.head_linear else STATISTICS_HEAD_EPOCHS
    batch = recipe.batch_size if recipe.head_linear else STATISTICS_HEAD_BATCH
    adversary = (
        not recipe.head_linear
        and recipe.head_corpus_adversary > 0
        and corpora is not None
        and len(np.unique(corpora)) > 1
    )
    heads, n_heads, figures = [], recipe.statistics_heads, {}
    for i in range(n_heads):
        head_name = name if i == 0 else f"{name}_{i + 1}"
        which = f" {i + 1}/{n_heads}" if n_heads > 1 else ""
        which += " (linear)" if recipe.head_linear else ""
        reporter = _reporter(
            f"{stage} · {HEAD_STAGE}{which}",
            epochs,
            progress,
            stop,
            shown_as=_EMOTION_LOGS if adversary else None,
        )
        fit_settings = {
            "sample_weight": weights,
            "epochs": epochs,
            "batch_size": batch,
            "shuffle": True,
            "verbose": 0,
        }
        if adversary:
            head, history = _fit_against_corpora(
                statistics,
                y,
                corpora,
                recipe=recipe,
                name=head_name,
                reporter=reporter,
                seed=i,
                **fit_settings,
            )
        else:
            head = _statistics_head(
                statistics, y.shape[1], n_columns, recipe=recipe, name=head_name
            )
            if recipe.head_mixup > 0 and not recipe.head_linear:
                pairs = _mixup_batches(
                    statistics,
                    y,
                    weights,
                    corpora=None,
                    alpha=recipe.head_mixup,
                    batch_size=batch,
                    seed=i,
                )
                history = head.fit(pairs, epochs=epochs, verbose=0, callbacks=[reporter]).history
            else:
                history = head.fit(statistics, y, callbacks=[reporter], **fit_settings).history
        _raise_if_stopped(stop, len(history.get("loss", [])))
        heads.append(head)
        figures = {k: [float(v) for v in vs] for k, vs in history.items()}
    return heads, figures


def _statistics_head(
    statistics: np.ndarray, n_labels: int, n_columns: int, *, recipe: Recipe, name: str
) -> keras.Model:
    """A compiled head of the recipe's kind: a linear layer or an MLP."""
    if not recipe.head_linear:
        return build_statistics_head(n_labels=n_labels, train_statistics=statistics, name=name)
    basis = None
    if recipe.linear_relative_extremes:
        basis = relative_extremes_basis(
            n_columns,
            smoothing_frames=recipe.head_smoothing_frames,
            shape_moments=recipe.head_shape_moments,
            smooth_change=recipe.head_smooth_change,
        )
    return build_linear_head(
        n_labels=n_labels,
        train_statistics=statistics,
        learning_rate=recipe.learning_rate,
        name=name,
        basis=basis,
    )


# The two-output model's logs of the emotion, under the names a plain head's have.
_EMOTION_LOGS = {"emotion_loss": "loss", "emotion_accuracy": "accuracy"}


def _fit_against_corpora(
    statistics: np.ndarray,
    y: np.ndarray,
    corpora: np.ndarray,
    *,
    recipe: Recipe,
    name: str,
    reporter: keras.callbacks.Callback,
    seed: int = 0,
    **fit_settings: object,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """An MLP head trained beside a gradient-reversed corpus classifier, and its history under
    the plain head's names (the emotion's loss and accuracy). With the recipe's ``head_mixup``
    the emotion is learnt from mixup pairs (``_mixup_batches``, drawn from ``seed``)."""
    import keras

    codes = np.unique(corpora, return_inverse=True)[1]
    trainer, head, strength = build_adversarial_statistics_head(
        n_labels=y.shape[1],
        n_corpora=int(codes.max()) + 1,
        train_statistics=statistics,
        name=name,
        mixup=recipe.head_mixup > 0,
    )
    batches = -(-len(statistics) // int(fit_settings["batch_size"])) * int(fit_settings["epochs"])
    callbacks = [_reversal_ramp(strength, recipe.head_corpus_adversary, batches), reporter]
    corpus_targets = keras.utils.to_categorical(codes)
    if recipe.head_mixup > 0:
        pairs = _mixup_batches(
            statistics,
            y,
            fit_settings.pop("sample_weight"),
            corpora=corpus_targets,
            alpha=recipe.head_mixup,
            batch_size=int(fit_settings.pop("batch_size")),
            seed=seed,
        )
        fit_settings.pop("shuffle")
        history = trainer.fit(pairs, callbacks=callbacks, **fit_settings).history
    else:
        history = trainer.fit(
            statistics, [y, corpus_targets], callbacks=callbacks, **fit_settings
        ).history
    return head, {new: history[old] for old, new in _EMOTION_LOGS.items()}


def _mixup_batches(
    statistics: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    *,
    corpora: np.ndarray | None,
    alpha: float,
    batch_size: int,
    seed: int,
) -> keras.utils.PyDataset:
    """Shuffled batches of mixed clips, emotion targets and weights: each clip mixed with
    another of its batch by a share drawn from Beta(alpha, alpha), its target and weight mixed
    alike (mixup, Zhang et al. 2018). With ``corpora`` (targets for a corpus adversary), of
    ``([clips, mixed clips], [mixed emotions, corpora], [mixed weights, weights])``."""
    rng = np.random.default_rng(seed)
    statistics, y = statistics.astype(np.float32), y.astype(np.float32)
    weights = weights.astype(np.float32)

    def batch(index: np.ndarray) -> tuple:
        partner = rng.permutation(index)
        share = rng.beta(alpha, alpha, len(index)).astype(np.float32)[:, np.newaxis]

        def mix(a: np.ndarray) -> np.ndarray:
            return share * a[index] + (1 - share) * a[partner]

        mixed_weights = mix(weights[:, np.newaxis])[:, 0]
        if corpora is None:
            return mix(statistics), mix(y), mixed_weights
        return (
            (statistics[index], mix(statistics)),
            (mix(y), corpora[index]),
            (mixed_weights, weights[index]),
        )

    return _shuffled_batches(len(statistics), batch_size, rng, batch)


def _reversal_ramp(strength: keras.Variable, peak: float, batches: int) -> keras.callbacks.Callback:
    """Raises the reversal from 0 towards ``peak`` over ``batches``, as Ganin et al. (2016) do:
    the corpus classifier is still guessing early on, and its gradient then is noise."""
    import keras

    class Ramp(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            self.seen = 0

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            done = min(1.0, self.seen / batches)
            strength.assign(peak * (2.0 / (1.0 + np.exp(-10.0 * done)) - 1.0))
            self.seen += 1

    return Ramp()


def _reporter(
    stage: str,
    epochs: int,
    progress: ProgressFn | None,
    stop: threading.Event | None,
    *,
    shown_as: dict[str, str] | None = None,
) -> keras.callbacks.Callback:
    """A Keras callback that reports each epoch and honours the stop event between batches.

    With ``shown_as``, only those logs are reported, under its names."""
    import keras

    class Reporter(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            self.started = time.monotonic()

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if stop is not None and stop.is_set():
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if progress is not None:
                metrics = {k: float(v) for k, v in (logs or {}).items()}
                if shown_as is not None:
                    metrics = {new: metrics[old] for old, new in shown_as.items() if old in metrics}
                elapsed = time.monotonic() - self.started
                progress(Progress(stage, epoch + 1, epochs, elapsed, metrics))

    return Reporter()
