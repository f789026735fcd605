"""ser.jobs: runs found again by id, one at a time, the newest finished ones kept; a run's
stages, stop and failure, without Streamlit."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from ser import jobs
from ser.datasets import ScanReport
from ser.errors import TrainingStopped
from ser.jobs import Registry, TrainingJob
from ser.train import Progress, TrainOptions

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class FakeRun:
    id: str
    running: bool = False
    started: bool = False

    def start(self) -> None:
        self.started = self.running = True


def test_a_run_is_found_again_by_its_id_while_it_runs_and_after() -> None:
    registry: Registry[FakeRun] = Registry()
    run = FakeRun("a1")

    assert registry.start(run) and run.started
    assert registry.get("a1") is run and registry.active() is run
    run.running = False  # finished: still there, to be saved
    assert registry.get("a1") is run and registry.active() is None
    assert registry.get("nope") is None


def test_one_run_at_a_time_and_only_the_newest_finished_are_kept() -> None:
    registry: Registry[FakeRun] = Registry(keep=2)
    first = FakeRun("1")
    registry.start(first)
    assert not registry.start(FakeRun("blocked"))
    assert registry.get("blocked") is None
    first.running = False
    for name in "234":
        run = FakeRun(name)
        assert registry.start(run)
        run.running = False
    # Forgotten when a run starts: the two newest finished, and the one that started, stay.
    assert [registry.get(k) is not None for k in "1234"] == [False, True, True, True]


# ---------------------------------------------------------------------------- the training run


def _job(monkeypatch: pytest.MonkeyPatch, *, prepare: object, holdout: object) -> TrainingJob:
    """A run whose data and training are stand-ins: the engine, without any network."""
    monkeypatch.setattr(jobs.train, "cached_count", lambda *_a, **_k: (1, 4))
    monkeypatch.setattr(jobs.train, "prepare", prepare)
    monkeypatch.setattr(jobs.train, "train_holdout", holdout)
    report = ScanReport(folders=(), clips=(), skipped=(), duplicates=(), total_seconds=0.0)
    return TrainingJob(report, TrainOptions(), ("/data",), owner="session")


def _run(job: TrainingJob) -> jobs.Snapshot:
    job.start()
    job.join(30)
    return job.snapshot()


def test_a_run_trains_after_its_features_and_records_its_curves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps: list[str] = []

    def prepare(*_args: object, progress: Callable, **_kwargs: object) -> str:
        steps.append("features")
        progress(Progress("features", 4, 4, 1.0))
        return "data"

    def holdout(data: str, _options: object, *, progress: Callable, **_kwargs: object) -> object:
        steps.append(f"training on {data}")
        for epoch in (1, 2):
            progress(Progress("training", epoch, 2, 1.0, {"loss": 1.0 / epoch}))
        progress(Progress("training · statistics head", 1, 1, 1.0, {"loss": 9.0}))
        return SimpleNamespace(history={"loss": [1.0, 0.5]})

    job = _job(monkeypatch, prepare=prepare, holdout=holdout)
    job.before_training = lambda: steps.append("before training")
    snap = _run(job)

    assert steps == ["features", "before training", "training on data"]
    assert snap.state is jobs.State.DONE and not job.running
    assert (snap.cached, snap.n_jobs, snap.features.done) == (1, 4, 4)
    assert snap.history == {"loss": [1.0, 0.5]}  # the CNN's epochs, not the heads'
    assert job.outcome()[1] == "data"


def test_a_stopped_or_failed_run_says_why_and_has_nothing_to_save(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def stopped(*_args: object, **_kwargs: object) -> None:
        raise TrainingStopped("Stopped during feature extraction; nothing was saved.")

    def broken(*_args: object, **_kwargs: object) -> None:
        raise MemoryError("out of memory")

    snap = _run(_job(monkeypatch, prepare=stopped, holdout=broken))
    assert snap.state is jobs.State.STOPPED
    assert snap.message == "Stopped during feature extraction; nothing was saved."

    job = _job(monkeypatch, prepare=lambda *_a, **_k: "data", holdout=broken)
    snap = _run(job)
    assert snap.state is jobs.State.FAILED
    assert snap.message.startswith("Training failed unexpectedly (MemoryError: out of memory)")
    with pytest.raises(RuntimeError, match="has no result"):
        job.save("never", overwrite=False)


@pytest.mark.slow
def test_the_run_engine_needs_no_streamlit() -> None:
    code = "import sys, ser.jobs, ser.card, ser.command; print('streamlit' in sys.modules)"
    shown = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert shown.stdout.strip() == "False"
