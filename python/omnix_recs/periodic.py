"""Work a server process repeats in the background: a daemon thread over a store of its own.

Scheduled retraining (retraining.py) and the served-list prune (served_retention.py) share the
same life: run at start, then again after each interval until the server stops; `close` stops
the thread between runs and closes the store, which the job owns.
"""

from __future__ import annotations

import abc
import threading

from omnix_recs.store.base import Store


class PeriodicJob(abc.ABC):
    """`run_once` on a daemon thread named `thread_name`, at `start` and then every
    `interval_s` seconds until `close`. `run_once` must not raise: a failed run is logged and
    the next one tries again."""

    def __init__(self, store: Store, *, interval_s: float, thread_name: str) -> None:
        self._store = store
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._store.close()

    @abc.abstractmethod
    def run_once(self) -> object:
        """One run now, on the caller's thread."""

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self._interval_s)
