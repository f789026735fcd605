"""ser.jobs: runs found again by id, one at a time, the newest finished ones kept."""

from __future__ import annotations

from dataclasses import dataclass

from ser.jobs import Registry


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
