"""The campaign and inventory pages in a real headless browser (chromium through selenium, as in
test_console_browser.py), over the real gRPC server and gateway: what the pages show is what
MarketingService and InventoryService answer; the campaign form works end to end and, like every
console form, refuses a request without its page's token."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from console_support import console_form
from test_console_browser import console_errors, flash_saying, open_page, shot

from omnix_recs._proto.omnix.v1 import (
    customer_pb2,
    customer_pb2_grpc,
    inventory_pb2,
    inventory_pb2_grpc,
    marketing_pb2,
    marketing_pb2_grpc,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromium-driver are not installed (scripts/setup-system.sh installs them)",
)
PHONE = (390, 844)


@pytest.fixture(scope="module")
def campaign(stack: Any) -> Iterator[marketing_pb2.Campaign]:
    """A stored campaign over the stack's shoppers, each given marketing consent first."""
    customers = stack.stub(customer_pb2_grpc.CustomerServiceStub)
    for customer_id in stack.customer_ids:
        customers.UpdateConsent(
            customer_pb2.UpdateConsentRequest(
                customer_id=customer_id,
                consent=customer_pb2.Consent(personalization=True, marketing=True, analytics=True),
            )
        )
    marketing = stack.stub(marketing_pb2_grpc.MarketingServiceStub)
    yield marketing.CreateCampaign(
        marketing_pb2.CreateCampaignRequest(
            name="Weekly picks",
            kind=marketing_pb2.CAMPAIGN_KIND_PERSONALIZED_EMAIL,
            offer="10% off",
            holdout_percent=30,
            quiet_hours=marketing_pb2.QuietHours(),
            max_messages_per_week=50,
        )
    )


def campaign_count(stack: Any) -> int:
    marketing = stack.stub(marketing_pb2_grpc.MarketingServiceStub)
    return len(marketing.ListCampaigns(marketing_pb2.ListCampaignsRequest()).campaigns)


@pytest.mark.parametrize("page", ["campaigns", "campaign", "inventory"])
def test_pages_load_cleanly_and_fit_a_phone(browser: Any, stack: Any, campaign: Any, page: str) -> None:
    from selenium.webdriver.common.by import By

    path = {
        "campaigns": "/console/campaigns",
        "campaign": f"/console/campaigns/{campaign.campaign_id}",
        "inventory": "/console/inventory",
    }[page]
    for label, size in (("desktop", (1280, 900)), ("phone", PHONE)):
        open_page(browser, stack, path, size=size)
        assert console_errors(browser) == [], (page, label)
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{page} is {overflow}px wider than a {label} screen"
        shot(browser, f"{page}-{label}")
    current = browser.find_elements(By.CSS_SELECTOR, 'nav a[aria-current="page"]')
    assert [a.text for a in current] == ["Inventory" if page == "inventory" else "Campaigns"]
    for field in browser.find_elements(By.CSS_SELECTOR, "input:not([type=hidden]), select, textarea"):
        field_id = field.get_attribute("id")
        assert field_id and browser.find_elements(By.CSS_SELECTOR, f'label[for="{field_id}"]'), field_id


def test_campaign_page_shows_performance_and_messages(browser: Any, stack: Any, campaign: Any) -> None:
    from selenium.webdriver.common.by import By

    marketing = stack.stub(marketing_pb2_grpc.MarketingServiceStub)
    performance = marketing.GetCampaignPerformance(
        marketing_pb2.GetCampaignPerformanceRequest(campaign_id=campaign.campaign_id)
    )
    messages = marketing.ListCampaignMessages(
        marketing_pb2.ListCampaignMessagesRequest(campaign_id=campaign.campaign_id, page_size=10)
    ).messages
    assert campaign.audience_size > 0 and messages

    open_page(browser, stack, "/console/campaigns")
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-campaign-id="{campaign.campaign_id}"]')
    assert "personalized email" in row.text and str(campaign.audience_size) in row.text
    click_and_wait(browser, row.find_element(By.LINK_TEXT, "Weekly picks"))

    assert browser.find_element(By.TAG_NAME, "h1").text == "Campaign Weekly picks"
    assert browser.find_element(By.ID, "sent").text == str(performance.sent) == str(campaign.audience_size)
    assert browser.find_element(By.ID, "revenue").text == f"{performance.attributed_revenue:.2f}"
    assert (
        f"of {performance.holdout_size} held out"
        in browser.find_element(By.ID, "lift").find_element(By.XPATH, "..").text
    )
    bars = browser.find_elements(By.CSS_SELECTOR, "#campaign-chart rect.bar")
    assert bars
    shown = browser.find_elements(By.CSS_SELECTOR, "article.message")
    assert [a.get_attribute("data-customer-id") for a in shown] == [m.customer_id for m in messages]
    first = shown[0]
    assert messages[0].subject in first.find_element(By.TAG_NAME, "h3").text
    assert first.find_element(By.CSS_SELECTOR, ".badge").text == messages[0].source == "local"
    assert first.find_element(By.CSS_SELECTOR, "pre.body").text == messages[0].body.strip()
    assert console_errors(browser) == []


def test_a_campaign_built_from_the_form(browser: Any, stack: Any, campaign: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    before = campaign_count(stack)
    open_page(browser, stack, "/console/campaigns")
    browser.find_element(By.ID, "campaign-name").send_keys("Discovery from the console")
    Select(browser.find_element(By.ID, "campaign-kind")).select_by_visible_text("new product discovery")
    holdout = browser.find_element(By.ID, "campaign-holdout")
    holdout.clear()
    holdout.send_keys("0")
    browser.find_element(By.ID, "create").click()
    flash = flash_saying(browser, "Campaign created")
    assert "0 customers held out" in flash.text
    assert browser.find_element(By.TAG_NAME, "h1").text == "Campaign Discovery from the console"
    assert campaign_count(stack) == before + 1
    shot(browser, "campaign-created")

    # The server's refusal comes back as the page's message; nothing is stored.
    open_page(browser, stack, "/console/campaigns")
    browser.find_element(By.ID, "campaign-name").send_keys("x" * 5)
    holdout = browser.find_element(By.ID, "campaign-holdout")
    holdout.clear()
    holdout.send_keys("80")
    browser.find_element(By.ID, "create").click()
    error = flash_saying(browser, "Could not create the campaign")
    assert "holdout_percent" in error.text and "error" in error.get_attribute("class")
    assert campaign_count(stack) == before + 1


@pytest.mark.parametrize(
    ("case", "headers", "with_token"),
    [("no token", {}, False), ("another origin", {"origin": "http://evil.example"}, True)],
)
def test_a_forged_campaign_is_refused_and_builds_nothing(
    stack: Any, campaign: Any, case: str, headers: dict[str, str], with_token: bool
) -> None:
    before = campaign_count(stack)
    form = console_form(stack, name="forged", kind="CAMPAIGN_KIND_WIN_BACK")
    if not with_token:
        del form["csrf_token"]
    with httpx.Client(base_url=stack.base_url, cookies=stack.http.cookies) as client:
        response = client.post("/console/campaigns/create", data=form, headers=headers)
    assert response.status_code == 403 and "Refused" in response.text
    assert campaign_count(stack) == before


def test_an_unknown_campaign_is_a_clear_404(stack: Any) -> None:
    response = stack.http.get("/console/campaigns/no-such-campaign")
    assert response.status_code == 404
    assert "campaign &#39;no-such-campaign&#39; not found" in response.text


def click_and_wait(browser: Any, button: Any) -> None:
    """Click a link or a form's button and wait until the page it leads to has replaced this one
    (reading straight after the click could still read the old page)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.wait import WebDriverWait

    def replaced(_: Any) -> bool:
        try:
            button.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:  # chromium may say so in other words
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    button.click()
    WebDriverWait(browser, 10).until(replaced)


def test_inventory_page_shows_the_forecast_and_the_reorder_advice(browser: Any, stack: Any) -> None:
    from selenium.webdriver.common.by import By

    inventory = stack.stub(inventory_pb2_grpc.InventoryServiceStub)
    expected = inventory.GetInventoryForecast(inventory_pb2.GetInventoryForecastRequest(horizon_days=7, limit=20))
    open_page(browser, stack, "/console/inventory?horizon_days=7")
    rows = browser.find_elements(By.CSS_SELECTOR, "#forecast tbody tr")
    assert [r.get_attribute("data-product-id") for r in rows] == [f.product_id for f in expected.forecasts]
    assert rows[0].find_elements(By.TAG_NAME, "td")[0].text == f"{expected.forecasts[0].expected_units:.0f}"
    assert browser.find_elements(By.CSS_SELECTOR, "#forecast-chart rect.bar")

    # The suggested positions: the five best sellers, from empty shelves.
    advice = browser.find_elements(By.CSS_SELECTOR, "#reorder tbody tr")
    assert [r.get_attribute("data-product-id") for r in advice] == [f.product_id for f in expected.forecasts[:5]]
    best = expected.forecasts[0].product_id
    positions = browser.find_element(By.ID, "positions")
    positions.clear()
    positions.send_keys(f"{best} 1000 2")
    click_and_wait(browser, browser.find_element(By.ID, "advise"))
    (row,) = browser.find_elements(By.CSS_SELECTOR, "#reorder tbody tr")
    assert row.get_attribute("data-product-id") == best and "nothing" in row.text
    shot(browser, "inventory-reorder")

    positions = browser.find_element(By.ID, "positions")
    positions.clear()
    positions.send_keys(f"{best} lots")
    click_and_wait(browser, browser.find_element(By.ID, "advise"))
    assert "line 1: expected a product id, units on hand" in browser.find_element(By.CSS_SELECTOR, ".unavailable").text
    assert console_errors(browser) == []


def test_inventory_of_a_store_without_sales_and_of_an_unknown_product(stack: Any) -> None:
    page = stack.http.get("/console/inventory", params={"store_id": "north-7"})
    assert page.status_code == 200 and "Nothing sold in store north-7 in the last 91 days" in page.text
    page = stack.http.get("/console/inventory", params={"product_id": "no-such-product"})
    assert "The forecast unavailable:" in page.text and "NOT_FOUND" in page.text
    page = stack.http.get("/console/inventory", params={"store_id": "bad store!"})
    assert "store_id:" in page.text and "INVALID_ARGUMENT" in page.text
