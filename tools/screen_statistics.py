"""Screen variants of the linear classifier on whole-clip statistics, on both protocols, in minutes.

    python tools/screen_statistics.py --data-dir $SER_DATA_DIR

The default's whole-clip statistics (828 numbers per clip, from the cached 16 kHz frames) and
the eGeMAPS functionals of RAVDESS, TESS, ASED and EmoSpeech are computed once and kept in
``--work`` (the features themselves come from the project's cache). Each variant is then a
scikit-learn logistic regression on standardised inputs, every training corpus and emotion
weighted alike, scored as the project scores models: leave-one-corpus-out over RAVDESS, TESS and
ASED on 4 classes (neutral/happy/sad/angry), its ECE with a temperature fitted on the other
held-out corpora (each corpus alike), EmoSpeech (calm/happy/angry/fearful) from a fit on all
three, and RAVDESS 6-fold by actor. A screen: scikit-learn's regression is not the shipped
Keras layer (it scored a few points higher on RAVDESS), so compare rows with each other only.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file: the package beside it

from ser.evaluation import _temperature_for, expected_calibration_error, with_temperature  # noqa: E402
from ser.options import Augmentation, TrainOptions  # noqa: E402

CORPORA = ("ravdess", "tess", "ased", "emospeech")
HELD_OUT = ("ased", "ravdess", "tess")
FOUR = ("neutral", "happy", "sad", "angry")
EMOSPEECH = ("calm", "happy", "angry", "fearful")
COLUMNS = 92  # 64 mel bands, 8 voice tracks, 20 cepstra; 9 figures of each (see band_statistics)


def dump(data_dir: Path, work: Path) -> dict[str, np.ndarray]:
    """The statistics, their room-and-microphone copies, eGeMAPS, labels, corpora and speakers."""
    path = work / "statistics.npz"
    if path.is_file():
        return dict(np.load(path))
    from ser.models import RECIPES, ModelType, statistics_extractor
    from ser.prepare import prepare
    from ser.scores import _outputs_whole

    folders = [data_dir / c for c in CORPORA]
    options = TrainOptions(model_type=ModelType.STATISTICS_BLEND, augment=(Augmentation.CHANNEL,))
    data = prepare(folders, options)
    recipe = RECIPES[ModelType.STATISTICS_BLEND]
    extractor = statistics_extractor(
        data.features[0].shape[-1],
        n_mels=recipe.features.n_mels,
        n_cepstra=recipe.head_cepstra,
        smoothing_frames=recipe.head_smoothing_frames,
        shape_moments=recipe.head_shape_moments,
        smooth_change=recipe.head_smooth_change,
    )
    egemaps = prepare(folders, TrainOptions(model_type=ModelType.EGEMAPS_LINEAR))
    assert [c.path for c in egemaps.clips] == [c.path for c in data.clips]
    arrays = {
        "X": _outputs_whole(extractor, list(data.features)),
        "channel": _outputs_whole(extractor, list(data.augmented[Augmentation.CHANNEL.value])),
        "egemaps": np.stack(egemaps.features),
        "y": np.array([data.labels[t] for t in data.targets]),
        "corpus": np.array([c.corpus.value for c in data.clips]),
        "speaker": data.speakers,
    }
    work.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def _weights(corpus: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Every corpus, then every emotion, weighs alike (as ``ser.fit._sample_weights``)."""
    _, inverse, counts = np.unique(corpus, return_inverse=True, return_counts=True)
    weights = len(corpus) / (len(counts) * counts[inverse])
    labels, index = np.unique(y, return_inverse=True)
    per_label = np.bincount(index, weights=weights)
    return weights * (weights.sum() / (len(labels) * per_label))[index]


def _on(probabilities: np.ndarray, labels: list[str], y: np.ndarray, keep: tuple[str, ...]):  # noqa: ANN202
    """The clips of ``keep``'s emotions: probabilities over ``keep`` (renormalised) and targets."""
    members = np.isin(y, keep)
    columns = [labels.index(k) for k in keep]
    kept = probabilities[members][:, columns]
    return kept / kept.sum(axis=1, keepdims=True), np.array([keep.index(v) for v in y[members]])


Fit = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, list[str]]]  # (train rows, test rows)


def score(fit: Fit, d: dict[str, np.ndarray]) -> str:
    corpus, y = d["corpus"], d["y"]
    four = {}
    for held in HELD_OUT:
        train = np.flatnonzero((corpus != held) & (corpus != "emospeech"))
        probabilities, labels = fit(train, np.flatnonzero(corpus == held))
        four[held] = _on(probabilities, labels, y[corpus == held], FOUR)
    accuracy = {k: float(np.mean(p.argmax(1) == t)) for k, (p, t) in four.items()}
    ece = {}
    for held, (p, t) in four.items():
        temperature = _temperature_for([v for k, v in four.items() if k != held])
        ece[held] = expected_calibration_error(with_temperature(p, temperature=temperature), t)
    probabilities, labels = fit(
        np.flatnonzero(corpus != "emospeech"), np.flatnonzero(corpus == "emospeech")
    )
    p, t = _on(probabilities, labels, y[corpus == "emospeech"], EMOSPEECH)
    actor = np.array(
        [int(s.split(":")[1]) if s.startswith("ravdess:") else 0 for s in d["speaker"]]
    )
    folds = []
    for k in range(1, 7):
        test = (actor >= 4 * k - 3) & (actor <= 4 * k)
        probabilities, labels = fit(
            np.flatnonzero((corpus != "emospeech") & ~test), np.flatnonzero(test)
        )
        shared = tuple(e for e in labels if e in set(y[test]))
        fp, ft = _on(probabilities, labels, y[test], shared)
        folds.append(np.mean(fp.argmax(1) == ft))
    each = " ".join(f"{k} {v:.1%}" for k, v in accuracy.items())
    return (
        f"LOCO 4-class {np.mean(list(accuracy.values())):.1%} / worst {min(accuracy.values()):.1%} "
        f"({each}), ECE cal. {np.mean(list(ece.values())):.3f} | EmoSpeech {np.mean(p.argmax(1) == t):.1%}"
        f" | RAVDESS 6-fold {np.mean(folds):.1%}"
    )


def logistic(
    X: np.ndarray, d: dict[str, np.ndarray], *, c: float = 0.003, copies: np.ndarray | None = None
) -> Fit:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    def fit(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, list[str]]:
        inputs, y = X[train], d["y"][train]
        weights = _weights(d["corpus"][train], y)
        if copies is not None:  # a room-and-microphone copy of every training clip beside it
            inputs, y, weights = (
                np.concatenate([inputs, copies[train]]),
                np.tile(y, 2),
                np.tile(weights, 2),
            )
        scaler = StandardScaler().fit(inputs)
        model = LogisticRegression(C=c, max_iter=300).fit(
            scaler.transform(inputs), y, sample_weight=weights
        )
        return model.predict_proba(scaler.transform(X[test])), list(model.classes_)

    return fit


def compare_functionals(data_dir: Path, work: Path, d: dict[str, np.ndarray]) -> np.ndarray:
    """The ComParE 2016 functionals of the same clips, in the same order (as compare-linear)."""
    path = work / "compare.npy"
    if path.is_file():
        return np.load(path)
    from ser.models import ModelType
    from ser.prepare import prepare

    data = prepare(
        [data_dir / c for c in CORPORA], TrainOptions(model_type=ModelType.COMPARE_LINEAR)
    )
    assert np.array_equal(data.speakers, d["speaker"]), "the clips differ from statistics.npz"
    functionals = np.stack(data.features)
    np.save(path, functionals)
    return functionals


def within_corpus(X: np.ndarray, d: dict[str, np.ndarray], corpus: str, *, c: float) -> float:
    """Accuracy of the same regression trained on ``corpus`` itself, 5-fold by speaker.

    Not a protocol of the project: a ceiling for what these features tell apart in that corpus,
    against which its cross-corpus figure can be read.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.preprocessing import StandardScaler

    members = d["corpus"] == corpus
    inputs, y, speakers = X[members], d["y"][members], d["speaker"][members]
    right = 0
    for train, test in GroupKFold(n_splits=5).split(inputs, y, speakers):
        scaler = StandardScaler().fit(inputs[train])
        model = LogisticRegression(C=c, max_iter=500).fit(scaler.transform(inputs[train]), y[train])
        right += int(np.sum(model.predict(scaler.transform(inputs[test])) == y[test]))
    return right / len(y)


def relative_extremes(X: np.ndarray) -> np.ndarray:
    """The statistics as the recipe setting ``linear_relative_extremes`` gives them to the layer."""
    from ser.models import RECIPES, ModelType, relative_extremes_basis

    recipe = RECIPES[ModelType.STATISTICS_BLEND]
    return X @ relative_extremes_basis(
        COLUMNS,
        smoothing_frames=recipe.head_smoothing_frames,
        shape_moments=recipe.head_shape_moments,
        smooth_change=recipe.head_smooth_change,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="holds ravdess/, tess/, ased/, emospeech/"
    )
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "ser-screens")
    parser.add_argument(
        "--within",
        metavar="CORPUS",
        help="instead: the same regressions trained on CORPUS itself, 5-fold by speaker",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # scikit-learn's convergence notes
    d = dump(args.data_dir, args.work)
    if args.within:
        _print_within(args.within, d, compare_functionals(args.data_dir, args.work, d))
        return
    X = d["X"]
    variants = {
        "statistics (as statistics-linear)": logistic(X, d),
        "statistics, C = 0.001": logistic(X, d, c=0.001),
        "statistics, extremes relative to the mean": logistic(relative_extremes(X), d),
        "the same, C = 0.001": logistic(relative_extremes(X), d, c=0.001),
        "statistics + a room/microphone copy": logistic(X, d, copies=d["channel"]),
        "statistics + eGeMAPS": logistic(np.concatenate([X, d["egemaps"]], axis=1), d),
        "eGeMAPS (as egemaps-linear)": logistic(d["egemaps"], d),
    }
    for name, fit in variants.items():
        print(f"{name:45s} {score(fit, d)}", flush=True)


def _print_within(corpus: str, d: dict[str, np.ndarray], compare: np.ndarray) -> None:
    statistics = relative_extremes(d["X"])
    inputs = {
        "statistics, extremes relative to the mean": statistics,
        "ComParE": compare,
        "both, side by side": np.concatenate([statistics, compare], axis=1),
        "eGeMAPS": d["egemaps"],
    }
    for name, X in inputs.items():
        for c in (0.0003, 0.001, 0.003, 0.01):
            accuracy = within_corpus(X, d, corpus, c=c)
            print(f"{corpus}, trained on itself: {name:42s} C = {c:<6} {accuracy:.1%}", flush=True)


if __name__ == "__main__":
    main()
