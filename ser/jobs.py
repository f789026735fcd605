"""Training runs that outlive the page that started them.

- ``TrainingJob`` runs ``train.prepare`` + ``train.train_holdout`` (the same code path as
  ``python -m ser train``) in a background thread and records its progress, curves, result or
  error. ``stop`` sets the ``threading.Event`` the package checks between batches; the package
  then raises ``TrainingStopped`` and nothing is saved. ``save`` writes the held-out model with
  the metadata the command line writes.
- ``Registry`` keeps runs by id, one under way at a time. A visitor who leaves the Train page
  mid-run, or closes the tab, finds the run again by its id (the page keeps it in the address,
  ``?run=ID``): its progress while it runs, its result when it is done, still there to be
  saved. The newest finished runs are kept, so a result waits for its visitor without the
  server keeping every model it ever trained.

Nothing here draws anything: the app's Train page polls ``TrainingJob.snapshot``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, Protocol, TypeVar

from . import store, train
from .command import train_command
from .datasets import ScanReport
from .errors import SERError, TrainingStopped
from .train import HoldoutResult, Prepared, Progress, TrainOptions

log = logging.getLogger("ser.app.training")

# Training threads' names start with this: what is still training can be told by its name.
THREAD_PREFIX = "ser-train-"


class Run(Protocol):
    """What the registry needs of a run: an id, whether it is under way, and a start."""

    id: str

    @property
    def running(self) -> bool: ...

    def start(self) -> None: ...


R = TypeVar("R", bound=Run)


class Registry(Generic[R]):
    """Runs by id, one under way at a time; the newest ``keep`` finished ones stay."""

    def __init__(self, *, keep: int = 4) -> None:
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, R] = OrderedDict()
        self._keep = keep

    def start(self, run: R) -> bool:
        """Start ``run`` unless another is under way; False when one is."""
        with self._lock:
            if any(r.running for r in self._runs.values()):
                return False
            self._runs[run.id] = run
            run.start()
            self._forget_old()
            return True

    def active(self) -> R | None:
        """The run under way, if any."""
        with self._lock:
            return next((r for r in self._runs.values() if r.running), None)

    def get(self, run_id: str) -> R | None:
        """The run of that id, under way or finished (and not yet forgotten)."""
        with self._lock:
            return self._runs.get(run_id)

    def _forget_old(self) -> None:
        finished = [key for key, r in self._runs.items() if not r.running]
        for key in finished[: max(0, len(finished) - self._keep)]:
            del self._runs[key]


class State(str, Enum):
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True)
class Snapshot:
    """A consistent copy of a job's state, for whoever draws its progress."""

    state: State
    stage: str  # "features" or "training"
    features: Progress | None
    epochs: Progress | None
    history: dict[str, list[float]]
    cached: int
    n_jobs: int
    message: str | None
    stopping: bool
    elapsed_s: float


@dataclass
class TrainingJob:
    """One training run in a background thread; every field is written under ``_lock``.

    ``before_training`` runs in the thread after the features, before the network is built
    (the app uses it to keep its host from clearing Keras's state mid-run).
    """

    report: ScanReport
    options: TrainOptions
    folders: tuple[str, ...]
    owner: str  # the session that started it
    before_training: Callable[[], None] | None = field(default=None, repr=False)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    state: State = State.RUNNING
    stage: str = "features"
    features: Progress | None = None
    epochs: Progress | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    cached: int = 0  # feature computations found in the cache before the run
    n_jobs: int = 0
    data: Prepared | None = None
    result: HoldoutResult | None = None
    message: str | None = None  # why it stopped or failed
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    saved: store.ModelInfo | None = None  # once its model is saved, from whichever session

    @property
    def running(self) -> bool:
        return self.state is State.RUNNING

    def start(self) -> None:
        log.info(
            "training run %s started by session %s: %s on %s",
            self.id,
            self.owner[:8],
            self.options.to_dict(),
            ", ".join(self.folders),
        )
        self._thread = threading.Thread(
            target=self._run, name=f"{THREAD_PREFIX}{self.id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.stop_event.set()

    def join(self, timeout_s: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def snapshot(self) -> Snapshot:
        with self._lock:
            end = self.finished if self.finished is not None else time.monotonic()
            return Snapshot(
                state=self.state,
                stage=self.stage,
                features=self.features,
                epochs=self.epochs,
                history={k: list(v) for k, v in self.history.items()},
                cached=self.cached,
                n_jobs=self.n_jobs,
                message=self.message,
                stopping=self.stop_event.is_set() and self.state is State.RUNNING,
                elapsed_s=end - self.started,
            )

    def outcome(self) -> tuple[HoldoutResult, Prepared]:
        """The trained result and its data; ``RuntimeError`` before the run is done."""
        if self.result is None or self.data is None:
            raise RuntimeError(f"training run {self.id} has no result")
        return self.result, self.data

    def save(self, name: str, *, overwrite: bool) -> store.ModelInfo:
        """Write the held-out model with the metadata the CLI writes (atomically, by the store)."""
        result, data = self.outcome()
        meta = train.metadata(
            data,
            self.options,
            evaluation=train.holdout_evaluation(result),
            command=train_command(self.folders, self.options, name=name),
            train_index=result.train_index,
        )
        info = store.save_model(result.model, meta, name=name, overwrite=overwrite)
        with self._lock:
            self.saved = info
        return info

    def _on_progress(self, progress: Progress) -> None:
        with self._lock:
            if progress.stage == "features":
                self.features = progress
                return
            self.stage = "training"
            self.epochs = progress
            if train.is_head_stage(progress.stage):
                return  # the curves show the CNN's epochs only
            for key, value in progress.metrics.items():
                self.history.setdefault(key, []).append(value)

    def _finish(self, state: State, message: str | None = None) -> None:
        with self._lock:
            self.state, self.message, self.finished = state, message, time.monotonic()
        log.info(
            "training run %s %s after %.0f s%s",
            self.id,
            state.value,
            self.finished - self.started,
            f": {message}" if message else "",
        )

    def _run(self) -> None:
        """prepare -> train_holdout, as ``python -m ser train`` does; never raises."""
        try:
            cached, n_jobs = train.cached_count(self.report, self.options)
            with self._lock:
                self.cached, self.n_jobs = cached, n_jobs
            data = train.prepare(
                self.report, self.options, progress=self._on_progress, stop=self.stop_event
            )
            with self._lock:
                self.data, self.stage = data, "training"
            if self.before_training is not None:
                self.before_training()  # imports TensorFlow: "building the network"
            result = train.train_holdout(
                data, self.options, progress=self._on_progress, stop=self.stop_event
            )
            with self._lock:
                self.result, self.history = result, dict(result.history)
            self._finish(State.DONE)
        except TrainingStopped as error:
            self._finish(State.STOPPED, str(error))
        except SERError as error:
            self._finish(State.FAILED, str(error))
        except Exception as error:  # a bug or a resource problem: the log gets the details
            log.exception("training run %s failed", self.id)
            self._finish(
                State.FAILED,
                f"Training failed unexpectedly ({type(error).__name__}: {error}). "
                "The details are in the server log.",
            )


def training_threads_alive() -> bool:
    """Whether any training run's thread is still working."""
    return any(t.name.startswith(THREAD_PREFIX) and t.is_alive() for t in threading.enumerate())
