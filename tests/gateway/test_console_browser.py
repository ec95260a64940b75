"""The console in a real headless browser (Debian's chromium driven by selenium through
chromium-driver, both installed by scripts/setup-system.sh): every page loads without console
errors and fits a phone's width, charts draw with data, activate and roll back work end to end,
and the customer page shows what the gRPC API answers. Screenshots go to test-output/console/."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from omnix_recs._proto.omnix.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    insights_pb2,
    insights_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromium-driver are not installed (scripts/setup-system.sh installs them)",
)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "console"
DESKTOP, PHONE = (1280, 900), (390, 844)
PAGES = [
    ("overview", "/console/"),
    ("models", "/console/models"),
    ("customers", "/console/customers"),
    ("customer", "/console/customers/{customer}"),
    ("performance", "/console/performance"),
    ("accuracy", "/console/accuracy"),
    ("experiments", "/console/experiments"),
    ("campaigns", "/console/campaigns"),
    ("docs", "/docs"),
]


def open_page(browser: Any, stack: Any, path: str, *, size: tuple[int, int] = DESKTOP) -> None:
    browser.set_window_size(*size)
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(stack.base_url + path)


def console_errors(browser: Any) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def flash_saying(browser: Any, text: str) -> Any:
    """The page's message once it says `text` (the form's redirect may still be loading)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    WebDriverWait(browser, 10).until(
        expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), text)
    )
    return browser.find_element(By.CSS_SELECTOR, ".flash")


def shot(browser: Any, name: str) -> None:
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


@pytest.mark.parametrize(("name", "path"), PAGES)
def test_every_page_loads_cleanly_on_desktop_and_phone(browser: Any, stack: Any, name: str, path: str) -> None:
    from selenium.webdriver.common.by import By

    path = path.format(customer=stack.customer_ids[0])
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        open_page(browser, stack, path, size=size)
        if name == "docs":  # rendered by its own script from /openapi.json
            browser.find_element(By.CSS_SELECTOR, "section.op")
        assert console_errors(browser) == [], (name, label)
        assert browser.find_element(By.TAG_NAME, "h1").text
        assert browser.find_elements(By.TAG_NAME, "main") and browser.find_elements(By.TAG_NAME, "nav")
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name} is {overflow}px wider than a {label} screen"
        shot(browser, f"{name}-{label}")
    if name != "docs":
        current = browser.find_elements(By.CSS_SELECTOR, 'nav a[aria-current="page"]')
        assert len(current) == 1


def test_pages_are_keyboard_and_screen_reader_friendly(browser: Any, stack: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(browser, stack, f"/console/customers/{stack.customer_ids[0]}")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    skip = browser.switch_to.active_element
    assert skip.text == "Skip to content"
    skip.send_keys(Keys.ENTER)
    assert browser.switch_to.active_element.get_attribute("id") == "main"
    for field in browser.find_elements(By.CSS_SELECTOR, "input:not([type=hidden])"):
        field_id = field.get_attribute("id")
        assert field_id and browser.find_elements(By.CSS_SELECTOR, f'label[for="{field_id}"]'), field_id
    for chart in browser.find_elements(By.CSS_SELECTOR, "svg.chart"):
        assert chart.get_attribute("role") == "img" and chart.get_attribute("aria-labelledby")


def test_charts_draw_with_data(browser: Any, stack: Any) -> None:
    from selenium.webdriver.common.by import By

    for _ in range(3):  # traffic for the overview to draw
        stack.http.get(f"/v1/customers/{stack.customer_ids[0]}/recommendations")
    open_page(browser, stack, "/console/")
    traffic = browser.find_element(By.ID, "traffic-chart")
    assert traffic.size["height"] > 50 and int(traffic.get_attribute("data-points")) > 0
    latency_bars = browser.find_elements(By.CSS_SELECTOR, "#latency-chart rect.bar")
    assert latency_bars and max(float(b.get_attribute("height")) for b in latency_bars) > 0

    open_page(browser, stack, "/console/models")
    bars = browser.find_elements(By.CSS_SELECTOR, "#validation-chart rect.bar")
    assert bars and max(float(b.get_attribute("height")) for b in bars) > 0

    open_page(browser, stack, f"/console/customers/{stack.customer_ids[0]}")
    trips = browser.find_elements(By.CSS_SELECTOR, "#timeline-chart circle.trip")
    assert trips and all(t.is_displayed() for t in trips[:3])
    assert browser.find_elements(By.CSS_SELECTOR, "#timeline-chart line.predicted")
    shot(browser, "charts-customer")
    assert console_errors(browser) == []


def test_roll_back_and_activate_from_the_models_page(browser: Any, stack: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    admin = stack.stub(admin_pb2_grpc.AdminServiceStub)

    def active_version() -> str:
        return next(m.version for m in admin.ListModels(admin_pb2.ListModelsRequest()).models if m.active)

    before = active_version()
    open_page(browser, stack, "/console/models")
    browser.find_element(By.ID, "rollback").click()
    flash = flash_saying(browser, "Rolled back")
    after_rollback = active_version()
    assert after_rollback != before and after_rollback in flash.text
    assert browser.find_element(By.CSS_SELECTOR, "article.model.active h3").text.startswith(after_rollback)
    shot(browser, "models-after-rollback")

    # Back to the version that was active, from the keyboard: tick "force", press Enter on the button.
    button = browser.find_element(By.CSS_SELECTOR, f'button[data-version="{before}"]')
    button.find_element(By.XPATH, "..").find_element(By.NAME, "force").send_keys(Keys.SPACE)
    button.send_keys(Keys.ENTER)
    flash_saying(browser, f"Version {before} is active")
    assert active_version() == before
    assert console_errors(browser) == []

    # A refused action shows the server's message and changes nothing.
    open_page(browser, stack, "/console/models")
    oldest = browser.find_elements(By.CSS_SELECTOR, "button[data-version]")[-1].get_attribute("data-version")
    admin.ActivateModel(admin_pb2.ActivateModelRequest(version=oldest, force=True))
    browser.find_element(By.ID, "rollback").click()
    error = flash_saying(browser, "Could not roll back")
    assert "nothing to roll back to" in error.text and "error" in error.get_attribute("class")
    assert active_version() == oldest
    admin.ActivateModel(admin_pb2.ActivateModelRequest(version=before, force=True))
    assert active_version() == before


def test_customer_page_shows_what_the_grpc_api_returns(browser: Any, stack: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    customer = stack.customer_ids[1]
    recommendations = stack.stub(recommendation_pb2_grpc.RecommendationServiceStub)
    open_page(browser, stack, f"/console/customers/{customer}")
    for strategy in ("STRATEGY_REPLENISH", "STRATEGY_BALANCED", "STRATEGY_DISCOVER"):
        expected = recommendations.GetRecommendations(
            recommendation_pb2.GetRecommendationsRequest(customer_id=customer, limit=8, strategy=strategy)
        )
        shown = browser.find_elements(By.CSS_SELECTOR, f'ol[data-strategy="{strategy}"] > li[data-product-id]')
        assert [li.get_attribute("data-product-id") for li in shown] == [i.product_id for i in expected.items]
        for li, item in zip(shown, expected.items):
            assert [r.text for r in li.find_elements(By.CSS_SELECTOR, "ul.reasons li")] == list(item.reasons)

    first = browser.find_element(By.CSS_SELECTOR, 'ol[data-strategy="STRATEGY_REPLENISH"] > li[data-product-id]')
    product = first.get_attribute("data-product-id")
    first.find_element(By.LINK_TEXT, "similar products").click()
    WebDriverWait(browser, 10).until(lambda driver: "similar_to=" in driver.current_url)
    similar = recommendations.GetSimilarProducts(
        recommendation_pb2.GetSimilarProductsRequest(product_id=product, limit=8)
    )
    shown = browser.find_elements(By.CSS_SELECTOR, "#similar li[data-product-id]")
    assert [li.get_attribute("data-product-id") for li in shown] == [i.product_id for i in similar.items]

    browser.find_element(By.ID, "analyze").click()
    flash_saying(browser, f"Analysed {customer}")
    insight = stack.stub(insights_pb2_grpc.InsightsServiceStub).GetInsights(
        insights_pb2.GetInsightsRequest(customer_id=customer)
    )
    assert browser.find_element(By.ID, "insight-summary").text == insight.summary.strip()
    assert insight.source in browser.find_element(By.ID, "insight-source").text
    predictions = browser.find_elements(By.CSS_SELECTOR, "#predictions tbody tr")
    assert predictions
    shot(browser, "customer-after-analysis")
    assert console_errors(browser) == []


def test_an_unknown_customer_is_a_clear_404(browser: Any, stack: Any) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, stack, "/console/customers")
    field = browser.find_element(By.ID, "customer-id")
    field.send_keys("nobody-like-this")
    field.submit()
    assert "not found" in browser.find_element(By.CSS_SELECTOR, ".flash.error").text
    # Chromium logs the 404 document itself as a failed resource; nothing else may fail.
    assert all("404" in message for message in console_errors(browser))
