"""InsightsService end to end over gRPC: predictions, analyses, batch, accuracy, errors, and the
call's deadline reaching the Bedrock client."""

from __future__ import annotations

import dataclasses
import socket
import time
from datetime import timedelta

import grpc
import pytest
from e2e_support import NOW, bad_field, days_ago, rpc_error, ts

from omnix_recs._proto.omnix.v1 import insights_pb2 as pb
from omnix_recs._proto.omnix.v1 import insights_pb2_grpc
from omnix_recs.config import Settings
from omnix_recs.domain.models import Consent, Customer, Product, Purchase
from omnix_recs.insights.analyst import InsightsService
from omnix_recs.store.base import Store


def seed(store: Store) -> None:
    """Two weekly shoppers (milk and bread every week, coffee every other) and one who opted out."""
    store.upsert_products(
        [
            Product("milk", "Whole Milk", "dairy eggs", "milk", price=1.3),
            Product("bread", "Sourdough Loaf", "bakery", "bread", price=3.0),
            Product("coffee", "Ground Coffee", "breakfast", "coffee", price=8.5),
        ]
    )
    for customer_id, consent in [
        ("c1", Consent()),
        ("c2", Consent()),
        ("optout", Consent(analytics=False, personalization=False)),
    ]:
        store.create_customer(Customer(customer_id, NOW, NOW, consent=consent))
    rows = []
    for customer_id in ("c1", "c2", "optout"):
        for week in range(12):
            at = days_ago(3 + 7 * week)
            order = f"{customer_id}-{week}"
            rows += [
                Purchase(customer_id, order, "milk", 1, 1.3, at),
                Purchase(customer_id, order, "bread", 1, 3.0, at),
            ]
            if week % 2 == 0:
                rows.append(Purchase(customer_id, order, "coffee", 1, 8.5, at))
    store.add_purchases(rows)


@pytest.fixture
def server(running_server):
    return running_server(prepare=seed)


@pytest.fixture
def insights(server) -> insights_pb2_grpc.InsightsServiceStub:
    return server.stub(insights_pb2_grpc.InsightsServiceStub)


def test_consumption_predictions(insights, server):
    reply = insights.GetConsumptionPredictions(pb.GetConsumptionPredictionsRequest(customer_id="c1"))
    next_visit = reply.next_visit_at.ToDatetime().replace(tzinfo=NOW.tzinfo)
    assert timedelta(days=3) < next_visit - NOW < timedelta(days=5)  # last trip 3 days ago, weekly
    assert reply.visit_cycle_days == pytest.approx(7.0, abs=0.2)
    assert [p.product_id for p in reply.predictions if p.due_now] == ["bread", "milk"]  # ties by id
    assert {p.product_id for p in reply.predictions} == {"milk", "bread", "coffee"}
    assert all(0 < p.confidence <= 1 for p in reply.predictions)
    assert len(server.store.list_documents("predictions")) == 1  # stored for later scoring

    limited = insights.GetConsumptionPredictions(
        pb.GetConsumptionPredictionsRequest(customer_id="c1", limit=1, due_only=True)
    )
    assert [p.product_id for p in limited.predictions] == ["bread"]

    backtest = insights.GetConsumptionPredictions(
        pb.GetConsumptionPredictionsRequest(customer_id="c1", as_of=ts(days_ago(40)))
    )
    assert backtest.as_of.ToDatetime().replace(tzinfo=NOW.tzinfo) == days_ago(40)
    assert len(server.store.list_documents("predictions")) == 1  # backtests are not stored


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"customer_id": ""}, "customer_id"),
        ({"customer_id": "bad id!"}, "customer_id"),
        ({"customer_id": "c1", "limit": 201}, "limit"),
        ({"customer_id": "c1", "limit": -1}, "limit"),
        ({"customer_id": "c1", "as_of": ts(NOW + timedelta(days=3))}, "as_of"),
    ],
)
def test_invalid_prediction_requests_name_the_field(request_fields, field, insights):
    error = rpc_error(insights.GetConsumptionPredictions, pb.GetConsumptionPredictionsRequest(**request_fields))
    assert bad_field(error) == field


@pytest.mark.parametrize(
    ("customer_id", "code"),
    [("nobody", grpc.StatusCode.NOT_FOUND), ("optout", grpc.StatusCode.FAILED_PRECONDITION)],
)
def test_unknown_or_opted_out_customers(customer_id, code, insights):
    for rpc, request in [
        (insights.GetConsumptionPredictions, pb.GetConsumptionPredictionsRequest(customer_id=customer_id)),
        (insights.AnalyzeCustomer, pb.AnalyzeCustomerRequest(customer_id=customer_id)),
        (insights.GetInsights, pb.GetInsightsRequest(customer_id=customer_id)),
    ]:
        assert rpc_error(rpc, request).code() is code


def test_analysis_and_insights(insights, server):
    analysis = insights.AnalyzeCustomer(pb.AnalyzeCustomerRequest(customer_id="c1"))
    assert (analysis.source, analysis.model, analysis.fallback_reason) == ("local", "local", "Bedrock is disabled")
    assert analysis.summary.startswith("12 trips over 80 days; shops about every 7 days")
    assert analysis.insights.household.size >= 1
    assert analysis.insights.lifecycle.segment in {"new", "regular", "vip", "at_risk"}
    assert {n.product_id for n in analysis.insights.needs if n.when == "due_now"} == {"milk", "bread"}
    assert analysis.insights.highlights

    again = insights.GetInsights(pb.GetInsightsRequest(customer_id="c1"))
    assert again.analyzed_at == analysis.analyzed_at  # nothing bought since: the same analysis
    assert again.summary == analysis.summary

    server.store.add_purchases([Purchase("c1", "late-order", "coffee", 1, 8.5, NOW - timedelta(minutes=1))])
    fresh = insights.GetInsights(pb.GetInsightsRequest(customer_id="c1"))
    assert fresh.analyzed_at.ToDatetime() > analysis.analyzed_at.ToDatetime()


def test_batch_analysis_streams_progress_and_resumes(insights, server):
    progress = list(insights.BatchAnalyze(pb.BatchAnalyzeRequest(concurrency=2, progress_every=1)))
    final = progress[-1]
    assert final.finished and (final.total, final.analyzed, final.local, final.skipped) == (3, 2, 2, 1)
    resumed = list(insights.BatchAnalyze(pb.BatchAnalyzeRequest(skip_analyzed_since=final.started_at)))[-1]
    assert (resumed.analyzed, resumed.skipped) == (0, 3)


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"customer_ids": ["ok", "not ok"]}, "customer_ids[1]"),
        ({"concurrency": 17}, "concurrency"),
        ({"max_customers": -1}, "max_customers"),
    ],
)
def test_invalid_batch_requests_name_the_field(request_fields, field, insights, server):
    error = rpc_error(lambda r: list(insights.BatchAnalyze(r)), pb.BatchAnalyzeRequest(**request_fields))
    assert bad_field(error) == field
    assert server.store.list_documents("analyses") == []


def test_prediction_accuracy(insights, server):
    insights.GetConsumptionPredictions(pb.GetConsumptionPredictionsRequest(customer_id="c2"))  # live: pending
    # A forecast as if served 10 days ago; c1 has shopped since (3 days ago).
    service = InsightsService(server.store, Settings())
    past = service.predictions("c1", as_of=days_ago(10))
    server.store.put_document("predictions", "c1", past.as_of, past.to_document())

    reply = insights.GetPredictionAccuracy(pb.GetPredictionAccuracyRequest(bucket=pb.ACCURACY_BUCKET_DAY))
    assert (reply.overall.predictions, reply.overall.scored) == (2, 1)
    assert reply.overall.HasField("next_visit_mae_days") and reply.overall.next_visit_mae_days < 1.0
    assert len(reply.buckets) == 2
    pending = [b for b in reply.buckets if b.accuracy.scored == 0]
    assert len(pending) == 1 and not pending[0].accuracy.HasField("next_visit_mae_days")

    error = rpc_error(
        insights.GetPredictionAccuracy, pb.GetPredictionAccuracyRequest(since=ts(NOW), until=ts(days_ago(1)))
    )
    assert bad_field(error) == "until"


@pytest.fixture
def silent_bedrock() -> str:
    """An endpoint that accepts connections and never answers (the kernel completes the TCP
    handshake from the listen backlog; nothing ever reads the request)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_silent_bedrock_still_answers_locally_within_the_call_deadline(
    running_server, silent_bedrock, monkeypatch, tmp_path
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFORTESTS0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-for-tests")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    settings = dataclasses.replace(
        Settings(), bedrock_enabled=True, bedrock_endpoint_url=silent_bedrock, bedrock_timeout_s=30.0
    )
    insights = running_server(settings=settings, prepare=seed).stub(insights_pb2_grpc.InsightsServiceStub)

    started = time.monotonic()
    reply = insights.AnalyzeCustomer(pb.AnalyzeCustomerRequest(customer_id="c1"), timeout=2.0)
    elapsed = time.monotonic() - started
    assert reply.source == "local"
    assert reply.fallback_reason == "Bedrock did not answer in time"
    assert elapsed < 2.0  # the call's deadline, not Bedrock's 30 s, bounded the wait
