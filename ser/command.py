"""The training options as ``python -m ser train`` arguments, both ways, in one place.

``add_training_arguments`` declares the flags, ``options_from_args`` reads them into
``TrainOptions`` and ``train_command`` writes options back as the command that reproduces
them (the Train page shows it and saves it with the model). Tests parse what
``train_command`` writes and get the same options back.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from pathlib import Path

from .datasets import SPEAKER_RULES_HELP
from .errors import SERError
from .models import ModelType
from .train import Augmentation, TrainOptions, Validation


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags shared by ``train`` and ``evaluate``: data folders and ``TrainOptions``."""
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        type=Path,
        metavar="DIR",
        help="dataset folder (repeatable)",
    )
    parser.add_argument(
        "--model-type", default=ModelType.MFCC_LSTM.value, choices=[t.value for t in ModelType]
    )
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--emotions", help="comma-separated subset to learn")
    parser.add_argument("--merge", action="append", metavar="FROM=TO", help="e.g. calm=neutral")
    parser.add_argument(
        "--augment", help=f"comma-separated: {', '.join(a.value for a in Augmentation)}"
    )
    parser.add_argument("--validation", default="speaker", choices=[v.value for v in Validation])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--speakers", metavar="RULE", help=SPEAKER_RULES_HELP)


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    """The options the flags of ``add_training_arguments`` name."""
    merge = tuple(tuple(pair.split("=", 1)) for pair in args.merge or [])
    if any(len(pair) != 2 for pair in merge):
        raise SERError("--merge takes FROM=TO, for example calm=neutral.")
    return TrainOptions(
        model_type=ModelType(args.model_type),
        epochs=args.epochs,
        batch_size=args.batch_size,
        emotions=tuple(args.emotions.split(",")) if args.emotions else None,
        merge=merge,  # type: ignore[arg-type]
        augment=tuple(Augmentation(a) for a in (args.augment.split(",") if args.augment else [])),
        validation=Validation(args.validation),
        seed=args.seed,
        speakers=args.speakers,
    )


def train_arguments(folders: Sequence[str], options: TrainOptions) -> list[str]:
    """The flags that give ``options`` on these folders; epochs and batch size spelt out, so
    the command still means the same run after a recipe changes."""
    settings = options.to_dict()
    args: list[str] = []
    for folder in folders:
        args += ["--data", str(folder)]
    args += ["--model-type", settings["model_type"]]
    args += ["--epochs", str(settings["epochs"]), "--batch-size", str(settings["batch_size"])]
    if settings["emotions"]:
        args += ["--emotions", ",".join(settings["emotions"])]
    for source, target in settings["merge"]:
        args += ["--merge", f"{source}={target}"]
    if settings["augment"]:
        args += ["--augment", ",".join(settings["augment"])]
    args += ["--validation", settings["validation"], "--seed", str(settings["seed"])]
    if settings["speakers"]:
        args += ["--speakers", settings["speakers"]]
    return args


def train_command(folders: Sequence[str], options: TrainOptions, *, name: str = "NAME") -> str:
    """The ``python -m ser train`` command that trains and saves the model a hold-out run
    of ``options`` gives: the evaluated model itself (``--keep-holdout-model``)."""
    args = ["python", "-m", "ser", "train", *train_arguments(folders, options), "--name", name]
    return shlex.join([*args, "--keep-holdout-model"])
