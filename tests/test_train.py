"""Training and evaluation: the folds are the protocol, the figures are arithmetic, stops stop."""

from __future__ import annotations

import io
import threading
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import scipy.fft

from ser import train
from ser.datasets import Corpus, LabelledClip
from ser.errors import TrainingError, TrainingStopped
from ser.features import VOICE_TRACKS
from ser.models import ModelType, relative_extremes_basis, statistics_extractor
from ser.train import Scores, TrainOptions, Validation


def _clips(speakers: list[str]) -> list[LabelledClip]:
    return [
        LabelledClip(Path(f"{s}_{i}.wav"), "happy", s, Corpus.RAVDESS)
        for i, s in enumerate(speakers)
    ]


def test_ravdess_folds_hold_out_four_actors_each_and_keep_other_corpora_in_training() -> None:
    speakers = [f"ravdess:{a:02d}" for a in range(1, 25) for _ in range(3)] + ["tess:OAF"] * 5
    clips = _clips(speakers)
    folds = train.ravdess_folds(clips)
    assert len(folds) == 6
    seen: set[int] = set()
    for k, (train_index, test_index) in enumerate(folds, start=1):
        test_actors = {
            int(clips[i].speaker.split(":")[1]) for i in test_index if "ravdess" in clips[i].speaker
        }
        assert test_actors == set(range(4 * k - 3, 4 * k + 1))
        assert all("tess" not in clips[i].speaker for i in test_index)
        assert not set(train_index) & set(test_index)
        assert len(train_index) + len(test_index) == len(clips)
        seen |= set(test_index.tolist())
    assert len(seen) == 24 * 3  # every RAVDESS clip is tested exactly once


def test_speaker_folds_never_split_a_speaker() -> None:
    speakers = np.array([f"crema-d:{1000 + i % 7}" for i in range(70)])
    for train_index, test_index in train.speaker_folds(speakers, 3):
        assert not set(speakers[train_index]) & set(speakers[test_index])


def test_speaker_folds_refuse_unknown_speakers() -> None:
    with pytest.raises(TrainingError, match="known speakers"):
        train.speaker_folds(np.array(["folders:unknown"] * 10), 5)


def _prepared(clips: list[LabelledClip]) -> train.Prepared:
    """Just enough of a prepared set for the split: its clips."""
    n = len(clips)
    return train.Prepared(tuple(clips), (), np.zeros(n, dtype=np.int64), ("happy",), {}, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("speakers", "problem"),
    [
        ([f"ravdess:{a:02d}" for a in (1, 2, 21)], None),  # actor 21: the protocol's fold 6
        ([f"tess:{s}" for s in "ABCDE"], None),  # five known speakers: five folds
        ([f"tess:{s}" for s in "ABCD"], "needs at least 5 known speakers. Found 4 speakers."),
        (
            [f"tess:{s}" for s in "ABCDE"] + ["folders:unknown"],
            "Found 6 speakers, some unknown",
        ),
    ],
    ids=["ravdess-21-24", "five-speakers", "four-speakers", "unknown-speakers"],
)
def test_one_hold_out_rule_for_the_train_pages_check_and_the_split(
    speakers: list[str], problem: str | None
) -> None:
    clips = _clips(speakers)
    said = train.speaker_holdout_problem(clips)
    if problem is None:
        assert said is None
        train_index, test_index = train.holdout_split(_prepared(clips), Validation.SPEAKER, seed=0)
        assert len(test_index) and not {clips[i].speaker for i in train_index} & {
            clips[i].speaker for i in test_index
        }
        return
    assert said is not None and problem in said
    with pytest.raises(TrainingError) as caught:
        train.holdout_split(_prepared(clips), Validation.SPEAKER, seed=0)
    assert str(caught.value) == said  # the page says before the run what the split would
    assert train.holdout_split(_prepared(clips), Validation.RANDOM, seed=0)[1].size


def test_scores_are_accuracy_and_unweighted_average_recall() -> None:
    scores = Scores(("a", "b"), np.array([[3, 0], [1, 1]]))
    assert scores.accuracy == pytest.approx(0.8)
    assert scores.uar == pytest.approx(0.75)  # (3/3 + 1/2) / 2
    np.testing.assert_allclose(scores.precision, [0.75, 1.0])


@pytest.fixture(scope="module")
def prepared(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> train.Prepared:
    cache = tmp_path_factory.mktemp("cache")
    return train.prepare([tiny_corpus], TrainOptions(), cache_dir=cache)


def test_prepare_labels_in_canonical_order(prepared: train.Prepared) -> None:
    assert prepared.labels == ("neutral", "happy", "sad", "angry")
    assert len(prepared.features) == len(prepared.clips) == len(prepared.targets) == 96
    assert prepared.features[0].shape == (40,)


def test_speaker_holdout_shares_no_speaker(prepared: train.Prepared) -> None:
    train_index, test_index = train.holdout_split(prepared, Validation.SPEAKER, seed=1)
    assert len(test_index) > 0
    assert not set(prepared.speakers[train_index]) & set(prepared.speakers[test_index])


def test_merge_and_subset_relabel(tiny_corpus: Path, tmp_path: Path) -> None:
    options = TrainOptions(merge=(("sad", "neutral"),), emotions=("neutral", "angry"))
    data = train.prepare([tiny_corpus], options, cache_dir=tmp_path)
    assert data.labels == ("neutral", "angry")
    assert np.bincount(data.targets).tolist() == [48, 24]


def test_one_emotion_is_refused(tiny_corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="at least two emotions"):
        train.prepare([tiny_corpus], TrainOptions(emotions=("sad",)), cache_dir=tmp_path)


@pytest.mark.slow
def test_features_come_from_the_cache_the_second_time(tiny_corpus: Path, tmp_path: Path) -> None:
    options = TrainOptions()
    first = train.prepare([tiny_corpus], options, cache_dir=tmp_path)
    entries = sorted(tmp_path.rglob("*.npy"))
    assert len(entries) == len(first.clips)
    for entry in entries:  # poison the cache: a second run must read it, not recompute
        np.save(entry, np.full(40, 7.0, dtype=np.float32))
    second = train.prepare([tiny_corpus], options, cache_dir=tmp_path)
    assert all(np.all(f == 7.0) for f in second.features)


@pytest.mark.slow
def test_progress_reports_every_clip(tiny_corpus: Path, tmp_path: Path) -> None:
    reports: list[train.Progress] = []
    train.prepare([tiny_corpus], TrainOptions(), cache_dir=tmp_path, progress=reports.append)
    assert reports[-1].done == reports[-1].total == 96
    assert [r.done for r in reports] == sorted(r.done for r in reports)


def test_stop_during_extraction(tiny_corpus: Path, tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(TrainingStopped):
        train.prepare([tiny_corpus], TrainOptions(), cache_dir=tmp_path, stop=stop)


@pytest.mark.slow
def test_stop_during_fitting_ends_after_the_current_epoch(prepared: train.Prepared) -> None:
    stop = threading.Event()
    epochs_seen: list[int] = []

    def progress(report: train.Progress) -> None:
        epochs_seen.append(report.done)
        stop.set()  # ask to stop after the first epoch

    options = TrainOptions(epochs=50)
    with pytest.raises(TrainingStopped, match="stopped after"):
        train.fit(prepared, np.arange(len(prepared.clips)), options, progress=progress, stop=stop)
    assert len(epochs_seen) <= 2


@pytest.mark.slow
def test_cross_validation_skips_folds_a_partial_copy_lacks(prepared: train.Prepared) -> None:
    evaluation = train.cross_validate(prepared, TrainOptions(epochs=3))
    assert evaluation.protocol == "RAVDESS 6-fold by actor"
    assert len(evaluation.folds) == 2  # actors 1-8 fill folds 1 and 2 only
    assert evaluation.total.confusion.sum() == len(prepared.clips)


@pytest.mark.parametrize("n_folds", [0, 1])
def test_cross_validation_needs_two_folds(prepared: train.Prepared, n_folds: int) -> None:
    with pytest.raises(TrainingError, match=f"at least 2 folds, not {n_folds}"):
        train.cross_validate(prepared, TrainOptions(epochs=1), n_folds=n_folds)


@pytest.mark.slow
def test_holdout_learns_the_tiny_corpus(prepared: train.Prepared) -> None:
    result = train.train_holdout(prepared, TrainOptions(epochs=40))
    assert result.scores.accuracy > 0.6  # chance is 0.25
    assert len(result.history["val_accuracy"]) == 40


@pytest.mark.slow
@pytest.mark.parametrize(
    "model_type",
    [ModelType.MFCC_CNN, ModelType.LOGMEL_CNN, ModelType.LOGMEL_FUSION, ModelType.LOGMEL_VOICE],
)
def test_cnn_trains_on_frames(model_type: ModelType, tiny_corpus: Path, tmp_path: Path) -> None:
    options = TrainOptions(model_type=model_type, epochs=2)
    data = train.prepare([tiny_corpus], options, cache_dir=tmp_path)
    assert data.features[0].ndim == 2
    result = train.train_holdout(data, options)
    _, test_index = train.holdout_split(data, Validation.SPEAKER, seed=options.seed)
    assert result.scores.confusion.sum() == len(test_index)
    assert result.model.inputs[0].shape[1] is None  # any clip length at prediction time


@pytest.mark.slow
def test_compare_linear_learns_the_tiny_corpus_from_its_functionals(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    options = TrainOptions(model_type=ModelType.COMPARE_LINEAR, epochs=30)
    data = train.prepare([tiny_corpus], options, cache_dir=tmp_path)
    assert {f.shape for f in data.features} == {(6373,)}
    result = train.train_holdout(data, options)
    assert result.scores.accuracy > 0.75  # chance is 0.25; 1.0 over three seeds
    assert [layer.name for layer in result.model.layers] == ["compare", "scale", "emotion"]


@pytest.mark.slow
def test_compare_blend_learns_the_tiny_corpus_and_runs_in_numpy(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    from ser import runtime

    options = TrainOptions(model_type=ModelType.COMPARE_BLEND, epochs=30)
    data = train.prepare([tiny_corpus], options, cache_dir=tmp_path)
    assert {f.shape for f in data.features} == {(6373 + 828,)}
    result = train.train_holdout(data, options)
    assert result.scores.accuracy > 0.75  # chance is 0.25
    path = tmp_path / "blend.keras"
    result.model.save(path)
    batch = np.stack(data.features[:6])
    keras_out = np.asarray(keras.saving.load_model(path, safe_mode=True)(batch))
    np.testing.assert_allclose(runtime.load(path)(batch), keras_out, atol=1e-5)
    linear = result.model.get_layer("compare_statistics_linear")
    heads = [result.model.get_layer(f"statistics_head{s}") for s in ("", "_2", "_3")]
    blended = 0.8 * np.asarray(linear(batch)) + 0.2 * np.mean(
        [np.asarray(h(batch[:, 6373:])) for h in heads], axis=0
    )
    np.testing.assert_allclose(keras_out, blended, atol=1e-5)


@pytest.mark.parametrize("n_frames", [1, 2, 9, 40])
def test_clip_statistics_in_numpy_are_the_graphs_statistics(n_frames: int) -> None:
    from ser.features import clip_statistics

    frames = np.random.default_rng(n_frames).normal(-40.0, 10.0, size=(n_frames, 12))
    frames = frames.astype(np.float32)
    graph = statistics_extractor(12, n_mels=8, n_cepstra=3, smoothing_frames=5, shape_moments=True)
    want = graph.predict_on_batch(frames[np.newaxis])[0]
    got = clip_statistics(frames, n_mels=8, n_cepstra=3, smoothing_frames=5)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=5e-2)


def _per_band_figures(frames: np.ndarray) -> np.ndarray:
    change = np.diff(frames, axis=1)
    half_mean_change_power = (change**2).sum(axis=1) / (
        2 * frames.shape[1] - 1
    )  # frames doubled, see band_statistics
    want = [frames.mean(1), frames.var(1), frames.min(1), frames.max(1), half_mean_change_power]
    return np.concatenate(want, axis=1)


def test_band_statistics_are_the_per_band_figures_of_the_clip() -> None:
    frames = np.random.default_rng(3).normal(-40.0, 10.0, size=(2, 9, 5)).astype(np.float32)
    got = statistics_extractor(5).predict_on_batch(frames)
    np.testing.assert_allclose(got, _per_band_figures(frames), rtol=1e-4, atol=1e-2)
    one_frame = statistics_extractor(5).predict_on_batch(frames[:, :1])
    assert np.isfinite(one_frame).all()


def test_cepstra_of_the_mel_bands_join_the_band_statistics() -> None:
    """Columns: 6 'mel bands', then 2 'voice tracks' that the DCT must leave out."""
    frames = np.random.default_rng(4).normal(-40.0, 10.0, size=(2, 9, 8)).astype(np.float32)
    got = statistics_extractor(8, n_mels=6, n_cepstra=3).predict_on_batch(frames)
    cepstra = scipy.fft.dct(frames[..., :6], type=2, norm="ortho", axis=-1)[..., 1:4]
    want = _per_band_figures(np.concatenate([frames, cepstra], axis=-1))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-2)


def test_smoothed_extremes_and_shape_moments_join_the_band_statistics() -> None:
    frames = np.random.default_rng(5).normal(-40.0, 10.0, size=(2, 12, 3)).astype(np.float32)
    got = statistics_extractor(3, smoothing_frames=5, shape_moments=True).predict_on_batch(frames)
    # The moving average over the frames present: windows at the ends are shorter, not padded.
    smooth = np.stack([frames[:, max(0, t - 2) : t + 3].mean(axis=1) for t in range(12)], axis=1)
    z = (frames - frames.mean(axis=1, keepdims=True)) / frames.std(axis=1, keepdims=True)
    want = [_per_band_figures(frames), smooth.min(1), smooth.max(1), (z**3).mean(1), (z**4).mean(1)]
    np.testing.assert_allclose(got, np.concatenate(want, axis=1), rtol=1e-3, atol=1e-2)
    one_frame = statistics_extractor(3, smoothing_frames=5, shape_moments=True).predict_on_batch(
        frames[:, :1]
    )
    assert np.isfinite(one_frame).all()


def test_the_smoothed_change_comes_last_in_the_band_statistics() -> None:
    frames = np.random.default_rng(7).normal(-40.0, 10.0, size=(2, 12, 3)).astype(np.float32)
    settings = {"smoothing_frames": 5, "shape_moments": True}
    plain = statistics_extractor(3, **settings).predict_on_batch(frames)
    got = statistics_extractor(3, **settings, smooth_change=True).predict_on_batch(frames)
    smooth = np.stack([frames[:, max(0, t - 2) : t + 3].mean(axis=1) for t in range(12)], axis=1)
    # As the frames' own change: each frame doubled, so the squares are summed over 2n - 1.
    want = (np.diff(smooth, axis=1) ** 2).sum(axis=1) / (2 * 12 - 1)
    np.testing.assert_allclose(got[:, : plain.shape[1]], plain, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got[:, plain.shape[1] :], want, rtol=1e-3, atol=1e-3)
    # Slower than the frames' own change: the moving average moves less from frame to frame.
    assert (got[:, plain.shape[1] :] < plain[:, 12:15]).all()
    one_frame = statistics_extractor(3, **settings, smooth_change=True).predict_on_batch(
        frames[:, :1]
    )
    assert np.isfinite(one_frame).all() and (one_frame[:, -3:] == 0).all()
    basis = relative_extremes_basis(3, **settings, smooth_change=True)
    assert basis.shape == (30, 30) and (np.diag(basis)[-3:] == 1).all()


def test_the_relative_basis_measures_each_columns_extremes_from_its_mean() -> None:
    frames = np.random.default_rng(6).normal(-40.0, 10.0, size=(2, 12, 3)).astype(np.float32)
    extractor = statistics_extractor(3, smoothing_frames=5, shape_moments=True)
    statistics = extractor.predict_on_batch(frames)
    basis = relative_extremes_basis(3, smoothing_frames=5, shape_moments=True)
    # Figures: mean, variance, min, max, change, smoothed min and max, skewness, kurtosis.
    figures = statistics.reshape(2, 9, 3)
    want = figures.copy()
    want[:, [2, 3, 5, 6]] -= figures[:, :1]
    np.testing.assert_allclose(statistics @ basis, want.reshape(2, -1), rtol=1e-5, atol=1e-4)
    # A constant offset of a column (a microphone's gain) now moves its mean alone.
    offset = extractor.predict_on_batch(frames + np.array([6.0, 0.0, 0.0], np.float32)) @ basis
    moved = np.abs(offset - statistics @ basis).reshape(2, 9, 3).max(axis=0) > 1e-2
    assert moved[:, 0].tolist() == [True] + [False] * 8
    assert not moved[:, 1:].any()


@pytest.mark.slow
@pytest.mark.parametrize("model_type", [ModelType.LOGMEL_FUSION, ModelType.LOGMEL_VOICE])
def test_the_fused_model_averages_its_cnn_and_its_statistics_heads(
    model_type: ModelType, tiny_corpus: Path, tmp_path: Path
) -> None:
    options = TrainOptions(model_type=model_type, epochs=1)
    n_heads = options.recipe.statistics_heads
    data = train.prepare([tiny_corpus], options, cache_dir=tmp_path)
    reports: list[train.Progress] = []
    model, history = train.fit(data, np.arange(len(data.clips)), options, progress=reports.append)
    head_reports = [r for r in reports if train.is_head_stage(r.stage)]
    assert len(head_reports) == n_heads * train.STATISTICS_HEAD_EPOCHS
    assert len({r.stage for r in head_reports}) == n_heads  # each head reports as itself
    assert len(history["loss"]) == 1  # the curves are the CNN's
    cnn, extractor = model.get_layer("logmel_cnn"), model.get_layer("band_statistics")
    heads = [layer for layer in model.layers if layer.name.startswith("statistics_head")]
    assert len(heads) == n_heads
    clip = data.features[0][np.newaxis]
    statistics = extractor.predict_on_batch(clip)
    heads_out = np.stack([head.predict_on_batch(statistics) for head in heads])
    if n_heads > 1:  # each from its own random start
        first_kernels = [np.asarray(head.trainable_weights[0]) for head in heads]
        assert not np.allclose(first_kernels[0], first_kernels[1])
    expected = (cnn.predict_on_batch(clip) + heads_out.mean(axis=0)) / 2
    np.testing.assert_allclose(model.predict_on_batch(clip), expected, atol=1e-6)


@pytest.mark.slow
def test_voice_tracks_reach_the_statistics_head_and_not_the_cnn(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    options = TrainOptions(model_type=ModelType.LOGMEL_VOICE, epochs=1)
    data = train.prepare([tiny_corpus], options, cache_dir=tmp_path)
    model, _ = train.fit(data, np.arange(len(data.clips)), options)
    n_mels = options.features.n_mels
    clip = data.features[0][np.newaxis]
    assert clip.shape[-1] == n_mels + len(VOICE_TRACKS)
    other_voice = clip.copy()
    other_voice[..., n_mels:] = data.features[-1].mean(axis=0)[n_mels:]  # another clip's tracks
    cnn, extractor, head = (
        model.get_layer(n) for n in ("logmel_cnn", "band_statistics", "statistics_head")
    )
    np.testing.assert_allclose(
        cnn.predict_on_batch(other_voice), cnn.predict_on_batch(clip), atol=1e-6
    )
    n_columns = n_mels + len(VOICE_TRACKS) + options.recipe.head_cepstra  # cepstra of the bands too
    assert extractor.predict_on_batch(clip).shape == (
        1,
        9 * n_columns,
    )  # 5 statistics, 2 smoothed extremes, 2 shape moments
    model.save(tmp_path / "voice.keras")  # the fixed DCT travels with the file and loads safely
    assert (
        _parts_with_optimizer_state(tmp_path / "voice.keras") == []
    )  # weights only, no training state
    loaded = keras.saving.load_model(
        tmp_path / "voice.keras", safe_mode=True, compile=False
    )  # as the store
    np.testing.assert_allclose(
        loaded.predict_on_batch(clip), model.predict_on_batch(clip), atol=1e-6
    )
    # Compared as log-probabilities: on the tiny corpus the head is all but certain.
    head_outputs = [
        np.log(head.predict_on_batch(extractor.predict_on_batch(x)) + 1e-30)
        for x in (clip, other_voice)
    ]
    assert np.abs(head_outputs[0] - head_outputs[1]).max() > 0.1


def _parts_with_optimizer_state(path: Path) -> list[str]:
    """The model of a saved ``.keras`` file ("/") and sub-models that carry an optimizer's variables."""
    with (
        zipfile.ZipFile(path) as archive,
        h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as weights,
    ):
        parts = {"/": weights, **dict(weights["layers"].items())}
        return [name for name, part in parts.items() if "optimizer" in part]


@pytest.mark.slow
def test_a_trained_model_is_saved_without_optimizer_state(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    options = TrainOptions(model_type=ModelType.MFCC_LSTM, epochs=2)
    data = train.prepare([tiny_corpus], options, cache_dir=tmp_path)
    model, _ = train.fit(data, np.arange(len(data.clips)), options)
    model.save(tmp_path / "lstm.keras")
    assert _parts_with_optimizer_state(tmp_path / "lstm.keras") == []


def test_shipped_models_carry_no_optimizer_state() -> None:
    shipped = sorted(Path(__file__).parent.parent.joinpath("models").glob("*.keras"))
    assert len(shipped) >= 2
    assert {path.name: _parts_with_optimizer_state(path) for path in shipped} == {
        path.name: [] for path in shipped
    }


# --- unseen corpora ---------------------------------------------------------------------


def _folders_corpus(root: Path, emotions: list[str], *, voice: float = 1.12) -> Path:
    """A generic one-folder-per-emotion corpus: another 'speaker', as an unseen corpus would be."""
    from tests.conftest import TINY_EMOTIONS
    from tests.signals import speech_like, write_audio

    for emotion in emotions:
        _, f0_hz, syllable_s, amplitude = TINY_EMOTIONS.get(emotion, ("02", 150.0, 0.3, 0.15))
        (root / emotion).mkdir(parents=True, exist_ok=True)
        for rep in range(4):
            samples = speech_like(
                duration_s=1.2,
                sample_rate_hz=16_000,
                seed=5000 + rep,
                f0_hz=f0_hz * voice,
                syllable_s=syllable_s,
                amplitude=amplitude,
                speech_fraction=1.0,
            )
            write_audio(root / emotion / f"{emotion}_{rep}.wav", samples, sample_rate_hz=16_000)
    return root


@pytest.mark.slow
def test_across_corpora_trains_on_one_side_and_scores_the_other_on_shared_emotions(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    unseen = _folders_corpus(tmp_path / "unseen", ["neutral", "happy", "angry", "calm"])
    options = TrainOptions(epochs=40)
    data, (train_index, test_index) = train.prepare_across_corpora(
        [tiny_corpus], [unseen], options, cache_dir=tmp_path / "cache"
    )
    assert data.labels == (
        "neutral",
        "happy",
        "angry",
    )  # sad: training side only; calm: test side only
    assert len(test_index) == 12 and len(train_index) == 8 * 3 * 3
    assert all(data.clips[i].path.is_relative_to(unseen) for i in test_index)
    assert not any(data.clips[i].path.is_relative_to(unseen) for i in train_index)
    evaluation = train.evaluate_across_corpora(data, (train_index, test_index), options)
    assert evaluation.protocol == "trained on ravdess, tested on unseen folders"
    assert evaluation.total.confusion.sum() == 12
    assert evaluation.mean_accuracy > 0.5  # chance is 1/3: the voice differs, the emotions do not


def test_audio_on_both_sides_stays_on_the_training_side_only(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    import shutil

    unseen = _folders_corpus(tmp_path / "unseen", ["neutral", "happy"])
    copied = unseen / "happy" / "copy.wav"
    shutil.copy(tiny_corpus / "Actor_01" / "03-01-03-01-01-01-01.wav", copied)
    data, (_, test_index) = train.prepare_across_corpora(
        [tiny_corpus], [unseen], TrainOptions(), cache_dir=tmp_path / "cache"
    )
    assert copied not in {data.clips[i].path for i in test_index}
    assert len(test_index) == 8


def test_across_corpora_refuses_overlap_and_too_few_shared_emotions(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    with pytest.raises(TrainingError, match="overlap"):
        train.prepare_across_corpora([tiny_corpus], [tiny_corpus / "Actor_01"], TrainOptions())
    unseen = _folders_corpus(tmp_path / "unseen", ["happy", "calm"])
    with pytest.raises(TrainingError, match=r"share 1 emotion\(s\) \(happy\)"):
        train.prepare_across_corpora(
            [tiny_corpus], [unseen], TrainOptions(), cache_dir=tmp_path / "cache"
        )


@pytest.mark.slow
def test_the_statistics_blend_weighs_its_mlps_and_its_linear_head(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    options = TrainOptions(model_type=ModelType.STATISTICS_BLEND, epochs=2)
    recipe = options.recipe
    data = train.prepare([tiny_corpus], options, cache_dir=tmp_path)
    stages: set[str] = set()
    model, _ = train.fit(
        data, np.arange(len(data.clips)), options, progress=lambda p: stages.add(p.stage)
    )
    # The progress names each head, the linear one as such.
    assert stages == {
        "training · statistics head 1/3",
        "training · statistics head 2/3",
        "training · statistics head 3/3",
        "training · statistics head (linear)",
    }
    extractor = model.get_layer("band_statistics")
    mlps = [layer for layer in model.layers if layer.name.startswith("statistics_head")]
    linear = model.get_layer("linear_head")
    assert len(mlps) == recipe.statistics_heads == 3
    assert len(linear.layers[-1].get_weights()[0].shape) == 2  # one softmax layer on the inputs
    clip = data.features[0][np.newaxis]
    statistics = extractor.predict_on_batch(clip)
    mlps_mean = np.mean([head.predict_on_batch(statistics) for head in mlps], axis=0)
    expected = (1 - recipe.linear_weight) * mlps_mean + recipe.linear_weight * (
        linear.predict_on_batch(statistics)
    )
    np.testing.assert_allclose(model.predict_on_batch(clip), expected, atol=1e-6)
    path = tmp_path / "blend.keras"
    model.save(path)
    import keras

    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict_on_batch(clip), expected, atol=1e-6)


@pytest.mark.slow
def test_a_linear_head_with_relative_extremes_reads_the_statistics_through_the_fixed_basis(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from ser import models

    recipe = replace(models.RECIPES[ModelType.STATISTICS_LINEAR], linear_relative_extremes=True)
    monkeypatch.setitem(models.RECIPES, ModelType.STATISTICS_LINEAR, recipe)
    options = TrainOptions(model_type=ModelType.STATISTICS_LINEAR, epochs=2)
    data = train.prepare([tiny_corpus], options, cache_dir=tmp_path)
    model, _ = train.fit(data, np.arange(len(data.clips)), options)
    basis = relative_extremes_basis(
        data.features[0].shape[-1] + recipe.head_cepstra,
        smoothing_frames=recipe.head_smoothing_frames,
        shape_moments=recipe.head_shape_moments,
        smooth_change=recipe.head_smooth_change,
    )
    [head] = [layer for layer in model.layers if layer.name == "statistics_head"]
    np.testing.assert_array_equal(head.get_layer("relative").get_weights()[0], basis)
    clip = data.features[0][np.newaxis]
    statistics = model.get_layer("band_statistics").predict_on_batch(clip)
    probabilities = head.predict_on_batch(statistics)
    np.testing.assert_allclose(model.predict_on_batch(clip), probabilities, atol=1e-6)
    path = tmp_path / "relative.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict_on_batch(clip), probabilities, atol=1e-6)


def test_the_gradient_reversal_sends_the_corpus_classifiers_gradient_back_reversed() -> None:
    """Forwards both models agree; backwards the head's layers get ``-strength`` times the
    corpus classifier's plain gradient (a strength of -1 is the plain gradient)."""
    import tensorflow as tf

    from ser.models import build_adversarial_statistics_head

    statistics = np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32)
    trainer, head, strength = build_adversarial_statistics_head(
        n_labels=3, n_corpora=2, train_statistics=statistics
    )
    [first] = [layer for layer in head.layers if isinstance(layer, keras.layers.Dense)][:1]

    def corpus_gradient(at: float) -> np.ndarray:
        strength.assign(at)
        with tf.GradientTape() as tape:
            _, corpus = trainer(statistics[:8], training=False)
            first_corpus = tf.reduce_sum(corpus[:, 0])
        return tape.gradient(first_corpus, first.kernel).numpy()

    plain, reversed_ = corpus_gradient(-1.0), corpus_gradient(0.3)
    assert np.abs(plain).sum() > 0
    np.testing.assert_allclose(reversed_, -0.3 * plain, rtol=1e-4, atol=1e-7)
    emotion, _ = trainer(statistics[:8], training=False)
    np.testing.assert_allclose(head(statistics[:8], training=False), emotion, atol=1e-6)


def test_with_mixup_the_emotion_is_learnt_from_the_mixed_clips_and_the_corpus_from_the_clips() -> (
    None
):
    from ser.models import build_adversarial_statistics_head

    rng = np.random.default_rng(0)
    statistics = rng.normal(size=(64, 10)).astype(np.float32)
    trainer, head, _ = build_adversarial_statistics_head(
        n_labels=3, n_corpora=2, train_statistics=statistics, mixup=True
    )
    clips, mixed = statistics[:8], rng.normal(size=(8, 10)).astype(np.float32)
    emotion, corpus = trainer([clips, mixed], training=False)
    np.testing.assert_allclose(emotion, head(mixed, training=False), atol=1e-6)
    _, same_corpus = trainer([clips, mixed[::-1]], training=False)
    np.testing.assert_allclose(corpus, same_corpus, atol=1e-6)  # the mixed clips do not reach it
    assert not np.allclose(emotion, head(clips, training=False), atol=1e-3)


def test_mixup_batches_blend_each_clip_with_another_of_its_batch() -> None:
    from ser.fit import _mixup_batches

    rng = np.random.default_rng(1)
    statistics = rng.normal(size=(50, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 50)]
    weights = rng.uniform(0.5, 2.0, 50).astype(np.float32)
    corpora = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 50)]
    pairs = _mixup_batches(
        statistics, y, weights, corpora=corpora, alpha=0.2, batch_size=16, seed=0
    )
    assert len(pairs) == 4
    (clips, mixed), (targets, corpus), (mixed_weights, clip_weights) = pairs[0]
    index = pairs.order[:16]
    np.testing.assert_array_equal(clips, statistics[index])
    np.testing.assert_array_equal(corpus, corpora[index])
    np.testing.assert_array_equal(clip_weights, weights[index])
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    assert not np.allclose(mixed, clips)  # Beta(0.2, 0.2) shares sit near 0 or 1, rarely both
    # Each mixed row lies on the line from its clip to one clip of the batch, and its target
    # and weight sit at the same share along theirs.
    for row in range(16):
        i = index[row]
        for j in index:
            direction = statistics[j] - statistics[i]
            if not direction.any():
                continue
            share = 1 - float(direction @ (mixed[row] - statistics[i]) / (direction @ direction))
            on_line = share * statistics[i] + (1 - share) * statistics[j]
            if np.allclose(mixed[row], on_line, atol=1e-4):
                break
        else:
            share, j = 1.0, i  # mixed with itself
        assert -1e-4 <= share <= 1 + 1e-4
        np.testing.assert_allclose(targets[row], share * y[i] + (1 - share) * y[j], atol=1e-4)
        np.testing.assert_allclose(
            mixed_weights[row], share * weights[i] + (1 - share) * weights[j], rtol=1e-4
        )
    plain = _mixup_batches(statistics, y, weights, corpora=None, alpha=0.2, batch_size=16, seed=0)
    assert [a.shape for a in plain[0]] == [(16, 4), (16, 3), (16,)]


@pytest.mark.slow
def test_mlp_heads_learn_against_the_corpora_and_ship_only_stock_layers(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from ser import fit, models

    # With mixup too, so that the two-input trainer and its batches are exercised end to end.
    recipe = replace(models.RECIPES[ModelType.STATISTICS_MLP], head_mixup=0.2)
    monkeypatch.setitem(models.RECIPES, ModelType.STATISTICS_MLP, recipe)
    options = TrainOptions(model_type=ModelType.STATISTICS_MLP, epochs=2)
    assert options.recipe.head_corpus_adversary > 0 and options.recipe.head_mixup > 0
    data = train.prepare([tiny_corpus], options, cache_dir=tmp_path)
    # One generated corpus: call actors 5-8 another, so that there is a corpus to hide.
    other = tuple(
        replace(c, corpus=Corpus.TESS) if int(c.speaker.split(":")[1]) > 4 else c
        for c in data.clips
    )
    data = replace(data, clips=other)
    built, strengths = [], []

    def spy(**kwargs: object) -> tuple:
        built.append(kwargs["n_corpora"])
        trainer, head, strength = models.build_adversarial_statistics_head(**kwargs)
        strengths.append(strength)
        return trainer, head, strength

    monkeypatch.setattr(fit, "build_adversarial_statistics_head", spy)
    reports = []
    model, figures = train.fit(data, np.arange(len(data.clips)), options, progress=reports.append)
    assert built == [2, 2, 2]  # each of the three heads, against both corpora
    assert all(float(s.numpy()) == pytest.approx(0.3, abs=0.01) for s in strengths)  # ramped up
    assert set(figures) == {"loss", "accuracy"} and len(figures["loss"]) == 80
    assert {"loss", "accuracy"} <= set(reports[-1].metrics)
    assert not [layer for layer in model._flatten_layers() if "reversal" in layer.name]
    clip = data.features[0][np.newaxis]
    path = tmp_path / "adversarial.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        loaded.predict_on_batch(clip), model.predict_on_batch(clip), atol=1e-6
    )
