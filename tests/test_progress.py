"""Progress of long commands (omnix_recs/progress.py): log lines off a terminal, bars on one,
silence when no command asked for it, and the JSON summary alone on stdout."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from omnix_recs import progress
from omnix_recs.cli import main
from omnix_recs.data.generate import generate_instacart

TINY_SHOP = dict(customers=60, products=200, days=120, seed=5)


def progress_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "omnix.progress"]


def task_at(
    completed: float, total: float | None, unit: str, elapsed_s: float, description: str = "work"
) -> progress.Task:
    task = progress.Task(description, total, unit, None)
    task.completed = completed
    task.started = time.monotonic() - elapsed_s
    return task


@pytest.mark.parametrize(
    ("task", "done", "expected"),
    [
        ((50, 100, "lines", 10), False, "work: 50 of 100 lines (50%), 5 lines/s, ETA 10 s"),
        ((1_500_000, None, "lines", 100), False, "work: 1,500,000 lines, 15,000 lines/s, 1m 40s so far"),
        ((0, 200, "items", 3), False, "work: 0 of 200 items (0%), 3 s so far"),
        ((40e6, 200e6, progress.BYTES, 20), False, "work: 40.0 of 200.0 MB (20%), 2.0 MB/s, ETA 1m 20s"),
        ((200, 200, "items", 125), True, "work: 200 of 200 items (100%), 2 items/s, done in 2m 05s"),
        ((1, 3, progress.STAGES, 4000, "train [2/3 tune]"), False, "train [2/3 tune]: 1h 06m so far"),
        ((3, 3, progress.STAGES, 7, "train [3/3 build]"), True, "train [3/3 build]: done in 7 s"),
    ],
    ids=["eta", "no-total", "nothing-yet", "bytes", "done", "stage", "stages-done"],
)
def test_status_line(task: tuple[Any, ...], done: bool, expected: str) -> None:
    # Built here, not at collection: the elapsed time is measured from now.
    assert task_at(*task).status_line(done=done) == expected


def test_tasks_are_silent_unless_a_command_reports(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="omnix.progress")
    with progress.track("quiet", total=10) as task:
        task.advance(10)
    assert task.completed == 10
    assert progress_lines(caplog) == []


def test_off_a_terminal_running_tasks_are_logged_periodically_and_once_done(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="omnix.progress")
    stream = io.StringIO()  # not a terminal
    with progress.reporting(stream=stream, interval_s=0.1):
        with progress.track("import order lines", total=40, unit="lines") as task:
            for _ in range(4):
                time.sleep(0.15)
                task.advance(10)
    lines = progress_lines(caplog)
    periodic = [line for line in lines if "ETA" in line or "so far" in line]
    assert periodic, lines
    assert all(line.startswith("import order lines: ") for line in lines)
    assert lines[-1].startswith("import order lines: 40 of 40 lines (100%), ")
    assert lines[-1].endswith(" s") and "done in" in lines[-1]
    assert stream.getvalue() == ""  # lines go through logging, never straight to the stream


def test_stages_name_the_running_stage(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="omnix.progress")
    with progress.reporting(stream=io.StringIO(), interval_s=0.1):
        with progress.stages("train", ("read purchases", "build")) as stage:
            stage.begin("read purchases")
            time.sleep(0.25)
            stage.begin("build")
            time.sleep(0.25)
    lines = progress_lines(caplog)
    assert any(line.startswith("train [1/2 read purchases]: ") for line in lines), lines
    assert lines[-1].startswith("train [2/2 build]: done in ")


def test_an_unknown_stage_is_refused() -> None:
    with progress.stages("train", ("read", "build")) as stage, pytest.raises(ValueError, match="'tune'"):
        stage.begin("tune")


def test_on_a_terminal_a_bar_shows_amount_rate_and_eta() -> None:
    terminal = io.StringIO()
    with progress.reporting(stream=terminal, terminal=True):
        with progress.track("write to DynamoDB", total=1000, unit="items") as task:
            time.sleep(0.05)
            task.advance(500)
            time.sleep(0.3)  # one refresh of the live display at least
            task.advance(500)
    shown = terminal.getvalue()
    assert "write to DynamoDB" in shown
    assert "items/s" in shown
    assert "ETA" in shown
    assert "1,000 of 1,000 items (100%)" in shown and "done in" in shown


def test_counted_passes_batches_through_and_counts_their_length(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="omnix.progress")
    with progress.reporting(stream=io.StringIO(), interval_s=60):
        batches = list(progress.counted(iter([[1, 2, 3], [4, 5]]), "read purchases", total=5, unit="lines"))
    assert batches == [[1, 2, 3], [4, 5]]
    assert progress_lines(caplog)[-1].startswith("read purchases: 5 of 5 lines (100%)")


def test_omnix_generate_logs_progress_on_stderr_and_prints_only_the_summary_on_stdout(tmp_path: Path) -> None:
    """The real command, its stderr a pipe: periodic lines there, stdout one JSON document."""
    command = [sys.executable, "-m", "omnix_recs.cli", "--progress-every", "0.1", "generate", "--out", str(tmp_path)]
    sizes = ["--customers", "2000", "--products", "500", "--days", "365", "--seed", "1"]
    finished = subprocess.run(command + sizes, capture_output=True, text=True, timeout=60, check=True)
    summary = json.loads(finished.stdout)
    assert summary["customers"] == 2000 and summary["products"] == 500 and summary["order_lines"] > 0
    progress_lines = [line for line in finished.stderr.splitlines() if " omnix.progress " in line]
    assert progress_lines[-1].endswith("s") and "generate [2/2 households]: done in" in progress_lines[-1]


def test_omnix_import_reports_lines_and_commit_and_keeps_its_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="omnix.progress")
    generate_instacart(tmp_path / "shop", **TINY_SHOP)  # type: ignore[arg-type]
    url = f"sqlite:///{tmp_path / 'omnix.db'}"
    assert main(["--progress-every", "60", "import", "instacart", str(tmp_path / "shop"), "--store", url]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"customers", "products", "orders", "order_lines", "seconds"}
    assert report["customers"] == TINY_SHOP["customers"]
    lines = progress_lines(caplog)
    assert any(line.startswith("import order lines: ") and "(100%)" in line and "done in" in line for line in lines)
    assert any(line.startswith("import: commit: done in") for line in lines), lines


def test_servers_never_report_progress(caplog: pytest.LogCaptureFixture) -> None:
    from omnix_recs.cli import PROGRESS_COMMANDS

    assert "serve" not in PROGRESS_COMMANDS and "demo" not in PROGRESS_COMMANDS


@pytest.mark.parametrize("value", ["soon", ""])
def test_a_bad_progress_interval_is_refused_naming_the_option(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--progress-every", value, "generate", "--out", "unused"])
    assert exited.value.code == 2
    assert "--progress-every" in capsys.readouterr().err
