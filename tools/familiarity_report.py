"""Does "unlike its training clips" mean "less reliable"? A saved model's accuracy on the clips
it finds familiar against those it does not, per corpus:

    .venv/bin/python tools/familiarity_report.py MODEL DIR [DIR ...]

For each folder: how many clips the model's familiarity flags, and accuracy and UAR on the
emotions the folder shares with the model (4-class neutral/happy/sad/angry where it has them)
among the familiar clips, the unfamiliar ones and all. The model needs a saved familiarity
(``python -m ser familiarity``, or any model trained since it existed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file: the package beside it

from ser.cli import progress_bar  # noqa: E402
from ser.datasets import scan  # noqa: E402
from ser.evaluation import FOUR_CLASSES, held_out  # noqa: E402
from ser.familiarity import Familiarity  # noqa: E402
from ser.store import find_model, load_keras  # noqa: E402
from ser.train import extract_features, predict_probabilities  # noqa: E402


def _figures(model, info, clips, values) -> str:
    if not clips:
        return "   -    (0 clips)"
    scored = held_out(
        "x",
        predict_probabilities(model, values),
        [c.emotion for c in clips],
        model_labels=tuple(info.labels),
        trained_emotions=tuple(info.labels),
        trained_on=(),
    )
    four = scored.subset(FOUR_CLASSES)
    scores = (four or scored).scores()
    return (
        f"{scores.accuracy:6.1%} acc {scores.uar:6.1%} UAR ({len((four or scored).targets)} clips)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args(argv)
    info = find_model(args.model)
    if "familiarity" not in info.metadata:
        print(f"{info.name} has no familiarity: run python -m ser familiarity", file=sys.stderr)
        return 2
    familiarity = Familiarity.from_dict(info.metadata["familiarity"])
    model = load_keras(info)
    print(f"{info.name} (4-class where the corpus has those emotions, else all it shares)")
    for folder in args.folders:
        report = scan([folder])
        values = extract_features(
            [(c.path, "") for c in report.clips], config=info.features, progress=progress_bar
        )
        kept = [(c, v) for c, v in zip(report.clips, values, strict=True) if not isinstance(v, str)]
        flags = np.array([familiarity.is_unfamiliar(v) for _, v in kept])
        print(f"{folder.name}: {flags.mean():.1%} of {len(kept)} clips unfamiliar")
        for title, keep in (("familiar", ~flags), ("unfamiliar", flags), ("all", flags | ~flags)):
            part = [kv for kv, k in zip(kept, keep, strict=True) if k]
            print(
                f"  {title:>10}: "
                + _figures(model, info, [c for c, _ in part], [v for _, v in part])
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
