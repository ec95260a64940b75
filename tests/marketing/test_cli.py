"""`omnix campaigns create | export | performance` on a seeded store."""

from __future__ import annotations

import csv
import json
import logging

import pytest
from marketing_shop import seed

from omnix_recs import cli
from omnix_recs.config import Settings
from omnix_recs.engine.train import train_model
from omnix_recs.marketing.records import CAMPAIGN_DOCUMENT
from omnix_recs.store import open_store


@pytest.fixture
def store_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'omnix.db'}"
    store = open_store(url)
    try:
        seed(store)
        train_model(store, Settings(store_url=url, model_dir=str(tmp_path / "models")))
    finally:
        store.close()
    return url


def test_create_export_and_measure(store_url, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="omnix.progress")
    args = ["campaigns", "create", "--store", store_url, "--model-dir", str(tmp_path / "models")]
    assert cli.main([*args, "--name", "weekly picks", "--kind", "personalized_email", "--holdout-percent", "0"]) == 0
    out = capsys.readouterr()
    campaign = json.loads(out.out)
    assert campaign["audience_size"] == 6
    shown = [r.getMessage() for r in caplog.records if r.name == "omnix.progress"]  # progress, off a terminal
    assert any(line.startswith("campaign personalized_email: 7 of 7 customers (100%)") for line in shown), shown

    jsonl = tmp_path / "messages.jsonl"
    assert cli.main(["campaigns", "export", campaign["campaign_id"], "--store", store_url, "--out", str(jsonl)]) == 0
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [m["customer_id"] for m in lines] == sorted(m["customer_id"] for m in lines) and len(lines) == 6
    assert all(m["subject"] and m["body"] and m["items"] for m in lines)

    out_csv = tmp_path / "messages.csv"
    cli.main(
        ["campaigns", "export", campaign["campaign_id"], "--format", "csv", "--store", store_url, "--out", str(out_csv)]
    )
    with out_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and json.loads(rows[0]["items_json"])[0]["product_id"] in rows[0]["product_ids"]

    capsys.readouterr()
    assert cli.main(["campaigns", "performance", campaign["campaign_id"], "--store", store_url]) == 0
    assert json.loads(capsys.readouterr().out)["sent"] == 6


def test_dry_run_stores_nothing_and_unknown_campaigns_fail_cleanly(store_url, tmp_path, capsys):
    args = ["campaigns", "create", "--store", store_url, "--model-dir", str(tmp_path / "models")]
    assert cli.main([*args, "--name", "x", "--kind", "win_back", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["dry_run"]
    store = open_store(store_url)
    try:
        assert store.list_documents(CAMPAIGN_DOCUMENT) == []
    finally:
        store.close()
    assert cli.main(["campaigns", "export", "nope", "--store", store_url]) == 2
    assert "campaign 'nope' not found" in capsys.readouterr().err
