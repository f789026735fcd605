"""Runs that outlive the page that started them: a process-wide registry of runs by id.

A visitor who leaves the Train page mid-run, or closes the tab, finds the run again by its id
(the page keeps it in the address, ``?run=ID``): its progress while it runs, its result when it
is done, still there to be saved. One run at a time; the newest finished runs are kept, so a
result waits for its visitor without the server keeping every model it ever trained.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, Protocol, TypeVar


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
