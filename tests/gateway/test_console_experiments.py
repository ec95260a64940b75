"""The console's experiments, performance and prediction-accuracy pages in a real headless browser, over the
`stack` of conftest.py: an experiment defined and fed over gRPC shows its arms, intervals and
verdict; the stop button stops it end to end; the performance page charts what the reports
RPCs answer, per week and per strategy. Screenshots go to test-output/console/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from console_support import console_form
from test_console_browser import CHROMEDRIVER, CHROMIUM, PHONE, console_errors, flash_saying, open_page, shot

from omnix_recs._proto.omnix.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    insights_pb2,
    insights_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromium-driver are not installed (scripts/setup-system.sh installs them)",
)
EXPERIMENT = "console-ab"
SERVED_WAIT_S = 15.0  # served lists are written by a background writer


@pytest.fixture(scope="module")
def experiment(stack: Any) -> Iterator[admin_pb2.GetExperimentResultsResponse]:
    """A running experiment on the personalised surface (the other console tests read the
    ordinary lists), its lists served to every customer and clicked by some."""
    admin = stack.stub(admin_pb2_grpc.AdminServiceStub)
    recommendations = stack.stub(recommendation_pb2_grpc.RecommendationServiceStub)
    versions = [m.version for m in admin.ListModels(admin_pb2.ListModelsRequest()).models]
    admin.CreateExperiment(
        admin_pb2.CreateExperimentRequest(
            experiment_id=EXPERIMENT,
            description="active model against the untuned one",
            surface=admin_pb2.EXPERIMENT_SURFACE_PERSONALIZED,
            arms=[
                admin_pb2.ExperimentArm(arm_id="control", traffic_percent=50),
                admin_pb2.ExperimentArm(arm_id="untuned", traffic_percent=50, model_version=versions[-1]),
            ],
            primary_metric=admin_pb2.EXPERIMENT_METRIC_CLICK_THROUGH_RATE,
            holdout_percent=10,
        )
    )
    served = 0
    for n, customer_id in enumerate(stack.store.list_customer_ids(100).items):
        response = recommendations.GetPersonalizedRecommendations(
            recommendation_pb2.GetPersonalizedRecommendationsRequest(customer_id=customer_id, limit=5)
        )
        served += 1
        for item in response.items[: n % 3]:
            recommendations.RecordFeedback(
                recommendation_pb2.RecordFeedbackRequest(
                    recommendation_id=response.recommendation_id,
                    product_id=item.product_id,
                    event=recommendation_pb2.FEEDBACK_EVENT_CLICKED,
                )
            )
    deadline = time.monotonic() + SERVED_WAIT_S
    while True:
        results = admin.GetExperimentResults(admin_pb2.GetExperimentResultsRequest(experiment_id=EXPERIMENT))
        if sum(a.served_lists for a in results.arms) == served or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sum(a.served_lists for a in results.arms) == served
    yield results
    try:
        admin.StopExperiment(admin_pb2.StopExperimentRequest(experiment_id=EXPERIMENT))
    except grpc.RpcError:
        pass  # already stopped by the test


def test_experiments_page_lists_what_the_api_lists(browser: Any, stack: Any, experiment: Any) -> None:
    from selenium.webdriver.common.by import By

    listed = stack.stub(admin_pb2_grpc.AdminServiceStub).ListExperiments(admin_pb2.ListExperimentsRequest())
    for label, size in (("desktop", (1280, 900)), ("phone", PHONE)):
        open_page(browser, stack, "/console/experiments", size=size)
        rows = browser.find_elements(By.CSS_SELECTOR, "#experiments tbody tr[data-experiment-id]")
        assert {r.get_attribute("data-experiment-id") for r in rows} == {e.experiment_id for e in listed.experiments}
        assert browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth") <= 1, label
        assert console_errors(browser) == []
        shot(browser, f"experiments-{label}")
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-experiment-id="{EXPERIMENT}"]')
    assert "running" in row.text and "control (50%)" in row.text and "10%" in row.text
    row.find_element(By.LINK_TEXT, EXPERIMENT).click()
    assert browser.find_element(By.TAG_NAME, "h1").text == f"Experiment {EXPERIMENT}"


def test_experiment_page_shows_arms_intervals_and_verdict(browser: Any, stack: Any, experiment: Any) -> None:
    from selenium.webdriver.common.by import By

    for label, size in (("desktop", (1280, 900)), ("phone", PHONE)):
        open_page(browser, stack, f"/console/experiments/{EXPERIMENT}", size=size)
        assert console_errors(browser) == []
        assert browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth") <= 1, label
        shot(browser, f"experiment-{label}")
    rows = browser.find_elements(By.CSS_SELECTOR, "#arms tbody tr[data-arm-id]")
    assert [r.get_attribute("data-arm-id") for r in rows] == [a.arm_id for a in experiment.arms]
    assert [a.arm_id for a in experiment.arms] == ["control", "untuned", "holdout"]
    for row, arm in zip(rows, experiment.arms):
        cells = row.find_elements(By.TAG_NAME, "td")
        assert cells[1].text.startswith(str(arm.customers)) and cells[2].text == str(arm.served_lists)
        ctr = arm.click_through_rate_interval
        assert f"{ctr.value * 100:.1f}%" in cells[7].text and f"{ctr.high * 100:.1f}%" in cells[7].text
    estimates = browser.find_elements(By.CSS_SELECTOR, "#primary-chart circle.estimate")
    whiskers = browser.find_elements(By.CSS_SELECTOR, "#primary-chart line.interval")
    assert len(estimates) == len(whiskers) == 3 and all(e.is_displayed() for e in estimates)
    assert any(float(w.get_attribute("x2")) > float(w.get_attribute("x1")) for w in whiskers)  # clicks were made
    assert len(browser.find_elements(By.CSS_SELECTOR, "#difference-chart circle.estimate")) == 1
    assert browser.find_elements(By.CSS_SELECTOR, "#split-chart rect.bar")
    assert browser.find_element(By.ID, "winner").text == (experiment.winner or "none yet")
    assert browser.find_element(By.ID, "p-value").text == f"{experiment.p_value:.3g}"
    expected_ratio = "mismatch" if experiment.sample_ratio_mismatch else "as planned"
    assert browser.find_element(By.ID, "sample-ratio").text == expected_ratio


def test_an_independent_experiment_shows_beside_the_other(browser: Any, stack: Any, experiment: Any) -> None:
    """An A/A test declared independent runs beside console-ab (it sets none of its levers):
    the list marks it, and each experiment's page names the other its customers are also in."""
    from selenium.webdriver.common.by import By

    admin = stack.stub(admin_pb2_grpc.AdminServiceStub)
    admin.CreateExperiment(
        admin_pb2.CreateExperimentRequest(
            experiment_id="console-aa",
            surface=admin_pb2.EXPERIMENT_SURFACE_PERSONALIZED,
            arms=[
                admin_pb2.ExperimentArm(arm_id="a", traffic_percent=50),
                admin_pb2.ExperimentArm(arm_id="b", traffic_percent=50),
            ],
            independent=True,
        )
    )
    try:
        open_page(browser, stack, "/console/experiments")
        independence = {
            r.get_attribute("data-experiment-id"): r.find_element(By.CSS_SELECTOR, "td.independence").text
            for r in browser.find_elements(By.CSS_SELECTOR, "#experiments tbody tr[data-experiment-id]")
        }
        assert (independence["console-aa"], independence[EXPERIMENT]) == ("independent", "alone")
        open_page(browser, stack, f"/console/experiments/{EXPERIMENT}")
        assert "to itself" in browser.find_element(By.ID, "independence").text
        beside = browser.find_elements(By.CSS_SELECTOR, "#beside a[data-experiment-id]")
        assert [a.get_attribute("data-experiment-id") for a in beside] == ["console-aa"]
        beside[0].click()
        assert browser.find_element(By.TAG_NAME, "h1").text == "Experiment console-aa"
        assert browser.find_element(By.ID, "independence").text.startswith("independent Runs beside")
        assert [a.get_attribute("data-experiment-id") for a in browser.find_elements(By.CSS_SELECTOR, "#beside a")] == [
            EXPERIMENT
        ]
        assert console_errors(browser) == []
        shot(browser, "experiment-independent")
    finally:
        admin.StopExperiment(admin_pb2.StopExperimentRequest(experiment_id="console-aa"))


def test_stop_button_stops_the_experiment(browser: Any, stack: Any, experiment: Any) -> None:
    from selenium.webdriver.common.by import By

    admin = stack.stub(admin_pb2_grpc.AdminServiceStub)
    open_page(browser, stack, f"/console/experiments/{EXPERIMENT}")
    browser.find_element(By.ID, "stop").click()
    flash_saying(browser, f"Experiment {EXPERIMENT} is stopped")
    stopped = admin.GetExperiment(admin_pb2.GetExperimentRequest(experiment_id=EXPERIMENT))
    assert not stopped.running and stopped.HasField("stopped_at")
    assert browser.find_element(By.ID, "status").text == "stopped"
    assert not browser.find_elements(By.ID, "stop")  # nothing left to stop
    served = stack.stub(recommendation_pb2_grpc.RecommendationServiceStub).GetPersonalizedRecommendations(
        recommendation_pb2.GetPersonalizedRecommendationsRequest(customer_id=stack.customer_ids[0], limit=5)
    )
    assert served.experiment_id == ""
    assert console_errors(browser) == []
    shot(browser, "experiment-stopped")


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        ("/console/experiments/no-such-experiment", 404, "NOT_FOUND"),
        ("/console/experiments/" + "x" * 300, 400, "INVALID_ARGUMENT"),
    ],
)
def test_an_unknown_experiment_is_a_clear_error(stack: Any, path: str, status: int, text: str) -> None:
    response = stack.http.get(path)
    assert response.status_code == status and text in response.text


def test_stopping_an_unknown_experiment_shows_the_servers_message(stack: Any) -> None:
    response = stack.http.post(
        "/console/experiments/no-such-experiment/stop", data=console_form(stack), follow_redirects=True
    )
    assert response.status_code == 404  # the redirect lands on the experiment's (missing) page
    assert "Could not stop no-such-experiment" in response.text
    assert "flash error" in response.text


def test_performance_page_charts_the_reports(browser: Any, stack: Any, experiment: Any) -> None:
    from selenium.webdriver.common.by import By

    admin = stack.stub(admin_pb2_grpc.AdminServiceStub)
    whole = admin.GetRecommendationPerformance(admin_pb2.GetRecommendationPerformanceRequest())
    roi = admin.GetRecommendationRoi(admin_pb2.GetRecommendationRoiRequest())
    assert whole.lists_served >= sum(a.served_lists for a in experiment.arms) and whole.total.clicks > 0
    open_page(browser, stack, "/console/performance")
    assert console_errors(browser) == []
    shot(browser, "performance-with-data")
    assert browser.find_element(By.ID, "kpi-ctr").text == f"{whole.click_through_rate * 100:.1f}%"
    assert browser.find_element(By.ID, "kpi-share").text == f"{roi.revenue_share * 100:.1f}%"
    rows = browser.find_elements(By.CSS_SELECTOR, "#strategies tbody tr[data-strategy]")
    assert [r.get_attribute("data-strategy") for r in rows] == [s.strategy for s in whole.slices]
    strategy_bars = browser.find_elements(By.CSS_SELECTOR, "#strategy-chart rect.bar")
    assert strategy_bars and max(float(b.get_attribute("height")) for b in strategy_bars) > 0
    this_week = browser.find_element(By.ID, "rates-chart")
    assert int(this_week.get_attribute("data-points")) > 0
    impressions = browser.find_elements(By.CSS_SELECTOR, "#impressions-chart rect.bar")
    assert max(float(b.get_attribute("height")) for b in impressions) > 0


@pytest.fixture(scope="module")
def stored_predictions(stack: Any) -> list[str]:
    """Forecasts as if served 40 and 20 days ago (a week apart from the trips that followed)."""
    from omnix_recs.domain.predictions import ConsumptionForecast, ProductForecast

    now = datetime.now(UTC)
    customers = list(stack.store.list_customer_ids(12).items)
    for n, customer_id in enumerate(customers):
        for age, miss in ((40, 1.0), (20, 3.0)):
            as_of = now - timedelta(days=age, minutes=n)
            predicted = as_of + timedelta(days=7 + miss)
            product = ProductForecast(stack.product_ids[0], predicted, 0.7, 7.0, as_of - timedelta(days=7), True)
            forecast = ConsumptionForecast(customer_id, as_of, predicted, 0.7, 7.0, (product,))
            stack.store.put_document("predictions", customer_id, as_of, forecast.to_document())
    return customers


@pytest.mark.parametrize("horizon_days", [7, 0])
def test_accuracy_page_shows_drift_as_the_api_reports_it(
    browser: Any, stack: Any, stored_predictions: list[str], horizon_days: int
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.wait import WebDriverWait

    reply = stack.stub(insights_pb2_grpc.InsightsServiceStub).GetPredictionAccuracy(
        insights_pb2.GetPredictionAccuracyRequest(bucket=insights_pb2.ACCURACY_BUCKET_WEEK, horizon_days=horizon_days)
    )
    assert reply.overall.predictions >= 2 * len(stored_predictions)
    open_page(browser, stack, "/console/accuracy")
    Select(browser.find_element(By.ID, "horizon")).select_by_value(str(horizon_days))
    browser.find_element(By.CSS_SELECTOR, "form.search button").click()
    WebDriverWait(browser, 10).until(lambda driver: f"horizon_days={horizon_days}" in driver.current_url)
    assert console_errors(browser) == []
    rows = browser.find_elements(By.CSS_SELECTOR, "#accuracy-weeks tbody tr")
    assert len(rows) == len(reply.buckets)
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == [
        f"{b.accuracy.scored} / {b.accuracy.predictions}" for b in reply.buckets
    ]
    measured = sum(
        b.accuracy.HasField(name) for b in reply.buckets for name in ("next_visit_mae_days", "next_purchase_mae_days")
    )
    assert measured and int(browser.find_element(By.ID, "accuracy-chart").get_attribute("data-points")) == measured
    verdict = browser.find_element(By.ID, "drift-verdict").text
    if reply.drift.drifting:
        assert verdict == "getting worse" and browser.find_element(By.ID, "drift-alert").is_displayed()
    else:
        assert verdict == ("steady" if reply.drift.HasField("p_value") else "not enough data")
    shot(browser, f"accuracy-horizon-{horizon_days}")
