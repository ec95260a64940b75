"""InsightsService over a real SQLite store, with Bedrock disabled (the local analyst)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from shop import NOW, PRIVATE_DETAILS

from omnix_recs.config import Settings
from omnix_recs.domain.models import Purchase
from omnix_recs.errors import FailedPreconditionError, NotFoundError
from omnix_recs.insights.analyst import InsightsService, analyze_customer_cli
from omnix_recs.insights.facts import customer_facts
from omnix_recs.insights.local import write_insights


@pytest.fixture
def service(shop):
    return InsightsService(shop, Settings(bedrock_enabled=False))


def test_local_analysis_is_stored_and_says_why_bedrock_did_not_answer(service, shop):
    result = service.analyze("weekly")
    assert (result.source, result.model, result.fallback_reason) == ("local", "local", "Bedrock is disabled")
    assert result.summary.startswith("20 trips over 139 days; shops about every 7 days")
    assert "Due on the next trip: " in result.summary
    created_at, body = shop.latest_document("analyses", "weekly")
    assert created_at == result.analyzed_at and body["summary"] == result.summary


def test_local_analyst_is_deterministic_and_cites_known_products(service):
    facts = customer_facts(service.analysis("weekly"))
    first, second = write_insights(facts), write_insights(json.loads(json.dumps(facts)))
    assert first == second
    assert {need["product_id"] for need in first["needs"]} <= {"milk", "bananas", "coffee"}
    assert [t["product_id"] for t in facts["trends"]] == ["chicken"]  # weekly for 8 weeks, then stopped


def test_facts_leave_out_everything_personal(service):
    text = json.dumps(customer_facts(service.analysis("weekly")))
    for private in (*PRIVATE_DETAILS, "weekly"):
        assert private not in text


def test_insights_are_reused_until_the_customer_buys_again(service, shop):
    first = service.insights("weekly")
    assert service.insights("weekly") is first  # cached, nothing bought since
    service.forget("weekly")
    assert service.insights("weekly").analyzed_at == first.analyzed_at  # from the store this time

    shop.add_purchases([Purchase("weekly", "new-order", "coffee", 1, 8.5, NOW - timedelta(minutes=5))])
    fresh = service.insights("weekly")
    assert fresh.analyzed_at > first.analyzed_at
    assert fresh.data_version == (NOW - timedelta(minutes=5)).isoformat()


@pytest.mark.parametrize("call", ["analyze", "insights", "predictions"])
def test_customers_without_consent_are_refused(service, call):
    with pytest.raises(FailedPreconditionError, match="'private' has not consented"):
        getattr(service, call)("private")


@pytest.mark.parametrize("call", ["analyze", "insights", "predictions"])
def test_unknown_customers_are_not_found(service, call):
    with pytest.raises(NotFoundError):
        getattr(service, call)("nobody")


def test_live_predictions_are_stored_once_per_purchase_history(service, shop):
    forecast = service.predictions("weekly")
    assert forecast.next_visit_at is not None and forecast.due_now
    service.predictions("weekly")
    assert len(shop.list_documents("predictions")) == 1

    service.predictions("weekly", as_of=NOW - timedelta(days=30))  # a backtest: not stored
    assert len(shop.list_documents("predictions")) == 1


def test_prediction_accuracy_scores_stored_forecasts_against_later_purchases(service, shop):
    # A forecast made 20 days ago (weekly shopper, last trip 27 days ago then) ...
    past = service.predictions("weekly", as_of=NOW - timedelta(days=20))
    shop.put_document("predictions", "weekly", past.as_of, past.to_document())
    # ... and a fresh one nothing has happened after yet.
    service.predictions("weekly")

    report = service.prediction_accuracy(since=NOW - timedelta(days=30), bucket="day")
    assert (report.overall.forecasts, report.overall.scored) == (2, 1)
    assert report.overall.next_visit_mae_days < 1.0  # weekly like clockwork
    assert report.overall.due_now_precision == 1.0
    assert [start.date() for start, _ in report.buckets] == sorted({past.as_of.date(), NOW.date()})


def run_batch(service, **kwargs):
    async def collect():
        return [p async for p in service.batch_analyze(**kwargs)]

    return asyncio.run(collect())


def test_batch_reports_progress_and_can_resume(service, shop):
    progress = run_batch(service, concurrency=2, progress_every=1)
    final = progress[-1]
    assert final.finished and not any(p.finished for p in progress[:-1])
    assert (final.total, final.done, final.analyzed, final.local, final.skipped, final.failed) == (3, 3, 2, 2, 1, 0)
    assert [p.done for p in progress] == sorted(p.done for p in progress)

    resumed = run_batch(service, skip_analyzed_since=final.started_at)[-1]
    assert (resumed.analyzed, resumed.skipped) == (0, 3)
    assert len(shop.list_documents("analyses")) == 2


def test_batch_of_named_customers(service):
    final = run_batch(service, customer_ids=["lapsed", "nobody"])[-1]
    assert (final.total, final.analyzed, final.skipped) == (2, 1, 1)


def test_cli_prints_the_summary_and_the_structure(shop):
    text = analyze_customer_cli(shop, Settings(bedrock_enabled=False), "lapsed")
    header, _, summary, _, structure = text.split("\n", 4)
    assert header.startswith("customer lapsed · source local (Bedrock is disabled)")
    assert "At risk of churning" in summary
    assert json.loads(structure)["lifecycle"]["segment"] == "at_risk"
