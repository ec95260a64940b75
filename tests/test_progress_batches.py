"""Progress of the batch jobs over customers: `omnix batch-analyze` and `omnix campaigns create`.

Like the other long commands (tests/test_progress.py): log lines off a terminal, a bar with rate
and ETA on one, nothing in a server, and the command's JSON summary alone on stdout.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from omnix_recs import progress
from omnix_recs.cli import main
from omnix_recs.config import Settings
from omnix_recs.data.generate import generate_instacart
from omnix_recs.data.instacart import import_instacart
from omnix_recs.engine.train import train_model
from omnix_recs.insights.analyst import ANALYSES, InsightsService
from omnix_recs.store import open_store

SHOP = dict(customers=60, products=200, days=120, seed=9)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A SQLite store with a generated shop and a model (copy the database to write to it)."""
    root = tmp_path_factory.mktemp("progress-batches")
    generate_instacart(root / "data", **SHOP)  # type: ignore[arg-type]
    settings = Settings(store_url=f"sqlite:///{root / 'omnix.db'}", model_dir=str(root / "models"))
    store = open_store(settings.store_url)
    try:
        import_instacart(store, root / "data", as_of=date.today())
        train_model(store, settings, tune=False)
    finally:
        store.close()
    return root / "omnix.db", root / "models"


@pytest.fixture
def store_url(shop: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OMNIX_BEDROCK_ENABLED", "false")  # the local analyst and templates: no network
    monkeypatch.setenv("OMNIX_MODEL_DIR", str(shop[1]))
    copy = tmp_path / "omnix.db"
    copy.write_bytes(shop[0].read_bytes())
    return f"sqlite:///{copy}"


def progress_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "omnix.progress"]


def analyses_stored(store_url: str) -> int:
    store = open_store(store_url)
    try:
        customers = store.list_customer_ids(page_size=1000).items
        return sum(store.latest_document(ANALYSES, c) is not None for c in customers)
    finally:
        store.close()


def test_omnix_batch_analyze_logs_customers_done_and_prints_the_counts(
    store_url: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="omnix.progress")
    assert main(["--progress-every", "60", "batch-analyze", "--store", store_url, "--max-customers", "20"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["total"] == summary["done"] == 20 and summary["finished"] is True
    assert summary["analyzed"] + summary["skipped"] == 20 and summary["failed"] == 0
    done = [line for line in progress_lines(caplog) if line.startswith("batch analysis: ")]
    assert done and done[-1].startswith("batch analysis: 20 of 20 customers (100%), ") and "done in" in done[-1]
    assert analyses_stored(store_url) == summary["analyzed"]

    # Resuming from that run's start skips everyone it analysed.
    assert main(["batch-analyze", "--store", store_url, "--max-customers", "20", "--resume-since", "2000-01-01"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["skipped"] == 20 and again["analyzed"] == 0


def test_batch_analyze_as_a_subprocess_keeps_stdout_for_the_json(store_url: str) -> None:
    command = [sys.executable, "-m", "omnix_recs.cli", "--progress-every", "0.1", "batch-analyze"]
    command += ["--store", store_url, "--max-customers", "30", "--concurrency", "2"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(finished.stdout)["done"] == 30  # stdout is one JSON document
    lines = [line for line in finished.stderr.splitlines() if " omnix.progress " in line]
    assert lines and "batch analysis: 30 of 30 customers (100%)" in lines[-1] and "done in" in lines[-1]


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--concurrency", "0"], "--concurrency"),
        (["--concurrency", "500"], "--concurrency"),
        (["--max-customers", "0"], "--max-customers"),
    ],
)
def test_bad_batch_options_are_refused_naming_them_and_nothing_is_analysed(
    store_url: str, arguments: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["batch-analyze", "--store", store_url, *arguments]) == 2
    assert named in capsys.readouterr().err
    assert analyses_stored(store_url) == 0


def test_a_bad_resume_moment_is_refused_naming_the_option(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["batch-analyze", "--store", store_url, "--resume-since", "yesterday"])
    assert exited.value.code == 2
    assert "--resume-since" in capsys.readouterr().err


def test_omnix_campaigns_create_logs_customers_done_and_keeps_its_json(
    store_url: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="omnix.progress")
    command = ["--progress-every", "60", "campaigns", "create", "--name", "spring", "--kind", "personalized_email"]
    assert main([*command, "--dry-run", "--store", store_url]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dry_run"] is True and summary["campaign_id"] == ""
    lines = [line for line in progress_lines(caplog) if line.startswith("campaign personalized_email: ")]
    customers = SHOP["customers"]
    assert lines and lines[-1].startswith(f"campaign personalized_email: {customers} of {customers} customers (100%)")
    assert "done in" in lines[-1]


def test_on_a_terminal_batch_analysis_shows_a_bar_with_rate(store_url: str) -> None:
    settings = Settings.from_env()
    store = open_store(store_url)
    terminal = io.StringIO()
    try:

        async def run() -> None:
            async for _ in InsightsService(store, settings).batch_analyze(max_customers=10, concurrency=2):
                pass

        with progress.reporting(stream=terminal, terminal=True):
            asyncio.run(run())
    finally:
        store.close()
    shown = terminal.getvalue()
    assert "batch analysis" in shown and "customers/s" in shown
    assert "10 of 10 customers (100%)" in shown and "done in" in shown


def test_servers_stay_quiet_about_batches(store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Without a command reporting (a server's BatchAnalyze), the same work logs no progress."""
    caplog.set_level(logging.INFO, logger="omnix.progress")
    store = open_store(store_url)
    try:

        async def run() -> int:
            done = 0
            async for step in InsightsService(store, Settings.from_env()).batch_analyze(max_customers=5):
                done = step.done
            return done

        assert asyncio.run(run()) == 5
    finally:
        store.close()
    assert progress_lines(caplog) == []
