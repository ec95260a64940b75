"""Progress of long commands: a bar with rate and ETA on a terminal, periodic log lines otherwise.

Library code (importers, the generator, training, evaluation) opens a task with `track()` or
`stages()` and advances it. Nothing is shown unless the running command turned reporting on
with `reporting()` (the CLI does, around its batch commands), so a server retraining in the
background and tests calling the same functions stay quiet. Everything goes to stderr: stdout
keeps the command's JSON summary, whatever the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import Protocol, TextIO, TypeVar

log = logging.getLogger("omnix.progress")

DEFAULT_INTERVAL_S = 10.0
MIN_INTERVAL_S = 0.1  # the log-line ticker never spins
BYTES = "B"  # the unit of tasks counted in bytes (shown as MB)
STAGES = "stages"  # the unit of `stages()` tasks: shown by name and time, without a rate

SizedT = TypeVar("SizedT", bound=Sized)


class _Reporter(Protocol):
    def start(self, task: Task) -> None: ...
    def update(self, task: Task) -> None: ...
    def finish(self, task: Task) -> None: ...
    def close(self) -> None: ...


_reporter: _Reporter | None = None
_reporter_lock = threading.Lock()


class Task:
    """One piece of long work: how much is done of how much. `advance` is thread-safe and cheap
    (importers call it from writer threads, once per chunk)."""

    def __init__(self, description: str, total: float | None, unit: str, reporter: _Reporter | None) -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.completed = 0.0
        self.started = time.monotonic()
        self._reporter = reporter
        self._lock = threading.Lock()

    def advance(self, amount: float = 1) -> None:
        with self._lock:
            self.completed += amount
        if self._reporter is not None:
            self._reporter.update(self)

    def describe(self, description: str) -> None:
        self.description = description
        if self._reporter is not None:
            self._reporter.update(self)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def rate(self) -> float | None:
        """Units per second since the start (None until there is something to divide)."""
        elapsed = self.elapsed()
        return self.completed / elapsed if elapsed > 0 and self.completed > 0 else None

    def remaining_s(self) -> float | None:
        rate = self.rate()
        if self.total is None or rate is None:
            return None
        return max(self.total - self.completed, 0.0) / rate

    def status_line(self, *, done: bool = False) -> str:
        """The plain-text line of this task, e.g. `import: 120.0 of 600.0 MB (20%), 25.3 MB/s, ETA 16 s`."""
        if done:
            ending = f"done in {_duration(self.elapsed())}"
        else:
            remaining = self.remaining_s() if self.unit != STAGES else None
            ending = f"ETA {_duration(remaining)}" if remaining is not None else f"{_duration(self.elapsed())} so far"
        if self.unit == STAGES:  # the description names the stage; a rate of stages means nothing
            return f"{self.description}: {ending}"
        label = "MB" if self.unit == BYTES else self.unit
        parts = [f"{self.description}: {_number(self.completed, self.unit)}"]
        if self.total:
            share = min(self.completed / self.total, 1.0)
            parts[0] += f" of {_number(self.total, self.unit)} {label} ({share:.0%})"
        else:
            parts[0] += f" {label}"
        rate = self.rate()
        if rate is not None:
            parts.append(f"{_number(rate, self.unit)} {label}/s")
        parts.append(ending)
        return ", ".join(parts)


class Stages:
    """A task counted in named stages (read, tune, build, save...): for work done in few large
    calls, where only the stage and the time spent can be shown."""

    def __init__(self, task: Task, description: str, names: Sequence[str]) -> None:
        self._task = task
        self._description = description
        self._names = list(names)
        self._current: str | None = None

    def begin(self, name: str) -> None:
        """The previous stage is done; `name` starts."""
        if name not in self._names:
            raise ValueError(f"unknown stage {name!r}; expected one of {self._names}")
        if self._current is not None:
            self._task.advance(1)
        self._current = name
        position = self._names.index(name) + 1
        self._task.describe(f"{self._description} [{position}/{len(self._names)} {name}]")

    def end(self) -> None:
        """The current stage is done (the last one, when the work ends)."""
        if self._current is not None:
            self._task.advance(1)
            self._current = None


@contextlib.contextmanager
def track(description: str, *, total: float | None = None, unit: str = "items") -> Iterator[Task]:
    """A task shown while the block runs (when reporting is on); `total` None = no ETA."""
    reporter = _reporter
    task = Task(description, total, unit, reporter)
    if reporter is None:
        yield task
        return
    reporter.start(task)
    try:
        yield task
    finally:
        reporter.finish(task)


def step(description: str) -> contextlib.AbstractContextManager[Task]:
    """One long call that cannot count its work (a commit, an upload): its time is shown."""
    return track(description, unit=STAGES)


@contextlib.contextmanager
def stages(description: str, names: Sequence[str]) -> Iterator[Stages]:
    """A task made of the named stages, in order (`begin` each one; skipping one is fine)."""
    with track(description, total=len(names), unit=STAGES) as task:
        staged = Stages(task, description, names)
        yield staged
        staged.end()


@contextlib.contextmanager
def reporting(
    *, stream: TextIO | None = None, interval_s: float = DEFAULT_INTERVAL_S, terminal: bool | None = None
) -> Iterator[None]:
    """Show the progress of tasks opened inside the block: on `stream` (default stderr) as live
    bars when it is a terminal (or `terminal=True`), else as log lines on the `omnix.progress`
    logger every `interval_s` seconds and when each task ends."""
    global _reporter
    stream = stream if stream is not None else sys.stderr
    if terminal is None:
        terminal = stream.isatty()
    reporter: _Reporter = _BarReporter(stream) if terminal else _LineReporter(interval_s)
    with _reporter_lock:
        previous, _reporter = _reporter, reporter
    try:
        yield
    finally:
        with _reporter_lock:
            _reporter = previous
        reporter.close()


class _LineReporter:
    """Periodic log lines for logs and pipes: one per running task every interval, one at its end."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = max(interval_s, MIN_INTERVAL_S)
        self._tasks: list[Task] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="omnix-progress", daemon=True)
        self._ticker.start()

    def start(self, task: Task) -> None:
        with self._lock:
            self._tasks.append(task)

    def update(self, task: Task) -> None:
        pass  # the ticker reads the task's counters

    def finish(self, task: Task) -> None:
        with self._lock:
            if task in self._tasks:
                self._tasks.remove(task)
        log.info("%s", task.status_line(done=True))

    def close(self) -> None:
        self._stopped.set()
        self._ticker.join()

    def _tick(self) -> None:
        while not self._stopped.wait(self._interval_s):
            with self._lock:
                running = list(self._tasks)
            for task in running:
                log.info("%s", task.status_line())


class _BarReporter:
    """Live bars on a terminal (rich): description, bar, amount, rate, ETA and elapsed time.

    The display runs only while a task does, so what the command prints afterwards (its JSON
    summary on stdout) never meets a redrawing bar."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

        self._ids: dict[int, TaskID] = {}
        self._lock = threading.Lock()
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=Console(file=stream, force_terminal=True),
            refresh_per_second=4,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def start(self, task: Task) -> None:
        with self._lock:
            if not self._ids:
                for finished in list(self._progress.task_ids):  # shown when they ended
                    self._progress.remove_task(finished)
                self._progress.start()
            self._ids[id(task)] = self._progress.add_task(task.description, total=task.total, status="")

    def update(self, task: Task) -> None:
        task_id = self._ids.get(id(task))
        if task_id is not None:
            self._progress.update(
                task_id, completed=task.completed, description=task.description, status=_bar_status(task)
            )

    def finish(self, task: Task) -> None:
        with self._lock:
            task_id = self._ids.pop(id(task), None)
            if task_id is None:
                return
            self._progress.update(task_id, completed=task.completed, status=_bar_status(task, done=True))
            self._progress.stop_task(task_id)
            if not self._ids:
                self._progress.stop()

    def close(self) -> None:
        self._progress.stop()


def _bar_status(task: Task, *, done: bool = False) -> str:
    """The text beside a bar: amount, rate and ETA (the description is its own column)."""
    line = task.status_line(done=done)
    return line.removeprefix(f"{task.description}: ")


def _number(value: float, unit: str) -> str:
    return f"{value / 1e6:,.1f}" if unit == BYTES else f"{value:,.0f}"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def counted(
    batches: Iterable[SizedT], description: str, *, total: float | None = None, unit: str = "items"
) -> Iterator[SizedT]:
    """`batches` passed through unchanged, each advancing a task by its length (a store scan)."""
    with track(description, total=total, unit=unit) as task:
        for batch in batches:
            yield batch
            task.advance(len(batch))
