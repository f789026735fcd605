"""``python -m ser``: predict, train, evaluate, scan and list models.

The command line is a contract other tools rely on: ``predict --json`` prints one
JSON object per file and exits non-zero if any file failed, after answering the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .audio import printable
from .command import add_training_arguments, options_from_args
from .datasets import ScanReport
from .distribute import Distribution, Strategy
from .errors import SERError
from .train import Prepared, Progress, TrainOptions

if TYPE_CHECKING:
    from .evaluation import CorpusEvaluation


def progress_bar(progress: Progress) -> None:
    """A one-line progress bar on stderr, redrawn in place."""
    width = 30
    filled = int(width * progress.done / max(1, progress.total))
    remaining = progress.remaining_s
    eta = (
        f" ~{remaining:.0f}s left"
        if remaining is not None and progress.done < progress.total
        else ""
    )
    metrics = "  ".join(f"{k}={v:.3f}" for k, v in progress.metrics.items())
    unit = "clips" if progress.stage == "features" else "epochs"
    sys.stderr.write(
        f"\r{progress.stage:>12} [{'#' * filled}{'.' * (width - filled)}] "
        f"{progress.done}/{progress.total} {unit}{eta}  {metrics}\033[K"
    )
    if progress.done >= progress.total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _print_scan(report: ScanReport) -> None:
    print(f"{len(report.clips)} clips; skipped {len(report.skipped)}", file=sys.stderr)
    for corpus, count in report.corpus_counts().items():
        print(f"  {corpus.value}: {count} clips", file=sys.stderr)


def _print_prepared(data: Prepared) -> None:
    """What was found, and the clips that could not be read and were left out."""
    _print_scan(data.report)
    for path, reason in data.dropped:
        print(f"  left out {printable(path)}: {printable(reason)}", file=sys.stderr)


STDIN_ARGUMENTS = ("-", "/dev/stdin")  # a clip piped in: read whole, then decoded as any file
MAX_STDIN_BYTES = 200_000_000  # well above 5 minutes of 48 kHz stereo 16-bit WAV (58 MB)


def _read_stdin() -> bytes:
    data = sys.stdin.buffer.read(MAX_STDIN_BYTES + 1)
    if len(data) > MAX_STDIN_BYTES:
        raise SERError(
            f"The audio piped in is over {MAX_STDIN_BYTES // 1_000_000} MB; give a file instead."
        )
    return data


def cmd_predict(args: argparse.Namespace) -> int:
    from . import batch
    from .predict import Recognizer, shipped_narrower

    if args.jobs is not None or args.output is not None or batch.wants_batch(args.files):
        return _predict_batch(args)
    recognizer = Recognizer.load(args.model, args.models_dir)
    # The default hands a recording made below its rate to a shipped model that fits it; a
    # model asked for by name answers everything itself.
    narrower = shipped_narrower(recognizer, args.models_dir) if args.model is None else None
    failures = 0
    sources = [_read_stdin() if f in STDIN_ARGUMENTS else f for f in args.files]
    for name, outcome in recognizer.recognise_many(sources, narrower=narrower):
        if isinstance(outcome, SERError):
            failures += 1
            line = {"file": name, "error": str(outcome)}
            print(
                json.dumps(line) if args.json else f"{printable(name)}: error: {outcome}",
                flush=True,
            )
            continue
        prediction = outcome.prediction
        if args.json:
            print(json.dumps(batch.record(name, outcome)), flush=True)
        else:
            note = f"  ({'; '.join(outcome.caveats)})" if outcome.caveats else ""
            print(
                f"{printable(name)}: {prediction.emotion} {prediction.confidence:.0%}{note}",
                flush=True,
            )
    return 1 if failures else 0


def _predict_batch(args: argparse.Namespace) -> int:
    """Folders, patterns, --jobs or --output: ``ser.batch``, resumable, with a summary."""
    from . import batch

    if any(f in STDIN_ARGUMENTS for f in args.files):
        raise SERError("A clip piped in ('-') goes alone, without folders, --jobs or --output.")

    def show(line: dict[str, Any]) -> None:
        if args.json:
            print(json.dumps(line), flush=True)
        elif "error" in line:
            print(f"{printable(line['file'])}: error: {line['error']}", flush=True)
        else:
            note = f"  ({'; '.join(line['caveats'])})" if line["caveats"] else ""
            print(
                f"{printable(line['file'])}: {line['emotion']} {line['confidence']:.0%}{note}",
                flush=True,
            )

    summary = batch.run(
        args.files,
        model=args.model,
        models_dir=args.models_dir,
        jobs=args.jobs or 1,
        output=args.output,
        sink=None if args.output is not None else show,
    )
    print(summary.line(args.jobs or 1), file=sys.stderr)
    return 1 if summary.failed else 0


def cmd_train(args: argparse.Namespace) -> int:
    from . import distribute, train
    from .store import check_name_free, save_model

    distribution = _distribution(args)  # first: TensorFlow fixes devices and cluster as it starts
    # Checked before the run, which can take an hour, and again when saving.
    check_name_free(args.name, models_dir=args.models_dir, overwrite=args.overwrite)
    options = options_from_args(args)
    options = replace(options, distribution=distribution)
    _print_scaling(options)
    data = train.prepare(args.data, options, progress=progress_bar)
    _print_prepared(data)
    if args.keep_holdout_model and args.folds:
        raise SERError("--keep-holdout-model goes with the single hold-out, not with --folds.")
    held, folds = None, None
    across = _across_corpora(data, options, args) if args.cross_corpus else None
    temperature = across.temperature if across is not None else None
    if args.folds:
        folds = train.cross_validate(data, options, n_folds=args.folds, progress=progress_bar)
        evaluation = folds.to_dict(temperature=temperature)
    else:
        held = train.train_holdout(data, options, progress=progress_bar)
        evaluation = train.holdout_evaluation(held)
    print(
        f"speaker-independent: accuracy {evaluation['mean_accuracy']:.1%}, UAR {evaluation['mean_uar']:.1%}"
        f" ({evaluation['protocol']})",
        file=sys.stderr,
    )
    if held is not None and args.keep_holdout_model:  # the very model the figures describe
        model, train_index = held.model, held.train_index
    else:
        train_index = np.arange(len(data.clips))
        model, _ = train.fit(data, train_index, options, progress=progress_bar, stage="final model")
    command = reproduce_command(_without_models_dir(args.argv or sys.argv[1:]))
    meta = train.metadata(
        data,
        options,
        evaluation=evaluation,
        command=command,
        shipped=args.shipped,
        train_index=train_index,
    )
    if across is not None:
        meta["cross_corpus"] = across.to_dict()
        meta["calibration"] = {
            "temperature": across.temperature,
            "fitted_on": "leave-one-corpus-out held-out predictions",
        }
    role = distribute.role(distribution.strategy)
    if not role.chief:
        print(f"{role.name} done; the chief saves the model", file=sys.stderr)
        return 0
    info = save_model(
        model, meta, name=args.name, models_dir=args.models_dir, overwrite=args.overwrite
    )
    print(f"saved {info.keras_path}", file=sys.stderr)
    distribute.remove_backups(distribution)
    return 0


def _distribution(args: argparse.Namespace) -> Distribution:
    """The run's strategy, its devices split and its cluster joined, and what it resumes."""
    from . import distribute

    strategy = Strategy(args.strategy)
    if args.cpu_devices is not None:
        distribute.split_cpu(args.cpu_devices)
    distribute.replicas(strategy)  # makes the strategy now: a multi-worker one must come first
    distribution = Distribution(strategy, args.backup_dir)
    for backup in distribute.backed_up_fits(distribution):
        print(
            f"resuming: {backup.epochs_done()} epochs backed up in {backup.folder}", file=sys.stderr
        )
    return distribution


def _print_scaling(options: TrainOptions) -> None:
    from . import train

    spread = train.fit_scaling(options)
    if spread.strategy is not Strategy.DEFAULT:
        print(
            f"{spread.strategy.value}: {spread.replicas} replicas; global batch "
            f"{spread.global_batch_size} ({spread.per_replica_batch_size} per replica), "
            f"learning rate {spread.learning_rate:g} ({spread.base_learning_rate:g} x {spread.replicas})",
            file=sys.stderr,
        )


def reproduce_command(argv: Sequence[str]) -> str:
    """``python -m ser ARGS``, with folders under ``$SER_DATA_DIR`` written relative to it, so
    the command in a model's JSON holds no path of the machine that trained it."""
    data_dir = os.environ.get("SER_DATA_DIR")
    root = Path(data_dir).resolve() if data_dir else None
    words = []
    for arg in argv:
        word = shlex.quote(arg)
        if root is not None and not arg.startswith("-"):
            try:
                inside = Path(arg).resolve().relative_to(root)
            except ValueError:
                inside = None
            if inside is not None and shlex.quote(str(inside)) == str(inside):
                word = "$SER_DATA_DIR" if str(inside) == "." else f"$SER_DATA_DIR/{inside}"
        words.append(word)
    return "python -m ser " + " ".join(words)


def _without_models_dir(argv: Sequence[str]) -> list[str]:
    """The reproduce command: where a model is saved does not change the model."""
    argv = list(argv)
    if "--models-dir" in argv:
        at = argv.index("--models-dir")
        del argv[at : at + 2]
    return [a for a in argv if not a.startswith("--models-dir=")]


def _across_corpora(
    data: Prepared, options: TrainOptions, args: argparse.Namespace
) -> CorpusEvaluation:
    """Leave-one-corpus-out on ``data``, each --extra-test folder scored by a model of all."""
    from . import train
    from .evaluation import leave_one_corpus_out

    extra = [
        train.prepare([folder], options, progress=progress_bar) for folder in args.extra_test or []
    ]
    across = leave_one_corpus_out(data, options, extra_tests=extra, progress=progress_bar)
    _print_across(across.to_dict())
    return across


def _print_across(result: dict[str, Any]) -> None:
    def line(name: str, f: dict[str, Any]) -> str:
        return (
            f"  {name}: accuracy {f['accuracy']:.1%}  UAR {f['uar']:.1%}  ECE {f['ece']:.3f} "
            f"(calibrated {f['ece_calibrated']:.3f}) on {', '.join(f['labels'])}"
        )

    for name, f in result["corpora"].items():
        print(f"held out {name}, trained on {' + '.join(f['trained_on']) or '?'}:", file=sys.stderr)
        print(line("all shared", f), file=sys.stderr)
        if "four_class" in f:
            print(line("4-class", f["four_class"]), file=sys.stderr)
    for name, f in result["extra_tests"].items():
        print(f"extra test {name}, trained on {' + '.join(f['trained_on'])}:", file=sys.stderr)
        print(line("shared", f), file=sys.stderr)
    for title, s in (("all shared emotions", result), ("4-class", result["four_class"])):
        if s.get("mean_accuracy") is not None:
            print(
                f"{result['protocol']}, {title}: mean accuracy {s['mean_accuracy']:.1%}, worst "
                f"{s['worst_accuracy']:.1%}, mean UAR {s['mean_uar']:.1%}, mean ECE {s['mean_ece']:.3f} "
                f"(calibrated {s['mean_ece_calibrated']:.3f})",
                file=sys.stderr,
            )
    print(f"temperature {result['temperature']}", file=sys.stderr)


def _score_saved(args: argparse.Namespace) -> int:
    """A saved model on each --data corpus as an unseen test set: no training.

    With --save, the figures and the temperature they fit go into the model's JSON.
    """
    from .evaluation import score_saved_model, unseen_corpora
    from .store import find_model, update_metadata

    info = find_model(args.model, args.models_dir)
    held = [
        score_saved_model(info, [folder], progress=progress_bar, calibrated=False)
        for folder in args.data
    ]
    result = unseen_corpora(held)
    _print_across(result)
    if args.save:
        update_metadata(
            info,
            {
                "cross_corpus": result,
                "calibration": {
                    "temperature": result["temperature"],
                    "fitted_on": "predictions on corpora it never heard",
                },
            },
        )
        print(
            f"saved the figures and temperature {result['temperature']} in {info.name}.json",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps({"model": info.name, **result}))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from . import train

    if args.model is not None:
        return _score_saved(args)
    options = options_from_args(args)
    if args.protocol == "corpus":
        if args.test_data or args.folds is not None:
            raise SERError(
                "--protocol corpus holds out each --data corpus in turn: no --folds or --test-data."
            )
        data = train.prepare(args.data, options, progress=progress_bar)
        _print_prepared(data)
        result = _across_corpora(data, options, args).to_dict()
        if args.json:
            print(json.dumps(result))
        return 0
    if args.test_data:
        if args.folds is not None:
            raise SERError("--folds goes with cross-validation, not with --test-data.")
        data, split = train.prepare_across_corpora(
            args.data, args.test_data, options, progress=progress_bar
        )
        _print_prepared(data)
        evaluation = train.evaluate_across_corpora(data, split, options, progress=progress_bar)
    else:
        data = train.prepare(args.data, options, progress=progress_bar)
        _print_prepared(data)
        n_folds = (
            train.RAVDESS_FOLDS if args.folds is None else args.folds
        )  # an explicit 0 is not 6
        evaluation = train.cross_validate(data, options, n_folds=n_folds, progress=progress_bar)
    result = evaluation.to_dict()
    if args.json:
        print(json.dumps(result))
        return 0
    folds = result["folds"]
    for k, fold in enumerate(folds if len(folds) > 1 else [], start=1):
        print(f"fold {k}: accuracy {fold['accuracy']:.1%}  UAR {fold['uar']:.1%}")
    recall = evaluation.total.recall
    print(
        "recall: "
        + ", ".join(f"{label} {r:.0%}" for label, r in zip(result["labels"], recall, strict=True))
    )
    print(
        f"{'mean' if len(folds) > 1 else 'result'}: accuracy {result['mean_accuracy']:.1%}  "
        f"UAR {result['mean_uar']:.1%}  ({result['protocol']})"
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .store import default_model, list_models

    models = list_models(args.models_dir)
    default = default_model(models)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": m.name,
                        "ok": m.ok,
                        "problem": m.problem,
                        "default": m is default,
                        "accuracy": m.accuracy,
                        "uar": m.uar,
                    }
                    for m in models
                ]
            )
        )
        return 0
    if not models:
        print("no models installed")
    for m in models:
        print(("* " if m is default else "  ") + m.summary())
    return 0


def cmd_familiarity(args: argparse.Namespace) -> int:
    """Fit a saved model's familiarity on the clips it learnt from, and save it in its JSON."""
    from . import train
    from .familiarity import fit_familiarity
    from .models import ModelType
    from .store import find_model, update_metadata

    info = find_model(args.model, args.models_dir)
    if not info.ok:
        raise SERError(f"{info.name} cannot be used: {info.problem}")
    training = info.metadata.get("training", {})
    options = TrainOptions(
        model_type=ModelType(info.metadata["model_type"]),
        emotions=tuple(training["emotions"]) if training.get("emotions") else None,
        merge=tuple((a, b) for a, b in training.get("merge", [])),
    )
    if options.features.to_dict() != info.features.to_dict():
        raise SERError(
            f"{info.name} was saved with other feature settings than its type has now; "
            "retrain it instead."
        )
    data = train.prepare(args.data, options, progress=progress_bar)
    learnt_from = info.metadata.get("trained_on", {}).get("clips")
    if len(data.clips) != learnt_from:
        raise SERError(
            f"These folders hold {len(data.clips)} usable clips; {info.name} learnt from "
            f"{learnt_from}. Give the folders it was trained on (its JSON's command)."
        )
    familiarity = fit_familiarity(data.features)
    update_metadata(info, {"familiarity": familiarity.to_dict()})
    print(
        f"{info.name}: familiarity of {familiarity.clips} clips saved "
        f"(threshold {familiarity.threshold:.3f} at the {familiarity.percentile:g}th percentile)",
        file=sys.stderr,
    )
    for folder in args.check or []:
        checked = train.prepare([folder], replace(options, emotions=None, merge=()))
        flagged = np.mean([familiarity.is_unfamiliar(f) for f in checked.features])
        print(f"  {printable(str(folder))}: {flagged:.1%} of {len(checked.clips)} clips unfamiliar")
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from .datasets import scan

    report = scan(args.data)
    _print_scan(report)
    for skipped in report.skipped[: args.show_skipped]:
        print(f"  skipped {printable(str(skipped.path))}: {printable(skipped.reason)}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m ser", description="Speech emotion recognition.")
    root.add_argument(
        "--models-dir", type=Path, default=None, help="default: SER_MODELS_DIR or models/"
    )
    sub = root.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="recognise the emotion in audio files")
    p.add_argument("--model", default=None, help="model name or path to a .keras file")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="answer with N worker processes (folders, patterns and --output use one by default)",
    )
    p.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="append each answer to FILE as a JSON line as it comes; run again to resume, "
        "skipping the files FILE already answers",
    )
    p.add_argument(
        "files",
        nargs="+",
        help="audio files, folders (searched for audio files) or quoted glob patterns "
        "('data/**/*.wav'); '-' reads a clip piped in",
    )
    p.set_defaults(func=cmd_predict)

    t = sub.add_parser("train", help="train a model and save it in the models folder")
    add_training_arguments(t)
    t.add_argument("--name", required=True)
    t.add_argument(
        "--folds",
        type=int,
        default=0,
        help="cross-validate with N folds first (6: RAVDESS protocol)",
    )
    t.add_argument("--shipped", action="store_true", help=argparse.SUPPRESS)
    t.add_argument("--overwrite", action="store_true")
    t.add_argument(
        "--cross-corpus",
        action="store_true",
        help="also run leave-one-corpus-out, save its figures and the temperature it fits",
    )
    t.add_argument(
        "--extra-test",
        action="append",
        type=Path,
        metavar="DIR",
        help="with --cross-corpus: also score this corpus, never trained on (repeatable)",
    )
    t.add_argument(
        "--keep-holdout-model",
        action="store_true",
        help="save the model the hold-out figures describe instead of retraining on all clips",
    )
    t.add_argument(
        "--strategy",
        default=Strategy.DEFAULT.value,
        choices=[s.value for s in Strategy],
        help="default: one device; mirrored: every local GPU, else the --cpu-devices; "
        "multiworker: one process per machine from TF_CONFIG, the chief saves. "
        "--batch-size is per replica: the global batch and the learning rate are the "
        "recipe's times the replicas (linear scaling rule), saved with the model",
    )
    t.add_argument(
        "--cpu-devices",
        type=int,
        metavar="N",
        help="split the CPU into N logical devices first: mirrored without GPUs (no faster)",
    )
    t.add_argument(
        "--backup-dir",
        type=Path,
        metavar="DIR",
        help="back up each fit after every epoch; the same command again resumes a killed "
        "run where it was; removed once the model is saved",
    )
    t.set_defaults(func=cmd_train)

    e = sub.add_parser(
        "evaluate", help="speaker-independent cross-validation, or a test on unseen corpora"
    )
    add_training_arguments(e)
    e.add_argument("--folds", type=int, default=None, help="default 6 (the RAVDESS protocol)")
    e.add_argument(
        "--test-data",
        action="append",
        type=Path,
        metavar="DIR",
        help="instead of folds: train on --data, test on this corpus (repeatable)",
    )
    e.add_argument(
        "--model",
        default=None,
        help="instead of training: score this saved model on each --data corpus",
    )
    e.add_argument(
        "--save",
        action="store_true",
        help="with --model: keep the figures and the fitted temperature in its JSON",
    )
    e.add_argument(
        "--protocol",
        default="folds",
        choices=["folds", "corpus"],
        help="folds: by speaker (RAVDESS 6-fold); corpus: leave one corpus out",
    )
    e.add_argument(
        "--extra-test",
        action="append",
        type=Path,
        metavar="DIR",
        help="with --protocol corpus: also score this corpus, never trained on (repeatable)",
    )
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    m = sub.add_parser("models", help="list installed models; * marks the default")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_models)

    f = sub.add_parser(
        "familiarity",
        help="fit a saved model's familiarity (when to say a recording is unlike its training "
        "clips) on the folders it was trained on; new models carry it already",
    )
    f.add_argument("model", help="model name or path to a .keras file")
    f.add_argument("--data", action="append", required=True, type=Path, metavar="DIR")
    f.add_argument(
        "--check",
        action="append",
        type=Path,
        metavar="DIR",
        help="also print the share of this folder's clips found unfamiliar (repeatable)",
    )
    f.set_defaults(func=cmd_familiarity)

    s = sub.add_parser("scan", help="show what a dataset folder holds")
    s.add_argument("--data", action="append", required=True, type=Path, metavar="DIR")
    s.add_argument("--show-skipped", type=int, default=20)
    s.set_defaults(func=cmd_scan)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else None
    try:
        return args.func(args)
    except SERError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; nothing was saved", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
