"""Batch prediction: any number of files from folders and glob patterns, on worker processes,
written as JSON lines as they are answered, and resumed without redoing a finished file.

- ``expand`` turns the arguments into audio files lazily: a folder is walked in sorted order,
  one directory at a time; a glob pattern (``*``, ``?``, ``[...]``, ``**`` for any depth) is
  walked from its fixed leading folders the same way. Nothing lists the whole tree at once.
- ``run`` answers them with ``jobs`` worker processes (each loads the model once), at most
  ``IN_FLIGHT_PER_JOB`` files per worker queued at a time, so memory stays bounded whatever
  the number of files: only the names already answered are remembered (to skip repeats).
- Each answer is one JSON line, the object ``predict --json`` prints, appended to the output
  and flushed at once. Run again with the same output, the files it already holds are skipped;
  a line cut short by a kill is dropped and its file answered again.
- A file that cannot be used is a line with ``"error"``; a worker that dies on a file (a
  native crash) is replaced, and the files it held are tried again one at a time, so only the
  file that kills a worker is reported as such.

Never imports streamlit; TensorFlow loads in the workers (or here, for one job) with the model.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .audio import FILE_EXTENSIONS, printable
from .errors import SERError

if TYPE_CHECKING:
    from .predict import Recognizer, Result

AUDIO_SUFFIXES = frozenset(f".{e}" for e in FILE_EXTENSIONS)
IN_FLIGHT_PER_JOB = 2  # files queued per worker: keeps every worker busy, memory bounded
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
GLOB_CHARACTERS = re.compile(r"[*?\[]")


# --- which files ------------------------------------------------------------------------


def is_pattern(argument: str) -> bool:
    return bool(GLOB_CHARACTERS.search(argument))


def wants_batch(arguments: Iterable[str]) -> bool:
    """Whether ``predict``'s arguments name folders or patterns, not only files."""
    return any(Path(a).is_dir() or (is_pattern(a) and not os.path.lexists(a)) for a in arguments)


def _walk(folder: str, depth: int | None = None) -> Iterator[str]:
    """Every file under ``folder`` (at most ``depth`` levels down), depth first in sorted
    order, one directory held at a time; links to folders are not followed (no loops)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if depth is None or depth > 1:
                yield from _walk(entry.path, None if depth is None else depth - 1)
        elif depth is None or depth >= 1:
            yield entry.path


def _audio(paths: Iterable[str]) -> Iterator[str]:
    return (p for p in paths if os.path.splitext(p)[1].lower() in AUDIO_SUFFIXES)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` as a regular expression over '/'-separated paths: ``**/`` any folders."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def _glob(pattern: str) -> Iterator[str]:
    """The files ``pattern`` matches, and the audio files in the folders it matches, walked
    from its fixed leading folders in sorted order (only as deep as the pattern reaches,
    unless it holds ``**``)."""
    parts = pattern.split("/")
    fixed = next(i for i, part in enumerate(parts) if is_pattern(part))
    root = "/".join(parts[:fixed]) or ("/" if pattern.startswith("/") else "")
    depth = None if "**" in pattern else len(parts) - fixed
    regex = _pattern_regex(pattern)

    def shown(path: str) -> str:
        return path if root else path[2:]  # "./x" walked for the pattern "x*"

    def walk(folder: str, depth: int | None) -> Iterator[str]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            matched = regex.fullmatch(shown(entry.path))
            if entry.is_dir(follow_symlinks=False):
                if matched:
                    yield from _audio(map(shown, _walk(entry.path)))
                elif depth is None or depth > 1:
                    yield from walk(entry.path, None if depth is None else depth - 1)
            elif matched:
                yield shown(entry.path)

    yield from walk(root or ".", depth)


def expand(arguments: Iterable[str]) -> Iterator[str]:
    """The audio files the arguments name, lazily: a file as given (whatever its ending, so
    that it is answered or refused with a reason), a folder's and a pattern's audio files."""
    for argument in arguments:
        if Path(argument).is_dir():
            yield from _audio(_walk(argument))
        elif is_pattern(argument) and not os.path.lexists(argument):
            yield from _audio(_glob(argument))
        else:
            yield argument


# --- one file's answer ------------------------------------------------------------------


def record(name: str, outcome: Result | SERError) -> dict[str, Any]:
    """The JSON object ``predict --json`` prints for one file."""
    if isinstance(outcome, SERError):
        return {"file": name, "error": str(outcome)}
    prediction = outcome.prediction
    return {
        "file": name,
        "model": outcome.model,
        "emotion": prediction.emotion,
        "confidence": round(prediction.confidence, 4),
        "probabilities": {k: round(v, 4) for k, v in prediction.as_dict().items()},
        "caveats": outcome.caveats,
        "familiar": outcome.familiar,
        **({"timeline": outcome.timeline.as_records()} if outcome.timeline is not None else {}),
    }


class Answerer:
    """One loaded model (and, for the default, the shipped models it hands low rates to)."""

    def __init__(self, model: str | None, models_dir: Path | None) -> None:
        from .predict import Recognizer, shipped_narrower

        self.recognizer: Recognizer = Recognizer.load(model, models_dir)
        self.narrower = shipped_narrower(self.recognizer, models_dir) if model is None else None

    def answer(self, path: str) -> dict[str, Any]:
        ((name, outcome),) = self.recognizer.recognise_many([path], narrower=self.narrower)
        return record(name, outcome)


_worker: Answerer | None = None


def _start_worker(model: str | None, models_dir: Path | None) -> None:
    """In each worker process, once: one thread for TensorFlow (the workers are the
    parallelism), then the model. TensorFlow reads these when it is imported, which a model
    that runs in numpy (``ser.runtime``) never needs."""
    global _worker
    os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    _worker = Answerer(model, models_dir)


def _answer_in_worker(path: str) -> dict[str, Any]:
    assert _worker is not None
    try:
        return _worker.answer(path)
    except Exception as error:  # a bug must not stop the batch: this file says what happened
        return {"file": path, "error": f"unexpected {type(error).__name__}: {error}"}


# --- the output file ---------------------------------------------------------------------


def finished(output: Path) -> set[str]:
    """The files ``output`` already answers; a last line cut short by a kill is cut off."""
    if not output.exists():
        return set()
    done: set[str] = set()
    with open(output, "rb+") as f:
        good_end = 0
        for line in f:
            try:
                name = json.loads(line)["file"] if line.endswith(b"\n") else None
            except (ValueError, KeyError, TypeError):
                name = None
            if not isinstance(name, str):
                if line.endswith(b"\n"):
                    raise SERError(
                        f"{printable(str(output))} holds a line that is not one of predict's "
                        "answers: give another --output, or remove it."
                    )
                break  # the last line, cut short
            done.add(name)
            good_end += len(line)
        f.truncate(good_end)
    return done


# --- the run -----------------------------------------------------------------------------


@dataclass
class Summary:
    answered: int = 0
    failed: int = 0
    skipped: int = 0  # already in the output, or named twice
    seconds: float = 0.0
    first_answer_s: float | None = None  # start-up: the workers' TensorFlow and model

    @property
    def clips_per_s(self) -> float:
        done = self.answered + self.failed
        return done / self.seconds if self.seconds > 0 else 0.0

    def line(self, jobs: int) -> str:
        return (
            f"{self.answered + self.failed} files answered ({self.failed} failed), "
            f"{self.skipped} skipped as already done, in {self.seconds:.1f} s with {jobs} "
            f"job{'s' * (jobs != 1)}: {self.clips_per_s:.1f} clips/s"
        )


Sink = Callable[[dict[str, Any]], None]


class _Progress:
    """A one-line bar on stderr, redrawn at most ten times a second."""

    def __init__(self, total: int | None, stream: IO[str] | None) -> None:
        self.total, self.stream, self.drawn, self.start = total, stream, 0.0, time.monotonic()

    def update(self, summary: Summary, *, last: bool = False) -> None:
        now = time.monotonic()
        if self.stream is None or (not last and now - self.drawn < 0.1):
            return
        self.drawn = now
        done = summary.answered + summary.failed + summary.skipped
        total = max(self.total or done, done)
        width = 30
        filled = int(width * done / max(1, total))
        rate = (summary.answered + summary.failed) / max(1e-9, now - self.start)
        self.stream.write(
            f"\r     predict [{'#' * filled}{'.' * (width - filled)}] {done}/{total} files"
            f"  {rate:.1f}/s  {summary.failed} failed\033[K" + ("\n" if last else "")
        )
        self.stream.flush()


def run(
    arguments: Iterable[str],
    *,
    model: str | None,
    models_dir: Path | None,
    jobs: int = 1,
    output: Path | None = None,
    sink: Sink | None = None,
    progress: bool = True,
) -> Summary:
    """Answer every file the arguments name; each answer goes to ``output`` (appended, flushed)
    and to ``sink``. Files ``output`` already answers are skipped. With ``progress``, a bar
    on stderr (the arguments are walked once first, to count the files)."""
    if jobs < 1:
        raise SERError(f"--jobs must be at least 1, not {jobs}.")
    arguments = list(arguments)
    done = finished(output) if output is not None else set()
    total = sum(1 for _ in expand(arguments)) if progress else None  # a walk, no decoding
    summary, bar = Summary(), _Progress(total, sys.stderr if progress else None)
    start = time.monotonic()
    out = open(output, "a", encoding="utf-8") if output is not None else None  # noqa: SIM115

    def write(line: dict[str, Any]) -> None:
        if summary.first_answer_s is None:
            summary.first_answer_s = time.monotonic() - start
        if "error" in line:
            summary.failed += 1
        else:
            summary.answered += 1
        if out is not None:
            out.write(json.dumps(line) + "\n")
            out.flush()
        if sink is not None:
            sink(line)
        bar.update(summary)

    def todo() -> Iterator[str]:
        for path in expand(arguments):
            if path in done:
                summary.skipped += 1
                bar.update(summary)
                continue
            done.add(path)
            yield path

    try:
        if jobs == 1:
            answerer = Answerer(model, models_dir)
            for path in todo():
                write(answerer.answer(path))
        else:
            _on_workers(todo(), jobs=jobs, model=model, models_dir=models_dir, write=write)
    finally:
        summary.seconds = time.monotonic() - start
        if out is not None:
            out.close()
        bar.update(summary, last=True)
    return summary


def _pool(jobs: int, model: str | None, models_dir: Path | None) -> cf.ProcessPoolExecutor:
    # 'spawn': a fork of a process that has started TensorFlow's threads can deadlock.
    return cf.ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(model, models_dir),
    )


def _on_workers(
    paths: Iterator[str],
    *,
    jobs: int,
    model: str | None,
    models_dir: Path | None,
    write: Sink,
) -> None:
    """At most ``IN_FLIGHT_PER_JOB * jobs`` files queued; answers written as they arrive. When
    a worker dies, the files then in flight are tried again, each alone on a fresh pool."""
    # One thread per worker for numpy's and TensorFlow's maths too (the workers are the
    # parallelism): set before the workers start, which read it as they import numpy.
    saved = {v: os.environ.get(v) for v in THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, "1"))
    pool = _pool(jobs, model, models_dir)
    suspects: list[str] = []
    try:
        in_flight: dict[cf.Future[dict[str, Any]], str] = {}
        exhausted = False
        while in_flight or not exhausted:
            while not exhausted and len(in_flight) < IN_FLIGHT_PER_JOB * jobs:
                path = next(paths, None)
                if path is None:
                    exhausted = True
                    break
                in_flight[pool.submit(_answer_in_worker, path)] = path
            if not in_flight:
                break
            finished_now, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
            broken = False
            for future in finished_now:
                path = in_flight.pop(future)
                try:
                    write(future.result())
                except cf.process.BrokenProcessPool:
                    suspects.append(path)
                    broken = True
            if broken:
                suspects += in_flight.values()  # they failed with the pool, or soon will
                in_flight.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = _pool(jobs, model, models_dir)
                for path in suspects:
                    pool = _alone(path, pool, jobs, model, models_dir, write)
                suspects.clear()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for variable, value in saved.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value


def _alone(
    path: str,
    pool: cf.ProcessPoolExecutor,
    jobs: int,
    model: str | None,
    models_dir: Path | None,
    write: Sink,
) -> cf.ProcessPoolExecutor:
    """``path`` on its own: its answer, or, if a worker dies on it, that as its error."""
    try:
        write(pool.submit(_answer_in_worker, path).result())
        return pool
    except cf.process.BrokenProcessPool:
        write(
            {"file": path, "error": "the worker process died on this file (a crash in a decoder?)"}
        )
        pool.shutdown(wait=False, cancel_futures=True)
        return _pool(jobs, model, models_dir)
