"""Training and speaker-independent evaluation: one code path for the CLI and the app.

The path a reader can follow in one sitting:
``scan`` folders -> ``prepare`` (features, cached, all cores) -> split by speaker
-> ``fit`` -> ``evaluate`` -> ``save`` with the metadata that rebuilds the figures.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .audio import with_noise
from .datasets import LabelledClip, ScanReport, name_speakers, ravdess_actor, scan
from .distribute import Backup, Distribution, Scaling, backup_for, fit_network, scaling
from .emotions import ALL_EMOTIONS
from .errors import SERError, TrainingError, TrainingStopped
from .familiarity import fit_familiarity
from .features import FeatureConfig
from .models import (
    RECIPES,
    STATISTICS_HEAD_BATCH,
    STATISTICS_HEAD_EPOCHS,
    ModelType,
    Recipe,
    build_linear_head,
    build_model,
    build_statistics_head,
    forget_training_state,
    fuse,
    statistics_extractor,
    statistics_model,
)

if TYPE_CHECKING:
    import keras

RAVDESS_FOLDS = 6  # fold k holds out actors 4k-3 .. 4k


class Validation(str, Enum):
    SPEAKER = "speaker"  # held-out speakers: the honest figure
    SPEAKER_FOLDS = "speaker_folds"  # k-fold by speaker; leave-one-speaker-out when few
    RANDOM = "random"  # leaks speakers: overstates accuracy by 10-25 points


class Augmentation(str, Enum):
    NOISE = "noise"
    PITCH = "pitch"
    STRETCH = "stretch"
    CHANNEL = "channel"  # another room, microphone and voice: ser.augment.channel_variant


@dataclass(frozen=True)
class Progress:
    """One report from a slow step; the UI and the CLI draw it their own way."""

    stage: str
    done: int
    total: int
    elapsed_s: float
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def rate_per_s(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def remaining_s(self) -> float | None:
        rate = self.rate_per_s
        return (self.total - self.done) / rate if rate > 0 else None


ProgressFn = Callable[[Progress], None]
HEAD_STAGE = "statistics head"  # last part of a stage name (maybe with "i/n") that reports a head


def is_head_stage(stage: str) -> bool:
    """Whether a report comes from a fused model's statistics heads, not its CNN."""
    return stage.rpartition(" · ")[2].startswith(HEAD_STAGE)


@dataclass(frozen=True)
class TrainOptions:
    """Everything that decides a trained model; saved in its metadata."""

    model_type: ModelType = ModelType.MFCC_LSTM
    epochs: int | None = None  # None: the recipe's
    batch_size: int | None = None
    emotions: tuple[str, ...] | None = None  # a subset to learn; None: all found
    merge: tuple[tuple[str, str], ...] = ()  # e.g. (("calm", "neutral"),)
    augment: tuple[Augmentation, ...] = ()
    validation: Validation = Validation.SPEAKER
    seed: int = 42
    speakers: str | None = None  # how own folders name speakers: datasets.name_speakers
    # Where and how fits run; not in ``to_dict``: the scaling it causes is saved by ``metadata``.
    distribution: Distribution = field(default_factory=Distribution)

    @property
    def recipe(self) -> Recipe:
        return RECIPES[self.model_type]

    @property
    def features(self) -> FeatureConfig:
        return self.recipe.features

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type.value,
            "epochs": self.epochs or self.recipe.epochs,
            "batch_size": self.batch_size or self.recipe.batch_size,
            "emotions": list(self.emotions) if self.emotions else None,
            "merge": [list(pair) for pair in self.merge],
            "augment": [a.value for a in self.augment],
            "validation": self.validation.value,
            "seed": self.seed,
            "speakers": self.speakers,
            "recipe": self.recipe.training_settings(),  # e.g. how many heads: recipes change
        }


# --- features ---------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """Outside the repository: ``SER_CACHE_DIR`` or ``~/.cache/ser``."""
    env = os.environ.get("SER_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "ser"


def _file_key(path: Path, augmentation: str) -> str:
    stat = path.stat()
    identity = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{augmentation}"
    return hashlib.sha1(identity.encode("utf-8", "surrogateescape")).hexdigest()  # any file name


def _augment(
    samples: np.ndarray, augmentation: str, *, sample_rate_hz: int, seed: int
) -> np.ndarray:
    """A deterministic variant of a clip (same file, same variant), for training only."""
    if not augmentation:
        return samples
    rng = np.random.default_rng(seed)
    if augmentation == Augmentation.NOISE.value:
        return with_noise(samples, snr_db=rng.uniform(15, 30), rng=rng)
    if augmentation == Augmentation.CHANNEL.value:
        from .augment import channel_variant

        return channel_variant(samples, sample_rate_hz=sample_rate_hz, seed=seed)
    import librosa

    if augmentation == Augmentation.PITCH.value:
        steps = rng.choice([-2.0, -1.0, 1.0, 2.0])
        return librosa.effects.pitch_shift(samples, sr=sample_rate_hz, n_steps=steps)
    return librosa.effects.time_stretch(samples, rate=rng.uniform(0.85, 1.15))


def _cache_path(cache_root: str | Path, cfg: FeatureConfig, key: str) -> Path:
    return Path(cache_root) / cfg.cache_key() / key[:2] / f"{key}.npy"


def _clip_features(
    path: str, config: dict[str, Any], augmentation: str, cache_root: str
) -> np.ndarray | str:
    """Worker: one clip's features (from the cache when there), or the reason it failed."""
    from . import features as feats
    from .audio import load_audio

    clip_path = Path(path)
    cfg = FeatureConfig.from_dict(config)
    key = _file_key(clip_path, augmentation)
    cached = _cache_path(cache_root, cfg, key)
    if cached.is_file():
        try:
            return np.load(cached)
        except (OSError, ValueError):
            pass  # a damaged cache entry is recomputed
    try:
        audio = load_audio(clip_path, sample_rate_hz=cfg.sample_rate_hz)
    except SERError as error:
        return str(error)
    seed = int(key[:8], 16)
    samples = _augment(audio.samples, augmentation, sample_rate_hz=cfg.sample_rate_hz, seed=seed)
    result = feats.extract(samples.astype(np.float32), config=cfg)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, result)
    os.replace(tmp, cached)
    return result


def _clip_batch(jobs: list[tuple[str, str]], config: dict[str, Any], cache_root: str) -> list[Any]:
    return [_clip_features(path, config, aug, cache_root) for path, aug in jobs]


def extract_features(
    jobs: Sequence[tuple[Path, str]],
    *,
    config: FeatureConfig,
    cache_dir: Path | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
) -> list[np.ndarray | str]:
    """Features for each (path, augmentation) job, on all cores; failures as reason strings."""
    cache_root = str(cache_dir or default_cache_dir())
    todo = [(str(path), aug) for path, aug in jobs]
    chunks = [todo[i : i + 32] for i in range(0, len(todo), 32)]
    workers = workers or os.cpu_count() or 1
    results: list[Any] = []
    started = time.monotonic()
    report = progress or (lambda _p: None)
    report(Progress("features", 0, len(todo), 0.0))
    # Threads, not processes: decoding, FFTs and matrix products release the GIL, and
    # threads need no re-import of the caller's __main__ (scripts, Streamlit) per worker.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(_clip_batch, chunk, config.to_dict(), cache_root) for chunk in chunks
        ]
        for future in futures:
            if stop is not None and stop.is_set():
                for pending in futures:
                    pending.cancel()
                raise TrainingStopped("Stopped during feature extraction; nothing was saved.")
            results.extend(future.result())
            report(Progress("features", len(results), len(todo), time.monotonic() - started))
    return results


# --- data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """Clips with their features and integer labels, ready to split."""

    clips: tuple[LabelledClip, ...]
    features: tuple[np.ndarray, ...]
    targets: np.ndarray
    labels: tuple[str, ...]
    augmented: dict[str, tuple[np.ndarray, ...]]  # augmentation -> features, aligned with clips
    report: ScanReport
    dropped: tuple[tuple[str, str], ...] = ()  # (path, reason) that failed extraction

    @property
    def speakers(self) -> np.ndarray:
        return np.array([c.speaker for c in self.clips])


def _relabel(
    clips: Sequence[LabelledClip], options: TrainOptions
) -> list[tuple[LabelledClip, str]]:
    merge = dict(options.merge)
    kept = []
    for clip in clips:
        emotion = merge.get(clip.emotion, clip.emotion)
        if options.emotions is None or emotion in options.emotions:
            kept.append((clip, emotion))
    return kept


def _feature_jobs(
    relabelled: Sequence[tuple[LabelledClip, str]], options: TrainOptions
) -> list[tuple[Path, str]]:
    """(path, augmentation) for every clip and variant ``prepare`` needs, clips first."""
    augmentations = [a.value for a in options.augment]
    return [(clip.path, aug) for aug in ["", *augmentations] for clip, _ in relabelled]


def cached_count(
    report: ScanReport, options: TrainOptions, *, cache_dir: Path | None = None
) -> tuple[int, int]:
    """(cached, total): how many of the feature computations ``prepare`` needs are cached."""
    jobs = _feature_jobs(_relabel(report.clips, options), options)
    root = cache_dir or default_cache_dir()
    cached = 0
    for path, aug in jobs:
        with contextlib.suppress(OSError):  # a file gone since the scan: prepare reports it
            cached += _cache_path(root, options.features, _file_key(Path(path), aug)).is_file()
    return cached, len(jobs)


MIN_CLIPS_PER_EMOTION = 5  # so the held-out part (a fifth, or other speakers) can hold some of each


def _require_enough(counts: Counter[str], options: TrainOptions, *, unread: int = 0) -> None:
    """Refuse data a model cannot honestly learn from or be judged on: fewer than two emotions,
    or an emotion with too few clips for the split to test it (a model saved from such data
    reported 100% on labels it never saw)."""
    plural = "s" if unread != 1 else ""
    after = f" after leaving out {unread} clip{plural} that could not be read" if unread else ""
    present = [e for e in ALL_EMOTIONS if counts.get(e, 0) > 0]
    if len(present) < 2:
        raise TrainingError(
            f"Training needs at least two emotions; found {len(present)} "
            f"({', '.join(present) or 'none'}){after}."
        )
    low = [e for e in ALL_EMOTIONS if e in counts and counts[e] < MIN_CLIPS_PER_EMOTION]
    short = [f"{e} has {counts[e]}" for e in low]
    if short:
        random = options.validation is Validation.RANDOM
        split = "random 20% split" if random else "speaker-independent hold-out"
        raise TrainingError(
            f"Training needs at least {MIN_CLIPS_PER_EMOTION} clips of each emotion for a "
            f"{split}, so that the held-out part holds some of each; {', '.join(short)}{after}. "
            "Add clips, or leave that emotion out."
        )


def prepare(
    folders: Sequence[str | Path] | ScanReport,
    options: TrainOptions,
    *,
    cache_dir: Path | None = None,
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
) -> Prepared:
    """Scan (unless given a report), relabel, and extract features for every clip."""
    report = folders if isinstance(folders, ScanReport) else scan(folders)
    report = name_speakers(report, options.speakers)
    relabelled = _relabel(report.clips, options)
    labels = tuple(e for e in ALL_EMOTIONS if e in {emotion for _, emotion in relabelled})
    _require_enough(Counter(emotion for _, emotion in relabelled), options)  # before the work
    augmentations = [a.value for a in options.augment]
    jobs = _feature_jobs(relabelled, options)
    values = extract_features(
        jobs, config=options.features, cache_dir=cache_dir, progress=progress, stop=stop
    )
    n = len(relabelled)
    reasons: dict[int, str] = {}
    for j, value in enumerate(values):
        if isinstance(value, str):
            reasons.setdefault(j % n, value)  # a clip goes if any of its variants fails
    keep = [i for i in range(n) if i not in reasons]
    counts = Counter(dict.fromkeys(labels, 0))  # an emotion whose every clip failed stays, at 0
    counts.update(relabelled[i][1] for i in keep)
    _require_enough(counts, options, unread=len(reasons))
    dropped = tuple((str(relabelled[i][0].path), why) for i, why in sorted(reasons.items()))
    augmented = {
        aug: tuple(values[(k + 1) * n + i] for i in keep) for k, aug in enumerate(augmentations)
    }
    return Prepared(
        clips=tuple(relabelled[i][0] for i in keep),
        features=tuple(values[i] for i in keep),
        targets=np.array([labels.index(relabelled[i][1]) for i in keep], dtype=np.int64),
        labels=labels,
        augmented=augmented,
        report=report,
        dropped=dropped,
    )


# --- splits -----------------------------------------------------------------------------

Split = tuple[np.ndarray, np.ndarray]  # (train indices, test indices)


def ravdess_folds(clips: Sequence[LabelledClip]) -> list[Split]:
    """The standard protocol: fold k tests on RAVDESS actors 4k-3..4k; all else trains."""
    actors = np.array([ravdess_actor(c.speaker) or 0 for c in clips])
    if not actors.any():
        raise TrainingError("The 6-fold by-actor protocol needs RAVDESS among the data.")
    folds = []
    for k in range(1, RAVDESS_FOLDS + 1):
        test = (actors >= 4 * k - 3) & (actors <= 4 * k)
        folds.append((np.flatnonzero(~test), np.flatnonzero(test)))
    return folds


def speaker_folds(speakers: np.ndarray, n_folds: int) -> list[Split]:
    """Group k-fold by speaker, for corpora other than RAVDESS."""
    unique = sorted(set(speakers.tolist()))
    if any(s.endswith(":unknown") for s in unique) or len(unique) < n_folds:
        raise TrainingError(
            f"Speaker-independent folds need at least {n_folds} known speakers; "
            f"found {len(unique)}. Use fewer folds or a layout that names speakers."
        )
    fold_of = {s: i % n_folds for i, s in enumerate(unique)}
    assignment = np.array([fold_of[s] for s in speakers.tolist()])
    return [
        (np.flatnonzero(assignment != k), np.flatnonzero(assignment == k)) for k in range(n_folds)
    ]


# The one hold-out rule, for the split and for the Train page's check before any work:
# RAVDESS actors 21-24 (the protocol's fold 6) when present, else the first of 5 folds by speaker.
HOLDOUT_ACTORS = frozenset(range(4 * RAVDESS_FOLDS - 3, 4 * RAVDESS_FOLDS + 1))
HOLDOUT_SPEAKER_FOLDS = 5


def _holds_ravdess_holdout(clips: Sequence[LabelledClip]) -> bool:
    return any(ravdess_actor(c.speaker) in HOLDOUT_ACTORS for c in clips)


# The rules the splits follow, in the words the Train page shows beside the choice.
VALIDATION_RULES = {
    Validation.SPEAKER: "Held-out speakers: RAVDESS actors 21-24 when present, else a fifth of "
    f"the speakers; needs at least {HOLDOUT_SPEAKER_FOLDS} known speakers.",
    Validation.SPEAKER_FOLDS: f"k-fold by speaker: {HOLDOUT_SPEAKER_FOLDS} folds, or one per "
    "speaker with fewer (leave-one-speaker-out), then the model is trained on every clip; "
    "needs at least 2 known speakers.",
    Validation.RANDOM: "A random 20% of the clips: the same speakers on both sides, so it "
    "overstates accuracy.",
}


def _known_speakers(clips: Sequence[LabelledClip]) -> tuple[set[str], bool]:
    speakers = {c.speaker for c in clips}
    return speakers, any(s.endswith(":unknown") for s in speakers)


def validation_problem(clips: Sequence[LabelledClip], validation: Validation) -> str | None:
    """Why ``validation`` cannot be drawn from ``clips`` (in the words of its rule), or None."""
    if validation is Validation.RANDOM:
        return None
    speakers, unknown = _known_speakers(clips)
    if validation is Validation.SPEAKER:
        if _holds_ravdess_holdout(clips) or (
            not unknown and len(speakers) >= HOLDOUT_SPEAKER_FOLDS
        ):
            return None
    elif not unknown and len(speakers) >= 2:
        return None
    found = f"Found {len(speakers)} speakers" + (
        ", some unknown: say how your folders name speakers." if unknown else "."
    )
    return f"{VALIDATION_RULES[validation]} {found}"


def speaker_holdout_problem(clips: Sequence[LabelledClip]) -> str | None:
    """Why no speaker-independent hold-out can be drawn from ``clips``, or None if one can."""
    return validation_problem(clips, Validation.SPEAKER)


def holdout_split(data: Prepared, validation: Validation, *, seed: int) -> Split:
    """One train/test split: held-out speakers, or (warned against) a random 20%."""
    n = len(data.clips)
    if validation is Validation.RANDOM:
        order = np.random.default_rng(seed).permutation(n)
        cut = max(1, n // 5)
        return np.sort(order[cut:]), np.sort(order[:cut])
    if (problem := validation_problem(data.clips, validation)) is not None:
        raise TrainingError(problem)
    if _holds_ravdess_holdout(data.clips):
        return ravdess_folds(data.clips)[-1]
    return speaker_folds(data.speakers, HOLDOUT_SPEAKER_FOLDS)[0]


# --- fitting ----------------------------------------------------------------------------


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
        corpus = np.array([data.clips[i].corpus.value for i in train_index])
        corpus = np.tile(corpus, len(targets) // max(1, len(train_index)))
        names, inverse, counts = np.unique(corpus, return_inverse=True, return_counts=True)
        weights = len(corpus) / (len(names) * counts[inverse])
    if recipe.class_weights:
        per_class = np.bincount(targets, weights=weights, minlength=n_labels)
        weights = weights * (weights.sum() / (n_labels * np.maximum(per_class, 1e-9)))[targets]
    return weights.astype(np.float32)


def _batches(
    features: list[np.ndarray], y: np.ndarray, weights: np.ndarray, recipe: Recipe, *, seed: int
) -> keras.utils.PyDataset:
    """Shuffled batches, re-cropped (and masked) afresh every epoch for sequence models."""
    import keras

    rng = np.random.default_rng(seed)
    fill = np.concatenate(features[:: max(1, len(features) // 500)]).mean(axis=0).astype(np.float32)
    crop, size = recipe.crop_frames(), recipe.batch_size

    class Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.order = rng.permutation(len(features))

        def __len__(self) -> int:
            return -(-len(features) // size)

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            index = self.order[i * size : (i + 1) * size]
            x = _fixed_length([features[j] for j in index], crop, rng=rng)
            if recipe.spec_augment and x.ndim == 3:
                x = _spec_augment(x, rng, fill)
            return x, y[index], weights[index]

        def on_epoch_end(self) -> None:
            self.order = rng.permutation(len(features))

    return Batches()


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
    if not recipe.network:  # the statistics head alone, on whole clips
        extractor, heads, figures = _train_statistics_heads(
            features,
            y,
            weights,
            recipe=replace(recipe, epochs=epochs),
            progress=progress,
            stop=stop,
            stage=stage,
        )
        return forget_training_state(statistics_model(extractor, heads[0])), figures
    sample = _fixed_length(features, recipe.crop_frames(), rng=np.random.default_rng(options.seed))
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
) -> tuple[keras.Model, list[keras.Model], dict[str, list[float]]]:
    """The statistics extractor, and heads trained on each whole clip's statistics (with the
    last head's history).

    Averaging MLP heads that differ only in their random start steadies the small, noisy head.
    """
    extractor = statistics_extractor(
        features[0].shape[-1],
        n_mels=recipe.features.n_mels,
        n_cepstra=recipe.head_cepstra,
        smoothing_frames=recipe.head_smoothing_frames,
        shape_moments=recipe.head_shape_moments,
    )
    statistics = _outputs_whole(extractor, features)
    epochs = recipe.epochs if recipe.head_linear else STATISTICS_HEAD_EPOCHS
    batch = recipe.batch_size if recipe.head_linear else STATISTICS_HEAD_BATCH
    heads, n_heads, history = [], recipe.statistics_heads, None
    for i in range(n_heads):
        name = "statistics_head" if i == 0 else f"statistics_head_{i + 1}"
        head = (
            build_linear_head(
                n_labels=y.shape[1],
                train_statistics=statistics,
                learning_rate=recipe.learning_rate,
                name=name,
            )
            if recipe.head_linear
            else build_statistics_head(n_labels=y.shape[1], train_statistics=statistics, name=name)
        )
        which = f" {i + 1}/{n_heads}" if n_heads > 1 else ""
        history = head.fit(
            statistics,
            y,
            sample_weight=weights,
            epochs=epochs,
            batch_size=batch,
            shuffle=True,
            callbacks=[_reporter(f"{stage} · {HEAD_STAGE}{which}", epochs, progress, stop)],
            verbose=0,
        )
        _raise_if_stopped(stop, len(history.epoch))
        heads.append(head)
    figures = {k: [float(v) for v in vs] for k, vs in history.history.items()} if history else {}
    return extractor, heads, figures


def _reporter(
    stage: str, epochs: int, progress: ProgressFn | None, stop: threading.Event | None
) -> keras.callbacks.Callback:
    """A Keras callback that reports each epoch and honours the stop event between batches."""
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
                elapsed = time.monotonic() - self.started
                progress(Progress(stage, epoch + 1, epochs, elapsed, metrics))

    return Reporter()


# --- evaluation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """Accuracy, UAR and the confusion matrix (rows: true, columns: predicted)."""

    labels: tuple[str, ...]
    confusion: np.ndarray

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(1, self.confusion.sum()))

    @property
    def recall(self) -> np.ndarray:
        return np.diag(self.confusion) / np.maximum(self.confusion.sum(axis=1), 1)

    @property
    def precision(self) -> np.ndarray:
        return np.diag(self.confusion) / np.maximum(self.confusion.sum(axis=0), 1)

    @property
    def uar(self) -> float:
        """Unweighted average recall over the classes present in the test set."""
        present = self.confusion.sum(axis=1) > 0
        return float(self.recall[present].mean()) if present.any() else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": round(self.accuracy, 4),
            "uar": round(self.uar, 4),
            "labels": list(self.labels),
            "confusion": self.confusion.tolist(),
        }


def score(model: keras.Model, data: Prepared, test_index: np.ndarray) -> Scores:
    """Scores on the held-out clips, each clip predicted whole, as in the app."""
    return score_features(
        model, [data.features[i] for i in test_index], data.targets[test_index], data.labels
    )


def score_features(
    model: keras.Model, features: list[np.ndarray], targets: np.ndarray, labels: tuple[str, ...]
) -> Scores:
    """Scores of ``model`` on clips' features, each clip predicted whole."""
    if not features:
        return Scores(labels, np.zeros((len(labels), len(labels)), dtype=np.int64))
    return scores_of(predict_probabilities(model, features), np.asarray(targets), labels)


def predict_probabilities(model: keras.Model, features: list[np.ndarray]) -> np.ndarray:
    """(clips, labels): the model's probabilities for each whole clip, in order."""
    return _outputs_whole(model, features)


def scores_of(probabilities: np.ndarray, targets: np.ndarray, labels: tuple[str, ...]) -> Scores:
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(confusion, (targets, probabilities.argmax(axis=1)), 1)
    return Scores(labels, confusion)


def _outputs_whole(model: keras.Model, features: list[np.ndarray]) -> np.ndarray:
    """``model``'s output for each whole clip, in order."""
    if features[0].ndim == 1:
        return np.asarray(model.predict_on_batch(np.stack(features)))
    by_length: dict[int, list[int]] = {}  # equal lengths batch together without padding
    for i, f in enumerate(features):
        by_length.setdefault(len(f), []).append(i)
    rows: list[np.ndarray] = [np.empty(0)] * len(features)
    for index in by_length.values():
        batch = np.asarray(model.predict_on_batch(np.stack([features[i] for i in index])))
        for i, row in zip(index, batch, strict=True):
            rows[i] = row
    return np.stack(rows)


@dataclass(frozen=True)
class Evaluation:
    """Per-fold scores and their means; the confusion matrix summed over folds."""

    protocol: str
    folds: tuple[Scores, ...]
    # Each fold's held-out probabilities and true label indices, for calibration figures.
    outputs: tuple[tuple[np.ndarray, np.ndarray], ...] = ()

    @property
    def mean_accuracy(self) -> float:
        return float(np.mean([f.accuracy for f in self.folds]))

    @property
    def mean_uar(self) -> float:
        return float(np.mean([f.uar for f in self.folds]))

    @property
    def total(self) -> Scores:
        return Scores(self.folds[0].labels, sum(f.confusion for f in self.folds))

    def mean_ece(self, *, temperature: float = 1.0) -> float | None:
        """Expected calibration error averaged over folds, after ``temperature``; None without outputs."""
        from .evaluation import expected_calibration_error, with_temperature

        if not self.outputs:
            return None
        return float(
            np.mean(
                [
                    expected_calibration_error(with_temperature(p, temperature=temperature), t)
                    for p, t in self.outputs
                ]
            )
        )

    def to_dict(self, *, temperature: float | None = None) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "protocol": self.protocol,
            "mean_accuracy": round(self.mean_accuracy, 4),
            "mean_uar": round(self.mean_uar, 4),
            "folds": [
                {"accuracy": round(f.accuracy, 4), "uar": round(f.uar, 4)} for f in self.folds
            ],
            "labels": list(self.folds[0].labels),
            "confusion": self.total.confusion.tolist(),
        }
        if self.outputs:
            figures["mean_ece"] = round(self.mean_ece() or 0.0, 4)
            if temperature is not None:
                figures["mean_ece_calibrated"] = round(
                    self.mean_ece(temperature=temperature) or 0.0, 4
                )
        return figures


def cross_validate(
    data: Prepared,
    options: TrainOptions,
    *,
    n_folds: int = RAVDESS_FOLDS,
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
) -> Evaluation:
    """RAVDESS 6-fold by actor when RAVDESS is present, else group k-fold by speaker."""
    if n_folds < 2:
        raise TrainingError(f"Cross-validation needs at least 2 folds, not {n_folds}.")
    use_ravdess = n_folds == RAVDESS_FOLDS and any(ravdess_actor(c.speaker) for c in data.clips)
    folds = ravdess_folds(data.clips) if use_ravdess else speaker_folds(data.speakers, n_folds)
    folds = [fold for fold in folds if len(fold[1])]  # a partial RAVDESS copy lacks some actors
    protocol = "RAVDESS 6-fold by actor" if use_ravdess else f"{n_folds}-fold by speaker"
    results, outputs = [], []
    for k, (train_index, test_index) in enumerate(folds, start=1):
        model, _ = fit(
            data, train_index, options, progress=progress, stop=stop, stage=f"fold {k}/{len(folds)}"
        )
        probabilities = predict_probabilities(model, [data.features[i] for i in test_index])
        outputs.append((probabilities, data.targets[test_index]))
        results.append(scores_of(probabilities, data.targets[test_index], data.labels))
    return Evaluation(protocol, tuple(results), tuple(outputs))


def prepare_across_corpora(
    train_folders: Sequence[str | Path],
    test_folders: Sequence[str | Path],
    options: TrainOptions,
    *,
    cache_dir: Path | None = None,
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
) -> tuple[Prepared, Split]:
    """Clips of both sides and the (train, test) split, on the emotions both sides hold.

    One scan covers both sides, so audio found on both is caught and kept on the training
    side only: the test side is then truly unseen.
    """
    test_roots = [Path(f).resolve() for f in test_folders]
    train_roots = [Path(f).resolve() for f in train_folders]
    if any(
        a == b or a.is_relative_to(b) or b.is_relative_to(a)
        for a in test_roots
        for b in train_roots
    ):
        raise TrainingError("The test folders overlap the training folders; give separate corpora.")
    report = scan([*train_folders, *test_folders])

    def on_test_side(clip: LabelledClip) -> bool:
        return any(clip.path.resolve().is_relative_to(root) for root in test_roots)

    sides = [
        {e for c, e in _relabel(report.clips, options) if on_test_side(c) is side}
        for side in (False, True)
    ]
    shared = tuple(e for e in ALL_EMOTIONS if e in sides[0] & sides[1])
    if len(shared) < 2:
        raise TrainingError(
            f"The training and test corpora share {len(shared)} emotion(s) ({', '.join(shared) or 'none'}); "
            "a cross-corpus test needs at least two."
        )
    data = prepare(
        report, replace(options, emotions=shared), cache_dir=cache_dir, progress=progress, stop=stop
    )
    test = np.array([on_test_side(c) for c in data.clips], dtype=bool)
    return data, (np.flatnonzero(~test), np.flatnonzero(test))


def evaluate_across_corpora(
    data: Prepared,
    split: Split,
    options: TrainOptions,
    *,
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
) -> Evaluation:
    """Train on one side's corpora and score the other's: speakers, rooms and scripts unseen."""
    train_index, test_index = split
    model, _ = fit(data, train_index, options, progress=progress, stop=stop)

    def corpora(index: np.ndarray) -> str:
        return " + ".join(sorted({data.clips[i].corpus.value for i in index}))

    protocol = f"trained on {corpora(train_index)}, tested on unseen {corpora(test_index)}"
    return Evaluation(protocol, (score(model, data, test_index),))


@dataclass(frozen=True)
class HoldoutResult:
    """A model trained on the training side, with its held-out scores and curves."""

    model: Any
    scores: Scores
    history: dict[str, list[float]]
    protocol: str
    train_index: np.ndarray  # the clips the model learnt from
    evaluation: Evaluation | None = None  # k-fold by speaker: every fold's figures


def train_holdout(
    data: Prepared,
    options: TrainOptions,
    *,
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
) -> HoldoutResult:
    """Train on the training side of one split and score the held-out side; for k-fold by
    speaker, score every fold, then train the model on every clip."""
    if options.validation is Validation.SPEAKER_FOLDS:
        return _train_speaker_folds(data, options, progress=progress, stop=stop)
    train_index, test_index = holdout_split(data, options.validation, seed=options.seed)
    model, history = fit(
        data, train_index, options, test_index=test_index, progress=progress, stop=stop
    )
    held_out = {data.clips[i].speaker for i in test_index}
    protocol = (
        "random 20% split (speakers leak: overstates accuracy)"
        if options.validation is Validation.RANDOM
        else f"held-out speakers: {', '.join(sorted(held_out))}"
    )
    return HoldoutResult(model, score(model, data, test_index), history, protocol, train_index)


def _train_speaker_folds(
    data: Prepared,
    options: TrainOptions,
    *,
    progress: ProgressFn | None,
    stop: threading.Event | None,
) -> HoldoutResult:
    if (problem := validation_problem(data.clips, Validation.SPEAKER_FOLDS)) is not None:
        raise TrainingError(problem)
    n_speakers = len(set(data.speakers.tolist()))
    n_folds = min(HOLDOUT_SPEAKER_FOLDS, n_speakers)
    evaluation = cross_validate(data, options, n_folds=n_folds, progress=progress, stop=stop)
    if n_folds == n_speakers:
        evaluation = replace(evaluation, protocol=f"leave-one-speaker-out ({n_speakers} speakers)")
    everything = np.arange(len(data.clips))
    model, history = fit(data, everything, options, progress=progress, stop=stop, stage="all clips")
    return HoldoutResult(
        model, evaluation.total, history, evaluation.protocol, everything, evaluation
    )


def holdout_evaluation(held: HoldoutResult) -> dict[str, Any]:
    """A hold-out's figures in the shape cross-validation reports them (one 'fold'), or
    the folds' own for k-fold by speaker."""
    if held.evaluation is not None:
        return held.evaluation.to_dict()
    return {
        "protocol": held.protocol,
        "mean_accuracy": round(held.scores.accuracy, 4),
        "mean_uar": round(held.scores.uar, 4),
        **held.scores.to_dict(),
    }


def metadata(
    data: Prepared,
    options: TrainOptions,
    *,
    evaluation: dict[str, Any] | None,
    command: str,
    shipped: bool = False,
    train_index: np.ndarray | None = None,
) -> dict[str, Any]:
    """What a saved model carries: labels, features, data, figures, and how to redo them.

    ``train_index`` names the clips the network learnt from, when not all of them.
    """
    import keras
    import librosa

    index = np.arange(len(data.clips)) if train_index is None else np.asarray(train_index)
    clips = [data.clips[i] for i in index]
    targets = data.targets[index]
    corpora = dict(Counter(clip.corpus.value for clip in clips))
    return {
        "model_type": options.model_type.value,
        "title": options.model_type.title,
        "labels": list(data.labels),
        "features": options.features.to_dict(),
        "training": {**options.to_dict(), "distribution": fit_scaling(options).to_dict()},
        "trained_on": {
            "corpora": corpora,
            "clips": len(clips),
            "speakers": len({c.speaker for c in clips}),
            "emotions": {label: int((targets == i).sum()) for i, label in enumerate(data.labels)},
        },
        "evaluation": evaluation or {},
        "familiarity": fit_familiarity([data.features[i] for i in index]).to_dict(),
        "command": command,
        "shipped": shipped,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": {"keras": keras.__version__, "librosa": librosa.__version__},
    }
