"""Screen blends of two recipes' probabilities on both protocols, from one set of fits.

    python tools/screen_blend.py --data $SER_DATA_DIR/ravdess --data $SER_DATA_DIR/tess \\
        --data $SER_DATA_DIR/ased --extra-test $SER_DATA_DIR/emospeech \\
        --first statistics_linear --second statistics_mlp --weights 0,0.25,0.5,0.75,1

Each split of RAVDESS 6-fold by actor and of leave-one-corpus-out (and a fit on all corpora
for the extra test sets) fits both recipes once; their held-out probabilities are kept, and the
project's own protocols then score ``w * first + (1 - w) * second`` for each weight. The two
recipes must read the same features. A screen: the weights are chosen on the folds they are
scored on, so the best row carries a little selection optimism.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file: the package beside it

from ser import evaluation, train  # noqa: E402
from ser.cli import progress_bar  # noqa: E402
from ser.models import ModelType  # noqa: E402
from ser.options import TrainOptions  # noqa: E402


@dataclass(frozen=True)
class _Pair:
    """The two recipes' models of one split (or, when replayed, only the split's name)."""

    stage: str
    models: tuple | None


def _screen(data, extra, options: tuple[TrainOptions, TrainOptions], weights: list[float]) -> None:  # noqa: ANN001
    kept: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    real_fit, real_predict = train.fit, train.predict_probabilities

    def fitting(data, train_index, _options, *, progress=None, stop=None, stage="model"):  # noqa: ANN001, ANN202
        models = tuple(
            real_fit(data, train_index, o, progress=progress, stop=stop, stage=stage)[0]
            for o in options
        )
        return _Pair(stage, models), {}

    weight = 0.5

    def predicting(pair: _Pair, features: list[np.ndarray]) -> np.ndarray:
        key = (pair.stage, len(features))
        if key not in kept:
            kept[key] = tuple(real_predict(m, features) for m in pair.models)
        first, second = kept[key]
        return weight * first + (1.0 - weight) * second

    train.fit, train.predict_probabilities = fitting, predicting
    try:
        for w in [None, *weights]:  # the first pass fits and keeps; the others replay
            weight = 0.5 if w is None else w
            if w is not None:
                train.fit = lambda data, i, o, *, stage="model", **_: (_Pair(stage, None), {})
            folds = train.cross_validate(data, options[0], progress=progress_bar)
            across = evaluation.leave_one_corpus_out(
                data, options[0], extra_tests=extra, progress=progress_bar
            )
            if w is None:
                continue
            _report(w, folds.to_dict(temperature=across.temperature), across.to_dict())
    finally:
        train.fit, train.predict_probabilities = real_fit, real_predict


def _report(w: float, folds: dict, across: dict) -> None:
    four = across["four_class"]
    extra = " ".join(
        f"{name} {f['accuracy']:.1%} (ECE cal. {f['ece_calibrated']:.3f})"
        for name, f in across["extra_tests"].items()
    )
    per_corpus = " ".join(
        f"{name} {f['four_class']['accuracy']:.1%}"
        for name, f in across["corpora"].items()
        if "four_class" in f
    )
    print(
        f"w={w:<5g} 6-fold {folds['mean_accuracy']:.1%} / UAR {folds['mean_uar']:.1%} | "
        f"LOCO 4-class mean {four['mean_accuracy']:.1%} worst {four['worst_accuracy']:.1%} "
        f"ECE {four['mean_ece']:.3f} -> {four['mean_ece_calibrated']:.3f} ({per_corpus}) | "
        f"T={across['temperature']:.2f} | {extra}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", action="append", required=True, type=Path)
    parser.add_argument("--extra-test", action="append", default=[], type=Path)
    parser.add_argument("--first", required=True, choices=[t.value for t in ModelType])
    parser.add_argument("--second", required=True, choices=[t.value for t in ModelType])
    parser.add_argument("--weights", default="0,0.25,0.5,0.75,1", help="of the first recipe")
    args = parser.parse_args(argv)
    first = TrainOptions(model_type=ModelType(args.first))
    second = replace(first, model_type=ModelType(args.second))
    if first.features != second.features:
        parser.error("the two recipes read different features")
    data = train.prepare(args.data, first, progress=progress_bar)
    extra = [train.prepare([f], first, progress=progress_bar) for f in args.extra_test]
    _screen(data, extra, (first, second), [float(w) for w in args.weights.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
