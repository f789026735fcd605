"""ser.command: the options the Train page shows as a command are the options that command gives."""

from __future__ import annotations

import shlex

import pytest

from ser import cli
from ser.command import options_from_args, train_command
from ser.errors import SERError
from ser.models import RECIPES, ModelType
from ser.train import Augmentation, TrainOptions, Validation

OPTIONS = [
    TrainOptions(),
    TrainOptions(model_type=ModelType.LOGMEL_FUSION, epochs=3, batch_size=16, seed=7),
    TrainOptions(
        model_type=ModelType.MFCC_CNN,
        emotions=("neutral", "angry"),
        merge=(("calm", "neutral"), ("sad", "neutral")),
        augment=(Augmentation.NOISE, Augmentation.STRETCH),
        validation=Validation.RANDOM,
    ),
]


@pytest.mark.parametrize("options", OPTIONS, ids=["defaults", "sizes", "labels-and-copies"])
def test_the_command_parses_back_to_the_same_run(options: TrainOptions) -> None:
    command = train_command(["/data/ravdess", "/data/my clips"], options, name="mine")
    argv = shlex.split(command)
    assert argv[:4] == ["python", "-m", "ser", "train"]

    args = cli.parser().parse_args(argv[3:])

    assert [str(d) for d in args.data] == ["/data/ravdess", "/data/my clips"]
    assert (args.name, args.keep_holdout_model) == ("mine", True)  # the evaluated model is kept
    again = options_from_args(args)
    assert again.to_dict() == options.to_dict()


def test_the_recipes_sizes_are_spelt_out() -> None:
    """A command saved with a model must still mean the same run after a recipe changes."""
    command = train_command(["d"], TrainOptions(model_type=ModelType.MFCC_CNN))
    recipe = RECIPES[ModelType.MFCC_CNN]
    assert f"--epochs {recipe.epochs} --batch-size {recipe.batch_size}" in command


def test_a_merge_without_a_target_is_refused() -> None:
    args = cli.parser().parse_args(["train", "--data", "d", "--name", "n", "--merge", "calm"])
    with pytest.raises(SERError, match="--merge takes FROM=TO"):
        options_from_args(args)
