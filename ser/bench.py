"""Benchmarks, run as commands; each prints its reference measured in the same run.

``python -m ser.bench latency``: warm end-to-end latency of a 4 s, 48 kHz WAV
(decode, resample, features, model) through ``Recognizer`` against the seed path
(``librosa.load`` + mean MFCC + ``model.predict``), and the ratio.

``python -m ser.bench features --data DIR``: feature extraction for a folder from
a cold cache and again from the warm cache.

``python -m ser.bench gain --data DIR``: how often each shipped model gives the same answer
when a clip is played quieter or louder (its answer at the recorded level is the reference).

``python -m ser.bench live``: the cost of one live update (the last 3 s of a 48 kHz stream,
resampled, judged by the default model) against its 0.5 s interval, the cost of handing over
one 20 ms frame, and the interval between updates when the stream arrives in real time.

``python -m ser.bench channels --data DIR ...``: trains a model type on one RAVDESS fold's
training side and scores the held-out actors as recorded (the reference), band-limited as
by a 16 kHz or 8 kHz recording, and with white noise: what a corpus or microphone unlike
the training data does to accuracy. ``--narrow-model-type TYPE`` trains that band-limited type
too and scores the pair as the app runs it: clips that lack the first one's band go to it.

``python -m ser.bench batch --data DIR``: batch prediction (``predict --output``, ser.batch)
of the first clips under DIR with 1, 2 and N jobs, against the reference measured in the same
run: the same clips answered one after another in this process by a loaded model, as
``predict --json`` does; clips per second and the ratios, overall and after start-up.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

    from .features import FeatureConfig


def _speech_like(duration_s: float, sample_rate_hz: int) -> np.ndarray:
    """A voiced, syllable-paced signal: harmonics of a gliding pitch, amplitude-modulated."""
    t = np.arange(int(duration_s * sample_rate_hz)) / sample_rate_hz
    pitch_hz = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch_hz) / sample_rate_hz
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = np.clip(np.sin(2 * np.pi * 4 * t), 0, None)
    return (0.3 * voice * syllables / np.max(np.abs(voice))).astype(np.float32)


def _timed(fn: Callable[[], object], *, repeats: int) -> list[float]:
    fn()  # warm: caches, traced graphs, lazily imported modules
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def _summary(name: str, times_ms: list[float]) -> float:
    median = statistics.median(times_ms)
    p90 = sorted(times_ms)[int(0.9 * (len(times_ms) - 1))]
    print(f"{name:<46} median {median:7.2f} ms   p90 {p90:7.2f} ms   (n={len(times_ms)})")
    return median


def latency(model: str | None, repeats: int) -> None:
    import librosa
    import soundfile as sf

    from .predict import Recognizer
    from .store import find_model, list_models, load_keras

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip_48k.wav"
        sf.write(path, _speech_like(4.0, 48_000), 48_000, subtype="PCM_16")
        classic_info = find_model("classic-lstm") if model is None else find_model(model)
        seed_model = load_keras(classic_info)

        def seed_path() -> object:
            y, sr = librosa.load(path)
            x = np.mean(librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40).T, axis=0)
            return seed_model.predict(x[np.newaxis], verbose=0)

        print(f"4 s clip at 48 kHz; model for the seed path: {classic_info.name}")
        reference = _summary(
            "seed: librosa.load + mean MFCC + model.predict", _timed(seed_path, repeats=repeats)
        )
        shipped = [m.name for m in list_models() if m.ok and m.shipped]
        for name in dict.fromkeys([classic_info.name, find_model(None).name, *shipped]):
            recognizer = Recognizer.load(name)
            ours = _summary(
                f"ours: Recognizer.recognise ({name})",
                _timed(lambda r=recognizer: r.recognise(path), repeats=repeats),
            )
            print(f"{'':<46} speed-up vs seed: {reference / ours:.1f}x")
            if recognizer.runs_in_numpy:  # the same model through Keras, for the ratio
                info = recognizer.info
                through_keras = Recognizer(info, load_keras(info))
                keras_ms = _summary(
                    f"  the same through Keras ({name})",
                    _timed(lambda r=through_keras: r.recognise(path), repeats=repeats),
                )
                print(f"{'':<46} numpy (ser.runtime) vs Keras: {keras_ms / ours:.2f}x")


def features(folders: list[Path]) -> None:
    from .datasets import scan
    from .train import extract_features

    report = scan(folders)
    jobs = [(clip.path, "") for clip in report.clips]
    from .models import RECIPES

    for model_type, recipe in RECIPES.items():
        with tempfile.TemporaryDirectory() as cache:
            for state in ("cold", "warm"):
                start = time.perf_counter()
                extract_features(jobs, config=recipe.features, cache_dir=Path(cache))
                elapsed = time.perf_counter() - start
                print(
                    f"{model_type.value:<10} {len(jobs)} clips, {state} cache: {elapsed:6.1f} s "
                    f"({len(jobs) / elapsed:6.0f} clips/s)"
                )


GAINS_DB = (-20.0, -10.0, 6.0)


def gain(folders: list[Path], n_clips: int) -> None:
    from .audio import load_audio
    from .datasets import scan
    from .predict import Recognizer
    from .store import list_models

    clips = scan(folders).clips
    picked = [
        clips[i]
        for i in np.random.default_rng(0).choice(
            len(clips), min(n_clips, len(clips)), replace=False
        )
    ]
    print(
        f"{len(picked)} clips; share of answers unchanged when the clip is played at another level"
    )
    for info in (m for m in list_models() if m.ok and m.shipped):
        recognizer = Recognizer.load(info.name)
        unchanged = dict.fromkeys(GAINS_DB, 0)
        for clip in picked:
            samples = load_audio(clip.path, sample_rate_hz=recognizer.config.sample_rate_hz).samples
            reference = recognizer.predict_samples(samples).emotion
            for db in GAINS_DB:
                louder = np.clip(
                    samples * np.float32(10 ** (db / 20)), -1.0, 1.0
                )  # a real input clips
                unchanged[db] += recognizer.predict_samples(louder).emotion == reference
        shares = "   ".join(f"{db:+.0f} dB {n / len(picked):4.0%}" for db, n in unchanged.items())
        print(f"{info.name:<16} {shares}")


def _channels(sample_rate_hz: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    from .audio import band_limited, with_noise

    def source(rate_hz: int) -> Callable[[np.ndarray], np.ndarray]:
        return lambda x: band_limited(x, sample_rate_hz=sample_rate_hz, source_rate_hz=rate_hz)

    return {
        "as recorded": lambda x: x,
        "16 kHz source (nothing above 8 kHz)": source(16_000),
        "8 kHz source (nothing above 4 kHz)": source(8_000),
        "white noise at 20 dB SNR": lambda x: with_noise(
            x, snr_db=20.0, rng=np.random.default_rng(len(x))
        ),
    }


def channels(
    folders: list[Path], model_type: str, fold: int, narrow_type: str | None = None
) -> None:
    """Each channel's accuracy; with ``narrow_type``, also that of the pair the app runs: the
    clips that do not fill ``model_type``'s band answered by ``narrow_type`` instead."""
    from .audio import load_audio
    from .cli import progress_bar
    from .models import ModelType
    from .train import TrainOptions, fit, prepare, ravdess_folds

    options = TrainOptions(model_type=ModelType(model_type))
    data = prepare(folders, options, progress=progress_bar)
    train_index, test_index = ravdess_folds(data.clips)[fold - 1]
    model, _ = fit(data, train_index, options, progress=progress_bar, stage=f"fold {fold}")
    narrow = None
    if narrow_type is not None:
        narrow_options = TrainOptions(model_type=ModelType(narrow_type))
        narrow_data = prepare(folders, narrow_options, progress=progress_bar)
        assert narrow_data.labels == data.labels  # the same folders, the same clips
        fitted, _ = fit(
            narrow_data, train_index, narrow_options, progress=progress_bar, stage=narrow_type
        )
        narrow = (fitted, narrow_options.features)
    config, targets = options.features, data.targets[test_index]
    recorded = [
        load_audio(data.clips[i].path, sample_rate_hz=config.sample_rate_hz).samples
        for i in test_index
    ]
    print(
        f"{model_type} at {config.sample_rate_hz} Hz, trained on {len(train_index)} clips; "
        f"held out: RAVDESS fold {fold}, {len(test_index)} clips"
    )
    for name, channel in _channels(config.sample_rate_hz).items():
        heard = [channel(x) for x in recorded]
        alone = _channel_probabilities(model, heard, config)
        print(f"{name:<40} {_accuracy_line(alone, targets, data.labels)}")
        if narrow is not None:
            routed, handed = _routed(alone, heard, config, *narrow)
            print(
                f"{'  with ' + narrow_type:<40} {_accuracy_line(routed, targets, data.labels)}"
                f"   {handed}/{len(heard)} clips handed to it"
            )


def _channel_probabilities(
    model: keras.Model, clips: list[np.ndarray], config: FeatureConfig
) -> np.ndarray:
    from . import features as feats
    from .train import predict_probabilities

    return predict_probabilities(model, [feats.extract(x, config=config) for x in clips])


def _routed(
    probabilities: np.ndarray,
    clips: list[np.ndarray],
    config: FeatureConfig,
    narrow_model: keras.Model,
    narrow_config: FeatureConfig,
) -> tuple[np.ndarray, int]:
    """``probabilities`` with the clips that do not fill ``config``'s band answered by the
    narrow model, as ``Recognizer.recognise`` hands them on; and how many those are."""
    from .audio import audible_bandwidth_hz, fills_band

    rate = config.sample_rate_hz
    handed = [
        i
        for i, x in enumerate(clips)
        if not fills_band(
            audible_bandwidth_hz(x, sample_rate_hz=rate), heard_band_hz=config.heard_band_hz
        )
    ]
    routed = probabilities.copy()
    if handed:
        heard = [clips[i] for i in handed]
        routed[handed] = _channel_probabilities(narrow_model, heard, narrow_config)
    return routed, len(handed)


def _accuracy_line(probabilities: np.ndarray, targets: np.ndarray, labels: tuple[str, ...]) -> str:
    from .train import scores_of

    scores = scores_of(probabilities, targets, labels)
    return f"accuracy {scores.accuracy:6.1%}   UAR {scores.uar:6.1%}"


def live_updates(model: str | None, seconds: float) -> None:
    from . import live
    from .predict import Recognizer

    recognizer = Recognizer.load(model)
    rate, frame = 48_000, 960  # what WebRTC's Opus decoder hands over: 20 ms frames
    stream = _speech_like(seconds, rate)
    frames = [stream[i : i + frame] for i in range(0, len(stream), frame)]
    print(f"model {recognizer.info.name}; a {seconds:g} s stream at {rate} Hz in 20 ms frames")

    session = live.LiveSession(recognizer, run=lambda job: job())  # each update at once
    push_ms = _timed_each(lambda f: session.push(f, sample_rate_hz=rate), frames)
    costs = [u.cost_s * 1000 for u in session.history()]
    cost = _summary("one update (features + model on the last 3 s)", costs)
    print(
        f"{'':<46} {cost / (live.INTERVAL_S * 1000):.1%} of the {live.INTERVAL_S * 1000:.0f} ms interval"
    )
    _summary("handing over one 20 ms frame", push_ms)

    session = live.LiveSession(recognizer)  # the app's way: updates on the shared pool
    seen, start = [], time.perf_counter()
    for i, f in enumerate(frames):
        session.push(f, sample_rate_hz=rate)
        latest = session.latest()
        if latest is not None and (not seen or seen[-1][1] != latest.index):
            seen.append((time.perf_counter(), latest.index))
        time.sleep(max(0.0, start + (i + 1) * frame / rate - time.perf_counter()))  # real time
    gaps = [(b[0] - a[0]) * 1000 for a, b in itertools.pairwise(seen)]
    stats = session.stats()
    _summary("interval between updates, in real time", gaps)
    print(f"{'':<46} {stats.updates} updates, {stats.dropped} dropped")


def batch_throughput(folders: list[Path], n_clips: int, jobs: list[int], model: str | None) -> None:
    import os

    from . import batch
    from .predict import Recognizer, shipped_narrower

    paths = list(itertools.islice(batch.expand(map(str, folders)), n_clips))
    print(f"{len(paths)} clips from {', '.join(map(str, folders))}; {os.cpu_count()} CPUs")
    recognizer = Recognizer.load(model)
    narrower = shipped_narrower(recognizer) if model is None else None
    start = time.perf_counter()
    for name, outcome in recognizer.recognise_many(paths, narrower=narrower):
        batch.record(name, outcome)
    reference = len(paths) / (time.perf_counter() - start)
    print(
        f"{'reference: one process, model loaded, in a loop':<48} {reference:6.1f} clips/s "
        f"(model {recognizer.info.name})"
    )
    for n in jobs:
        with tempfile.TemporaryDirectory() as tmp:
            summary = batch.run(
                paths,
                model=model,
                models_dir=None,
                jobs=n,
                output=Path(tmp) / "answers.jsonl",
                progress=False,
            )
        startup = summary.first_answer_s or 0.0
        steady = (len(paths) - 1) / max(1e-9, summary.seconds - startup)
        print(
            f"{f'--jobs {n}: start to end':<48} {summary.clips_per_s:6.1f} clips/s "
            f"({summary.clips_per_s / reference:.2f}x)   after start-up ({startup:.1f} s): "
            f"{steady:6.1f} clips/s ({steady / reference:.2f}x)"
        )


def _timed_each(fn: Callable[[np.ndarray], object], items: list[np.ndarray]) -> list[float]:
    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser.bench")
    sub = parser.add_subparsers(dest="what", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument(
        "--model", default=None, help="model for the seed path (default: classic-lstm)"
    )
    lat.add_argument("--repeats", type=int, default=50)
    feat = sub.add_parser("features")
    feat.add_argument("--data", action="append", type=Path, required=True)
    lvl = sub.add_parser("gain")
    lvl.add_argument("--data", action="append", type=Path, required=True)
    lvl.add_argument("--clips", type=int, default=200)
    liv = sub.add_parser("live")
    liv.add_argument("--model", default=None, help="default: the default model")
    liv.add_argument("--seconds", type=float, default=20.0)
    chan = sub.add_parser("channels")
    chan.add_argument(
        "--data",
        action="append",
        type=Path,
        required=True,
        help="RAVDESS, and any corpora to train on too",
    )
    chan.add_argument("--model-type", default="logmel_voice")
    chan.add_argument("--fold", type=int, choices=range(1, 7), default=1)
    chan.add_argument(
        "--narrow-model-type",
        default=None,
        help="also train this band-limited type and score the pair as the app runs it",
    )
    bat = sub.add_parser("batch")
    bat.add_argument("--data", action="append", type=Path, required=True)
    bat.add_argument("--clips", type=int, default=200)
    bat.add_argument("--jobs", default=None, help="comma-separated (default: 1,2,CPUs)")
    bat.add_argument("--model", default=None, help="default: the default model")
    args = parser.parse_args(argv)
    if args.what == "latency":
        latency(args.model, args.repeats)
    elif args.what == "features":
        features(args.data)
    elif args.what == "live":
        live_updates(args.model, args.seconds)
    elif args.what == "batch":
        import os

        jobs = args.jobs.split(",") if args.jobs else [1, 2, os.cpu_count() or 1]
        batch_throughput(args.data, args.clips, sorted({int(j) for j in jobs}), args.model)
    elif args.what == "gain":
        gain(args.data, args.clips)
    else:
        channels(args.data, args.model_type, args.fold, args.narrow_model_type)
    return 0


if __name__ == "__main__":
    sys.exit(main())
